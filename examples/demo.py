"""make demo: the whole flow on three small real models, end to end.

1. make three model repos (git + Git LFS, real ONNX models, release tags),
2. validate them, 3. sign their releases, 4. build a registry index from them
(verifying every signature), 5. serve it on 127.0.0.1, 6. install models by range into
a fresh cache (verified before anything is linked), 7. run one inference.
Everything lands under ./demo-out (deleted and remade on each run).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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
  acme/iris: {{1.0.0: "trained on a corrupted split; use 1.1.0"}}
namespaces:
  acme:
    signers:
      - {{public_key: keys/acme-release.pub}}
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


def main() -> None:
    started = time.monotonic()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    from mx.devserver import base_url, make_server, serve_in_thread
    from mx.examples import make_model_repo, make_signing_key, sandbox_env, sign_all_releases

    env = sandbox_env(OUT, "mx demo")

    step("1. model repos: git + Git LFS, real ONNX models, one tag per release")
    repos = OUT / "repos"
    made = [
        make_model_repo(repos / "iris", "acme/iris", ["1.0.0", "1.1.0", "2.0.0-rc.1"],
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

    step("7. one inference with the installed model")
    import numpy as np

    import mx as mxlib

    session = mxlib.load("acme/iris@^1.0", registry=url)
    flowers = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], np.float32)
    probs = session.run(None, {"input": flowers})[0]
    for row, p in zip(flowers, probs, strict=True):
        print(f"  input {[round(float(x), 1) for x in row]} -> class {int(p.argmax())} "
              f"(p={float(p.max()):.3f}, sums to {float(p.sum()):.3f})")

    step("8. batch inference over a file of rows, and exports for Triton and the edge")
    np.save(OUT / "flowers.npy", np.repeat(flowers, 500, axis=0))
    mx("run", "acme/iris@^1.0", "--registry", url, "-i", str(OUT / "flowers.npy"),
       "-o", str(OUT / "flowers.probs.npy"), "--batch-size", "256", env=env)
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
    print(f"  batch outputs   {OUT / 'flowers.probs.npy'}")
    print(f"  Triton / edge   {OUT / 'model_repository'}, {OUT / 'edge'}")
    print(f"  signing key     {private} (public: {public})")
    print(f"  serve it again  .venv/bin/mx index serve {OUT / 'site'} --port 8000")


if __name__ == "__main__":
    main()
