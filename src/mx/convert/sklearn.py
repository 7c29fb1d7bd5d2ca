"""scikit-learn -> ONNX with skl2onnx.

Source: an entry point that builds (or loads from a safe format) a fitted estimator and
returns `estimator` or `(estimator, X_example)`. Pickle and joblib files are refused:
loading them runs code. Classifiers export without ZipMap, so both outputs are plain
tensors (`label`, `probabilities`) that onnxruntime and mx's signature can describe.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mx.convert.base import Converted, ConvertJob, call_entry_point, quiet, refuse_pickle
from mx.errors import ConfigError, ConversionFailed
from mx.frameworks import require, version_of
from mx.onnxinfo import rename_values
from mx.sampling import Feeds


class SklearnConverter:
    framework = "sklearn"
    targets: tuple[str, ...] = ("onnx",)

    def convert(self, job: ConvertJob) -> Converted:
        require("sklearn")
        skl2onnx = require("skl2onnx")
        if ":" not in job.source:
            refuse_pickle(job.model_dir / job.source)
            raise ConfigError(f"{job.source}: scikit-learn sources are entry points "
                              "(module:function) that return a fitted estimator")
        result = call_entry_point(job.source, job.model_dir)
        est, x = (result if isinstance(result, tuple) else (result, None))[:2]
        if not hasattr(est, "predict"):
            raise ConfigError(f"entry point {job.source!r} returned {type(est).__name__}, "
                              "not a fitted scikit-learn estimator")
        n_features = getattr(est, "n_features_in_", None)
        if x is None:
            if n_features is None:
                raise ConfigError(f"entry point {job.source!r}: the estimator is not fitted "
                                  "(no n_features_in_)")
            x = np.random.default_rng(0).standard_normal((4, int(n_features)))
        x = np.asarray(x, dtype=np.float32)
        name = (job.input_names or ["input"])[0]
        example = {name: x} if job.data is None else dict(job.data)
        is_classifier = hasattr(est, "predict_proba")
        options = {id(est): {"zipmap": False}} if is_classifier else None
        with quiet():
            try:
                proto = skl2onnx.to_onnx(est, x[:1], target_opset={"": job.opset, "ai.onnx.ml": 3},
                                         options=options)
            except Exception as exc:
                text = str(exc).strip().splitlines()
                raise ConversionFailed(f"skl2onnx failed: {text[0][:300] if text else exc!r}")\
                    from None
        outputs = job.output_names or (["label", "probabilities"] if is_classifier
                                       else ["prediction"])
        mapping = {proto.graph.input[0].name: name}
        mapping.update({o.name: n for o, n in zip(proto.graph.output, outputs, strict=False)})
        rename_values(proto, mapping)
        import onnx

        onnx.save(proto, str(job.out_path))

        def reference(feeds: Feeds) -> list[Any]:
            xs = feeds[name]
            if is_classifier:
                return [np.asarray(est.predict(xs)), np.asarray(est.predict_proba(xs))]
            return [np.asarray(est.predict(xs))]

        return Converted(reference, example, f"skl2onnx {version_of('skl2onnx')}",
                         version_of("sklearn"))
