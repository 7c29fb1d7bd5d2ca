"""`mx run --engine ray`: the local engine's outputs, from a Ray cluster the tests start.

One cluster for the module (Ray takes seconds to start): a head with 2 CPUs and a small
object store, in a subprocess of its own with a temp dir, shut down at the end. mx runs as
a process connecting to it through RAY_ADDRESS, with token auth through RAY_AUTH_TOKEN (so
nothing is written to ~/.ray).
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.bigmodel import mx_env
from tests.support.examples import card_text, linear_classifier, manifest_text

HEAD = """
import sys
import ray
ctx = ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 << 20,
               _temp_dir=sys.argv[1])
print(ctx.address_info["address"], flush=True)
sys.stdin.read()  # until the test closes stdin
ray.shutdown()
"""


@pytest.fixture(scope="module")
def ray_env() -> Iterator[dict[str, str]]:
    """The variables that point a process at the module's Ray cluster."""
    # ray is a test dependency (mx[ray] in the test extra): no skip without it
    assert importlib.util.find_spec("ray") is not None, "pip install -e '.[test]'"
    temp = Path(tempfile.mkdtemp(prefix="mxray-", dir="/tmp"))  # short: Ray's socket paths
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    with (temp / "head.log").open("w") as log:
        head = subprocess.Popen([sys.executable, "-c", HEAD, str(temp)], env=mx_env(**auth),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                text=True)
    assert head.stdin is not None and head.stdout is not None
    try:
        address = head.stdout.readline().strip()
        assert address, (temp / "head.log").read_text()
        yield {**auth, "RAY_ADDRESS": address}
    finally:
        head.stdin.close()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def mx_ray(ray_env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mx", "run", *map(str, args), "--engine", "ray"],
                          capture_output=True, text=True, env=mx_env(**ray_env), timeout=300)


def model_dir(root: Path, name: str = "lin") -> Path:
    d = root / name
    d.mkdir()
    linear_classifier(d / "model.onnx", seed=3)
    (d / "mx.yaml").write_text(manifest_text(f"acme/{name}", "1.0.0"))
    (d / "README.md").write_text(card_text(f"acme/{name}"))
    return d


