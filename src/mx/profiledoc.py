"""`input-profile.json` as a typed document: read by `mx serve`, the index builder (a
release's profile is embedded in its index record) and the client (which installs it).

Everything here is hostile input from a repository or an index: a size bound before
parsing, then a strict model (unknown keys, NaN and infinities, wrong types and
inconsistent bins refused), and one error naming the file and the field. No numpy: the
client imports this on every install. Building profiles and counting live in
`mx.inputprofile`; the format is described in docs/formats.md.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mx.errors import ConfigError

FORMAT: Literal[1] = 1
DEFAULT_FILE = "input-profile.json"
DEFAULT_BINS = 10
MAX_BINS = 100
MAX_INPUTS = 64
MAX_FEATURES = 64
MAX_PROFILE_BYTES = 4 << 20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class InputBins(_Strict):
    """One input's reference histograms: one per feature (`by: feature`) or one in all."""

    dtype: str = Field(max_length=32)
    batch_axis: int | None = Field(ge=0, le=31)  # None: the input is one row, given whole
    by: Literal["value", "feature"]
    features: int = Field(ge=1, le=MAX_FEATURES)
    edges: list[list[float]] = Field(max_length=MAX_FEATURES)  # per feature, ascending
    proportions: list[list[float]] = Field(max_length=MAX_FEATURES)  # len(edges) + 1 each

    @model_validator(mode="after")
    def _consistent(self) -> InputBins:
        if self.by == "value" and self.features != 1:
            raise ValueError("by: value has features: 1")
        if len(self.edges) != self.features or len(self.proportions) != self.features:
            raise ValueError(f"edges and proportions need one list per feature "
                             f"({self.features}); they have {len(self.edges)} and "
                             f"{len(self.proportions)}")
        for j, (edges, props) in enumerate(zip(self.edges, self.proportions, strict=True)):
            if len(edges) > MAX_BINS - 1:
                raise ValueError(f"edges[{j}]: {len(edges)} edges, at most {MAX_BINS - 1}")
            if any(b <= a for a, b in itertools.pairwise(edges)):
                raise ValueError(f"edges[{j}]: edges must be strictly increasing")
            if len(props) != len(edges) + 1:
                raise ValueError(f"proportions[{j}]: {len(props)} shares for "
                                 f"{len(edges) + 1} bins")
            if any(p < 0 for p in props) or abs(sum(props) - 1) > 1e-3:
                raise ValueError(f"proportions[{j}]: shares must be >= 0 and sum to 1")
        return self


class InputProfile(_Strict):
    """`input-profile.json` (`mx_input_profile: 1`)."""

    mx_input_profile: Literal[1]
    model: str | None = Field(default=None, max_length=200)
    version: str | None = Field(default=None, max_length=200)
    rows: int = Field(ge=1)  # reference rows the shares come from
    bins: int = Field(ge=2, le=MAX_BINS)  # bins asked for (fewer where quantiles coincide)
    inputs: dict[str, InputBins] = Field(max_length=MAX_INPUTS)


def dumps(profile: InputProfile) -> bytes:
    return (json.dumps(profile.model_dump(mode="json"), indent=1, sort_keys=True)
            + "\n").encode()


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse(data: bytes, origin: str) -> InputProfile:
    """Validate a profile's bytes; ConfigError naming `origin` and the field otherwise."""
    hint = "regenerate it with `mx profile DIR --data FILE.npz`"
    if len(data) > MAX_PROFILE_BYTES:
        raise ConfigError(f"{len(data)} bytes; an input profile is at most "
                          f"{MAX_PROFILE_BYTES} bytes", hint=hint, path=origin)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"not JSON ({exc})", hint=hint, path=origin) from None
    if isinstance(doc, dict) and isinstance(doc.get("mx_input_profile"), int) \
            and doc["mx_input_profile"] > FORMAT:
        raise ConfigError(f"mx_input_profile {doc['mx_input_profile']} is newer than this mx "
                          f"reads ({FORMAT})", hint="upgrade mx", path=origin)
    try:
        return InputProfile.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err["msg"]).removeprefix("Value error, ")
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{_loc(tuple(err['loc']))}: {msg}{more}", hint=hint,
                          path=origin) from None


def read(path: Path) -> InputProfile:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the input profile ({exc.strerror or exc})",
                          path=str(path)) from None
    return parse(data, str(path))


def check_against(profile: InputProfile, inputs: Mapping[str, Any], origin: str) -> None:
    """ConfigError when the profile names an input the model does not take."""
    for name in profile.inputs:
        if name not in inputs:
            raise ConfigError(f"inputs.{name}: the model has no input {name!r} (it takes "
                              + ", ".join(repr(n) for n in inputs) + ")", path=origin)
