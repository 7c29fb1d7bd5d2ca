"""`mx serve SPEC... [--host] [--port] [--max-batch-size] [--max-queue-delay-ms] [--canary]
[--max-body-mb] [--max-inflight-mb] [--header-timeout] [--body-timeout] [--rate-limit]
[--rate-limit-key-header] [--max-queue] [--timeout] [--drift-window] [--grpc-port]`"""

from __future__ import annotations

import math
import re

import click

from mx.cli.options import registry_option


def _canary(value: str) -> tuple[str, float]:
    m = re.fullmatch(r"(.+)=(\d+(?:\.\d+)?)%?", value)
    if not m or not 0 < float(m.group(2)) <= 100:
        raise click.BadParameter(f"{value!r}: write SPEC=PERCENT, e.g. acme/iris@1.5.0-rc.1=10%",
                                 param_hint="--canary")
    return m.group(1), float(m.group(2))


def _rate(value: str | None) -> tuple[float, int] | None:
    m = re.fullmatch(r"(\d{1,9}(?:\.\d{1,6})?)(?:/(\d{1,9}))?", value or "")
    if value is None:
        return None
    if not m or float(m.group(1)) <= 0 or (m.group(2) and int(m.group(2)) < 1):
        raise click.BadParameter(f"{value!r}: write RPS or RPS/BURST with RPS > 0 and BURST "
                                 ">= 1, e.g. 10/20", param_hint="--rate-limit")
    rps = float(m.group(1))
    return rps, int(m.group(2)) if m.group(2) else max(1, math.ceil(rps))


def _header_name(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}", value):
        raise click.BadParameter(f"{value[:80]!r}: a header name of letters, digits and '-', "
                                 "e.g. X-Client-Id", param_hint="--rate-limit-key-header")
    return value


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
@click.option("--rate-limit", metavar="RPS[/BURST]",
              help="Inference requests a second per client, and how many at once after a "
                   "pause [default BURST: RPS]; over it: 429 with Retry-After [default: off].")
@click.option("--rate-limit-key-header", metavar="NAME",
              help="Header naming the client for --rate-limit [default: the bearer token, "
                   "else the peer address].")
@click.option("--max-queue", default=256, show_default=True, type=click.IntRange(1),
              help="Requests waiting to start per model version; more get 503 with "
                   "Retry-After at once.")
@click.option("--timeout", type=click.FloatRange(0.001), metavar="SECONDS",
              help="Longest a request may wait to start; later it gets 504, unrun. A client "
                   "may ask for less: X-Request-Timeout (seconds) or the V2 request "
                   "parameter timeout (microseconds) [default: no limit].")
@click.option("--drift-window", default=1000, show_default=True, type=click.IntRange(1),
              metavar="ROWS", help="Recent rows whose inputs are compared with a model's "
              "input profile (mx_input_drift_psi).")
@click.option("--grpc-port", type=click.IntRange(0, 65535),
              help="Also serve KServe V2 gRPC on this port (0: a free one) [default: off].")
def serve(specs: tuple[str, ...], host: str, port: int, registry: str | None,
          variant: str | None, max_batch_size: int, max_queue_delay_ms: float,
          canaries: tuple[str, ...], max_body_mb: float, max_inflight_mb: float | None,
          header_timeout: float, body_timeout: float, threads: int, workers: int,
          rate_limit: str | None, rate_limit_key_header: str | None, max_queue: int,
          timeout: float | None, drift_window: int, grpc_port: int | None = None) -> None:
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
    from mx.serve.guard import GuardPolicy

    parsed = [_canary(c) for c in canaries]
    rate = _rate(rate_limit)
    guard = GuardPolicy(rate[0] if rate else None, rate[1] if rate else 1,
                        _header_name(rate_limit_key_header), timeout)
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
    # a line a request: leave out what no record here shows (caller's file and line,
    # thread and process; logging's documented switches, for this server process)
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False

    limits = ServeLimits(int(max_body_mb * (1 << 20)),
                         BatchPolicy(max_batch_size, max_queue_delay_ms / 1000, max_queue),
                         workers, inflight_bytes=int(inflight_mb * (1 << 20)),
                         header_timeout=header_timeout, body_timeout=body_timeout,
                         guard=guard, drift_window=drift_window)
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
