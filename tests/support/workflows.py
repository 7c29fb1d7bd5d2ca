"""Run a GitHub Actions workflow's steps locally, in order, in a temp repository.

Jobs run in `needs` order in one work tree. `run:` steps go to bash as GitHub would run
them (env from the workflow, `${{ }}` filled from a context); before that, each mx
command line is parsed by mx's own click command, so a workflow that names a missing
command or option fails here. `uses:` steps that only exist on GitHub are replaced by
their local equivalents (LOCAL_ACTIONS); an action not listed there fails the run.
Expressions: the subset these workflows use (==, !=, &&, ||, !, startsWith, cancelled,
always, success, literals, dotted context names); anything else raises. As on GitHub, a
missing property of the event payload (`github.event.*`) is null, an unset secret is empty
(when the context has `secrets`), a step's outputs are what
it wrote to $GITHUB_OUTPUT (`steps.<id>.outputs.<name>`, empty when unset), and each job
has a $GITHUB_STEP_SUMMARY whose text ends up in Run.summaries.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Action = Callable[[dict[str, Any], "Run"], None]


@dataclass
class StepResult:
    job: str
    name: str
    command: str | None  # the run: line as executed (None for a uses: step)
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass
class Run:
    workdir: Path
    context: dict[str, Any]  # github.*, inputs.*
    env: dict[str, str]
    rewrite: dict[str, str] = field(default_factory=dict)  # local stand-ins inside commands
    steps: list[StepResult] = field(default_factory=list)
    jobs: dict[str, str] = field(default_factory=dict)  # job -> success|failure|skipped
    comments: list[str] = field(default_factory=list)  # bodies the PR-comment step posted
    pages: list[Path] = field(default_factory=list)  # directories uploaded for Pages
    summaries: dict[str, str] = field(default_factory=dict)  # job -> its step summary


def _noop(_with: dict[str, Any], _run: Run) -> None:
    """Checkout (the temp repo is the checkout), setup (mx is on PATH), artifacts (one tree)."""


def _comment(with_: dict[str, Any], run: Run) -> None:
    run.comments.append((run.workdir / with_["path"]).read_text())


def _pages(with_: dict[str, Any], run: Run) -> None:
    site = run.workdir / with_["path"]
    assert (site / "index" / "config.json").is_file(), f"{site}: no index to publish"
    run.pages.append(site)


LOCAL_ACTIONS: dict[str, Action] = {
    "actions/checkout": _noop,
    "actions/setup-python": _noop,
    "mx-models/mx/.github/actions/setup-mx": _noop,
    "actions/upload-artifact": _noop,
    "actions/download-artifact": _noop,
    "actions/configure-pages": _noop,
    "actions/deploy-pages": _noop,
    "marocchino/sticky-pull-request-comment": _comment,
    "actions/upload-pages-artifact": _pages,
}

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||!|\(|\)|,)"
                    r"|(?P<num>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_.-]*))")


def evaluate(expr: str, context: dict[str, Any], jobs: dict[str, str]) -> Any:
    expr = expr.strip()
    if expr.startswith("${{") and expr.endswith("}}"):
        expr = expr[3:-2]
    out: list[str] = []
    values: list[Any] = []
    pos = 0
    for m in _TOKEN.finditer(expr):
        if m.start() != pos and expr[pos:m.start()].strip():
            raise ValueError(f"cannot evaluate {expr!r} locally")
        pos = m.end()
        if m["str"] is not None:
            values.append(m["str"][1:-1].replace("''", "'"))
            out.append(f"_v[{len(values) - 1}]")
        elif m["op"]:
            out.append({"&&": " and ", "||": " or ", "!": " not "}.get(m["op"], m["op"]))
        elif m["num"]:
            out.append(m["num"])
        else:
            name = m["name"]
            funcs = {"startsWith": "_starts", "cancelled": "_false", "always": "_true",
                     "success": "_ok", "failure": "_failed", "true": "True", "false": "False"}
            if name in funcs:
                out.append(funcs[name])
                continue
            values.append(_lookup(name, context, jobs))
            out.append(f"_v[{len(values) - 1}]")
    if expr[pos:].strip():
        raise ValueError(f"cannot evaluate {expr!r} locally")
    env = {"_v": values, "_starts": lambda a, b: str(a).lower().startswith(str(b).lower()),
           "_false": lambda: False, "_true": lambda: True,
           "_ok": lambda: all(v == "success" for v in jobs.values()),
           "_failed": lambda: any(v == "failure" for v in jobs.values())}
    return eval("".join(out), {"__builtins__": {}}, env)


def _lookup(name: str, context: dict[str, Any], jobs: dict[str, str]) -> Any:
    parts = name.split(".")
    if parts[0] == "needs" and len(parts) == 3 and parts[2] == "result":
        return jobs[parts[1]]
    if parts[0] == "steps":
        # what the job's steps wrote to $GITHUB_OUTPUT; empty otherwise (the Pages URL)
        if len(parts) == 4 and parts[2] == "outputs":
            return context.get("steps", {}).get(parts[1], {}).get(parts[3], "")
        return ""
    value: Any = context
    for i, p in enumerate(parts):
        if not isinstance(value, dict) or p not in value:
            if parts[:2] == ["github", "event"] and i >= 2:
                return None  # payloads differ by event: a missing property is null
            if parts[0] == "secrets" and i == 1 and isinstance(value, dict):
                return ""  # a secret the caller does not pass expands to ""
            raise KeyError(f"{name}: not in the local context")
        value = value[p]
    return value


def _text(value: Any) -> str:
    """An expression's value as GitHub writes it into text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fill(text: str, run: Run) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}",
                  lambda m: _text(evaluate(m.group(1), run.context, run.jobs)), text)


