"""`mx.load`: install if needed, open the ONNX artifact, and check every call's inputs.

The wrapper keeps onnxruntime's `run(output_names, feeds)` and passes any other
attribute through to the session, so code written for `InferenceSession` keeps working;
what it adds is that a wrong input name, dtype or shape fails with a message naming it
instead of onnxruntime's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mx.infer.model import LoadedModel, resolve_model
from mx.infer.signature import check_feeds
from mx.tensorspec import Value


class Session:
    """An installed model, ready to run. `session` is the onnxruntime session."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def inputs(self) -> list[Value]:
        return self.model.inputs

    @property
    def outputs(self) -> list[Value]:
        return self.model.outputs

    @property
    def session(self) -> Any:
        return self.model.session

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any],
            run_options: Any = None) -> list[np.ndarray]:
        """As `InferenceSession.run`, after checking names, dtypes and shapes (BadInput)."""
        feeds = check_feeds(self.model.inputs, input_feed)
        return list(self.model.session.run(output_names, feeds, run_options))

    def __call__(self, **feeds: Any) -> dict[str, np.ndarray]:
        """`session(x=array)` -> every output by name."""
        return self.model.run(check_feeds(self.model.inputs, feeds))

    def __getattr__(self, attr: str) -> Any:
        # get_inputs(), get_providers(), ... of the onnxruntime session
        return getattr(self.model.session, attr)

    def __repr__(self) -> str:
        return f"<mx.Session {self.name} {self.version} {self.model.path.name}>"


def load(spec: str, *, variant: str | None = None, registry: str | None = None,
         offline: bool | None = None, providers: list[str] | None = None,
         **session_options: Any) -> Session:
    """A checked session for `ns/name@range` or a model directory (CPU unless `providers`).

    Raises `mx.MxError` for anything the user or a host can cause, as `mx install` does
    (`ConfigError`, `ResolveError`, `FetchError`, `IntegrityError`, `TrustError`,
    `OfflineError`), and `BadInput` from `Session.run` for inputs that do not fit the
    model's signature."""
    return Session(resolve_model(spec, registry, variant, providers=providers,
                                 session_options=session_options, offline=offline))
