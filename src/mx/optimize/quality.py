"""How close a variant stays to its parent, on the same inputs.

Classifiers: top-1 agreement. Embeddings: mean cosine similarity. Anything else: the
maximum absolute error. Higher is better for the first two, lower for the last.
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


@dataclass
class QualityResult:
    metric: str
    value: float
    samples: int

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "max_abs_error"

    def passes(self, min_quality: float | None, max_error: float | None) -> bool:
        if self.higher_is_better:
            return min_quality is None or self.value >= min_quality
        return max_error is None or self.value <= max_error


def metric_for(task: str | None) -> str:
    if task in CLASSIFICATION_TASKS:
        return "agreement_top1"
    if task in EMBEDDING_TASKS:
        return "cosine_similarity"
    return "max_abs_error"


def measure(metric: str, parent: Callable[[Feeds], list[Any]],
            variant: Callable[[Feeds], list[Any]], batches: Sequence[Feeds]) -> QualityResult:
    scores: list[np.ndarray] = []
    worst = 0.0
    samples = 0
    for feeds in batches:
        a = [np.asarray(x) for x in parent(feeds)]
        b = [np.asarray(x) for x in variant(feeds)]
        if metric == "max_abs_error":
            for x, y in zip(a, b, strict=True):
                if x.size:
                    worst = max(worst, float(np.max(np.abs(x.astype(np.float64) -
                                                           y.astype(np.float64).reshape(x.shape)))))
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
        return QualityResult(metric, worst, samples)
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