def _outputs(path: Path) -> dict[str, str]:
    """name=value lines (and name<<EOF blocks) as GitHub reads $GITHUB_OUTPUT."""
    out: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.is_file() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, _, end = line.partition("<<")
            block: list[str] = []
            while i < len(lines) and lines[i] != end:
                block.append(lines[i])
                i += 1
            i += 1
            out[name] = "\n".join(block)
        elif "=" in line:
            name, _, value = line.partition("=")
            out[name] = value
    return out


def _order(jobs: dict[str, Any]) -> list[str]:
    done: list[str] = []
    while len(done) < len(jobs):
        for name, job in jobs.items():
            needs = job.get("needs", [])
            needs = [needs] if isinstance(needs, str) else needs
            if name not in done and all(n in done for n in needs):
                done.append(name)
                break
        else:
            raise ValueError("a cycle in needs")
    return done


def run_workflow(path: Path, run: Run, parse: Callable[[list[str]], None]) -> Run:
    doc = yaml.safe_load(path.read_text())
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads the key `on` as true
    call = (on.get("workflow_call") if isinstance(on, dict) else None) or {}
    defaults = {k: v.get("default", "") for k, v in (call.get("inputs") or {}).items()}
    run.context.setdefault("inputs", {})
    run.context["inputs"] = {**defaults, **run.context["inputs"]}
    scratch = Path(tempfile.mkdtemp(prefix="mx-workflow-"))
    for name in _order(doc["jobs"]):
        job = doc["jobs"][name]
        cond = job.get("if")
        if cond is not None and not evaluate(str(cond), run.context, run.jobs):
            run.jobs[name] = "skipped"
            continue
        run.jobs[name] = "success"
        run.context["steps"] = {}
        summary = scratch / f"{name}.summary.md"
        summary.touch()
        job_env = {k: _fill(str(v), run) for k, v in (job.get("env") or {}).items()}
        for i, step in enumerate(job["steps"]):
            label = step.get("name") or step.get("uses") or f"step {i}"
            if "if" in step and not evaluate(str(step["if"]), run.context, run.jobs):
                continue
            if "uses" in step:
                action = step["uses"].split("@")[0]
                if action not in LOCAL_ACTIONS:
                    raise KeyError(f"{path.name}: {label}: no local equivalent for {action}")
                with_ = {k: _fill(str(v), run) for k, v in (step.get("with") or {}).items()}
                LOCAL_ACTIONS[action](with_, run)
                run.steps.append(StepResult(name, label, None))
                continue
            command = _fill(step["run"], run)
            output = scratch / f"{name}.{i}.output"
            env = {**run.env, **job_env,
                   **{k: _fill(str(v), run) for k, v in (step.get("env") or {}).items()},
                   "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}
            argv = shlex.split(_with_env(command, env))
            if argv[0] == "mx":
                parse(argv[1:])  # the command and its options exist, as written
            for old, new in run.rewrite.items():
                command = command.replace(old, new)
            proc = subprocess.run(["bash", "-e", "-c", command], cwd=run.workdir, env=env,
                                  capture_output=True, text=True, timeout=600)
            run.steps.append(StepResult(name, label, command, proc.returncode, proc.stdout,
                                        proc.stderr))
            if "id" in step:
                run.context["steps"][step["id"]] = _outputs(output)
            if proc.returncode != 0:
                run.jobs[name] = "failure"
                break
        run.summaries[name] = summary.read_text()
    shutil.rmtree(scratch, ignore_errors=True)
    return run


def _with_env(command: str, env: dict[str, str]) -> str:
    for k, v in env.items():
        command = command.replace(f"${k}", shlex.quote(v) if " " in v else v)
    return command
