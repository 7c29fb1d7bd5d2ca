"""The typed index model on its own: what it accepts, what it refuses and how it says so."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mx.errors import IndexFormatError
from mx.indexdoc import ModelDocument, SearchListing, parse

SHA = "a" * 64
GOOD: dict[str, Any] = {
    "mx_index": "1.0", "name": "acme/iris", "channels": {"stable": "1.0.0"},
    "versions": {"1.0.0": {
        "tag": "v1.0.0", "commit": "c" * 40, "created": "2026-01-01T00:00:00Z",
        "manifest": {"card": "README.md"},
        "card": {"url": "cards/acme/iris/1.0.0.md", "sha256": SHA, "size": 10},
        "artifacts": [{"path": "weights/model.onnx", "format": "onnx", "variant": "int8",
                       "size": 3, "sha256": SHA, "urls": ["artifacts/sha256/" + SHA]}],
        "signature": None, "future_key": {"ignored": True}}},
}


def doc_with(change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    change(doc)
    return doc


def art(doc: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = doc["versions"]["1.0.0"]["artifacts"][0]
    return found


def test_a_good_document_round_trips_with_defaults() -> None:
    parsed = parse(ModelDocument, GOOD, "doc.json")
    dumped = parsed.model_dump(mode="json")
    assert dumped["versions"]["1.0.0"]["artifacts"][0]["variant"] == "int8"
    assert "future_key" not in dumped["versions"]["1.0.0"]  # unknown keys are ignored
    no_variant = doc_with(lambda d: art(d).pop("variant"))
    assert parse(ModelDocument, no_variant, "doc.json").versions["1.0.0"].artifacts[0] \
        .variant == "fp32"


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: art(d).update(path="a/../../b"), "contains '..'"),
    (lambda d: art(d).update(path="a//b"), "not normalised"),
    (lambda d: art(d).update(path="./a"), "not normalised"),
    (lambda d: art(d).update(path="C:/x"), "absolute"),
    (lambda d: art(d).update(path="a\\b"), "backslash"),
    (lambda d: art(d).update(path=".git/config"), ".git"),
    (lambda d: art(d).update(sha256=SHA.upper()), "sha256"),
    (lambda d: art(d).update(size="3"), "size"),  # strict: no coercion from text
    (lambda d: art(d).update(size=-1), "size"),
    (lambda d: art(d).update(variant="a/b"), "variant"),
    (lambda d: art(d).update(format="ONNX"), "format"),
    (lambda d: art(d).update(urls=["ok", "has space"]), "urls.1"),
    (lambda d: art(d).update(urls=["u"] * 17), "urls"),
    (lambda d: d.update(name="Acme/iris"), "name"),
    (lambda d: d["channels"].update(stable="latest"), "channels.stable"),
    (lambda d: d["versions"].update({"01.0.0": d["versions"]["1.0.0"]}), "01.0.0"),
    (lambda d: d["versions"]["1.0.0"]["manifest"].update(card="../README.md"), "card"),
    (lambda d: d["versions"]["1.0.0"]["manifest"].update(input_profile="../p.json"),
     "input_profile: path '../p.json' contains '..'"),
    (lambda d: d["versions"]["1.0.0"]["manifest"].update(input_profile=7),
     "input_profile is not a string"),
    (lambda d: (d["versions"]["1.0.0"]["manifest"].update(input_profile="Weights/Model.onnx"),
                d["versions"]["1.0.0"].update(input_profile={})), "differ only in case"),
    (lambda d: (d["versions"]["1.0.0"]["manifest"].update(input_profile="weights"),
                d["versions"]["1.0.0"].update(input_profile={})), "also a folder"),
    (lambda d: d["versions"]["1.0.0"]["artifacts"].append(art(d)), "listed twice"),
])
def test_refusals_name_the_field(change: Any, field: str) -> None:
    with pytest.raises(IndexFormatError) as caught:
        parse(ModelDocument, doc_with(change), "index/models/acme/iris.json")
    text = str(caught.value)
    assert text.startswith("index/models/acme/iris.json: ") and field in text
    assert "\n" not in text


def test_newer_major_and_non_objects_are_refused_first() -> None:
    with pytest.raises(IndexFormatError, match=r"mx_index 2\.0 is newer"):
        parse(ModelDocument, {**GOOD, "mx_index": "2.0", "versions": "garbage"}, "d")
    with pytest.raises(IndexFormatError, match="expected a JSON object"):
        parse(SearchListing, [1, 2], "search.json")
