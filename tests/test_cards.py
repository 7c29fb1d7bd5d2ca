"""Model cards as the field writes them: real cards (tests/fixtures/cards), Hugging Face's
template rendered by huggingface_hub, and a registry's own `card:` rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mx.card import parse_card
from mx.cardrules import SECTION_HEADINGS, CardPolicy, normalize_heading, section_problems
from tests.support.examples import card_text, linear_classifier, manifest_text

CARDS = Path(__file__).parent / "fixtures" / "cards"


def model_with_card(root: Path, card: str, license: str | None = None) -> Path:
    """A valid model directory (real ONNX model, manifest) around `card`."""
    if license is None:
        found = re.search(r"^license:\s*\"?([\w.-]+)", card, re.M)
        license = found.group(1) if found else "apache-2.0"
    d = root / "model"
    linear_classifier(d / "model.onnx")
    (d / "mx.yaml").write_text(manifest_text("acme/x", "1.0.0", license=license))
    (d / "README.md").write_text(card, encoding="utf-8")
    return d


def problems(mx, d: Path, *args: str) -> list[str]:  # type: ignore[no-untyped-def]
    res = mx("validate", d, *args)
    lines = [ln.removeprefix(f"{d / 'README.md'}:") for ln in res.out.splitlines()]
    assert (res.code == 0) == (not lines), res.out + res.err
    return lines


# What each real card gets from `mx validate` with mx's default rules. Two pass; the others
# lack sections their authors never wrote (all-MiniLM-L6-v2 says nothing of bias), or
# left the Trainer's placeholders in.
EXPECTED = {
    "distilbert-base-uncased.md": [],
    "tinyllama-gsm8k-hf-template.md": [],
    "all-minilm-l6-v2.md": ["34: section 'Model details' is missing",
                            "34: section 'Limitations' is missing",
                            "34: section 'Bias and risks' is missing",
                            "34: section 'Evaluation' is missing"],
    "trainer-test-trainer.md": ["28: section 'Bias and risks' is missing",
                                "40: section 'Model details' is empty (heading 'Model "
                                "description'",
                                "44: section 'Intended use' is empty (heading 'Intended uses "
                                "& limitations'",
                                "44: section 'Limitations' is empty (heading 'Intended uses "
                                "& limitations'"],
    "geotrend-bert-base-de-cased.md": [f"8: section '{s}' is missing"
                                       for s in SECTION_HEADINGS],
    "macbert4csc-base-chinese.md": [f"10: section '{s}' is missing" for s in SECTION_HEADINGS],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_cards(mx, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    got = problems(mx, model_with_card(tmp_path, (CARDS / name).read_text(encoding="utf-8")))
    want = EXPECTED[name]
    assert len(got) == len(want), got
    for line, prefix in zip(got, want, strict=True):
        assert line.startswith(prefix), (line, prefix)


def test_every_fixture_is_covered() -> None:
    assert sorted(p.name for p in CARDS.glob("*.md") if p.name != "README.md") == sorted(EXPECTED)


def test_datasets_as_a_string_is_read_as_the_hub_reads_it() -> None:
    card = parse_card((CARDS / "geotrend-bert-base-de-cased.md").read_text(), "README.md")
    assert card.meta_problems == []
    assert card.meta.datasets == ["wikipedia"] and card.meta.language == ["de"]


def test_trainer_model_index_is_read() -> None:
    card = parse_card((CARDS / "trainer-test-trainer.md").read_text(), "README.md")
    assert card.meta_problems == []
    (entry,) = card.meta.model_index or []
    assert entry["results"][0]["metrics"][0]["value"] == pytest.approx(0.8505, abs=1e-4)


def test_hub_template_rendered_by_huggingface_hub(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import huggingface_hub as hub  # in the test extra: a real client, never skipped
    data = hub.ModelCardData(license="mit", datasets="glue", language="en")
    # Left as the template leaves it, required sections hold only placeholders (Model
    # Details has text: the template writes the license and language into it).
    blank = str(hub.ModelCard.from_template(data, model_id="acme/x"))
    assert "datasets: glue" in blank  # the Hub itself writes one dataset as a string
    got = problems(mx, model_with_card(tmp_path / "blank", blank))
    assert [re.sub(r"^\d+: ", "", p).split(" (")[0] for p in got] == [
        f"section '{s}' is empty" for s in list(SECTION_HEADINGS)[1:]]
    assert "heading 'Uses'" in got[0] and "heading 'Bias, Risks, and Limitations'" in got[1]
    assert "heading 'Training Details'" in got[3]
    # Filled in, the same template passes: its headings are mx's sections.
    filled = str(hub.ModelCard.from_template(
        data, model_id="acme/x", model_description="A linear classifier.",
        direct_use="Sorting iris flowers.", bias_risks_limitations="Three species only.",
        training_data="The iris data set.", results="Accuracy 0.97 on a held-out fifth."))
    assert problems(mx, model_with_card(tmp_path / "filled", filled)) == []


def test_every_front_matter_problem_is_reported(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    front = """---
license: apache-2.0
tags: {a: 1}
datasets: [glue, 3]
pipeline_tag: [text-classification]
model-index:
- name: x
  results:
  - task: {type: text-classification}
    dataset: {type: glue}
    metrics:
    - {type: accuracy}
    - {type: f1, value: 0.9, verified: maybe}
