"""A model's signature in mx.yaml: its inputs and outputs, each a name, an element type,
a shape whose dims are sizes or names, and for non-tensor values what wraps the tensor.

Every ONNX value a graph can take or give has a spelling here: all element types (float8,
int4, float4, complex...), sequences, optionals and maps, unknown ranks (no `shape`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mx.errors import ConfigError


class _Open(BaseModel):
    # Unknown keys are kept (and reported as warnings by the loader).
    model_config = ConfigDict(extra="allow", use_enum_values=True)


class DType(StrEnum):
    """Every ONNX element type: numpy's name where numpy has the type, else ONNX's."""

    float16 = "float16"
    bfloat16 = "bfloat16"
    float32 = "float32"
    float64 = "float64"
    int8 = "int8"
    int16 = "int16"
    int32 = "int32"
    int64 = "int64"
    uint8 = "uint8"
    uint16 = "uint16"
    uint32 = "uint32"
    uint64 = "uint64"
    bool = "bool"
    string = "string"
    complex64 = "complex64"
    complex128 = "complex128"
    float8e4m3fn = "float8e4m3fn"
    float8e4m3fnuz = "float8e4m3fnuz"
    float8e5m2 = "float8e5m2"
    float8e5m2fnuz = "float8e5m2fnuz"
    float8e8m0 = "float8e8m0"
    float6e2m3 = "float6e2m3"
    float6e3m2 = "float6e3m2"
    float4e2m1 = "float4e2m1"
    int4 = "int4"
    uint4 = "uint4"
    int2 = "int2"
    uint2 = "uint2"


Dim = Annotated[int, Field(ge=0)] | Annotated[str, Field(min_length=1)]
MAP_KEYS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "string")


def parse_value_type(text: str) -> tuple[str, str | None]:
    """Check `type` against its grammar and return (outermost kind, inner type or None):
    `tensor | sparse_tensor | sequence(T) | optional(T) | map(KEY, T)`."""
    text = text.strip()
    if text in ("tensor", "sparse_tensor"):
        return text, None
    for kind in ("sequence", "optional", "map"):
        if text.startswith(kind + "(") and text.endswith(")"):
            inner = text[len(kind) + 1:-1].strip()
            if kind == "map":
                key, sep, inner = inner.partition(",")
                if not sep or key.strip() not in MAP_KEYS:
                    raise ValueError(f"type {text!r}: a map is map(KEY, T) with KEY one of "
                                     f"{', '.join(MAP_KEYS)}")
                inner = inner.strip()
            parse_value_type(inner)
            return kind, inner
    raise ValueError(f"type {text!r} is not tensor, sparse_tensor, sequence(T), optional(T) "
                     "or map(KEY, T)")


def canonical_type(text: str) -> str:
    """`map(int64,tensor)` and `map( int64, tensor )` are `map(int64, tensor)`."""
    return re.sub(r"\s+", "", text).replace(",", ", ")


class TensorSpec(_Open):
    """A graph input or output. `dtype` and `shape` describe a tensor; for a sequence,
    optional or map value they describe the tensor innermost and `type` says what wraps
    it. No `shape` (or `shape: null`) is a tensor of unknown rank; a string dim is
    symbolic."""

    name: str = Field(min_length=1)
    dtype: DType
    shape: list[Dim] | None = None  # omitted (or null): a tensor of unknown rank
    type: str = Field(default="tensor", max_length=200,
                      json_schema_extra={"examples": ["tensor", "sequence(tensor)",
                                                      "map(int64, tensor)",
                                                      "sequence(map(string, tensor))",
                                                      "optional(tensor)"]})

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        parse_value_type(v)
        return canonical_type(v)


class Signature(_Open):
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Value:
    """A graph input or output in memory, whoever reports it: the ONNX graph
    (`mx.onnxinfo`), onnxruntime (`mx.infer`), or a manifest entry read back (`Value.of`).
    `TensorSpec` is its written form in mx.yaml.

    `shape` is None for an unknown rank; a dim is a size, a symbolic name, or None where
    the graph gives neither. For a sequence, optional or map value, `dtype` and `shape`
    describe the tensor innermost and `type` says what wraps it."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...] | None
    type: str = "tensor"

    @classmethod
    def of(cls, spec: TensorSpec) -> Value:
        return cls(spec.name, str(spec.dtype),
                   None if spec.shape is None else tuple(spec.shape), spec.type)

    def manifest_entry(self) -> dict[str, Any]:
        """The mx.yaml signature entry (the `TensorSpec` form) for this value."""
        if self.dtype not in DType.__members__:
            raise ConfigError(f"graph value {self.name!r} has element type {self.dtype}, "
                              "which no manifest dtype names",
                              hint="write its signature entry by hand")
        entry: dict[str, Any] = {"name": self.name, "dtype": self.dtype}
        if self.shape is not None:  # no shape: unknown rank
            entry["shape"] = list(self.shape)
        if self.type != "tensor":
            entry["type"] = self.type
        return entry
