"""Serving installed models: the Open Inference Protocol (KServe V2 REST) over Starlette.

`tensors` (request checks and the JSON tensor codec), `model` (a loaded model version),
`batcher` (dynamic batching into one onnxruntime run), `registry` (versions, canary,
reload), `app` (routes, limits, metrics, logs). Nothing here prints or exits.
"""
