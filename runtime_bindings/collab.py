"""Collaborative models on chain (pallet CollaborativeModels): fixed-point inputs and predict without a transaction;
the prediction market's test-set commitments (pallet PredictionMarkets).

The calls, storage and types are generated (`chain.collaborative_models`, `runtime_bindings.generated.types`);
this module adds what metadata V14 cannot describe: the runtime API ``CollaborativeModelsApi_predict`` that
``state_call`` serves, ``(model: u64, input: Input) -> Result<u32, DispatchError>``, with the pallet's named error
raised as the typed exception (`ModelNotFound`, `DimensionMismatch`, ...).
"""
from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from math import isqrt
from typing import TYPE_CHECKING, Any

from runtime_bindings.errors import DispatchError, dispatch_error_from
from runtime_bindings.generated.types import Input, ModelParams, Sample
from runtime_bindings.scale import encode_compact
from runtime_bindings.values import H256

if TYPE_CHECKING:
    from runtime_bindings.client import Chain

TO_FLOAT = 10**9
"""The models' fixed point: a value v is stored and sent as round(v * 10^9), as DeCAI's `toFloat`."""

PREDICT = "CollaborativeModelsApi_predict"
_DISPATCH_VARIANTS = ("Other", "CannotLookup", "BadOrigin", "Module")   # sp_runtime::DispatchError, in order


DEPOSIT_PERIOD_S = 3600
"""The pallet's DepositPeriodS: a deposit is cost_weight * this / isqrt(seconds since the last update)."""


def next_deposit(mechanism: Any, last_update_s: int, now_s: int) -> int:
    """What a contribution made at `now_s` must hold, by the pallet's rule (0 under Points): clients price a
    contribution before they send it."""
    if mechanism.VARIANT != "DepositRefundTake":
        return 0
    elapsed = max(now_s - int(last_update_s), 0)
    return int(mechanism.cost_weight) * DEPOSIT_PERIOD_S // (isqrt(elapsed) if elapsed else 1)


def to_fixed(value: float) -> int:
    return round(value * TO_FLOAT)


def dense(values: Sequence[float]) -> Input:
    """A dense input: one real value a feature."""
    return Input.Dense([to_fixed(v) for v in values])


def sparse(indices: Sequence[int]) -> Input:
    """A sparse input: the indices of the features present (each worth 1.0)."""
    return Input.Sparse([int(i) for i in indices])


def encode_input(values: Input) -> bytes:
    """SCALE of an Input: its variant index, then the compact length and the items (i64 or u32, little endian)."""
    items = values.field_0  # type: ignore[attr-defined]
    if values.VARIANT == "Dense":
        return b"\x00" + encode_compact(len(items)) + struct.pack(f"<{len(items)}q", *items)
    return b"\x01" + encode_compact(len(items)) + struct.pack(f"<{len(items)}I", *items)


def piece_hash(samples: Sequence[Sample]) -> H256:
    """The commitment a market's owner makes to a test-set piece: blake2_256 of SCALE(Vec<Sample>), which
    Polkadot.js computes as ``api.createType('Vec<PalletPredictionMarketsSample>', piece).hash``."""
    encoded = encode_compact(len(samples)) + b"".join(
        encode_input(s.input) + struct.pack("<I", s.label) for s in samples)
    return H256(hashlib.blake2b(encoded, digest_size=32).digest())


MARKET_DOMAIN = b"paratrain/market-reveal/v1"


def drawn_piece(opening_block_hash: bytes | str, market: int, pieces: int) -> int:
    """The piece a market's owner must reveal first: ``blake2_256(MARKET_DOMAIN ++ hash of the block that
    opened the market ++ SCALE(market)) mod pieces``, as the pallet draws it. The hash is the open receipt's
    `block_hash` (System.BlockHash holds it only from the next block on)."""
    seed = bytes(H256(opening_block_hash))
    digest = hashlib.blake2b(MARKET_DOMAIN + seed + struct.pack("<Q", market), digest_size=32).digest()
    return int.from_bytes(digest, "little") % pieces


def plain(value: Input | ModelParams) -> tuple[str, Any]:
    """An Input or ModelParams in the form the shared integer models take (paratrain_api.collab_classifiers):
    ``(variant, values)`` or ``(variant, fields)``."""
    if isinstance(value, Input):
        return value.VARIANT, list(value.field_0)  # type: ignore[attr-defined]
    encoded = value.to_value()
    assert isinstance(encoded, dict)   # every ModelParams variant carries fields
    name, fields = next(iter(encoded.items()))
    return str(name), dict(fields)


def predict(chain: Chain, model: int, values: Input, *, at: str | None = None) -> int:
    """The model's class for `values` at block `at` (the best by default), read without a transaction; the
    pallet's refusal (a missing model, a bad input) raises its typed DispatchError."""
    data = struct.pack("<Q", model) + encode_input(values)
    result = chain.rpc("state_call", [PREDICT, "0x" + data.hex(), *([at] if at else [])])
    out = bytes.fromhex(str(result).removeprefix("0x"))
    if out[:1] == b"\x00" and len(out) == 5:
        return int(struct.unpack("<I", out[1:])[0])
    if out[:1] == b"\x01" and len(out) >= 2 and out[1] < len(_DISPATCH_VARIANTS):
        kind = _DISPATCH_VARIANTS[out[1]]
        if kind == "Module" and len(out) == 7:
            raise dispatch_error_from({"Module": {"index": out[2], "error": out[3:7]}}, chain.metadata().errors)
        raise dispatch_error_from(kind, chain.metadata().errors)
    raise DispatchError(f"{PREDICT} returned {len(out)} bytes that are not a Result<u32, DispatchError>", None)


__all__ = ["DEPOSIT_PERIOD_S", "MARKET_DOMAIN", "PREDICT", "TO_FLOAT", "dense", "drawn_piece", "encode_input",
           "next_deposit", "piece_hash", "plain", "predict", "sparse", "to_fixed"]
