"""The GitHub workflows: actionlint, one mx command per run: step, and every run: step
executed in order in a temp model repo (tests/support/workflows.py)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
import yaml

from mx import lfs
from mx.cli.main import cli
from tests.conftest import push_to
from tests.support.examples import git, make_model_repo, make_signing_key, sign_all_releases
from tests.support.servers import LfsServer, static_host
from tests.support.workflows import Run, run_workflow

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = str(Path(sys.executable).parent / "actionlint")
_INLINE = ("&&", "||", ";", "|", "`", "$(", "\n")


def parse_mx(args: list[str], cwd: Path) -> None:
    """Parse an mx command line with mx's own click commands (no side effects)."""
    with contextlib.chdir(cwd):
        ctx = cli.make_context("mx", list(args))
        cmd: click.Command = cli
        rest = ctx._protected_args + ctx.args  # click >= 8.2 keeps the subcommand here
        while isinstance(cmd, click.Group):
            name, sub, rest = cmd.resolve_command(ctx, rest)
            assert sub is not None and name is not None, f"mx {' '.join(args)}: no such command"
            ctx = sub.make_context(name, rest, parent=ctx)
            cmd = sub
            rest = ctx._protected_args + ctx.args if isinstance(sub, click.Group) else []


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def test_actionlint_passes_on_every_workflow() -> None:
    proc = subprocess.run([ACTIONLINT, "-no-color", *map(str, WORKFLOWS.glob("*.yml"))],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_run_step_is_one_mx_command() -> None:
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    for path in WORKFLOWS.glob("*.yml"):
        doc = yaml.safe_load(path.read_text())
        for job in doc["jobs"].values():
            for step in job.get("steps", []):
                if "run" not in step:
                    continue
                command = step["run"].strip()
                if path.name == "ci.yml":  # mx's own CI: the same command as .ci/run
                    assert command == ci_command
                    continue
                assert command.startswith("mx "), f"{path.name}: {command}"
                assert not any(tok in command for tok in _INLINE), f"{path.name}: {command}"


def test_workflow_refs_match_this_version() -> None:
    from mx.init import GITHUB_REPO, MX_REV

    for path in WORKFLOWS.glob("*.yml"):
        for line in path.read_text().splitlines():
            if f"{GITHUB_REPO}/" in line:
                assert line.rstrip().endswith(f"@{MX_REV}"), f"{path.name}: {line.strip()}"


def test_init_writes_hooks_and_a_workflow_that_lint(tmp_path: Path, mx) -> None:  # type: ignore[no-untyped-def]
    repo = tmp_path / "model"
    repo.mkdir()
    git(repo, "init", "-q")
    res = mx("init", repo, "--name", "acme/new")
    assert res.code == 0, res.err
    config = repo / ".pre-commit-config.yaml"
    wf = repo / ".github" / "workflows" / "mx.yml"
    assert config.is_file() and wf.is_file()
    pre_commit = str(Path(sys.executable).parent / "pre-commit")
    proc = subprocess.run([pre_commit, "validate-config", str(config)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    hooks = [h["id"] for h in yaml.safe_load(config.read_text())["repos"][0]["hooks"]]
    ours = [h["id"] for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())]
    assert hooks == ours
    # Lint the caller against the real reusable workflow, so its inputs are checked too.
    from mx.init import GITHUB_REPO, MX_REV

    (repo / ".github" / "workflows" / "model-ci.yml").write_text(
        (WORKFLOWS / "model-ci.yml").read_text())
    wf.write_text(wf.read_text().replace(f"{GITHUB_REPO}/.github/workflows/model-ci.yml@{MX_REV}",
                                         "./.github/workflows/model-ci.yml"))
    assert "./.github/workflows/model-ci.yml" in wf.read_text()
    proc = subprocess.run([ACTIONLINT, "-no-color"], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wf.write_text(wf.read_text().replace("gpu-runs-on:", "gpu-runs-onn:"))
    proc = subprocess.run([ACTIONLINT, "-no-color"], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 1 and "gpu-runs-onn" in proc.stdout


@pytest.fixture
def model_repo(tmp_path: Path) -> Path:
    repo = make_model_repo(tmp_path / "repo", "acme/iris", ["1.0.0"]).path
    push_to(repo, tmp_path / "origin.git")
    git(repo, "fetch", "-q", "origin")
    return repo


def _pr_run(repo: Path, branch: str, tmp_path: Path, head_repo: str = "acme/iris",
            **inputs: str) -> Run:
    """model-ci.yml on a pull request from `branch` (of `head_repo`) into main, in `repo`."""
    head = git(repo, "rev-parse", "HEAD").strip()
    temp = tmp_path / "runner"
    temp.mkdir(exist_ok=True)
    github = {"event_name": "pull_request", "base_ref": "main", "head_ref": branch,
              "ref": "refs/pull/1/merge", "ref_name": "1/merge", "sha": head,
              "repository": "acme/iris",
              "event": {"pull_request": {"head": {"sha": head, "ref": branch,
                                                  "repo": {"full_name": head_repo}}},
                        "repository": {"default_branch": "main"}}}
    github["token"] = "ghs_local"
    run = Run(repo, {"github": github, "runner": {"temp": str(temp)}, "secrets": {},
                     "inputs": {"bench-batch": "1", **inputs}}, _env())
    return run_workflow(WORKFLOWS / "model-ci.yml", run, lambda a: parse_mx(a, repo))


def test_model_ci_on_a_pull_request(model_repo: Path, tmp_path: Path) -> None:
    git(model_repo, "checkout", "-qb", "feature")
    card = model_repo / "README.md"
    card.write_text(card.read_text().replace("## Limitations\n", "## Limitations\n\nNew.\n"))
    git(model_repo, "commit", "-qam", "card")
    run = _pr_run(model_repo, "feature", tmp_path, **{"gpu-runs-on": "gpu"})
    failed = [s for s in run.steps if s.returncode and s.job != "gpu"]
    assert not failed, failed
    assert run.jobs == {"check": "success", "gpu": "failure", "report": "success",
                        "sign": "skipped", "release": "skipped"}
    commands = [s.command for s in run.steps if s.command]
    assert commands[:5] == ['mx validate "$MODEL_DIR"', 'mx convert "$MODEL_DIR"',
                            'mx optimize "$MODEL_DIR" -t "$TRANSFORMS"',
                            'mx check "$MODEL_DIR" -t "$TARGETS"',
                            'mx bench "$MODEL_DIR" --device cpu --batch "$BATCH"']
    convert = next(s for s in run.steps if s.command and "convert" in s.command)
    assert "sets no source.export: nothing to convert" in convert.stderr
    gpu = next(s for s in run.steps if s.job == "gpu" and s.command)
    assert gpu.returncode == 1 and "cuda" in gpu.stderr.lower()  # no GPU on this machine
    (comment,) = run.comments
    assert comment.startswith("<!-- mx-report -->")
    assert "| `model.int8.onnx` | int8 | onnx | added |" in comment
    assert "**Model card:** changed: Limitations" in comment
    assert (model_repo / "bench" / "results.json").is_file()
    assert "| p50 base | p50 head |" in comment


def test_model_ci_on_a_release_tag_signs_and_pushes_the_note(model_repo: Path,
                                                             tmp_path: Path) -> None:
    key, _ = make_signing_key(tmp_path / "keys", "acme")
    git(model_repo, "checkout", "-q", "v1.0.0")
    run = Run(model_repo, {"github": {"event_name": "push", "ref": "refs/tags/v1.0.0",
                                      "ref_name": "v1.0.0", "base_ref": "",
                                      "sha": git(model_repo, "rev-parse", "HEAD").strip(),
                                      "event": {"repository": {"default_branch": "main"}}},
                           "inputs": {"bench-batch": "1", "optimize": ""}}, _env(),
              # keyless Sigstore needs GitHub's OIDC token; a key stands in for it here
              rewrite={"--sigstore": f"--key {key}"})
    run_workflow(WORKFLOWS / "model-ci.yml", run, lambda a: parse_mx(a, model_repo))
    assert run.jobs == {"check": "success", "gpu": "skipped", "report": "skipped",
                        "sign": "success", "release": "skipped"}, \
        [s for s in run.steps if s.returncode]
    notes = git(tmp_path / "origin.git", "for-each-ref", "refs/notes/")
    assert "refs/notes/mx-signatures" in notes
    assert not run.comments


def test_registry_publish_builds_the_site(world: Path, index_keys: Path,
                                          tmp_path: Path) -> None:
    git(world, "init", "-q", "-b", "main")
    git(world, "add", "registry.yaml", "keys")
    git(world, "commit", "-qm", "registry")
    secrets = {f"MX_INDEX_{role.upper()}_KEY": (index_keys / f"{role}.pem").read_text()
               for role in ("root", "targets", "snapshot", "timestamp")}
    env = {k: v for k, v in _env().items() if k != "MX_INDEX_KEYS"}  # keys come from secrets
    context = {"github": {"event_name": "push", "ref": "refs/heads/main", "ref_name": "main"},
               "inputs": {}, "secrets": secrets, "runner": {"temp": str(tmp_path / "r1")}}
    run = Run(world, context, env)
    run_workflow(WORKFLOWS / "registry-publish.yml", run, lambda a: parse_mx(a, world))
    assert run.jobs == {"build": "success", "deploy": "success"}, run.steps
    assert run.pages == [world / "_site"]
    assert (world / "_site" / "index" / "models" / "acme" / "iris.json").is_file()
    assert (world / "_site" / "tuf" / "timestamp.json").is_file()
    # The next publish runs in a fresh checkout, without the root key: it continues the
    # live registry's metadata instead of starting a chain clients would refuse.
    live = tmp_path / "live"
    shutil.move(world / "_site", live)
    secrets["MX_INDEX_ROOT_KEY"] = ""  # as GitHub expands a secret that is not set
    with static_host(live) as host:
        context = {**context, "inputs": {"published-url": host.url},
                   "runner": {"temp": str(tmp_path / "r2")}}
        run = Run(world, context, env)
        run_workflow(WORKFLOWS / "registry-publish.yml", run, lambda a: parse_mx(a, world))
    assert run.jobs == {"build": "success", "deploy": "success"}, run.steps
    assert (world / "_site/tuf/root.json").read_bytes() == (live / "tuf/root.json").read_bytes()
    assert (world / "_site/tuf/timestamp.json").read_bytes() == \
        (live / "tuf/timestamp.json").read_bytes()  # nothing changed: nothing re-signed
    doc = yaml.safe_load((WORKFLOWS / "registry-publish.yml").read_text())
    assert doc["concurrency"] == {"group": "mx-registry-publish", "cancel-in-progress": False}


# The loop, closed: a pull request gets its derived artifacts pushed back by CI, the merge
# of its version bump is tagged and signed, and a registry build serves the derived variant.

CI = "mx-ci <mx-ci@users.noreply.github.com>"


@pytest.fixture
def lfs_repo(tmp_path: Path, lfs_server: LfsServer) -> tuple[Path, Path, Path]:
    """A signed model repo whose LFS objects live on giftless; (work tree, origin, key)."""
    endpoint = lfs_server.endpoint("acme", f"ci-{tmp_path.name}")
    repo = make_model_repo(tmp_path / "repo", "acme/iris", ["1.0.0"], lfs_url=endpoint).path
    key, _ = make_signing_key(tmp_path / "keys", "acme")
    sign_all_releases(repo, key)
    origin = tmp_path / "origin.git"
    push_to(repo, origin)
    git(repo, "fetch", "-q", "origin")
    return repo, origin, key


def _on_server(lfs_server: LfsServer, oid: str) -> bool:
    return any(hashlib.sha256(p.read_bytes()).hexdigest() == oid
               for p in lfs_server.storage.rglob("*") if p.is_file())


def _fresh_checkout(repo: Path, rev: str) -> None:
    """What actions/checkout gives the next run: `rev`, and nothing left from this one."""
    git(repo, "reset", "-q", "--hard")
    git(repo, "clean", "-fdq")
    git(repo, "checkout", "-q", rev)


@pytest.mark.slow
def test_the_loop_closes_in_ci(lfs_repo: tuple[Path, Path, Path], tmp_path: Path,  # type: ignore[no-untyped-def]
                               lfs_server: LfsServer, mx) -> None:
    repo, origin, key = lfs_repo
    git(repo, "checkout", "-qb", "bump")
    manifest = repo / "mx.yaml"
    manifest.write_text(manifest.read_text().replace("version: 1.0.0", "version: 1.1.0"))
    (repo / "data").mkdir()
    rng = np.random.default_rng(7)  # real inputs: calibration, quality, the input profile
    np.savez(repo / "data" / "ref.npz", input=rng.normal(5, 2, (300, 4)).astype(np.float32))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "1.1.0")
    git(repo, "push", "-q", "origin", "bump")
    before = git(repo, "rev-parse", "HEAD").strip()

    # The pull request: derived artifacts, benchmarks and the input profile come back as
    # one commit by mx-ci.
    run = _pr_run(repo, "bump", tmp_path, data="data/ref.npz")
    assert run.jobs == {"check": "success", "gpu": "skipped", "report": "success",
                        "sign": "skipped", "release": "skipped"}, \
        [s for s in run.steps if s.returncode]
    tip = git(origin, "rev-parse", "refs/heads/bump").strip()
    assert git(origin, "rev-list", f"{before}..{tip}").split() == [tip]
    assert git(origin, "log", "-1", "--format=%an <%ae>|%cn <%ce>", tip).strip() == \
        f"{CI}|{CI}"
    message = git(origin, "log", "-1", "--format=%B", tip)
    assert message.startswith("mx ci: derived int8 onnx (model.int8.onnx), benchmarks "
                              "(bench/results.json), input profile (input-profile.json)\n")
    assert message.rstrip().endswith("Mx-CI: derived")
    changed = git(origin, "diff-tree", "--no-commit-id", "--name-only", "-r", tip).split()
    assert sorted(changed) == ["bench/results.json", "input-profile.json", "model.int8.onnx",
                               "mx.yaml"]
    pointer = lfs.parse_pointer(git(origin, "show", f"{tip}:model.int8.onnx").encode())
    assert pointer is not None and _on_server(lfs_server, pointer.oid)
    assert not (origin / "lfs").exists()  # the objects went to the LFS server, not git
    (comment,) = run.comments
    assert comment.startswith("<!-- mx-report -->")
    assert f"**Derived artifacts:** pushed `{tip[:12]}` to `bump`" in comment
    assert "| `model.int8.onnx` | int8 | onnx | added |" in comment
    assert "**Derived artifacts:** pushed" in run.summaries["report"]

    # The run for CI's own commit derives again and pushes nothing.
    _fresh_checkout(repo, tip)
    run = _pr_run(repo, "bump", tmp_path, data="data/ref.npz")
    assert run.jobs["report"] == "success", [s for s in run.steps if s.returncode]
    assert git(origin, "rev-parse", "refs/heads/bump").strip() == tip
    (comment,) = run.comments
    assert "the head commit is mx CI's own derived commit: nothing is pushed again" in comment

    # The merge: main moves to the branch; the version bump is tagged and signed.
    _fresh_checkout(repo, "main")
    git(repo, "merge", "-q", "--ff-only", tip)
    git(repo, "push", "-q", "origin", "main")
    github = {"event_name": "push", "ref": "refs/heads/main", "ref_name": "main",
              "base_ref": "", "head_ref": "", "sha": tip, "repository": "acme/iris",
              "event": {"repository": {"default_branch": "main"}}}
    run = Run(repo, {"github": github, "inputs": {"bench-batch": "1"}}, _env(),
              rewrite={"--sigstore": f"--key {key}"})  # keyless needs GitHub's OIDC token
    run_workflow(WORKFLOWS / "model-ci.yml", run, lambda a: parse_mx(a, repo))
    assert run.jobs == {"check": "success", "gpu": "skipped", "report": "skipped",
                        "sign": "skipped", "release": "success"}, \
        [s for s in run.steps if s.returncode]
    assert git(origin, "rev-parse", "v1.1.0^{commit}").strip() == tip
    assert git(origin, "for-each-ref", "--format=%(taggername) %(taggeremail)",
               "refs/tags/v1.1.0").strip() == CI
    signed = json.loads(git(origin, "notes", "--ref", "mx-signatures", "show", tip))
    assert set(signed) == {"."}
    first = git(origin, "rev-parse", "v1.0.0^{commit}").strip()
    assert git(origin, "notes", "--ref", "mx-signatures", "show", first)  # still there
    res = mx("ci", "tag", repo, "--remote", "origin")
    assert res.code == 0 and "v1.1.0 exists already" in res.err  # the next push tags nothing

    # The registry builds from the tags: the derived variant installs.
    registry = tmp_path / "registry.yaml"
    registry.write_text(f"registry: 1\nname: CI\nmirror_artifacts: true\n"
                        f"sources:\n  - repo: {origin}\n"
                        f"namespaces:\n  acme:\n    signers: [{{public_key: keys/acme.pub}}]\n")
    res = mx("index", "build", registry, "-o", tmp_path / "site")
    assert res.code == 0, res.err
    with static_host(tmp_path / "site") as host:
        res = mx("install", "acme/iris@^1", "--variant", "int8", "--registry", host.url,
                 "--json")
    assert res.code == 0, res.err
    (installed,) = json.loads(res.out)
    assert (installed["version"], installed["variant"]) == ("1.1.0", "int8")
    assert hashlib.sha256(Path(installed["files"]["model.int8.onnx"]).read_bytes()
                          ).hexdigest() == pointer.oid
    # The release carries the profile of data/ref.npz: what mx serve measures drift against.
    profile = json.loads((Path(installed["files"]["model.int8.onnx"]).parent
                          / "input-profile.json").read_text())
    assert profile["version"] == "1.1.0" and set(profile["inputs"]) == {"input"}


@pytest.mark.slow
def test_a_fork_or_a_refused_push_gets_the_report_and_a_note(
        lfs_repo: tuple[Path, Path, Path], tmp_path: Path) -> None:
    repo, origin, _ = lfs_repo
    git(repo, "checkout", "-qb", "card")
    card = repo / "README.md"
    card.write_text(card.read_text().replace("## Limitations\n", "## Limitations\n\nNew.\n"))
    git(repo, "commit", "-qam", "card")
    git(repo, "push", "-q", "origin", "card")
    tip = git(repo, "rev-parse", "HEAD").strip()

    run = _pr_run(repo, "card", tmp_path, head_repo="someone/iris")
    assert run.jobs["report"] == "success", [s for s in run.steps if s.returncode]
    assert git(origin, "rev-parse", "refs/heads/card").strip() == tip
    assert git(repo, "rev-parse", "HEAD").strip() == tip  # not even committed locally
    assert not run.comments  # a fork's token cannot comment: the summary has it all
    summary = run.summaries["report"]
    assert summary.startswith("<!-- mx-report -->")
    assert "not pushed: this pull request comes from a fork" in summary
    assert "`model.int8.onnx`" in summary and "`bench/results.json`" in summary

    # The same repository, but the push is refused, as GitHub refuses a read-only token.
    hook = origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'Permission to acme/iris.git denied to "
                    "github-actions[bot].' >&2\nexit 1\n")
    hook.chmod(0o755)
    _fresh_checkout(repo, tip)
    run = _pr_run(repo, "card", tmp_path)
    assert run.jobs["report"] == "success", [s for s in run.steps if s.returncode]
    assert git(origin, "rev-parse", "refs/heads/card").strip() == tip
    (comment,) = run.comments
    assert "not pushed: the push to `card` was refused (remote: Permission to acme/iris.git " \
           "denied to github-actions[bot].)" in comment
    assert "needs `contents: write`" in comment
