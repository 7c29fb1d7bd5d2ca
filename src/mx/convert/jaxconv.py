"""JAX -> ONNX with jax2onnx.

Source: an entry point returning `(function, example_args)` or
`(function, example_args, options)`; weights are closed over by the function. Options
may hold `input_names`, `output_names` and `dynamic_axes` ({input name: {axis: dim}});
by default axis 0 of every input is the symbolic dim `batch`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mx.convert.base import Converted, ConvertJob, call_entry_point, quiet
from mx.errors import ConfigError, ConversionFailed
from mx.frameworks import require, version_of
from mx.onnxinfo import rename_values
from mx.sampling import Feeds


class JaxConverter:
    framework = "jax"
    targets: tuple[str, ...] = ("onnx",)

    def convert(self, job: ConvertJob) -> Converted:
        jax = require("jax")
        jax2onnx = require("jax2onnx")
        result = call_entry_point(job.source, job.model_dir)
        if not isinstance(result, tuple) or len(result) not in (2, 3) or not callable(result[0]):
            raise ConfigError(f"entry point {job.source!r} must return (function, "
                              "example_args) or (function, example_args, options)")
        fn, args = result[0], result[1]
        options: dict[str, Any] = dict(result[2]) if len(result) == 3 else {}
        seq = list(args) if isinstance(args, list | tuple) else [args]
        names = list(options.get("input_names") or job.input_names or
                     (["input"] if len(seq) == 1 else [f"input_{i}" for i in range(len(seq))]))
        if len(names) != len(seq):
            raise ConfigError(f"{len(names)} input names for {len(seq)} example arguments")
        example = {n: np.asarray(a) for n, a in zip(names, seq, strict=True)}
        if job.data is not None:
            example = dict(job.data)
        axes = options.get("dynamic_axes") or {n: {0: "batch"} for n in names}
        shapes = []
        for n in names:
            shape: list[int | str] = list(example[n].shape)
            for axis, dim in axes.get(n, {}).items():
                shape[int(axis)] = dim
            shapes.append(tuple(shape))

        def reference(feeds: Feeds) -> list[Any]:
            out = fn(*(feeds[n] for n in names))
            leaves = jax.tree_util.tree_leaves(out)
            return [np.asarray(x) for x in leaves]

        n_out = len(reference(example))
        outputs = list(options.get("output_names") or job.output_names or
                       (["output"] if n_out == 1 else [f"output_{i}" for i in range(n_out)]))
        with quiet():
            try:
                proto = jax2onnx.to_onnx(fn, inputs=shapes, opset=max(job.opset, 17),
                                         model_name=job.model_dir.resolve().name or "model")
            except Exception as exc:
                text = str(exc).strip().splitlines()
                raise ConversionFailed(f"jax2onnx failed: {text[0][:300] if text else exc!r}",
                                       hint="jax2onnx names the primitive it cannot convert") \
                    from None
        mapping = {i.name: n for i, n in zip(proto.graph.input, names, strict=False)}
        mapping.update({o.name: n for o, n in zip(proto.graph.output, outputs, strict=False)})
        rename_values(proto, mapping)
        import onnx

        onnx.save(proto, str(job.out_path))
        return Converted(reference, example, f"jax2onnx {version_of('jax2onnx')}",
                         version_of("jax"))
