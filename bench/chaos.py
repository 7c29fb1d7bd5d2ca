"""Chaos: kill -9 at random moments and run mx processes side by side, then check that
nothing broke: no exit 3, no traceback, no file left behind, no half-published index.

Areas, each tried for a share of the time limit (prints "tried N, held M" for each):

- install: `mx install` of a large artifact killed at a random moment, then run again;
  held when the rerun exits 0, `mx cache verify` is clean and tmp/ and stage folders
  are empty.
- build: `mx index build` into a fresh output killed at a random moment; held when every
  model document names only files that exist, no temp file of ours is in the output,
  and a rebuild exits 0 and leaves no temp file at all.
- run: `mx run` over many rows killed at a random moment; held when the rerun exits 0,
  writes every row, and leaves nothing beside the output.
- concurrency: parallel installs of several models into one fresh cache with prune and
  clean racing them, and two builds into one output; held when no process exits 3 or
  prints a traceback, installs exit 0, builds exit 0 or 1 (the lock message), and the
  cache verifies with nothing left behind.

    .venv/bin/python bench/chaos.py [--time-limit 90] [--size-mib 32] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_env, mx_cmd, run

TIMEOUT = 120  # for any one mx process: a hang is a failure, not a stuck benchmark
MODELS = ["chaos/big@1.0.0", "chaos/a@1.0.0", "chaos/a@1.1.0", "chaos/b@1.0.0"]


def mx(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(mx_cmd(*args), capture_output=True, text=True, env=env,
                              timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", f"timed out after {TIMEOUT} s")


def killed_at_random(args: list[str], env: dict[str, str], rng: random.Random,
                     span: float) -> None:
    proc = subprocess.Popen(mx_cmd(*args), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(0.2 * span, span))  # the first fifth is mostly Python starting
    proc.kill()
    proc.wait()


def sound(*results: subprocess.CompletedProcess[str]) -> bool:
    return all(r.returncode != 3 and "Traceback" not in r.stderr
               and "internal error" not in r.stderr for r in results)


def cache_leftovers(home: Path) -> list[Path]:
    found = [p for p in home.rglob(".*")] if home.exists() else []
    if (home / "tmp").exists():
        found += list((home / "tmp").iterdir())
    return found


def cache_ok(env: dict[str, str]) -> bool:
    res = mx(["cache", "verify", "--json"], env)
    if res.returncode != 0 or not sound(res):
        return False
    report = json.loads(res.stdout)
    return not report["corrupt"] and not report.get("broken")


def dangling_documents(out: Path) -> list[str]:
    """Files that a published model document names but the output does not hold."""
    missing = []
    for path in (out / "index" / "models").rglob("*.json") if out.exists() else []:
        doc = json.loads(path.read_text())
        for rec in doc["versions"].values():
            named = [rec["card"]["url"], rec["manifest_file"]["url"]]
            named += [rec["signature"]["url"]] if rec.get("signature") else []
            named += [u for a in rec["artifacts"] for u in a["urls"] if not u.startswith("lfs+")]
            missing += [n for n in named if not (out / n).is_file()]
    return missing


def our_temp_files(out: Path) -> list[Path]:
    """Temp files inside an output; the TUF writer's own (tuf/) are reclaimed by the
    next build, so they only count after a rebuild."""
    return [p for p in out.rglob(".*") if p.parts[len(out.parts)] != "tuf"] \
        if out.exists() else []


class Chaos:
    def __init__(self, root: Path, env: dict[str, str], url: str, rng: random.Random) -> None:
        self.root, self.env, self.url, self.rng = root, env, url, rng
        self.n = 0
        # How long each command takes uninterrupted: kills land anywhere in that span.
        self.span = {"install": self.timed(self.install_args(), self.fresh_home()),
                     "build": self.timed(self.build_args(self.fresh("out")), self.env),
                     "run": self.timed(self.run_args(self.fresh_run()), self.env)}

    def timed(self, args: list[str], env: dict[str, str]) -> float:
        start = time.monotonic()
        res = mx(args, env)
        if res.returncode != 0:
            raise SystemExit(f"chaos: {' '.join(args)} failed: {res.stderr}")
        return time.monotonic() - start

    def install_args(self) -> list[str]:
        return ["install", "chaos/big@1.0.0", "--registry", self.url]

    def build_args(self, out: Path) -> list[str]:
        return ["index", "build", str(self.root / "registry.yaml"), "-o", str(out), "--no-site"]

    def run_args(self, out: Path) -> list[str]:
        return ["run", str(self.root / "lin"), "-i", str(self.root / "rows.npy"), "-o",
                str(out), "--batch-size", "8", "--checkpoint-rows", "2000"]

    def fresh_home(self) -> dict[str, str]:
        return {**self.env, "MX_HOME": str(self.fresh("home"))}

    def fresh_run(self) -> Path:
        out = self.fresh("run") / "scores.npy"
        out.parent.mkdir()
        return out

    def fresh(self, name: str) -> Path:
        self.n += 1
        return self.root / f"{name}-{self.n}"

    def install(self) -> bool:
        env = self.fresh_home()
        args = self.install_args()
        for _ in range(self.rng.randint(1, 3)):  # killed once or more, then finished
            killed_at_random(args, env, self.rng, self.span["install"])
        rerun = mx(args, env)
        return (rerun.returncode == 0 and sound(rerun) and cache_ok(env)
                and not cache_leftovers(Path(env["MX_HOME"])))

    def build(self) -> bool:
        out = self.fresh("out")
        args = self.build_args(out)
        killed_at_random(args, self.env, self.rng, self.span["build"])
        consistent = not dangling_documents(out) and not our_temp_files(out)
        rebuild = mx(args, self.env)
        return (consistent and rebuild.returncode == 0 and sound(rebuild)
                and not dangling_documents(out) and not list(out.rglob(".*")))

    def run(self) -> bool:
        out = self.fresh_run()
        args = self.run_args(out)
        killed_at_random(args, self.env, self.rng, self.span["run"])
        rerun = mx(args, self.env)
        import numpy as np

        rows = np.load(out).shape[0] if out.exists() else -1
        beside = [p.name for p in out.parent.iterdir() if p != out]
        return rerun.returncode == 0 and sound(rerun) and rows == ROWS and not beside

    def concurrency(self) -> bool:
        env = self.fresh_home()
        procs = [subprocess.Popen(mx_cmd("install", spec, "--registry", self.url), env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for spec in MODELS + MODELS[1:]]
        time.sleep(self.rng.uniform(0.2, 1.5))
        tidy = [subprocess.Popen(mx_cmd(*args), env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
                for args in (["cache", "prune"], ["cache", "clean", "--yes"])]
        out = self.fresh("out")
        args = self.build_args(out)
        builds = [subprocess.Popen(mx_cmd(*args), env=self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = []
        for p in procs + tidy + builds:
            try:
                _, err = p.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
            results.append(subprocess.CompletedProcess(p.args, p.returncode, "", err))
        installs_ok = all(r.returncode == 0 for r in results[:len(procs) + len(tidy)])
        builds_ok = all(r.returncode == 0 or (r.returncode == 1 and "another `mx index build`"
                                              in r.stderr) for r in results[-2:])
        return (sound(*results) and installs_ok and builds_ok and cache_ok(env)
                and not cache_leftovers(Path(env["MX_HOME"])) and not dangling_documents(out))


ROWS = 200_000


def setup(root: Path, size: int, env: dict[str, str]) -> None:
    import numpy as np
    from tests.support.examples import linear_classifier, make_model_repo, manifest_text

    make_model_repo(root / "repos" / "big", "chaos/big", ["1.0.0"], pad_to=size)
    make_model_repo(root / "repos" / "a", "chaos/a", ["1.0.0", "1.1.0"])
    make_model_repo(root / "repos" / "b", "chaos/b", ["1.0.0"])
    (root / "registry.yaml").write_text(
        "registry: 1\nname: chaos\nmirror_artifacts: true\nallow_unsigned: true\nsources:\n"
        + "".join(f"  - repo: repos/{r}\n" for r in ("big", "a", "b")))
    run(mx_cmd("index", "build", str(root / "registry.yaml"), "-o", str(root / "site"),
               "--no-site"), env)
    lin = root / "lin"
    lin.mkdir()
    linear_classifier(lin / "model.onnx", seed=3)
    (lin / "mx.yaml").write_text(manifest_text("chaos/lin", "1.0.0"))
    np.save(root / "rows.npy",
            np.random.default_rng(0).random((ROWS, 4), dtype=np.float32))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--time-limit", type=float, default=90,
                    help="seconds for the rounds, shared by the areas (setup not counted)")
    ap.add_argument("--size-mib", type=int, default=32, help="the large artifact")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="mx-chaos-"))
    server = None
    try:
        env = bench_env(root)
        print(f"setting up in {root} ({args.size_mib} MiB artifact) ...", flush=True)
        setup(root, args.size_mib << 20, env)
        server = subprocess.Popen(mx_cmd("index", "serve", str(root / "site"), "--port", "0"),
                                  stderr=subprocess.PIPE, text=True, env=env)
        assert server.stderr is not None
        url = server.stderr.readline().split(" at ")[1].split()[0]
        chaos = Chaos(root, env, url, rng)
        print("uninterrupted: " + ", ".join(f"{k} {v:.1f} s" for k, v in chaos.span.items()),
              flush=True)
        areas: dict[str, Callable[[], bool]] = {
            "install (kill -9, rerun)": chaos.install, "build (kill -9, rebuild)": chaos.build,
            "run (kill -9, rerun)": chaos.run, "concurrency (installs, prune, clean, builds)":
            chaos.concurrency}
        share = args.time_limit / len(areas)
        all_held = True
        for name, attempt in areas.items():
            tried = held = 0
            deadline = time.monotonic() + share
            while tried == 0 or time.monotonic() < deadline:
                tried += 1
                held += attempt()
            all_held &= held == tried
            print(f"{name:<48} tried {tried}, held {held}", flush=True)
        print("all held" if all_held else "SOME DID NOT HOLD")
        if not all_held:
            raise SystemExit(1)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
