"""A Keras 3 Sequential classifier (the kind tf2onnx's from_keras trips on)."""

from __future__ import annotations

import keras


def build():  # type: ignore[no-untyped-def]
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,), name="features"),
                             keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])
