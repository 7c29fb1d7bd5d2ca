from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from mx.errors import ConfigError
from mx.manifest import json_schema, load_manifest, parse_manifest
from tests.support.examples import manifest_text

GOOD = manifest_text("acme/iris", "1.4.0")


def parse(text: str) -> tuple[object, list[str]]:
    m, _, warnings = parse_manifest(text, "mx.yaml")
    return m, warnings


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_manifest(text, "mx.yaml")
    return str(info.value)


def test_good_manifest_parses() -> None:
    m, warnings = parse(GOOD)
    assert warnings == []
    assert m.name == "acme/iris"  # type: ignore[attr-defined]
    assert m.artifacts[0].variant == "fp32"  # type: ignore[attr-defined]


def test_malformed_yaml_names_the_line() -> None:
    msg = error_of("mx: 1\nname: acme/iris\nversion: [1.0\n")
    assert msg.startswith("mx.yaml:") and "invalid YAML" in msg


def test_wrong_type_names_field_and_line() -> None:
    msg = error_of(GOOD.replace("opset: 17", "opset: seventeen"))
    line = GOOD.splitlines().index("    opset: 17") + 1
    assert msg.startswith(f"mx.yaml:{line}: artifacts[0].opset:"), msg


def test_newer_manifest_major_is_refused() -> None:
    msg = error_of(GOOD.replace("mx: 1", "mx: 2"))
    assert "mx.yaml:1: mx:" in msg and "newer than this mx understands" in msg


@pytest.mark.parametrize("name", ["Acme/iris", "acme/../iris", "acme/ir..is", "acme", "a/b/c",
                                  "-acme/iris"])
def test_bad_names(name: str) -> None:
    msg = error_of(GOOD.replace("name: acme/iris", f"name: {name}"))
    assert "mx.yaml:2: name:" in msg and "not a model name" in msg


@pytest.mark.parametrize("path", ["../model.onnx", "/etc/passwd", "a/../../b.onnx",
                                  "a\\\\b.onnx"])
def test_artifact_path_traversal_is_refused(path: str) -> None:
    msg = error_of(GOOD.replace("path: model.onnx", f"path: '{path}'"))
    assert "artifacts[0].path" in msg


def test_bad_sha256_and_version() -> None:
    assert "sha256" in error_of(GOOD.replace("opset: 17", "opset: 17\n    sha256: XYZ"))
    assert "not a SemVer version" in error_of(GOOD.replace("version: 1.4.0", "version: 1.4"))
    assert "not a SemVer version" in error_of(GOOD.replace("version: 1.4.0", "version: 1.4.x"))


def test_duplicate_format_variant_is_refused() -> None:
    text = GOOD + "  - path: other.onnx\n    format: onnx\n"
    assert "(format, variant) must be unique" in error_of(text)


def test_unknown_keys_warn_and_survive_round_trip(tmp_path: Path) -> None:
    text = GOOD.replace("card: README.md", "card: README.md\nowner_team: vision  # ours\n")
    text = text.replace("opset: 17", "opset: 17\n    note: keep me")
    (tmp_path / "mx.yaml").write_text(text)
    loaded = load_manifest(tmp_path)
    assert len(loaded.warnings) == 2
    assert any("owner_team" in w.detail and w.line == 9 and str(w.path).endswith("mx.yaml")
               for w in loaded.warnings)
    loaded.write()
    assert (tmp_path / "mx.yaml").read_text() == text  # byte-stable


def test_round_trip_keeps_comments_and_order(tmp_path: Path) -> None:
    text = "# top comment\n" + GOOD.replace("tags: [example]", "tags: [example]   # why\n")
    (tmp_path / "mx.yaml").write_text(text)
    load_manifest(tmp_path).write()
    assert (tmp_path / "mx.yaml").read_text() == text


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no manifest here"):
        load_manifest(tmp_path)


def test_schema_command_matches_shipped_copy(mx) -> None:  # type: ignore[no-untyped-def]
    res = mx("schema", "manifest")
    assert res.code == 0
    printed = json.loads(res.out)
    shipped = json.loads(resources.files("mx").joinpath("schemas/manifest.schema.json")
                         .read_text())
    assert printed == shipped == json_schema()
    assert "artifacts" in printed["required"]
