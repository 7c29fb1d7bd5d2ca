"""`mx convert`: framework models to ONNX (and TorchScript, SavedModel, TFLite), checked.

Converters are plugins behind the `Converter` protocol, listed in CONVERTERS; each
imports its framework only when it runs (see mx.frameworks for the extras).
"""

from __future__ import annotations

from mx.convert.base import Converter, ConvertJob
from mx.convert.jaxconv import JaxConverter
from mx.convert.pytorch import TorchConverter
from mx.convert.sklearn import SklearnConverter
from mx.convert.tensorflow import TensorFlowConverter
from mx.errors import ConversionFailed, ParityFailed

CONVERTERS: dict[str, Converter] = {
    "pytorch": TorchConverter(),
    "tensorflow": TensorFlowConverter(),
    "jax": JaxConverter(),
    "sklearn": SklearnConverter(),
}

# artifact format -> file name suffix
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "savedmodel": ".savedmodel.tar",
            "tflite": ".tflite"}

__all__ = ["CONVERTERS", "SUFFIXES", "ConversionFailed", "ConvertJob", "Converter",
           "ParityFailed"]
