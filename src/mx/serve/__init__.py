"""Serving installed models: the Open Inference Protocol (KServe V2 REST) over Starlette.

`tensors` (request checks and the JSON tensor codec), `intake` (bodies: byte budget, read
deadline, JSON limits, worker processes for big ones), `conn` (deadlines for request heads
and bodies at the connection), `batcher` (dynamic batching into one onnxruntime run, a
bounded queue, deadlines), `guard` (rate limits and deadline policy, for every protocol),
`registry` (versions, canary, reload), `app` (routes, metrics, logs). Nothing here prints
or exits. `grpc_service`: KServe V2 gRPC over the same core (`grpcproto`: its protobufs).
"""
