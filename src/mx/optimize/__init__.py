"""`mx optimize`: int8 (dynamic, static), fp16, graph optimization, pruning, ORT format."""

from mx.errors import TransformFailed
from mx.optimize.transforms import TRANSFORMS, Transform, TransformContext

__all__ = ["TRANSFORMS", "Transform", "TransformContext", "TransformFailed"]
