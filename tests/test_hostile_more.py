"""More hostile input: a config.toml of the wrong types, a corrupted install record, and
odd bytes in a serving header. Each was an internal error (exit 3, or a 500) before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mx.client.cache import Cache
from mx.errors import ConfigError
from mx.serve.intake import BadInput, split_binary


def _config(isolated: Path, text: str) -> None:
    (isolated / "home" / "mx-config.toml").write_text(text)


@pytest.mark.parametrize("text", [
    'registries = "abc"\n',
    "registries = 5\n",
    "default_registry = 5\n",
    'trust = "x"\n',
    "trust = [1, 2]\n",
    "[limits]\nparallel_downloads = 0\n",
    "[limits]\nchunk_size = 0\n",
    "[limits]\nchunk_size = 1e300\n",
    "[limits]\nconnect_timeout = inf\n",
    "[limits]\nread_timeout = 1e300\n",
    "[limits]\nbackoff = nan\n",
    "[limits]\nretries = 1e12\n",
    '[registries.x]\nurl = "http://127.0.0.1:9/"\nrequire_signatures = "no"\n',
])
def test_config_of_wrong_types_is_a_config_error(isolated: Path, mx, text: str) -> None:  # type: ignore[no-untyped-def]
    _config(isolated, text)
    r = mx("install", "--registry", "http://127.0.0.1:9/", "acme/iris@1.0.0")
    assert r.code == 1, r.err
    assert "internal error" not in r.err
    assert "mx-config.toml" in r.err


def test_config_limits_in_range_still_load(isolated: Path) -> None:
    from mx.config import load_settings

    _config(isolated, "[limits]\nbackoff = 0.001\nretries = 0\nparallel_downloads = 1\n"
                      "chunk_size = 1\nindex_max_age = 0\n")
    limits = load_settings().limits
    assert (limits.retries, limits.parallel_downloads, limits.chunk_size) == (0, 1, 1)


def test_config_errors_name_the_setting(isolated: Path) -> None:
    from mx.config import load_settings

    _config(isolated, "[limits]\nparallel_downloads = 0\n")
    with pytest.raises(ConfigError, match="parallel_downloads"):
        load_settings()


GOOD = {"name": "acme/iris", "version": "1.0.0", "variant": "fp32", "registry": "r",
        "files": {"model.onnx": "a" * 64},
        "artifacts": [{"path": "model.onnx", "size": 3, "sha256": "a" * 64}]}


@pytest.mark.parametrize("record", [
    {**GOOD, "signature": "x"},
    {**GOOD, "artifacts": 5},
    {**GOOD, "artifacts": [{"path": []}]},
    {**GOOD, "files": []},
    {**GOOD, "files": {"model.onnx": 5}},
    {**GOOD, "files": {"../../../../etc/passwd": "a" * 64}},
    {**GOOD, "files": {"model.onnx": "../../blobs/x"}},
    [1],
])
def test_cache_commands_survive_a_corrupt_record(isolated: Path, mx, record: object) -> None:  # type: ignore[no-untyped-def]
    """A record mx did not write (a hand edit, another tool, a torn disk) is no record:
    `mx cache ls|verify|prune` neither crash on it nor follow its paths."""
    cache = Cache(isolated / "mxhome")
    cache.ensure()
    variant = cache.variant_dir("r", "acme/iris", "1.0.0", "fp32")
    variant.mkdir(parents=True)
    cache.record_path(variant).write_text(json.dumps(record))
    assert cache.read_record(variant) is None
    for cmd in ("ls", "verify", "prune"):
        r = mx("cache", cmd)
        assert r.code in (0, 1), (cmd, r.err)
        assert "internal error" not in r.err, (cmd, r.err)


def test_well_formed_record_is_read(isolated: Path) -> None:
    cache = Cache(isolated / "mxhome")
    variant = cache.variant_dir("r", "acme/iris", "1.0.0", "fp32")
    variant.mkdir(parents=True)
    cache.record_path(variant).write_text(json.dumps({**GOOD, "signature": {"sha256": None}}))
    assert cache.read_record(variant) is not None


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "-1", "", " 1"])
def test_binary_header_length_of_odd_digits_is_bad_input(value: str) -> None:
    """str.isdigit() is true of '²' and Arabic-Indic digits, which int() refuses: the
    request got a 500 ("onnxruntime failed"), not a 400."""
    with pytest.raises(BadInput):
        split_binary(b"{}", value)
