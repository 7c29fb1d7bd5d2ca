"""Serving installed models: the Open Inference Protocol (KServe V2 REST) on uvicorn.

`tensors` (request checks and the JSON tensor codec), `jsoncodec` (JSON text: strict
limits, orjson where it reads a body as json does), `intake` (bodies: byte budget, read
deadline, worker processes for big ones), `conn` (deadlines for request heads and bodies
at the connection, on uvicorn's httptools or h11 protocol), `batcher` (dynamic batching
into one onnxruntime run, a bounded queue, deadlines), `guard` (rate limits and deadline
policy, for every protocol), `models` (versions, canary), `core` (the protocol-neutral
core: reload, metrics, logs), `app` (the REST routes, a plain ASGI app), `drift` and
`tracing` (input drift, OpenTelemetry spans). Nothing here prints or exits.
`grpc_service`: KServe V2 gRPC over the same core (`grpcproto`: its protobufs).
"""
