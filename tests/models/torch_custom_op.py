"""A model with an operator no ONNX exporter knows (a custom op), for the error path.

Imported once per process: registering the op twice is an error."""

from __future__ import annotations

import torch


@torch.library.custom_op("mxtest::wobble", mutates_args=())
def wobble(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@wobble.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class Wobbly(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return wobble(x) + 1


def wobbly():  # type: ignore[no-untyped-def]
    return Wobbly(), (torch.randn(2, 4),)
