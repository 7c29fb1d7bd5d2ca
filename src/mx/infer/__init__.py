"""Running an installed model: its signature, input checks and the onnxruntime session.

Shared by `mx serve`, `mx run`, `mx export` and `mx.load`.
"""
