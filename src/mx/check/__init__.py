"""Will a model run where it is meant to: onnxruntime's own verdicts for each target."""
