"""The KServe V2 gRPC protocol (`inference.GRPCInferenceService`) over the inference core.

ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata and ModelInfer; not
Triton's ModelStreamInfer. Requests take the same path as REST's: `InferenceCore.find`,
the signature checks of `tensors`, the model's batcher (so gRPC and REST requests share
batches), `InferenceCore.record` (metrics and the log line, by the HTTP status the error
would have had: 400, 404, 503...). Errors are gRPC status codes with REST's message.

Tensors come in typed `contents` or in `raw_input_contents` (every input or none);
outputs go back raw (`raw_output_contents`) when the request sent raw inputs or an output
has no typed field (FP16), else in `contents`.

The gRPC server is grpc.aio on uvicorn's own event loop (`with_grpc`), not a thread: the
batcher's queue and futures belong to one loop, so only a server on that loop can feed the
same batches, and the body budget, metrics and model set need no locks.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import grpc
import numpy as np
import uvicorn

from mx.errors import BadInput, ConfigError
from mx.infer.model import LoadedModel
from mx.infer.signature import NUMPY_OF, check_feeds, v2_datatype
from mx.serve.core import InferenceCore, ServeError
from mx.serve.grpcproto import grpc_predict_v2_pb2 as pb
from mx.serve.grpcproto import grpc_predict_v2_pb2_grpc as pb_grpc
from mx.serve.guard import client_key
from mx.serve.intake import Refused
from mx.serve.tensors import check_input, from_bytes, from_values, select_outputs, to_bytes
from mx.tensorspec import Value

Message = Any  # protoc's classes are untyped here (pyproject: mypy skips them)

# the HTTP status InferenceCore and the checks give -> the gRPC code that means the same
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,  # over the client's rate (--rate-limit)
    499: grpc.StatusCode.CANCELLED,
    503: grpc.StatusCode.UNAVAILABLE,  # also: the model's queue is full (--max-queue)
    504: grpc.StatusCode.DEADLINE_EXCEEDED,  # it could not start in time (--timeout)
}

# V2 datatype -> its field of InferTensorContents (FP16 has none: raw only)
CONTENTS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}
# each numeric field's element type on the wire
WIRE = {
    "bool_contents": np.bool_, "int_contents": np.int32, "int64_contents": np.int64,
    "uint_contents": np.uint32, "uint64_contents": np.uint64, "fp32_contents": np.float32,
    "fp64_contents": np.float64,
}


def decode_inputs(request: Message, specs: Sequence[Value]) -> dict[str, np.ndarray]:
    """A ModelInferRequest's inputs as arrays, through REST's checks."""
    by_name = {s.name: s for s in specs}
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise BadInput(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} "
                       "inputs; send every input raw, or none")
    feeds: dict[str, np.ndarray] = {}
    for i, item in enumerate(request.inputs):
        name, datatype, shape = item.name, item.datatype, list(item.shape)
        check_input(by_name, name, datatype, shape)
        if name in feeds:
            raise BadInput(f"input {name!r} is given twice")
        if raw:
            if item.HasField("contents"):
                raise BadInput(f"input {name!r}: both contents and raw_input_contents")
            feeds[name] = from_bytes(name, datatype, shape, raw[i])
        else:
            feeds[name] = _from_contents(name, datatype, shape, item.contents)
    return check_feeds(specs, feeds)


def _from_contents(name: str, datatype: str, shape: list[int], contents: Message
                   ) -> np.ndarray:
    field = CONTENTS.get(datatype)
    if field is None:
        raise BadInput(f"input {name!r}: {datatype} has no typed contents field; send it in "
                       "raw_input_contents")
    others = [f.name for f, _ in contents.ListFields() if f.name != field]
    if others:
        raise BadInput(f"input {name!r}: datatype {datatype} takes contents.{field}, the "
                       f"request has contents.{others[0]}")
    values = getattr(contents, field)
    if datatype == "BYTES":  # as from_bytes reads them: strings for onnxruntime
        return from_values(name, datatype, shape,
                           [v.decode("utf-8", "replace") for v in values])
    # protobuf's repeated fields convert to numpy without a Python list (16M floats: ms, not
    # a second on the event loop), but a cast to INT8 would wrap 300 round: check the range
    wire: np.ndarray = np.asarray(values, dtype=WIRE[field])
    want = np.dtype(NUMPY_OF[datatype])
    if wire.dtype != want:
        info = np.iinfo(want)
        if wire.size and (wire.min() < info.min or wire.max() > info.max):
            raise BadInput(f"input {name!r}: data has a number out of {datatype}'s range")
        wire = wire.astype(want)
    return from_values(name, datatype, shape, wire)


def encode_response(request: Message, model: LoadedModel,
                    arrays: dict[str, np.ndarray]) -> Message:
    chosen = select_outputs(model.outputs, arrays, [o.name for o in request.outputs] or None)
    raw = bool(request.raw_input_contents) or any(v2_datatype(s) not in CONTENTS
                                                   for s, _ in chosen)
    response = pb.ModelInferResponse(model_name=model.name, model_version=model.version,
                                     id=request.id)
    for spec, arr in chosen:
        datatype = v2_datatype(spec)
        out = response.outputs.add(name=spec.name, datatype=datatype, shape=list(arr.shape))
        if raw:
            response.raw_output_contents.append(to_bytes(arr))
        elif arr.dtype == object:
            out.contents.bytes_contents.extend(
                v if isinstance(v, bytes) else str(v).encode() for v in arr.ravel())
        else:
            getattr(out.contents, CONTENTS[datatype]).extend(arr.ravel().tolist())
    return response


def _peer(peer: str | None) -> str | None:
    """The client's address from grpc's `ipv4:1.2.3.4:5678` / `ipv6:[::1]:5678`."""
    if not peer:
        return None
    _, _, rest = peer.partition(":")
    return rest.rsplit(":", 1)[0].strip("[]") or None


async def _abort(context: Any, status: int, message: str) -> NoReturn:
    await context.abort(CODES.get(status, grpc.StatusCode.INTERNAL), message)
    raise AssertionError("context.abort returned")  # it raises


class InferenceServicer:
    """inference.GRPCInferenceService's calls (the names protoc's registration expects)."""

    def __init__(self, core: InferenceCore) -> None:
        self.core = core

    async def ServerLive(self, request: Message, context: Any) -> Message:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Message, context: Any) -> Message:
        ready, _ = self.core.readiness()
        return pb.ServerReadyResponse(ready=ready)

    async def ModelReady(self, request: Message, context: Any) -> Message:
        try:
            self.core.find(request.name, request.version or None)
        except ServeError as exc:
            if exc.status == 503:  # known, but it failed to load
                return pb.ModelReadyResponse(ready=False)
            await _abort(context, exc.status, exc.message)
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request: Message, context: Any) -> Message:
        meta = self.core.server_metadata()
        return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"],
                                         extensions=meta["extensions"])

    async def ModelMetadata(self, request: Message, context: Any) -> Message:
        try:
            meta = self.core.model_metadata(request.name, request.version or None)
        except ServeError as exc:
            await _abort(context, exc.status, exc.message)
        tensor = pb.ModelMetadataResponse.TensorMetadata

        def tensors(items: list[dict[str, Any]]) -> list[Message]:
            return [tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"])
                    for t in items]

        return pb.ModelMetadataResponse(name=meta["name"], versions=meta["versions"],
                                        platform=meta["platform"],
                                        inputs=tensors(meta["inputs"]),
                                        outputs=tensors(meta["outputs"]))

    async def ModelInfer(self, request: Message, context: Any) -> Message:
        core = self.core
        start, arrived = core.clock(), time.monotonic()
        name = request.model_name
        metadata = {k: v for k, v in (context.invocation_metadata() or ())
                    if isinstance(v, str)}
        core.tracing.begin(name, metadata)  # OpenTelemetry, when OTEL_* ask for it
        try:
            found = core.find(name, request.model_version or None)
            if core.limiter is not None:  # whose call it is matters to the rate limit only
                core.admit(found.model.name, client_key(metadata.get, _peer(context.peer()),
                                                        core.limits.guard.key_header))
        except ServeError as exc:
            core.record(name, "", exc.status, 0.0, exc.message)
            await _abort(context, exc.status, exc.message)
        model = found.model
        status, message, response = 200, None, None
        try:
            # grpc bounds the message (max_receive_message_length: --max-body-mb); it counts
            # against the bytes held at once like a REST body
            with core.budget.hold() as held:
                held.reach(request.ByteSize())
                feeds = decode_inputs(request, model.inputs)
                # the call's own gRPC deadline, the server's --timeout, or the V2 parameter
                remaining = context.time_remaining()
                timeout = request.parameters.get("timeout")
                until = core.deadline(arrived, remaining, timeout.int64_param
                                      if timeout is not None else None)
                outputs = await core.run(found, feeds, until)
                with core.tracing.span("encode"):
                    response = encode_response(request, model, outputs)
        except Refused as exc:
            status, message = exc.status, exc.message
            core.metrics.rejected.labels(exc.reason).inc()
        except ServeError as exc:  # shed: rate, queue or deadline
            status, message = exc.status, exc.message
        except BadInput as exc:
            status, message = 400, exc.message
        except asyncio.CancelledError:  # the client went away or its deadline passed
            core.record(model.name, model.version, 499, core.clock() - start,
                        "the client cancelled the call")
            raise
        except Exception as exc:  # onnxruntime failed on input that passed the checks
            status, message = 500, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        core.record(model.name, model.version, status, core.clock() - start, message)
        if message is not None:
            await _abort(context, status, message)
        return response


def grpc_server(core: InferenceCore, host: str, port: int) -> tuple[Any, int]:
    """A grpc.aio server for `core` bound to host:port (0: a free port), not yet started;
    call from the event loop it is to run on. (server, the bound port)."""
    limit = core.limits.max_body_bytes
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", -1),  # answers are as big as the model makes them
        ("grpc.so_reuseport", 0),  # a port in use is an error, not a shared port
    ])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(core), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ConfigError(f"--grpc-port: cannot listen on {address}: {exc}",
                          hint="pick another port, or 0 for a free one") from None
    if not bound:
        raise ConfigError(f"--grpc-port: cannot listen on {address}",
                          hint="pick another port, or 0 for a free one")
    return server, bound


def with_grpc(config: uvicorn.Config, core: InferenceCore, host: str, port: int,
              announce: Callable[[int], None]) -> uvicorn.Server:
    """A uvicorn server that also serves gRPC on `port`, in its own event loop: started
    before HTTP accepts, stopped with the same grace as HTTP (both drain at once)."""

    class WithGrpc(uvicorn.Server):
        grpc: Any = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            self.grpc, bound = grpc_server(core, host, port)
            await self.grpc.start()
            announce(bound)
            await super().startup(sockets)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            grace = self.config.timeout_graceful_shutdown
            await asyncio.gather(super().shutdown(sockets), self.grpc.stop(grace))

    return WithGrpc(config)
