"""Cards and repos for the site tests: a hostile card, and a card as the Hugging Face
Trainer writes it (model-index, datasets, languages, base models), benchmarked by `mx bench`."""

from __future__ import annotations

from pathlib import Path

from mx.cli.main import run
from tests.support.examples import card_text, git, make_model_repo, sign_all_releases

EVIL_CARD_BODY = """
## Model details

Trained near zanzibar on a quokka corpus.

<script>alert("card script")</script>
[click me](javascript:alert('link'))
[case](JaVaScRiPt:alert('case'))
[entity](&#106;avascript:alert('entity'))
<a href="  javascript:alert('spaces')">spaces link</a>
<a href="data:text/html,<script>alert('data')</script>">data link</a>
<img src="x" onerror="alert('img')">
<svg onload="alert('svg')"><circle r="4"/></svg>
<iframe src="https://example.invalid/"></iframe>
<object data="https://example.invalid/x.swf"></object>
<a href="#" onclick="alert('click')">onclick link</a>
<details open ontoggle="alert('toggle')"><summary>more</summary>hidden</details>
<style>body { display: none }</style>
<form action="https://example.invalid/"><input name="q"></form>
<h2 id="__config">clobber</h2>
<code class="mx-search">hook</code>
<javascript:alert('autolink')>

## Intended use

Tests of the site's sanitiser.

## Limitations

None known.

## Bias and risks

None known.

## Training data

Synthetic.

## Evaluation

Not evaluated.
"""

TRAINER_CARD = """---
license: apache-2.0
base_model:
- acme/iris
- google-bert/bert-base-uncased
base_model_relation: finetune
datasets:
- stanfordnlp/imdb
language:
- en
- fr
library_name: transformers
pipeline_tag: tabular-classification
tags:
- generated_from_trainer
metrics:
- accuracy
model-index:
- name: trained
  results:
  - task:
      type: text-classification
      name: Text Classification
    dataset:
      name: imdb
      type: stanfordnlp/imdb
      config: plain_text
      split: test
    metrics:
    - type: accuracy
      value: 0.9312
      name: Accuracy
    - type: loss
      value: 2.37
      name: Loss
---

# trained

This model is a fine-tuned version of [acme/iris](https://huggingface.co/acme/iris) on the
imdb dataset.
It achieves the following results on the evaluation set:
- Loss: 2.3700
- Accuracy: 0.9312

## Model details

See [the training procedure](#training-procedure). ~~Old numbers~~ were wrong; more at https://example.org/notes.

## Intended use

Sentiment of film reviews.

## Limitations

English and French only.

## Bias and risks

Reviews carry their writers' biases.

## Training data

The imdb reviews.

## Training procedure

### Training hyperparameters

The following hyperparameters were used during training:
- learning_rate: 2e-05
- train_batch_size: 16

### Training results

| Training Loss | Epoch | Step | Validation Loss | Accuracy |
|:-------------:|:-----:|:----:|:---------------:|:--------:|
| 0.2541        | 1.0   | 1563 | 0.2370          | 0.9312   |

## Evaluation

Accuracy on the imdb test split.
"""


def add_evil(world: Path) -> str:
    """acme/evil, whose card tries every trick; returns its registry.yaml source line."""
    repo = world / "repos" / "evil"
    make_model_repo(repo, "acme/evil", ["0.1.0"], summary="A card | with <b>markup</b>",
                    tags=("nlp", "<script>x</script>"))
    front, _, _ = card_text("acme/evil").partition("\n## Model details")
    (repo / "README.md").write_text(front + "\n" + EVIL_CARD_BODY)
    git(repo, "commit", "-qam", "the evil card")
    _release(repo, "0.1.0", "0.2.0")
    sign_all_releases(repo, world / "keys" / "acme.pem")
    return "  - repo: repos/evil\n"


def add_trained(world: Path) -> str:
    """acme/trained: a Trainer card, and bench/results.json written by `mx bench`."""
    repo = world / "repos" / "trained"
    make_model_repo(repo, "acme/trained", ["1.0.0"], summary="A fine-tuned classifier")
    (repo / "README.md").write_text(TRAINER_CARD)
    code = run(["bench", str(repo), "--batch", "1,2", "--iterations", "3", "--warmup", "0"])
    assert code == 0, "mx bench failed"
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "Trainer card and a benchmark")
    _release(repo, "1.0.0", "1.1.0")
    sign_all_releases(repo, world / "keys" / "acme.pem")
    return "  - repo: repos/trained\n"


def _release(repo: Path, old: str, new: str) -> None:
    (repo / "mx.yaml").write_text((repo / "mx.yaml").read_text().replace(
        f"version: {old}", f"version: {new}"))
    git(repo, "commit", "-qam", f"version {new}")
    git(repo, "tag", "-a", "-m", "r", f"v{new}")


UNSAFE_TAGS = {"script", "iframe", "object", "embed", "style", "form", "input", "button", "svg",
               "math", "base", "meta", "link", "frame", "frameset"}


def unsafe_markup(html: str) -> list[str]:
    """Tags and attributes of `html` that could run code or restyle the page."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Check(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in UNSAFE_TAGS:
                found.append(tag)
            for name, value in attrs:
                v = (value or "").strip().lower()
                if name.startswith("on") or name in ("style", "formaction", "srcdoc") or \
                        v.startswith(("javascript:", "data:", "vbscript:")):
                    found.append(f"{tag} {name}={value}")
                if (name == "id" and v.startswith("_")) or (name == "class" and "mx-" in v):
                    found.append(f"{tag} {name}={value}")

    Check().feed(html)
    return found
