"""Small real example models and model repositories, for `make demo` and the tests.

The models are real ONNX graphs built with onnx.helper (checked by onnx.checker,
runnable in onnxruntime); the repositories are real git repos whose model files
go through Git LFS.
"""

from __future__ import annotations

import os
import subprocess
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mx.gitrepo import open_repo, release_tags
from mx.sign.release import sign_release
from mx.sign.signers import KeySigner

CARD = """---
license: {license}
pipeline_tag: {task}
library_name: onnx
tags: [{tags}]
---

# {name}

{summary}

## Model details

A {in_features}-feature linear classifier over {classes} classes, stored as ONNX (opset 17).

## Intended use

Examples and tests of mx. Not for decisions about people.

## Limitations

Its weights are random numbers drawn from a fixed seed; its predictions mean nothing.

## Bias and risks

None beyond those of a random linear map.

## Training data

None: the weights come from numpy's generator with seed {seed}.

## Evaluation

Checked by onnx.checker and run in onnxruntime by the tests.
"""


def linear_classifier(path: Path, in_features: int = 4, classes: int = 3, seed: int = 0,
                      pad_to: int = 0) -> Path:
    """Write a real ONNX model: logits = softmax(x @ W + b); `pad_to` grows it with an unused
    initializer so benchmarks can use large files."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((in_features, classes)).astype(np.float32)
    b = rng.standard_normal((classes,)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")]
    if pad_to > 0:
        inits.append(numpy_helper.from_array(
            rng.integers(0, 255, size=pad_to, dtype=np.uint8), "padding"))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["xw"]),
         helper.make_node("Add", ["xw", "B"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)],
        "linear_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", in_features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="mx-examples")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def manifest_text(name: str, version: str, in_features: int = 4, classes: int = 3,
                  summary: str = "A small linear classifier", task: str = "tabular-classification",
                  tags: tuple[str, ...] = ("example",), license: str = "apache-2.0",
                  extra_artifacts: str = "") -> str:
    return f"""mx: 1
name: {name}
version: {version}
summary: {summary}
license: {license}
task: {task}
tags: [{", ".join(tags)}]
card: README.md
source:
  framework: onnx
signature:
  inputs:
    - {{name: input, dtype: float32, shape: [batch, {in_features}]}}
  outputs:
    - {{name: probabilities, dtype: float32, shape: [batch, {classes}]}}
artifacts:
  - path: model.onnx
    format: onnx
    variant: fp32
    opset: 17
{extra_artifacts}"""


def card_text(name: str, summary: str = "A small linear classifier", license: str = "apache-2.0",
              task: str = "tabular-classification", tags: tuple[str, ...] = ("example",),
              in_features: int = 4, classes: int = 3, seed: int = 0) -> str:
    return CARD.format(name=name, summary=summary, license=license, task=task,
                       tags=", ".join(tags), in_features=in_features, classes=classes, seed=seed)


def git_home(home: Path, who: str = "mx examples") -> dict[str, str]:
    """A HOME with its own git identity; returns the variables that point git at it."""
    home.mkdir(parents=True, exist_ok=True)
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(f"[user]\n\tname = {who}\n\temail = mx@example.invalid\n"
                         "[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n")
    return {"HOME": str(home), "GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_CONFIG_NOSYSTEM": "1"}


def sandbox_env(root: Path, who: str = "mx examples") -> dict[str, str]:
    """Environment for a run that must touch nothing of the user's: its own HOME with a
    git identity and git-lfs filters, its own mx cache and config. Applied to os.environ
    too (git-lfs filters are installed with it), and returned for subprocesses."""
    env = git_home(root / "home", who)
    env.update(MX_HOME=str(root / "mx-cache"), MX_CONFIG=str(root / "home" / "mx-config.toml"))
    os.environ.update(env)
    os.environ.pop("MX_REGISTRY", None)
    subprocess.run(["git", "lfs", "install", "--skip-repo"], check=True, capture_output=True)
    return dict(os.environ)


def make_signing_key(directory: Path, name: str = "release") -> tuple[Path, Path]:
    """An EC P-256 key pair in PEM, as an air-gapped publisher would use: (private, public)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    private = directory / f"{name}.pem"
    public = directory / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def sign_all_releases(repo: Path, key: Path, model_dir: str = ".") -> None:
    """Sign every release tag of the model in `model_dir` with `key` (git notes)."""

    signer = KeySigner(key)
    for tag in release_tags(open_repo(repo)):
        if tag.model_dir == model_dir:
            sign_release(repo / model_dir, tag.tag, signer)


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class ExampleRepo:
    path: Path
    name: str
    versions: list[str] = field(default_factory=list)


def make_model_repo(path: Path, name: str, versions: list[str], in_features: int = 4,
                    classes: int = 3, summary: str = "A small linear classifier",
                    task: str = "tabular-classification", tags: tuple[str, ...] = ("example",),
                    lfs_url: str | None = None, model_dir: str = ".",
                    pad_to: int = 0, date: str = "2026-01-01T00:00:00Z") -> ExampleRepo:
    """A git repo with one model released at each of `versions` (new weights each time).

    `model_dir` other than "." makes a monorepo-style subdirectory tagged `<dir>/v<ver>`.
    Commit and tag dates are fixed so builds of the same repos are reproducible.
    """
    path.mkdir(parents=True, exist_ok=True)
    if not (path / ".git").exists():
        git(path, "init", "-q", "-b", "main")
        git(path, "lfs", "install", "--local")
        (path / ".gitattributes").write_text(
            "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in ("*.onnx", "*.ort")))
        if lfs_url:
            (path / ".lfsconfig").write_text(f'[lfs]\n\turl = "{lfs_url}"\n\tlocksverify = false\n')
        git(path, "add", ".")
    mdir = path / model_dir
    env = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    for version in versions:
        seed = zlib.crc32(f"{name}@{version}".encode()) % 100_000  # new weights per release
        linear_classifier(mdir / "model.onnx", in_features, classes, seed=seed, pad_to=pad_to)
        (mdir / "mx.yaml").write_text(manifest_text(name, version, in_features, classes,
                                                    summary, task, tags))
        (mdir / "README.md").write_text(card_text(name, summary, task=task, tags=tags,
                                                  in_features=in_features, classes=classes,
                                                  seed=seed))
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"{name} {version}", env=env)
        prefix = "" if model_dir == "." else f"{model_dir}/"
        git(path, "tag", "-a", f"{prefix}v{version}", "-m", f"release {version}", env=env)
    return ExampleRepo(path, name, list(versions))


def model_folder(root: Path, name: str = "acme/iris", version: str = "1.0.0",
                 seed: int = 3) -> Path:
    """`root/<short name>/`: a small real ONNX classifier and its mx.yaml."""
    d = root / name.split("/")[1]
    d.mkdir(parents=True)
    linear_classifier(d / "model.onnx", seed=seed)
    (d / "mx.yaml").write_text(manifest_text(name, version))
    return d
