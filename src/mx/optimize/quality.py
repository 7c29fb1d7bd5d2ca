"""How close a variant stays to its parent, on the same inputs.

Classifiers: top-1 agreement. Embeddings: mean cosine similarity. Anything else: the
maximum absolute error. Higher is better for the first two, lower for the last.
Each metric also has a bound past which the error is large for the task: `mx optimize`
warns about such a variant, and refuses it under `--min-quality`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mx.sampling import Feeds

CLASSIFICATION_TASKS = {"text-classification", "image-classification", "audio-classification",
                        "tabular-classification", "token-classification",
                        "zero-shot-classification", "video-classification"}
EMBEDDING_TASKS = {"feature-extraction", "sentence-similarity", "image-feature-extraction"}
METRICS = ("agreement_top1", "cosine_similarity", "max_abs_error")
# One prediction in a hundred changed, or embeddings turned by 8 degrees: past these a
# variant no longer stands in for its parent.
LARGE_BELOW = {"agreement_top1": 0.99, "cosine_similarity": 0.99}
# An error over 5% of the range the parent's output spans moves it visibly.
LARGE_RELATIVE_ERROR = 0.05


@dataclass
class QualityResult:
    metric: str
    value: float
    samples: int
    relative_error: float = 0.0  # max_abs_error over the range of the parent's output

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "max_abs_error"

    def passes(self, min_quality: float | None, max_error: float | None) -> bool:
        if self.higher_is_better:
            return min_quality is None or self.value >= min_quality
        return max_error is None or self.value <= max_error

    def large(self) -> str | None:
        """Why the error is large for the task, or None when it is not."""
        if self.metric == "max_abs_error":
            if self.relative_error > LARGE_RELATIVE_ERROR:
                return (f"max_abs_error {self.value:.4g} is {self.relative_error:.0%} of the "
                        f"range of the parent's output (large above "
                        f"{LARGE_RELATIVE_ERROR:.0%})")
            return None
        bound = LARGE_BELOW[self.metric]
        if self.value < bound:
            return f"{self.metric} {self.value:.4f} is below {bound} (large for the task)"
        return None


def metric_for(task: str | None) -> str:
    if task in CLASSIFICATION_TASKS:
        return "agreement_top1"
    if task in EMBEDDING_TASKS:
        return "cosine_similarity"
    return "max_abs_error"


def measure(metric: str, parent: Callable[[Feeds], list[Any]],
            variant: Callable[[Feeds], list[Any]], batches: Sequence[Feeds]) -> QualityResult:
    scores: list[np.ndarray] = []
    worst = worst_relative = 0.0
    samples = 0
    for feeds in batches:
        a = [np.asarray(x) for x in parent(feeds)]
        b = [np.asarray(x) for x in variant(feeds)]
        if metric == "max_abs_error":
            for x, y in zip(a, b, strict=True):
                if x.size and x.dtype.kind in "biuf":  # strings and maps have no distance
                    xf = x.astype(np.float64)
                    err = float(np.max(np.abs(xf - y.astype(np.float64).reshape(x.shape))))
                    span = float(np.max(xf) - np.min(xf)) or float(np.max(np.abs(xf)))
                    worst = max(worst, err)
                    worst_relative = max(worst_relative, err / span if span > 0 else
                                         (0.0 if err == 0 else float("inf")))
            samples += len(a[0]) if a and a[0].ndim else 1
            continue
        x, y = _primary(a), _primary(b)
        samples += len(x)
        if metric == "agreement_top1":
            scores.append(_labels(x) == _labels(y))
        else:
            xf = x.reshape(len(x), -1).astype(np.float64)
            yf = y.reshape(len(y), -1).astype(np.float64)
            norm = np.linalg.norm(xf, axis=1) * np.linalg.norm(yf, axis=1)
            scores.append(np.sum(xf * yf, axis=1) / np.maximum(norm, 1e-12))
    if metric == "max_abs_error":
        return QualityResult(metric, worst, samples, worst_relative)
    value = float(np.mean(np.concatenate(scores))) if scores else 0.0
    return QualityResult(metric, value, samples)


def _primary(outputs: list[np.ndarray]) -> np.ndarray:
    """The output the metric is about: the first floating one with a batch axis."""
    for out in outputs:
        if out.dtype.kind == "f" and out.ndim >= 1:
            return out
    return outputs[0]


def _labels(x: np.ndarray) -> np.ndarray:
    if x.dtype.kind == "f" and x.ndim >= 2:
        return np.asarray(np.argmax(x, axis=-1))
    return x
