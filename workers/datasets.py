"""Data sets: packaging into the artifact store (`paratrain dataset add`) and decoding for recipes.

A packaged data set is one of two byte formats, both deterministic, so that the same data set
always has the same hash:

* arrays: a PTTS1 document (`workers.tensorio`) whose tensors are the arrays (``X``, ``y``...)
  and whose meta says ``{"kind": "dataset", "name": ..., "source": ...}``;
* text: the corpus as raw UTF-8 bytes.

Built-in names: ``digits``, ``breast_cancer``, ``diabetes`` (scikit-learn's bundled copies, no
download) and ``tiny_shakespeare`` (a play-like corpus generated here from a fixed seed). A path
is packaged by its suffix: ``.txt``/``.md`` as text, ``.csv`` (numeric; the last column is the
target, one header line allowed) and ``.npz`` as arrays, a PTTS1 file as it is.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workers import tensorio
from workers.artifacts import ArtifactStore


class DatasetError(ValueError):
    """A data set that cannot be packaged or decoded."""


@dataclass
class Dataset:
    arrays: dict[str, torch.Tensor] = field(default_factory=dict)
    text: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _arrays(name: str, source: str, **arrays: np.ndarray) -> bytes:
    return tensorio.dumps({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()},
                          {"kind": "dataset", "name": name, "source": source})


def _digits() -> bytes:
    from sklearn.datasets import load_digits

    d = load_digits()
    return _arrays("digits", "sklearn.datasets.load_digits", X=(d.data / 16.0).astype(np.float32),
                   y=d.target.astype(np.int64))


def _breast_cancer() -> bytes:
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return _arrays("breast_cancer", "sklearn.datasets.load_breast_cancer", X=d.data.astype(np.float32),
                   y=d.target.astype(np.int64))


def _diabetes() -> bytes:
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    return _arrays("diabetes", "sklearn.datasets.load_diabetes", X=d.data.astype(np.float32),
                   y=d.target.astype(np.float32))


_NAMES = ["ROMEO", "JULIET", "HAMLET", "OPHELIA", "MACBETH", "BANQUO", "PORTIA", "BRUTUS"]
_LINES = [
    "what light through yonder window breaks",
    "to be or not to be that is the question",
    "all the world is a stage and all the men and women merely players",
    "the quality of mercy is not strained",
    "now is the winter of our discontent",
    "friends romans countrymen lend me your ears",
    "a horse a horse my kingdom for a horse",
    "the course of true love never did run smooth",
    "some are born great some achieve greatness",
    "love looks not with the eyes but with the mind",
    "the fault dear brutus is not in our stars",
    "we are such stuff as dreams are made on",
]


def generate_corpus(n_speeches: int = 600, seed: int = 1597) -> str:
    """A small play-like corpus: speakers and lines drawn from a fixed seed (deterministic)."""
    rng = random.Random(seed)
    parts = []
    for _ in range(n_speeches):
        speaker = rng.choice(_NAMES)
        lines = [rng.choice(_LINES) for _ in range(rng.randint(1, 3))]
        parts.append(speaker + ":\n" + "\n".join(line.capitalize() + rng.choice([",", ".", "!", ";"])
                                               for line in lines) + "\n\n")
    return "".join(parts)


def _tiny_shakespeare() -> bytes:
    return generate_corpus().encode("utf-8")


BUILTIN_DATASETS = {"digits": _digits, "breast_cancer": _breast_cancer, "diabetes": _diabetes,
                    "tiny_shakespeare": _tiny_shakespeare}


def package(name_or_path: str | Path) -> bytes:
    """The packaged bytes of a built-in data set or a file."""
    key = str(name_or_path)
    if key in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[key]()
    path = Path(name_or_path)
    if not path.is_file():
        raise DatasetError(f"{key!r} is neither a built-in data set ({', '.join(BUILTIN_DATASETS)}) nor a file")
    raw = path.read_bytes()
    suffix = path.suffix.lower()
    if raw.startswith(tensorio.MAGIC):
        tensorio.loads(raw)
        return raw
    if suffix in (".txt", ".md"):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DatasetError(f"{path} is not UTF-8 text") from None
        return raw
    if suffix == ".csv":
        text = raw.decode("utf-8", errors="strict")
        first = text.splitlines()[0] if text else ""
        skip = 0 if _numeric_row(first) else 1
        try:
            table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
        except ValueError as exc:
            raise DatasetError(f"{path}: not a numeric CSV ({exc})") from None
        if table.shape[1] < 2:
            raise DatasetError(f"{path}: a CSV needs feature columns and a target column")
        target = table[:, -1]
        y = target.astype(np.int64) if np.all(target == np.round(target)) else target.astype(np.float32)
        return _arrays(path.stem, "csv", X=table[:, :-1].astype(np.float32), y=y)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            return _arrays(path.stem, "npz", **{k: npz[k] for k in npz.files})
    raise DatasetError(f"{path}: unsupported data set file (use .txt, .csv, .npz or a PTTS1 file)")


def _numeric_row(line: str) -> bool:
    try:
        [float(x) for x in line.split(",")]
        return True
    except ValueError:
        return False


def add_dataset(name_or_path: str | Path, store: ArtifactStore) -> tuple[str, str]:
    """Package a data set into the store: (hash, uri)."""
    digest = store.put(package(name_or_path))
    return digest, store.uri(digest)


def decode_dataset(data: bytes) -> Dataset:
    """The arrays (or text) of packaged data set bytes."""
    if data.startswith(tensorio.MAGIC):
        arrays, meta = tensorio.loads(data)
        return Dataset(arrays=arrays, meta=meta)
    try:
        return Dataset(text=data.decode("utf-8"), meta={"kind": "dataset", "format": "text"})
    except UnicodeDecodeError:
        raise DatasetError("data set bytes are neither arrays (PTTS1) nor UTF-8 text") from None