---
"""
    body = card_text("acme/x").split("---\n", 2)[2]
    got = problems(mx, model_with_card(tmp_path, front + body, license="apache-2.0"))
    assert got == [
        "3: front matter tags: a mapping is neither a string nor a list of strings",
        "4: front matter datasets[1]: 3 is not a string",
        "5: front matter pipeline_tag: a list is not a string",
        "10: front matter model-index[0].results[0].dataset: 'name' is missing",
        "12: front matter model-index[0].results[0].metrics[0]: 'value' is missing",
        "13: front matter model-index[0].results[0].metrics[1].verified: 'maybe' is not "
        "true or false",
    ]


def test_front_matter_after_blank_lines_and_lines_of_the_file(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    card = "\n\n" + card_text("acme/x").replace("license: apache-2.0", "license: mit")
    assert problems(mx, model_with_card(tmp_path, card, license="apache-2.0")) == [
        "4: license 'mit' disagrees with mx.yaml license 'apache-2.0'"]
    broken = "---\nlicense: [unclosed\n---\n# x\n"
    (tmp_path / "model" / "README.md").write_text(broken)
    (line,) = problems(mx, tmp_path / "model")
    assert line.startswith("3: invalid YAML")  # the card's line, not the YAML block's


@pytest.mark.parametrize(("license", "extra", "ok"), [
    ("[apache-2.0, mit]", "", True),
    ("[gpl-3.0, mit]", "", False),
    ("other", "license_name: apache-2.0\n", True),
    ("other", "", False),
])
def test_license_forms(mx, tmp_path: Path, license: str, extra: str, ok: bool) -> None:  # type: ignore[no-untyped-def]
    card = card_text("acme/x").replace("license: apache-2.0", f"license: {license}\n{extra}")
    got = problems(mx, model_with_card(tmp_path, card, license="apache-2.0"))
    assert (got == []) == ok, got
    if not ok:
        assert "disagrees with mx.yaml license 'apache-2.0'" in got[0]


@pytest.mark.parametrize(("heading", "section"), [
    ("## 2. Bias, Risks & Limitations", "Bias and risks"),
    ("### **Intended Uses and Limitations**", "Limitations"),
    ("## [Evaluation](#evaluation)", "Evaluation"),
    ("## Downstream Use [optional]", "Intended use"),
    ("Training Procedure\n------------------", "Training data"),
    ("# 📊 Results", "Evaluation"),
])
def test_heading_variants_count(heading: str, section: str) -> None:
    text = f"---\nlicense: mit\n---\n# Card\n\n{heading}\n\nSomething real.\n"
    card = parse_card(text, "README.md")
    missing = {m.split("'")[1] for _, m in section_problems(card)}
    assert section not in missing


def test_what_does_not_count_as_a_section() -> None:
    text = """# Card

```
## Evaluation
```

> ## Limitations
> in a quote

## Training data

<!-- to do -->
- **Dataset:** [More Information Needed]

## Model details

### Architecture

Two layers.
"""
    got = dict((m.split("'")[1], m) for _, m in section_problems(parse_card(text, "R.md")))
    assert "missing" in got["Evaluation"] and "missing" in got["Limitations"]
    assert "empty" in got["Training data"]
    assert "Model details" not in got  # a subsection's text is its section's text


def test_normalize_heading() -> None:
    assert normalize_heading("Bias, Risks, and Limitations") == \
        normalize_heading("bias, risks & limitations") == "bias risks and limitations"
    assert normalize_heading("3.1 Training Data:") == "training data"
    assert normalize_heading("训练数据集") == "训练数据集"


def test_registry_card_policy(mx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = model_with_card(tmp_path, (CARDS / "macbert4csc-base-chinese.md").read_text())
    registry = tmp_path / "registry.yaml"
    registry.write_text("registry: 1\nname: r\ncard:\n  required_sections: [Training data]\n"
                        "  headings:\n    Training data: [训练数据集]\n")
    assert problems(mx, d, "--registry", registry) == []
    assert len(problems(mx, d)) == 6  # mx's defaults still apply without --registry
    registry.write_text("registry: 1\nname: r\ncard:\n  required_sections: [Evaluation]\n"
                        "  headings:\n    Training data: [x]\n")
    res = mx("validate", d, "--registry", registry)
    assert res.code == 1
    assert f"{registry}:3: card: headings: 'Training data' is not one of " \
           "required_sections (Evaluation)" in res.err
    registry.write_text("registry: 1\nname: r\ncard:\n  required_section: [Evaluation]\n")
    res = mx("validate", d, "--registry", registry)
    assert res.code == 1 and "card.required_section: Extra inputs" in res.err


def test_policy_fingerprint_follows_the_rules() -> None:
    a = CardPolicy()
    assert a.fingerprint() == CardPolicy().fingerprint()
    assert a.fingerprint() != CardPolicy(required_sections=["Evaluation"]).fingerprint()
    b = CardPolicy(headings={"Evaluation": ["Bewertung"]})
    assert b.fingerprint() != a.fingerprint() and "Bewertung" in b.accepted("Evaluation")


def test_docs_list_every_accepted_heading() -> None:
    docs = (Path(__file__).parents[1] / "docs" / "formats.md").read_text(encoding="utf-8")
    for section, headings in SECTION_HEADINGS.items():
        assert f"| {section} | {'; '.join(headings)} |" in docs, section


def test_crlf_card_reads_like_lf() -> None:
    text = (CARDS / "distilbert-base-uncased.md").read_text()
    lf, crlf = parse_card(text, "R.md"), parse_card(text.replace("\n", "\r\n"), "R.md")
    assert crlf.meta == lf.meta and crlf.body_line == lf.body_line
    assert [(h.title, h.line, h.has_text) for h in crlf.headings] == \
        [(h.title, h.line, h.has_text) for h in lf.headings]
    assert section_problems(crlf) == []