def reshaping_model(root: Path) -> Path:
    """A model onnxruntime fails on at run time: any batch whose 4*rows is not a multiple of 5
    cannot be reshaped to [5, -1]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    d = model_dir(root, "reshape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "shape"], ["probabilities"])], "reshape",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["a", "b"])],
        [numpy_helper.from_array(np.array([5, -1], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, d / "model.onnx")
    return d


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 4), dtype=np.float32)


class Interrupt:
    """A progress display that stands for Ctrl-C once `after` rows are done."""

    def __init__(self, after: int) -> None:
        self.after = after

    def add(self, description: str, total: int) -> int:
        return 0

    def advance(self, task: int, amount: int) -> None:
        self.after -= amount
        if self.after <= 0:
            raise KeyboardInterrupt

    def done(self, task: int) -> None:
        pass


def test_same_outputs_as_the_local_engine(mx, ray_env: dict[str, str],  # type: ignore[no-untyped-def]
                                          tmp_path: Path) -> None:
    model = model_dir(tmp_path)
    src = tmp_path / "in"
    (src / "more").mkdir(parents=True)
    x = rows(100)
    np.save(src / "a.npy", x)
    np.savez(src / "more" / "b.npz", input=x[:7])
    (src / "c.jsonl").write_text("".join(
        json.dumps({"id": [f"r{i}", i, None, {"k": 0.1}][i % 4], "input": x[i].tolist()}) + "\n"
        for i in range(21)))
    (src / "d.jsonl").write_text("".join(json.dumps({"input": x[i].tolist()}) + "\n"
                                         for i in range(3)))
    args = ["-i", src, "--batch-size", "8", "--checkpoint-rows", "16", "--json"]
    local = mx("run", model, *args, "-o", tmp_path / "local")
    assert local.code == 0, local.err
    # a local run into the ray run's folder, interrupted after two checkpoints of a.npy
    from mx.batch.runner import RunOptions, run_files
    from mx.infer.model import resolve_model

    with pytest.raises(KeyboardInterrupt):
        run_files(resolve_model(str(model)), src, tmp_path / "ray", RunOptions(8, 16),
                  Interrupt(after=32))
    ray = mx_ray(ray_env, model, *args, "-o", tmp_path / "ray", "--actors", "2")
    assert ray.returncode == 0, ray.stderr
    assert ray.stderr == ""  # Ray's own notes and progress stay out of mx's output
    want, got = json.loads(local.out), json.loads(ray.stdout)
    for report in want, got:
        for f in report["files"]:
            f["output"] = Path(f["output"]).name
    # the ray engine resumed the local engine's checkpoints
    assert [f["resumed_rows"] for f in got["files"]] == [32, 0, 0, 0]
    assert got["batches"] == want["batches"] - 4
    got["files"][0]["resumed_rows"], got["batches"] = 0, want["batches"]
    assert got == want
    # .npy and .jsonl outputs are the same bytes; an .npz is a zip whose members carry the
    # time they were written, so there the arrays are equal
    for name in ("a.npy", "c.jsonl", "d.jsonl", ".mx-run.json"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    with np.load(tmp_path / "ray/more/b.npz") as z, np.load(tmp_path / "local/more/b.npz") as w:
        assert z.files == w.files == ["probabilities"]
        assert np.array_equal(z["probabilities"], w["probabilities"])
    # what the ray run recorded is what the local engine reads: it finds every file done
    again = json.loads(mx("run", model, *args, "-o", tmp_path / "ray").out)
    assert again["batches"] == 0 and all(f["skipped"] for f in again["files"])


def test_a_bad_row_or_an_onnxruntime_error_is_one_line(mx, ray_env: dict[str, str],  # type: ignore[no-untyped-def]
                                                       tmp_path: Path) -> None:
    model = model_dir(tmp_path)
    src = tmp_path / "in"
    src.mkdir()
    np.save(src / "a.npy", rows(20))
    good = json.dumps({"input": [1, 2, 3, 4]})
    (src / "b.jsonl").write_text(f"{good}\n{good}\n" + json.dumps({"input": [1, 2, 3]}) + "\n")
    np.save(src / "c.npy", rows(20))  # after the bad file: never started, nothing left of it
    res = mx_ray(ray_env, model, "-i", src, "-o", tmp_path / "out", "--batch-size", "2",
                 "--checkpoint-rows", "2")
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        f"error: {src / 'b.jsonl'}:3: input 'input': dim 1 is 3, the model takes 4 "
        "(shape [-1, 4])"]
    assert (tmp_path / "out/a.npy").is_file()  # the file before it was finished
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".mx-run.json", "a.npy"]

    # onnxruntime failing inside an actor: the same line as the local engine's
    bad = reshaping_model(tmp_path)
    np.save(tmp_path / "x.npy", rows(8))
    res = mx_ray(ray_env, bad, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy",
                 "--batch-size", "3")
    local = mx("run", bad, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy",
               "--batch-size", "3")
    assert res.returncode == local.code == 1
    assert res.stderr == local.err
    assert local.err.startswith(f"error: {tmp_path / 'x.npy'}: rows 0-2: onnxruntime: ")
    assert len(local.err.splitlines()) == 1
    assert not (tmp_path / "y.npy").exists()
    assert not (tmp_path / ".y.npy.mx-partial").exists()


ELSEWHERE = """
import hashlib, sys
from pathlib import Path
import numpy as np
import ray
from mx.batch.ray_engine import ModelFile, _Predictor, _table, pack, unpack
from mx.infer.model import open_model

