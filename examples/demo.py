"""make demo: the whole flow on three small real models, end to end.

1. make three model repos (git + Git LFS, real ONNX models, release tags); acme/iris is
trained with scikit-learn on its bundled iris data, converted with `mx convert` and given
an fp16 variant with `mx optimize`, 2. validate them, 3. sign their releases, 4. build a
registry index from them (verifying every signature), 5. serve it on 127.0.0.1,
6. install models by range into a fresh cache (verified before anything is linked),
7. predict one held-out flower of each species (the demo fails if any is wrong),
8. batch inference and exports. Everything lands under ./demo-out (deleted and remade on
each run).
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# The example model repos are built by the tests' fixture code (tests/support/examples.py).
sys.path.insert(0, str(ROOT))
OUT = ROOT / "demo-out"
MX = [sys.executable, "-m", "mx"]

REGISTRY = """\
registry: 1
name: Demo models
base_url: {url}
mirror_artifacts: true
sources:
  - repo: repos/iris
  - repo: repos/sentiment
  - repo: repos/vision
    models: [detectors/tiny]
channels:
  acme/iris: {{stable: 1.1.0, canary: 2.0.0-rc.1}}
yanked:
  acme/iris: {{1.0.0: "never trained (random weights); use 1.1.0"}}
namespaces:
  acme:
    signers:
      - {{public_key: keys/acme-release.pub}}
"""


SPECIES = ("setosa", "versicolor", "virginica")  # load_iris's classes 0, 1, 2
# The entry point `mx convert` calls (and CI would call again): it is committed with the model.
# A small MLP rather than LogisticRegression: skl2onnx makes that one ai.onnx.ml
# LinearClassifier op, which an fp16 variant only wraps in Casts and int8 cannot quantize.
TRAIN = '''"""acme/iris: a small neural network fitted on scikit-learn's bundled iris data."""

from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

HIDDEN = {hidden}  # units per hidden layer


def split():  # type: ignore[no-untyped-def]
    x, y = load_iris(return_X_y=True)
    return train_test_split(x, y, test_size=30, stratify=y, random_state=0)


def build():  # type: ignore[no-untyped-def]
    x_train, x_test, y_train, _ = split()
    model = MLPClassifier(HIDDEN, max_iter=3000, random_state=0).fit(x_train, y_train)
    return model, x_test
