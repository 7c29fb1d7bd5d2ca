"""`mx run`: batch inference over .npy/.npz/.jsonl files and directories, resumable."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.support.examples import card_text, linear_classifier, manifest_text
from tests.support.servers import Host
from tests.support.terminal import default_sigint, stderr_on_tty


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "lin"
    d.mkdir()
    linear_classifier(d / "model.onnx", seed=3)
    (d / "mx.yaml").write_text(manifest_text("acme/lin", "1.0.0"))
    (d / "README.md").write_text(card_text("acme/lin"))
    return d


def _direct(model: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]  # type: ignore[no-any-return]


def _rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 4), dtype=np.float32)


def _partial(out: Path) -> Path:
    return out.parent / f".{out.name}.mx-partial"


def test_files_and_directories(mx, model_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "in"
    (src / "more").mkdir(parents=True)
    x = _rows(100)
    np.save(src / "a.npy", x)
    np.savez(src / "more" / "b.npz", input=x[:7])
    (src / "c.jsonl").write_text("".join(
        json.dumps({"id": f"r{i}", "input": x[i].tolist()}) + ("\n\n" if i == 1 else "\n")
        for i in range(5)))  # a blank line is not a row
    (src / "notes.txt").write_text("not an input")
    want = _direct(model_dir / "model.onnx", x)
    res = mx("run", model_dir, "-i", src, "-o", tmp_path / "out", "--batch-size", "8", "--json")
    assert res.code == 0, res.err
    report = json.loads(res.out)
    assert [f["rows"] for f in report["files"]] == [100, 5, 7]
    assert report["batches"] == 13 + 1 + 1  # 100 rows in 8s, then one batch per small file
    assert np.allclose(np.load(tmp_path / "out/a.npy"), want, atol=1e-6)
    with np.load(tmp_path / "out/more/b.npz") as z:
        assert z.files == ["probabilities"] and np.allclose(z["probabilities"], want[:7])
    lines = [json.loads(line) for line in (tmp_path / "out/c.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == ["r0", "r1", "r2", "r3", "r4"]
    assert np.allclose([line["probabilities"] for line in lines], want[:5], atol=1e-6)
    # a second run finds every file done and runs nothing
    res = mx("run", model_dir, "-i", src, "-o", tmp_path / "out", "--batch-size", "8", "--json")
    again = json.loads(res.out)
    assert again["batches"] == 0 and all(f["skipped"] for f in again["files"])
    # a changed input is run again
    np.save(src / "a.npy", x[:50])
    again = json.loads(mx("run", model_dir, "-i", src, "-o", tmp_path / "out", "--batch-size",
                          "8", "--json").out)
    assert [f["skipped"] for f in again["files"]] == [False, True, True]
    assert np.load(tmp_path / "out/a.npy").shape == (50, 3)
    # one file to another format
    res = mx("run", model_dir, "-i", src / "a.npy", "-o", tmp_path / "a.jsonl")
    assert res.code == 0 and res.out == f"{tmp_path / 'a.jsonl'}: 50 rows\n"
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 50


def test_registry_model_and_progress_bar(host: Host, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", _rows(300))
    cmd = [sys.executable, "-m", "mx", "run", "acme/iris@^1.0", "--registry", host.url,
           "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npz")]
    code, drawn = stderr_on_tty(cmd)
    assert code == 0 and "x.npy" in drawn and "rows" in drawn  # the bar
    import mx

    path = mx.install("acme/iris@1.1.0", registry=host.url).artifact("onnx")
    with np.load(tmp_path / "y.npz") as z:
        assert np.allclose(z["probabilities"], _direct(path, _rows(300)), atol=1e-6)
    quiet = subprocess.run(cmd, capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_interrupted_run_resumes(model_dir: Path, tmp_path: Path) -> None:
    x = _rows(400_000, seed=1)
    np.save(tmp_path / "big.npy", x)
    out = tmp_path / "big.out.npy"
    cmd = [sys.executable, "-m", "mx", "run", str(model_dir), "-i", str(tmp_path / "big.npy"),
           "-o", str(out), "--batch-size", "4", "--checkpoint-rows", "1000", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    deadline = time.monotonic() + 60
    while len(list(_partial(out).glob("*.part"))) < 3:  # three checkpoints are written
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err
    assert not out.exists()  # no half-written output
    kept = sorted(p.name for p in _partial(out).glob("*.part"))
    assert kept[0] == "000000000000-000000001000.part"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["files"][0]
    assert report["rows"] == 400_000 and report["resumed_rows"] >= 3000
    assert report["resumed_rows"] % 1000 == 0
    assert json.loads(done.stdout)["batches"] == (400_000 - report["resumed_rows"]) // 4
    assert np.allclose(np.load(out), _direct(model_dir / "model.onnx", x), atol=1e-6)
    assert not _partial(out).exists()
    # a different batch size does not reuse another run's checkpoints
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    while len(list(_partial(out).glob("*.part"))) < 1:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    other = [*cmd[:cmd.index("--batch-size")], "--batch-size", "1000", "--json"]
    done = subprocess.run(other, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "started again" in done.stderr
    assert json.loads(done.stdout)["files"][0]["resumed_rows"] == 0


def test_bad_input(mx, model_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = tmp_path / "rows.jsonl"
    good = json.dumps({"input": [1, 2, 3, 4]})
    cases: list[tuple[str, str]] = [
        (json.dumps({"x": [1, 2, 3, 4]}), "rows.jsonl:3: unknown input 'x'; the model takes "
                                          "'input'"),
        (json.dumps({"input": [1, 2, 3]}), "rows.jsonl:3: input 'input': dim 1 is 3, the model "
                                           "takes 4 (shape [-1, 4])"),
        ("{not json", "rows.jsonl:3: not JSON"),
        (json.dumps([1, 2, 3, 4]), "rows.jsonl:3: a row is an object with a value per input"),
        (json.dumps({"input": ["a", "b", "c", "d"]}), "rows.jsonl:3: input 'input': not float32"),
    ]
    for line, message in cases:
        rows.write_text(f"{good}\n{good}\n{line}\n{good}\n")
        res = mx("run", model_dir, "-i", rows, "-o", tmp_path / "out.jsonl", "--batch-size", "2",
                 "--checkpoint-rows", "2")
        assert res.code == 1 and message in res.err, (line, res.err)
        # the first batch had finished, yet nothing of this file stays behind
        assert not (tmp_path / "out.jsonl").exists()
        assert not _partial(tmp_path / "out.jsonl").exists()
    np.savez(tmp_path / "f64.npz", input=np.ones((2, 4)))
    res = mx("run", model_dir, "-i", tmp_path / "f64.npz", "-o", tmp_path / "o.npz")
    assert res.code == 1
    assert "f64.npz: rows 0-1: input 'input': dtype float64, the model takes float32" in res.err
    np.savez(tmp_path / "ragged.npz", input=np.ones((2, 4), np.float32), extra=np.ones(3))
    res = mx("run", model_dir, "-i", tmp_path / "ragged.npz", "-o", tmp_path / "o.npz")
    assert res.code == 1 and "input=2, extra=3" in res.err
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    res = mx("run", model_dir, "-i", tmp_path / "obj.npy", "-o", tmp_path / "o.npy")
    assert res.code == 1 and "obj.npy: cannot read" in res.err and "pickles" in res.err
    np.save(tmp_path / "x.npy", _rows(3))
    res = mx("run", model_dir, "-i", tmp_path / "x.npy", "-o", tmp_path / "o.csv")
    assert res.code == 1 and "--output" in res.err and ".npy, .npz or .jsonl" in res.err
    res = mx("run", model_dir, "-i", tmp_path, "-o", tmp_path / "o.npz")
    assert res.code == 1 and "an input directory needs an output directory" in res.err
    assert not any(p.name.startswith("o.") for p in tmp_path.iterdir())


KILLED_WHILE_ASSEMBLING = """
import os, signal, sys
from pathlib import Path
import numpy as np
from mx.batch.outputs import JsonlFormat, PartialRun

