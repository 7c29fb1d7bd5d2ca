"""`mx serve SPEC... [--host] [--port] [--max-batch-size] [--max-queue-delay-ms] [--canary]
[--max-body-mb] [--max-inflight-mb] [--header-timeout] [--body-timeout] [--grpc-port]`"""

from __future__ import annotations

import re

import click

from mx.cli.options import registry_option


def _canary(value: str) -> tuple[str, float]:
    m = re.fullmatch(r"(.+)=(\d+(?:\.\d+)?)%?", value)
    if not m or not 0 < float(m.group(2)) <= 100:
        raise click.BadParameter(f"{value!r}: write SPEC=PERCENT, e.g. acme/iris@1.5.0-rc.1=10%",
                                 param_hint="--canary")
    return m.group(1), float(m.group(2))


@click.command()
@click.argument("specs", nargs=-1, required=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@registry_option
@click.option("--variant", help="Artifact variant to serve (e.g. int8) [default: fp32].")
@click.option("--max-batch-size", default=32, show_default=True, type=click.IntRange(1),
              help="Rows per onnxruntime run (1: no dynamic batching).")
@click.option("--max-queue-delay-ms", default=2.0, show_default=True,
              type=click.FloatRange(0), help="How long a request may wait to share a batch.")
@click.option("--canary", "canaries", multiple=True, metavar="SPEC=PERCENT",
              help="Send PERCENT of unversioned requests to this version (repeatable).")
@click.option("--max-body-mb", default=64.0, show_default=True, type=click.FloatRange(0.001),
              help="Largest request body (413 over it).")
@click.option("--max-inflight-mb", type=click.FloatRange(0.001),
              help="Request bodies held in memory at once; a request over it gets 503 with "
                   "Retry-After (bodies under 64 KiB may use an eighth more) [default: twice "
                   "--max-body-mb].")
@click.option("--header-timeout", default=10.0, show_default=True,
              type=click.FloatRange(0.01), help="Seconds a client has to send a request's "
              "headers (408 and close past it).")
@click.option("--body-timeout", default=60.0, show_default=True, type=click.FloatRange(0.01),
              help="Seconds a client has to send a whole request body (408 and close past "
                   "it).")
@click.option("--threads", default=0, type=click.IntRange(0),
              help="onnxruntime intra-op threads per model (0: its default).")
@click.option("--workers", default=4, show_default=True, type=click.IntRange(1),
              help="Threads running onnxruntime.")
@click.option("--grpc-port", type=click.IntRange(0, 65535),
              help="Also serve KServe V2 gRPC on this port (0: a free one) [default: off].")
def serve(specs: tuple[str, ...], host: str, port: int, registry: str | None,
          variant: str | None, max_batch_size: int, max_queue_delay_ms: float,
          canaries: tuple[str, ...], max_body_mb: float, max_inflight_mb: float | None,
          header_timeout: float, body_timeout: float, threads: int, workers: int,
          grpc_port: int | None = None) -> None:
    """Serve models over the Open Inference Protocol (KServe V2 REST; gRPC too with
    --grpc-port): ns/name@RANGE or a model directory. A model that fails to load is
    reported by /v2/health/ready; the rest are served."""
    import logging
    import socket
    import sys

    from mx.extras import require

    require("serve", "mx serve")
    import uvicorn

    from mx.infer.model import resolve_model
    from mx.serve.app import build_app
    from mx.serve.batcher import BatchPolicy
    from mx.serve.conn import guarded_protocol, raise_open_file_limit
    from mx.serve.core import InferenceCore, ServeLimits

    parsed = [_canary(c) for c in canaries]
    inflight_mb = 2 * max_body_mb if max_inflight_mb is None else max_inflight_mb
    if inflight_mb < max_body_mb:
        raise click.BadParameter(f"{inflight_mb:g} is below --max-body-mb {max_body_mb:g}, so "
                                 "the largest body would never be accepted",
                                 param_hint="--max-inflight-mb")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))  # each record is one JSON object
    log = logging.getLogger("mx.serve")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    limits = ServeLimits(int(max_body_mb * (1 << 20)),
                         BatchPolicy(max_batch_size, max_queue_delay_ms / 1000), workers,
                         inflight_bytes=int(inflight_mb * (1 << 20)),
                         header_timeout=header_timeout, body_timeout=body_timeout)
    server = InferenceCore(limits, lambda spec: resolve_model(spec, registry, variant, threads,
                                                       spin=False))
    for spec in specs:
        server.load(spec)
    for spec, percent in parsed:
        model = server.load(spec, make_default=False)
        if model is not None:
            route = server.models.routes[model.name]
            route.canary, route.canary_percent = model.version, percent
    if not server.models.versions:
        from mx.errors import ConfigError

        first = next(iter(server.models.failed.values()), "nothing to serve")
        raise ConfigError(f"no model could be loaded: {first}",
                          hint="check the specs (ns/name@RANGE or a model directory)")
    raise_open_file_limit()  # each connection is a file; slow clients must not run out of them
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # connections queue from here on, before uvicorn takes over
    actual = sock.getsockname()[1]
    click.echo(f"serving {', '.join(sorted(server.models.versions)) or 'no models'} on "
               f"http://{host}:{actual}/v2 (metrics: /metrics)", err=True)
    protocol = guarded_protocol(header_timeout, body_timeout,
                                lambda reason: server.metrics.rejected.labels(reason).inc())
    config = uvicorn.Config(build_app(server), http=protocol, log_level="warning",
                            access_log=False, timeout_graceful_shutdown=30, lifespan="off")
    web = uvicorn.Server(config)
    if grpc_port is not None:  # gRPC beside REST, on the same core and event loop
        from mx.serve.grpc_service import with_grpc

        web = with_grpc(config, server, host, grpc_port, lambda bound: click.echo(
            f"serving gRPC (KServe V2) on {host}:{bound}", err=True))
    try:
        web.run(sockets=[sock])
    finally:
        server.close()
