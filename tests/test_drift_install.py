"""A release's input profile from the model repo to `mx serve`: the builder checks it and
carries it in the version record, `mx install` writes it beside the installed mx.yaml, and
`mx serve ns/name@^1` reports drift against it over real HTTP."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.examples import git, make_model_repo, make_signing_key, sign_all_releases
from tests.support.servers import static_host
from tests.support.serving import mx_serve

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


def _psi(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    m = re.search(r'^mx_input_drift_psi\{input="input",model="acme/iris",version="1.1.0"\} '
                  r"(\S+)$", text, re.M)
    assert m, text
    return float(m.group(1))


def _send(client: httpx.Client, x: np.ndarray) -> None:
    for part in np.array_split(x, len(x) // 50):
        r = client.post("/v2/models/acme/iris/infer", json={"inputs": [
            {"name": "input", "shape": list(part.shape), "datatype": "FP32",
             "data": part.ravel().tolist()}]})
        assert r.status_code == 200, r.text


def test_a_released_profile_is_published_installed_and_served(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_model_repo(tmp_path / "iris", "acme/iris", ["1.0.0"]).path
    _release(mx, repo, "1.1.0", "mx profile")
    private, public = make_signing_key(tmp_path / "keys", "acme")
    sign_all_releases(repo, private)
    res = _build(mx, tmp_path, repo)
    assert res.code == 0, res.err
    released = (repo / "input-profile.json").read_bytes()
    doc = json.loads((tmp_path / "out/index/models/acme/iris.json").read_text())
    assert doc["versions"]["1.1.0"]["input_profile"] == json.loads(released)
    assert "input_profile" not in doc["versions"]["1.0.0"]

    with static_host(tmp_path / "out") as host:
        res = mx("install", "acme/iris@^1", "--registry", host.url, "--json")
        assert res.code == 0, res.err
        [installed] = json.loads(res.out)
        assert installed["version"] == "1.1.0"
        assert not [w for w in installed["warnings"] if "profile" in w]
        profile = Path(installed["files"]["input-profile.json"])
        assert profile.parent == Path(installed["path"])  # beside the installed mx.yaml
        assert profile.read_bytes() == released  # as `mx profile` wrote it, byte for byte
        # the signed release checks out, profile and all
        res = mx("verify", "acme/iris@^1", "--key", public, "--registry", host.url)
        assert res.code == 0, res.err
        # a blob the variant's record names, like the artifacts: prune keeps it
        record = json.loads(Path(installed["path"] + ".record.json").read_text())
        assert record["files"]["input-profile.json"] == hashlib.sha256(released).hexdigest()

        with mx_serve("acme/iris@^1", "--registry", host.url, "--drift-window", "500",
                      log=tmp_path / "serve.log") as served, \
                httpx.Client(base_url=served.url, timeout=30) as client:
            assert np.isnan(_psi(client))  # nothing counted yet
            _send(client, _rows(500, seed=2))
            assert 0 <= _psi(client) < 0.1
            _send(client, _rows(500, seed=3, shift=3.0))  # mean + 3 std: the window is new
            assert _psi(client) > 0.25
        assert '"event": "profile_loaded"' in served.log_text()


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


def test_a_profile_the_client_refuses_leaves_the_model_installable(  # type: ignore[no-untyped-def]
        mx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_model_repo(tmp_path / "iris", "acme/iris", ["1.0.0"]).path
    _release(mx, repo, "1.1.0", "mx profile")
    sign_all_releases(repo, make_signing_key(tmp_path / "keys", "acme")[0])
    # A registry whose builder is not this one (or was tampered with before signing)
    # publishes a profile no mx would accept: the index is hostile input as well.
    with monkeypatch.context() as patched:
        patched.setattr("mx.index_builder.collect._input_profile",
                        lambda *a: {"mx_input_profile": 1, "rows": 0, "bins": 10,
                                    "inputs": {}})
        assert _build(mx, tmp_path, repo).code == 0
    with static_host(tmp_path / "out") as host:
        res = mx("install", "acme/iris@1.1.0", "--registry", host.url, "--json")
    assert res.code == 0, res.err
    [installed] = json.loads(res.out)
    assert "input-profile.json" not in installed["files"]
    assert not (Path(installed["path"]) / "input-profile.json").exists()
    [warning] = [w for w in installed["warnings"] if "profile" in w]
    assert warning.startswith("acme/iris 1.1.0: input_profile (input-profile.json): rows: "
                              "Input should be greater than or equal to 1")
    assert warning.endswith("installed without it (mx serve reports no drift)")


def test_a_hand_written_profile_is_installed_in_mx_form_and_still_verifies(  # type: ignore[no-untyped-def]
        mx, tmp_path: Path) -> None:
    repo = make_model_repo(tmp_path / "iris", "acme/iris", ["1.0.0"]).path
    _release(mx, repo, "1.1.0", "mx profile")
    compact = json.dumps(json.loads((repo / "input-profile.json").read_text()))
    _release(mx, repo, "1.2.0", compact)  # one line: not the bytes mx profile writes
    private, public = make_signing_key(tmp_path / "keys", "acme")
    sign_all_releases(repo, private)
    assert _build(mx, tmp_path, repo).code == 0
    with static_host(tmp_path / "out") as host:
        res = mx("install", "acme/iris@1.2.0", "--registry", host.url, "--json")
        assert res.code == 0, res.err
        [installed] = json.loads(res.out)
        written = Path(installed["files"]["input-profile.json"]).read_text()
        assert json.loads(written) == json.loads(compact) and written != compact
        # the signature covers the repo's bytes; the installed profile is the index's
        res = mx("verify", "acme/iris@1.2.0", "--key", public, "--registry", host.url)
        assert res.code == 0, res.err