class Dying(JsonlFormat):
    def assemble(self, parts, out):
        out.write(b"half an output")
        out.flush()
        os.kill(os.getpid(), signal.SIGKILL)

run = PartialRun(Path(sys.argv[1]), {"model": "m"}, Dying())
run.resume()
run.save(0, 2, [(None, {"y": np.array([1.0, 2.0])})])
run.finish(2)
"""


def test_run_killed_while_assembling_leaves_nothing_behind(tmp_path: Path) -> None:
    from mx.batch.outputs import JsonlFormat, PartialRun
    from tests.support.bigmodel import mx_env

    out = tmp_path / "runs" / "result.jsonl"
    out.parent.mkdir()
    proc = subprocess.run([sys.executable, "-c", KILLED_WHILE_ASSEMBLING, str(out)],
                          env=mx_env(), capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir()] == [_partial(out).name]  # nothing beside
    old = out.parent / f".{out.name}.k2j3h4g5.tmp"  # what older versions left there
    old.write_bytes(b"half")
    run = PartialRun(out, {"model": "m"}, JsonlFormat())
    assert run.resume() == 2
    run.finish(2)
    assert [p.name for p in out.parent.iterdir()] == [out.name]
    assert [json.loads(line)["y"] for line in out.read_text().splitlines()] == [1.0, 2.0]
