"""Input profiles (`mx profile`) and the drift `mx serve` reports against them."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from mx import inputprofile, profiledoc
from mx.errors import ConfigError
from mx.infer.model import LoadedModel, resolve_model
from mx.manifest import load_manifest
from mx.serve.app import build_app
from mx.serve.core import InferenceCore, ServeLimits
from tests.support.examples import model_folder

MEAN = np.array([0.0, 5.0, -2.0, 10.0])
STD = np.array([1.0, 2.0, 0.5, 3.0])


def _rows(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(MEAN + shift * STD, STD, (n, 4))).astype(np.float32)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = model_folder(tmp_path)
    np.savez(tmp_path / "ref.npz", input=_rows(2000, seed=1))
    return d


def _profile(model_dir: Path) -> None:
    from mx.cli.main import cli

    result = CliRunner().invoke(cli, ["profile", str(model_dir), "--data",
                                      str(model_dir.parent / "ref.npz"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["inputs"] == {"input": {"by": "feature", "features": 4,
                                                             "bins": 10}}


def test_profile_from_data(model_dir: Path) -> None:
    _profile(model_dir)
    assert load_manifest(model_dir).manifest.input_profile == "input-profile.json"
    made = profiledoc.read(model_dir / "input-profile.json")
    assert made.mx_input_profile == 1 and made.rows == 2000 and made.model == "acme/iris"
    bins = made.inputs["input"]
    assert bins.batch_axis == 0 and bins.by == "feature" and len(bins.edges[1]) == 9
    assert np.allclose(bins.proportions, 0.1, atol=0.002)  # deciles: a tenth in each
    assert abs(bins.edges[1][4] - 5.0) < 0.3  # feature 1's median


def test_value_bins_for_wide_inputs_and_whole_values() -> None:
    image = np.random.default_rng(0).random((20, 3, 32, 32), np.float32)
    bins = inputprofile.input_bins(image, 0)
    assert bins is not None and bins.by == "value" and bins.features == 1
    values = inputprofile.samples(image, bins)
    assert values is not None and values.shape == (20 * inputprofile.VALUES_PER_ROW, 1)
    ids = np.random.default_rng(0).integers(0, 3, (50, 128)).astype(np.int64)
    few = inputprofile.input_bins(ids, 0)
    assert few is not None and len(few.edges[0]) <= 2  # three values: at most three bins
    assert inputprofile.input_bins(np.array(["a"], dtype=object), 0) is None


@pytest.fixture
def core(model_dir: Path) -> Iterator[InferenceCore]:
    _profile(model_dir)

    def loader(spec: str) -> LoadedModel:
        return resolve_model(str(model_dir), spin=False)

    c = InferenceCore(ServeLimits(workers=1, drift_window=500), loader)
    assert c.load(str(model_dir)) is not None
    yield c
    c.close()


def _psi(client: TestClient) -> float:
    text = client.get("/metrics").text
    m = re.search(r'^mx_input_drift_psi\{input="input",model="acme/iris",version="1.0.0"\} '
                  r"(\S+)$", text, re.M)
    assert m, text
    return float(m.group(1))


def _send(client: TestClient, x: np.ndarray) -> None:
    for part in np.array_split(x, len(x) // 50):
        r = client.post("/v2/models/acme/iris/infer", json={"inputs": [
            {"name": "input", "shape": list(part.shape), "datatype": "FP32",
             "data": part.ravel().tolist()}]})
        assert r.status_code == 200, r.text


def test_drift_is_small_for_the_same_inputs_and_large_for_shifted_ones(
        core: InferenceCore) -> None:
    client = TestClient(build_app(core))
    assert np.isnan(_psi(client))  # nothing counted yet
    _send(client, _rows(500, seed=2))
    same = _psi(client)
    assert 0 <= same < 0.1
    _send(client, _rows(500, seed=3, shift=3.0))  # mean + 3 std: the window is all new
    assert _psi(client) > 0.25
    _send(client, _rows(500, seed=4))  # back to normal: the shifted rows leave the window
    assert _psi(client) < 0.1


def test_the_window_drops_whole_old_requests() -> None:
    bins = inputprofile.input_bins(_rows(1000, seed=1), 0)
    assert bins is not None
    from mx.serve.drift import Window

    w = Window(bins, 100)
    for _ in range(5):
        w.add(_rows(30, seed=5))
    assert w.rows == 120 and sum(int(t.sum()) for t in w.totals) == 120 * 4


def _bad(model_dir: Path, text: str) -> str:
    path = model_dir / "input-profile.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        profiledoc.read(path)
    assert str(path) in exc.value.message
    return exc.value.message


def test_a_malformed_profile_is_refused_clearly(model_dir: Path, caplog: pytest.LogCaptureFixture
                                               ) -> None:
    _profile(model_dir)
    good = json.loads((model_dir / "input-profile.json").read_text())
    assert "not JSON" in _bad(model_dir, "{")
    assert "mx_input_profile" in _bad(model_dir, json.dumps({**good, "mx_input_profile": "x"}))
    assert "newer than this mx" in _bad(model_dir, json.dumps({**good, "mx_input_profile": 2}))
    swapped = json.loads(json.dumps(good))
    swapped["inputs"]["input"]["edges"][2].reverse()
    assert "inputs.input: edges[2]: edges must be strictly increasing" in \
        _bad(model_dir, json.dumps(swapped))
    many = {**good, "bins": 100000}
    assert "bins: Input should be less than or equal to 100" in _bad(model_dir, json.dumps(many))
    nan = json.dumps(good).replace('"rows": 2000', '"rows": 2000, "x": NaN')
    assert "x: Extra inputs are not permitted" in _bad(model_dir, nan)
    big = {**good, "inputs": {f"i{n}": good["inputs"]["input"] for n in range(65)}}
    assert "inputs: Dictionary should have at most 64 items" in _bad(model_dir, json.dumps(big))
    (model_dir / "input-profile.json").write_bytes(b" " * (profiledoc.MAX_PROFILE_BYTES + 1))
    with pytest.raises(ConfigError, match="at most"):
        profiledoc.read(model_dir / "input-profile.json")
    # the server serves the model without drift, and says why
    (model_dir / "input-profile.json").write_text(json.dumps(
        {**good, "inputs": {"pixels": good["inputs"]["input"]}}))
    core = InferenceCore(ServeLimits(workers=1),
                         lambda spec: resolve_model(spec, spin=False))
    try:
        with caplog.at_level("WARNING", logger="mx.serve"):
            assert core.load(str(model_dir)) is not None
        assert "the model has no input 'pixels'" in caplog.text
        assert "mx_input_drift_psi{" not in core.metrics.render().decode()
    finally:
        core.close()


def test_an_input_given_whole_is_profiled_but_counts_no_rows() -> None:
    # a sample rate beside the batch (silero VAD's `sr`): one value, not one row of data
    made = inputprofile.build({"input": _rows(20, seed=1), "sr": np.array(16000, np.int64)},
                              {"input": 0, "sr": None})
    assert made.rows == 20 and made.inputs["sr"].batch_axis is None
    assert made.inputs["sr"].proportions == [[1.0]]
    with pytest.raises(ConfigError, match="the data has 5 rows, fewer than the 10 bins"):
        inputprofile.build({"input": _rows(5, seed=1), "sr": np.array(16000, np.int64)},
                           {"input": 0, "sr": None})


def test_the_client_installs_the_records_profile_only_when_the_model_accepts_it(
        model_dir: Path) -> None:
    from mx.client.profile import check, entries, profile_file

    _profile(model_dir)
    text = (model_dir / "input-profile.json").read_bytes()
    record = {"manifest": {"input_profile": "input-profile.json"},
              "input_profile": json.loads(text)}
    files, warnings = profile_file(record, ["model.onnx", "mx.yaml"])
    assert files == {"input-profile.json": text} and warnings == []  # as mx profile wrote it
    assert check(files, "acme/iris 1.0.0") == (files, [])
    [entry] = entries(files)
    assert entry["size"] == len(text) and entry["urls"] == []
    # never in place of another file of the release
    assert profile_file(record, ["input-profile.json"])[0] == {}
    assert profile_file({"manifest": {}, "input_profile": {}}, [])[0] == {}
    swapped = json.loads(text)
    swapped["inputs"]["input"]["edges"][2].reverse()
    for bad, why in [(swapped, "inputs.input: edges[2]: edges must be strictly increasing"),
                     ({**swapped, "rows": math.nan}, "(top level): Input should be a valid "
                                                     "dictionary"),
                     ({**swapped, "mx_input_profile": 2}, "mx_input_profile 2 is newer")]:
        made, _ = profile_file({**record, "input_profile": bad}, [])
        kept, [warning] = check(made, "acme/iris 1.0.0")
        assert kept == {} and warning.startswith(
            f"acme/iris 1.0.0: input_profile (input-profile.json): {why}"), warning


def test_an_installed_profile_is_found_in_the_variant_folder(tmp_path: Path) -> None:
    from mx.serve.drift import profile_path

    variant = model_folder(tmp_path)  # the artifact moved into a subfolder, as some are
    (variant / "onnx").mkdir()
    (variant / "model.onnx").rename(variant / "onnx" / "model.onnx")
    (variant / "mx.yaml").write_text((variant / "mx.yaml").read_text()
                                     .replace("path: model.onnx", "path: onnx/model.onnx")
                                     + "input_profile: input-profile.json\n")
    model = LoadedModel("acme/iris", "1.0.0", variant / "onnx" / "model.onnx", None, [], [],
                        0.0, root=variant)
    assert profile_path("acme/iris@^1", model) is None  # not installed with the release
    (variant / "input-profile.json").write_text("{}")
    assert profile_path("acme/iris@^1", model) == variant / "input-profile.json"


def test_optimize_with_data_writes_the_profile_too(model_dir: Path) -> None:
    from mx.cli.main import cli

    ref = model_dir.parent / "ref.npz"
    result = CliRunner().invoke(cli, ["optimize", str(model_dir), "-t", "graph", "--data",
                                      str(ref), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["input_profile"] == str(model_dir / "input-profile.json")
    assert load_manifest(model_dir).manifest.input_profile == "input-profile.json"
    made = profiledoc.read(model_dir / "input-profile.json")
    assert made.rows == 2000 and made.inputs["input"].features == 4
    assert {v["artifact"]["variant"] for v in out["variants"]} == {"opt"}
    # data enough for a quality check but not for a profile: the variant is kept
    np.savez(model_dir.parent / "few.npz", input=_rows(8, seed=1))
    result = CliRunner().invoke(cli, ["optimize", str(model_dir), "-t", "int8-dynamic",
                                      "--data", str(model_dir.parent / "few.npz"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["input_profile"] is None
    assert out["warnings"][-1] == ("input profile not written: the data has 8 rows, fewer "
                                   "than the 10 bins")
    assert "int8" in {a.variant for a in load_manifest(model_dir).manifest.artifacts}