'''

# `mx convert` adds the source, the signature and the artifact's hash
IRIS_MANIFEST = """mx: 1
name: acme/iris
version: {version}
summary: Iris species from four flower measurements
license: apache-2.0
task: tabular-classification
tags: [tabular, iris]
card: README.md
artifacts:
  - path: model.onnx
    format: onnx
    variant: fp32
"""

IRIS_CARD = """---
license: apache-2.0
pipeline_tag: tabular-classification
library_name: onnx
tags: [tabular, iris]
---

# acme/iris

Iris species (0 setosa, 1 versicolor, 2 virginica) from four flower measurements in cm:
sepal length, sepal width, petal length, petal width.

## Model details

A multi-layer perceptron (hidden layers {hidden}, ReLU) fitted with scikit-learn's
MLPClassifier (`train.py`), converted to ONNX with skl2onnx by `mx convert`. Outputs `label`
and `probabilities`; `model.fp16.onnx` computes in half precision.

## Intended use

Examples and tests of mx. Not for decisions about people or plants that matter.

## Limitations

Knows three species only, and only flowers measured like Fisher's 1936 sample.

## Bias and risks

150 flowers from one collection; nothing is known of how it transfers to other populations.

## Training data

scikit-learn's bundled iris data (`load_iris`): 120 flowers, stratified by species.

## Evaluation

Accuracy {accuracy:.3f} on the 30 held-out flowers (measured on `model.onnx` with onnxruntime).
"""


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def mx(*args: str, env: dict[str, str]) -> str:
    print("$ mx " + " ".join(shlex.quote(a) for a in args), flush=True)
    proc = subprocess.run([*MX, *args], env=env, capture_output=True, text=True)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"demo: `mx {' '.join(args)}` failed with exit code {proc.returncode}")
    return proc.stdout


def held_out(repo: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 30 flowers the repo's train.py leaves out: (measurements as float32, species)."""
    spec = importlib.util.spec_from_file_location("iris_train", repo / "train.py")
    assert spec is not None and spec.loader is not None
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    _, x_test, _, y_test = train.split()
    return np.asarray(x_test, np.float32), np.asarray(y_test)


def release_trained_iris(repo: Path, version: str, hidden: tuple[int, ...],
                         env: dict[str, str]) -> None:
    """Train, convert and optimize acme/iris, then commit and tag it as `version`."""
    import onnxruntime as ort
    from tests.support.examples import git

    (repo / "train.py").write_text(TRAIN.format(hidden=hidden))
    (repo / "mx.yaml").write_text(IRIS_MANIFEST.format(version=version))
    mx("convert", str(repo), "train:build", "--from", "sklearn", env=env)
    x, y = held_out(repo)
    session = ort.InferenceSession(str(repo / "model.onnx"), providers=["CPUExecutionProvider"])
    accuracy = float((session.run(["label"], {"input": x})[0] == y).mean())
    print(f"  accuracy on the 30 held-out flowers: {accuracy:.3f}")
    (repo / "README.md").write_text(IRIS_CARD.format(hidden=list(hidden), accuracy=accuracy))
    np.savez(OUT / "iris-held-out.npz", input=x)
    mx("optimize", str(repo), "-t", "fp16", "--data", str(OUT / "iris-held-out.npz"), env=env)
    date = {"GIT_AUTHOR_DATE": "2026-02-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-02-01T00:00:00Z"}
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"acme/iris {version}: trained on the iris data", env=date)
    git(repo, "tag", "-a", f"v{version}", "-m", f"release {version}", env=date)


def main() -> None:
    started = time.monotonic()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    from tests.support.examples import (
        make_model_repo,
        make_signing_key,
        sandbox_env,
        sign_all_releases,
    )

    from mx.devserver import base_url, make_server, serve_in_thread

    env = sandbox_env(OUT, "mx demo")

    step("1. model repos: git + Git LFS, real ONNX models, one tag per release")
    repos = OUT / "repos"
    made = [
        make_model_repo(repos / "iris", "acme/iris", ["1.0.0"],
                        summary="Iris species from four flower measurements",
                        task="tabular-classification", tags=("tabular", "iris")),
        make_model_repo(repos / "sentiment", "acme/sentiment", ["0.9.0", "1.0.0"],
                        in_features=16, classes=2, task="text-classification",
                        summary="Positive or negative, from a 16-dim sentence feature",
                        tags=("nlp",)),
        make_model_repo(repos / "vision", "acme/tiny-detector", ["0.1.0"],
                        model_dir="detectors/tiny", in_features=32, classes=10,
                        task="image-classification", summary="Ten classes from a 32-dim "
                        "image embedding", tags=("vision",)),
    ]
    print("  acme/iris 1.0.0 has random weights (the registry yanks it); 1.1.0 and "
          "2.0.0-rc.1 are trained:")
    release_trained_iris(repos / "iris", "1.1.0", (16,), env)
    release_trained_iris(repos / "iris", "2.0.0-rc.1", (32, 16), env)
    for repo in made:
        tags = subprocess.run(["git", "tag"], cwd=repo.path, capture_output=True, text=True)
        print(f"  {repo.name:<20} {repo.path.relative_to(ROOT)}  tags: "
              + " ".join(tags.stdout.split()))

    step("2. validate (manifest, card, hashes, LFS state, ONNX checks)")
    mx("validate", str(repos / "iris"), env=env)
    mx("validate", str(repos / "vision" / "detectors" / "tiny"), env=env)

    step("3. sign every release (EC key; CI signs keyless with Sigstore)")
    private, public = make_signing_key(OUT / "keys", "acme-release")
    mx("sign", str(repos / "iris"), "--key", str(private), "--tag", "v1.1.0", env=env)
    for repo in made:
        sign_all_releases(repo.path, private,
                          "detectors/tiny" if repo.name == "acme/tiny-detector" else ".")
    mx("verify", str(repos / "iris"), "--key", str(public), "--tag", "v1.1.0", env=env)

    step("4. build the static index (signatures verified)")
    server = make_server(OUT / "site")
    url = base_url(server)
    (OUT / "registry.yaml").write_text(REGISTRY.format(url=url))
    mx("index", "build", str(OUT / "registry.yaml"), "-o", str(OUT / "site"), env=env)

    step(f"5. serve it: any static host works; here {url}")
    (OUT / "site").mkdir(exist_ok=True)
    serve_in_thread(server)
    mx("info", "acme/iris", "--registry", url, env=env)

    step("6. install by range into a verified, content-addressed cache")
    mx("install", "acme/iris@^1.0", "--registry", url, env=env)
    mx("install", "acme/sentiment@~1.0", "--registry", url, env=env)
    mx("verify", "acme/iris@^1.0", "--registry", url, env=env)

    step("7. predict one held-out flower of each species with the installed model")
    import mx as mxlib

    mx("install", "acme/iris@^1.0", "--variant", "fp16", "--registry", url, env=env)
    x, y = held_out(repos / "iris")
    flowers = np.stack([x[list(y).index(k)] for k in range(len(SPECIES))])
    wrong = []
    for variant in ("fp32", "fp16"):
        session = mxlib.load("acme/iris@^1.0", variant=variant, registry=url)
        labels, probs = session.run(["label", "probabilities"], {"input": flowers})
        print(f"  {session.name}@{session.version} ({variant}):")
        for k, (row, label, p) in enumerate(zip(flowers, labels, probs, strict=True)):
            verdict = "right" if label == k else "WRONG"
            print(f"    {SPECIES[k]:<10} {[round(float(v), 1) for v in row]} -> "
                  f"{SPECIES[int(label)]:<10} (p={float(p.max()):.3f}) {verdict}")
            if label != k:
                wrong.append(f"{variant} called a {SPECIES[k]} flower {SPECIES[int(label)]}")
        accuracy = float((session.run(["label"], {"input": x})[0] == y).mean())
        print(f"    accuracy on all 30 held-out flowers: {accuracy:.3f}")
    if wrong:
        raise SystemExit("demo: acme/iris predicts wrong: " + "; ".join(wrong))

    step("8. batch inference over a file of rows, and exports for Triton and the edge")
    np.save(OUT / "flowers.npy", np.repeat(flowers, 500, axis=0))
    mx("run", "acme/iris@^1.0", "--registry", url, "-i", str(OUT / "flowers.npy"),
       "-o", str(OUT / "flowers.out.npz"), "--batch-size", "256", env=env)
    mx("export", "triton", "acme/iris@^1.0", "--registry", url, "-o",
       str(OUT / "model_repository"), "--force", env=env)
    mx("export", "edge", "acme/iris@^1.0", "--registry", url, "-o", str(OUT / "edge"),
       "--force", env=env)

    server.shutdown()
    step(f"done in {time.monotonic() - started:.1f} s; where everything is")
    print(f"  model repos     {repos}")
    print(f"  registry.yaml   {OUT / 'registry.yaml'}")
    print(f"  built index     {OUT / 'site' / 'index'}")
    print(f"  website         {OUT / 'site' / 'index.html'} (serve the folder to browse it)")
    print(f"  mirrored files  {OUT / 'site' / 'artifacts' / 'sha256'}")
    print(f"  model cache     {OUT / 'mx-cache'}")
    print(f"  batch outputs   {OUT / 'flowers.out.npz'}")
    print(f"  Triton / edge   {OUT / 'model_repository'}, {OUT / 'edge'}")
    print(f"  signing key     {private} (public: {public})")
    print(f"  serve it again  .venv/bin/mx index serve {OUT / 'site'} --port 8000")


if __name__ == "__main__":
    main()
