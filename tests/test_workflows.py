"""The GitHub workflows: actionlint, one mx command per run: step, and every run: step
executed in order in a temp model repo (tests/support/workflows.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from mx.cli.main import cli
from tests.conftest import push_to
from tests.support.examples import git, make_model_repo, make_signing_key
from tests.support.servers import static_host
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
    run = Run(repo, {"github": github, "runner": {"temp": str(temp)},
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
