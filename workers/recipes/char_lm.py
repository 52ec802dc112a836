"""char_lm: a tiny character-level language model (embedding + GRU) on a text corpus.

The corpus is cut into non-overlapping windows of `context + 1` characters; the model predicts
each next character. Validation windows are held out with the spec's split. Metrics: next
character accuracy (headline), validation loss (nats per character) and perplexity.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from workers.recipes.common import Prepared, Recipe, split_xy


def prepare(dataset, hp, validation) -> Prepared:
    if dataset.text is None:
        raise ValueError("char_lm needs a text corpus")
    vocab = sorted(set(dataset.text))
    index = {ch: i for i, ch in enumerate(vocab)}
    ids = torch.tensor([index[ch] for ch in dataset.text], dtype=torch.long)
    window = int(hp["context"]) + 1
    n = len(ids) // window
    seqs = ids[: n * window].reshape(n, window)
    train_x, train_y, val_x, val_y = split_xy(seqs[:, :-1], seqs[:, 1:], validation)
    return Prepared(train_x, train_y, val_x, val_y, info={"vocab": vocab})


class CharModel(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.rnn = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, time) -> (batch, vocab, time)
        out, _ = self.rnn(self.embed(x))
        return self.head(out).transpose(1, 2)


def build_model(hp, prepared: Prepared) -> nn.Module:
    return CharModel(len(prepared.info["vocab"]), int(hp["embed"]), int(hp["hidden"]))


def evaluate(model, prepared: Prepared, hp) -> dict[str, float]:
    logits = torch.cat([model(prepared.val_x[i:i + 256]) for i in range(0, len(prepared.val_x), 256)])
    loss = nn.functional.cross_entropy(logits, prepared.val_y).item()
    accuracy = (logits.argmax(dim=1) == prepared.val_y).float().mean().item()
    return {"char_accuracy": accuracy, "val_loss": loss, "perplexity": math.exp(loss)}


RECIPE = Recipe(
    name="char_lm", description=__doc__.strip().splitlines()[0], dataset="tiny_shakespeare",
    metric="char_accuracy", mode="max", expected=0.6,
    defaults={"epochs": 4, "batch_size": 32, "lr": 0.01, "context": 64, "embed": 24, "hidden": 96,
              "weight_decay": 0.0},
    prepare=prepare, build_model=build_model, loss=nn.functional.cross_entropy, evaluate=evaluate,
    module=__name__)
