"""A release's input profile from the model repo to the index: the builder checks it and
carries it in the version record."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from tests.support.examples import git, make_model_repo, make_signing_key, sign_all_releases

REGISTRY = """\
registry: 1
name: Drift
mirror_artifacts: true
sources:
  - repo: {repo}
namespaces:
  acme:
    signers: [{{public_key: keys/acme.pub}}]
"""
MEAN = np.array([0.0, 5.0, -2.0, 10.0])
STD = np.array([1.0, 2.0, 0.5, 3.0])


def _rows(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(MEAN + shift * STD, STD, (n, 4)).astype(np.float32)


def _release(mx, repo: Path, version: str, profile: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """Release `version` of the repo's model; `profile`: the text of input-profile.json
    (mx.yaml names it), or "mx profile" to have `mx profile --data` write it."""
    manifest = repo / "mx.yaml"
    text = re.sub(r"(?m)^version: .*$", f"version: {version}", manifest.read_text())
    manifest.write_text(text)
    if profile == "mx profile":
        np.savez(repo.parent / "ref.npz", input=_rows(2000, seed=1))
        res = mx("profile", repo, "--data", repo.parent / "ref.npz")
        assert res.code == 0, res.err
    elif profile is not None:
        (repo / "input-profile.json").write_text(profile)
        if "input_profile:" not in text:
            manifest.write_text(text + "input_profile: input-profile.json\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"release {version}")
    git(repo, "tag", "-a", f"v{version}", "-m", f"release {version}")


def _build(mx, tmp_path: Path, repo: Path, *extra: str):  # type: ignore[no-untyped-def]
    (tmp_path / "registry.yaml").write_text(REGISTRY.format(repo=repo))
    return mx("index", "build", tmp_path / "registry.yaml", "-o", tmp_path / "out", *extra)


def test_the_builder_skips_a_release_whose_profile_mx_serve_would_refuse(  # type: ignore[no-untyped-def]
        mx, tmp_path: Path) -> None:
    repo = make_model_repo(tmp_path / "iris", "acme/iris", ["1.0.0"]).path
    _release(mx, repo, "1.1.0", "mx profile")
    good = json.loads((repo / "input-profile.json").read_text())
    swapped = json.loads(json.dumps(good))
    swapped["inputs"]["input"]["edges"][2].reverse()
    _release(mx, repo, "1.2.0", json.dumps(swapped))
    _release(mx, repo, "1.3.0", json.dumps({**good, "inputs": {"pixels": good["inputs"]["input"]}}))
    (repo / "input-profile.json").unlink()
    _release(mx, repo, "1.4.0")
    _release(mx, repo, "1.5.0", "{")
    sign_all_releases(repo, make_signing_key(tmp_path / "keys", "acme")[0])
    res = _build(mx, tmp_path, repo)
    assert res.code == 0, res.err
    doc = json.loads((tmp_path / "out/index/models/acme/iris.json").read_text())
    assert sorted(doc["versions"]) == ["1.0.0", "1.1.0"]
    for version, why in [
            ("1.2.0", "input-profile.json: inputs.input: edges[2]: edges must be strictly "
                      "increasing"),
            ("1.3.0", "input-profile.json: inputs.pixels: the model has no input 'pixels'"),
            ("1.4.0", "input profile input-profile.json does not exist at this tag"),
            ("1.5.0", "input-profile.json: not JSON")]:
        [line] = [ln for ln in res.err.splitlines() if f"tag v{version}:" in ln]
        assert why in line and line.endswith("(release skipped)"), line
    res = _build(mx, tmp_path, repo, "--strict")
    assert res.code == 1 and "tag v1.2.0: input-profile.json: inputs.input: edges[2]" in res.err