model, elsewhere = Path(sys.argv[1]), sys.argv[2]
data = model.read_bytes()
x = np.random.default_rng(0).random((5, 4), dtype=np.float32)
batch = _table([{"file": 0, "start": 0, "rows": 5, "ids": None, "data": pack({"input": x}),
                 "error": None, "hint": None}])
ray.init(log_to_driver=False)
actor = ray.remote(num_cpus=1)(_Predictor)
for sha in (hashlib.sha256(data).hexdigest(), "0" * 64):
    shipped = ModelFile("acme/lin", "1.0.0", elsewhere, len(data), sha, [ray.put(data)], 1)
    try:
        out = ray.get(actor.remote(shipped, ["x.npy"]).__call__.remote(batch))
    except ray.exceptions.RayError as exc:
        print("refused:", "do not match the verified file" in str(exc))
        continue
    got = unpack(out.to_pylist()[0]["data"])["probabilities"]
    want = open_model("acme/lin", "1.0.0", model, 1).run({"input": x})["probabilities"]
    print("equal:", bool(np.array_equal(got, want)))
ray.shutdown()
"""


def test_an_actor_without_the_file_loads_the_verified_bytes(ray_env: dict[str, str],
                                                            tmp_path: Path) -> None:
    """As on another node: the model's path is not there, so the actor takes the bytes the
    driver put in the object store, after checking them against the driver's sha256."""
    model = model_dir(tmp_path)
    proc = subprocess.run([sys.executable, "-c", ELSEWHERE, str(model / "model.onnx"),
                           str(tmp_path / "not-on-this-node" / "model.onnx")],
                          capture_output=True, text=True, env=mx_env(**ray_env), timeout=300)
    assert proc.stdout.splitlines() == ["equal: True", "refused: True"], proc.stderr


FAILING_ACTOR = """
import sys
import mx.batch.ray_engine as engine
from mx.errors import ConfigError

class Failing(engine._Predictor):  # pickled by value: the actors get this one
    def __init__(self, model, paths):
        raise ConfigError("acme/lin 1.0.0: onnxruntime cannot load model.onnx: (simulated)")

engine._Predictor = Failing
from mx.cli.main import main
main(sys.argv[1:])
"""


def test_an_actor_that_cannot_start_is_one_line(ray_env: dict[str, str],
                                                tmp_path: Path) -> None:
    """Say, an onnxruntime on the cluster that refuses the model: no retries without end,
    no Ray stack traces, the actor's own error."""
    model = model_dir(tmp_path)
    np.save(tmp_path / "x.npy", rows(3))
    proc = subprocess.run([sys.executable, "-c", FAILING_ACTOR, "run", str(model), "-i",
                           str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"), "--engine",
                           "ray"], capture_output=True, text=True, env=mx_env(**ray_env),
                          timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "error: acme/lin 1.0.0: onnxruntime cannot load model.onnx: (simulated)",
        "hint: the Ray logs say more (`ray logs`, or the dashboard)"]
    assert not (tmp_path / "y.npy").exists()
    assert not (tmp_path / ".y.npy.mx-partial").exists()


MISSING_RAY = """
import sys
sys.modules["ray"] = None  # as if mx[ray] were not installed: `import ray` fails
from mx.cli.main import main
main(sys.argv[1:])
"""


def test_without_the_extra(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = model_dir(tmp_path)
    np.save(tmp_path / "x.npy", rows(3))
    args = ["run", str(model), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]
    res = subprocess.run([sys.executable, "-c", MISSING_RAY, *args, "--engine", "ray"],
                         capture_output=True, text=True, env=mx_env(), timeout=120)
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        "error: mx run --engine ray needs the 'ray' extra (ray not installed)",
        "hint: pip install 'mx[ray]'"]
    assert not (tmp_path / "y.npy").exists()
    res = mx(*args, "--actors", "2")
    assert res.code == 2 and "--actors go with --engine ray" in res.err
