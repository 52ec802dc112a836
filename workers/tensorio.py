"""A deterministic, self-describing byte format for tensors (checkpoints and model weights).

``torch.save`` is not used for anything that is hashed: its archive is not guaranteed to be
byte-stable. This format is::

    b"PTTS1\\n" || u64-le header length || header || tensor bytes

where the header is canonical JSON ``{"meta": {...}, "tensors": [{"name", "dtype", "shape",
"offset", "nbytes"}, ...]}`` with the tensors sorted by name, and each tensor's bytes are its
contiguous little-endian CPU storage. Equal states therefore give equal bytes, and equal bytes
give a bitwise-equal state. Loading never unpickles anything.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

import torch

MAGIC = b"PTTS1\n"


class TensorFormatError(ValueError):
    """Bytes that are not a PTTS1 document."""


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def dumps(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any] | None = None) -> bytes:
    entries, chunks, offset = [], [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        entries.append({"name": name, "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                        "offset": offset, "nbytes": len(raw)})
        chunks.append(raw)
        offset += len(raw)
    header = _canonical({"meta": dict(meta or {}), "tensors": entries})
    return MAGIC + struct.pack("<Q", len(header)) + header + b"".join(chunks)


def loads(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    data = bytes(data)
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
        raise TensorFormatError("not a PTTS1 tensor document")
    (length,) = struct.unpack_from("<Q", data, len(MAGIC))
    start = len(MAGIC) + 8
    try:
        header = json.loads(data[start:start + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TensorFormatError(f"bad header: {exc}") from None
    body = memoryview(data)[start + length:]
    tensors: dict[str, torch.Tensor] = {}
    for entry in header["tensors"]:
        dtype = getattr(torch, entry["dtype"], None)
        if not isinstance(dtype, torch.dtype):
            raise TensorFormatError(f"unknown dtype {entry['dtype']!r}")
        lo, n = entry["offset"], entry["nbytes"]
        if lo + n > len(body):
            raise TensorFormatError("truncated tensor data")
        buf = bytearray(body[lo:lo + n])
        flat = torch.frombuffer(buf, dtype=torch.uint8) if n else torch.empty(0, dtype=torch.uint8)
        tensors[entry["name"]] = flat.view(dtype).reshape(entry["shape"]).clone()
    return tensors, header["meta"]


# Training state: model + optimizer ------------------------------------------------------------
def pack_state(model_state: Mapping[str, torch.Tensor], optim_state: Mapping[str, Any] | None,
               meta: Mapping[str, Any]) -> bytes:
    tensors = {f"model/{k}": v for k, v in model_state.items()}
    full_meta = dict(meta)
    if optim_state is not None:
        scalars: dict[str, dict[str, Any]] = {}
        for idx, entries in optim_state["state"].items():
            for key, value in entries.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optim/{int(idx)}/{key}"] = value
                else:
                    scalars.setdefault(str(int(idx)), {})[key] = value
        full_meta["optim"] = {"param_groups": optim_state["param_groups"], "scalars": scalars}
    return dumps(tensors, full_meta)


def unpack_state(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, dict[str, Any]]:
    tensors, meta = loads(data)
    model_state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    optim_meta = meta.pop("optim", None)
    optim_state = None
    if optim_meta is not None:
        state: dict[int, dict[str, Any]] = {}
        for name, value in tensors.items():
            if name.startswith("optim/"):
                _, idx, key = name.split("/", 2)
                state.setdefault(int(idx), {})[key] = value
        for idx, entries in optim_meta["scalars"].items():
            state.setdefault(int(idx), {}).update(entries)
        optim_state = {"state": dict(sorted(state.items())), "param_groups": optim_meta["param_groups"]}
    return model_state, optim_state, meta
