"""The executive: validates transactions for the pool and builds blocks from them.

It follows FRAME's order: the signature and the signed extensions are
checked before a transaction may enter the pool; in a block the nonce is
bumped and the fee withdrawn before dispatch, and a failed dispatch keeps
the fee but discards the call's writes and events.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

from devnet.crypto import blake2_256, verify_signature
from devnet.runtime.context import DispatchContext
from devnet.runtime.extrinsic import Extrinsic, decode_extrinsic, encode_unsigned, era_birth, mortal_era, signed_payload
from devnet.runtime.framework import DispatchError
from devnet.runtime.pallets.system import System
from devnet.runtime.pallets.timestamp import Timestamp
from devnet.runtime.pallets.transaction_payment import TransactionPayment
from devnet.runtime.primitives import Header
from devnet.runtime.runtime import Runtime
from devnet.runtime.validity import InvalidTransaction, UnknownTransaction, ValidTransaction
from devnet.scale.codec import CodecError, codec_for, encode_compact
from devnet.scale.types import U32
from devnet.state import Changes, Overlay, StateView

log = logging.getLogger(__name__)

MAX_BLOCK_REF_TIME = 2_000_000_000_000  # two seconds of compute, as FRAME's default
NORMAL_RATIO_PERCENT = 75
MAX_BLOCK_LENGTH = 5 * 1024 * 1024
MAX_NORMAL_WEIGHT = MAX_BLOCK_REF_TIME * NORMAL_RATIO_PERCENT // 100
MAX_NORMAL_LENGTH = MAX_BLOCK_LENGTH * NORMAL_RATIO_PERCENT // 100
HEADER_CODEC = codec_for(Header)
_U32 = codec_for(U32)


def dispatch_info(weight: int, dispatch_class: str = "Normal") -> dict[str, Any]:
    return {"weight": {"ref_time": weight, "proof_size": 0}, "class": (dispatch_class, None), "pays_fee": ("Yes", None)}


@dataclass
class BuiltBlock:
    header: dict[str, Any]
    header_bytes: bytes
    hash: bytes
    extrinsics: list[bytes]
    changes: Changes
    included: list[bytes] = field(default_factory=list)  # pool hashes now in the block
    dropped: list[bytes] = field(default_factory=list)  # pool hashes that became invalid


class Executive:
    def __init__(self, runtime: Runtime, genesis_hash: bytes) -> None:
        self.runtime = runtime
        self.genesis_hash = genesis_hash
        self.fees = runtime.payment.schedule
        self.base_weight = self.fees.base_weight

    # Pool validation ---------------------------------------------------------------------------
    def decode(self, raw: bytes) -> Extrinsic:
        return decode_extrinsic(self.runtime, raw)

    def total_weight(self, ext: Extrinsic) -> int:
        return self.base_weight + self.runtime.call_weight(ext.call)

    def validate(self, state: StateView, raw: bytes, best_number: int,
                 best_hash: bytes) -> tuple[Extrinsic, ValidTransaction]:
        """Check a transaction against the best state; raises TransactionValidityError or BadFormat."""
        ext = self.decode(raw)
        if not ext.signed:
            raise UnknownTransaction("NoUnsignedValidator")
        kind, sender = ext.address
        if kind != "Id":  # AccountIdLookup: the signature does not cover the address's encoding
            raise UnknownTransaction("CannotLookup")
        birth_hash = self._birth_hash(state, ext.era, best_number, best_hash)
        additional = (_U32.encode(self.runtime.spec_version) + _U32.encode(self.runtime.transaction_version)
                      + self.genesis_hash + birth_hash)
        scheme, signature = ext.signature
        if not verify_signature(scheme, signature, signed_payload(ext, additional), sender):
            raise InvalidTransaction("BadProof")
        if sender == bytes(32):
            raise InvalidTransaction("BadSigner")
        account = System.Account.get(state, sender)
        if ext.nonce < account["nonce"]:
            raise InvalidTransaction("Stale")
        weight = self.total_weight(ext)
        if weight > MAX_NORMAL_WEIGHT or len(raw) > MAX_NORMAL_LENGTH:  # CheckWeight, after decode and proof
            raise InvalidTransaction("ExhaustsResources")
        fee = self.fees.fee(weight, len(raw), ext.tip)
        free = account["data"]["free"]
        if fee > free or free - fee < self.runtime.balances.ed:
            raise InvalidTransaction("Payment")
        return ext, ValidTransaction(sender, ext.nonce, account["nonce"], fee, ext.tip, weight, len(raw))

    def _birth_hash(self, state: StateView, era: bytes, best_number: int, best_hash: bytes) -> bytes:
        """CheckMortality's additional data: the hash of the era's birth block, which must be recent."""
        try:
            mortal = mortal_era(era)
        except CodecError:
            raise InvalidTransaction("AncientBirthBlock") from None
        if mortal is None:
            return self.genesis_hash
        birth = era_birth(*mortal, best_number + 1)
        if birth > best_number:
            raise InvalidTransaction("AncientBirthBlock")
        if birth == best_number:  # the best block's own hash is written by its child's initialisation
            return best_hash
        raw = state.get(System.BlockHash.key(birth))
        if raw is None or raw == bytes(32):
            raise InvalidTransaction("AncientBirthBlock")
        return raw

    # Fees ---------------------------------------------------------------------------------------
    def query_info(self, raw: bytes, length: int) -> dict[str, Any]:
        ext = self.decode(raw)
        weight = self.total_weight(ext)
        fee = self.fees.fee(weight, length) if ext.signed else 0
        return {"weight": {"ref_time": weight, "proof_size": 0}, "class": ("Normal", None), "partial_fee": fee}

    def fee_details(self, raw: bytes, length: int) -> dict[str, Any]:
        ext = self.decode(raw)
        if not ext.signed:
            return {"inclusion_fee": None, "tip": 0}
        base, len_fee, weight_fee = self.fees.inclusion_fee(self.total_weight(ext), length)
        return {"inclusion_fee": {"base_fee": base, "len_fee": len_fee, "adjusted_weight_fee": weight_fee},
                "tip": ext.tip}

    # Block building -----------------------------------------------------------------------------
    def build_block(self, parent_hash: bytes, parent_number: int, parent_state_root: bytes, base: StateView,
                    candidates: Iterable[tuple[bytes, Extrinsic, ValidTransaction]], now_ms: int) -> BuiltBlock:
        state = Overlay(base)
        number = parent_number + 1
        ctx = DispatchContext(state, number, now_ms)
        System.BlockHash.set(state, parent_number, parent_hash)
        for pallet in self.runtime.pallets:
            pallet.on_initialize(ctx)
        now = max(now_ms, Timestamp.Now.get(state))
        inherent = encode_unsigned(self.runtime.call_codec.encode(("Timestamp", ("set", {"now": now}))))
        extrinsics = [inherent]
        ctx.phase = ("ApplyExtrinsic", 0)
        self._dispatch(ctx, ("Timestamp", ("set", {"now": now})), None, self.base_weight + 10_000_000)
        built = BuiltBlock({}, b"", b"", extrinsics, {})
        weight_used, length_used = 0, 0
        for pool_hash, ext, valid in candidates:
            if weight_used + valid.weight > MAX_NORMAL_WEIGHT or length_used + valid.length > MAX_NORMAL_LENGTH:
                break
            ctx.phase = ("ApplyExtrinsic", len(extrinsics))
            if not self._apply_signed(ctx, ext, valid):
                built.dropped.append(pool_hash)
                continue
            extrinsics.append(ext.raw)
            built.included.append(pool_hash)
            weight_used += valid.weight
            length_used += valid.length
        ctx.phase = ("Finalization", None)
        for pallet in self.runtime.pallets:
            pallet.on_finalize(ctx)
        self._store_events(ctx, number)
        System.ExtrinsicCount.set(state, len(extrinsics))
        built.changes = state.changes
        built.header = {
            "parent_hash": parent_hash,
            "number": number,
            "state_root": _state_commitment(parent_state_root, state.changes),
            "extrinsics_root": blake2_256(encode_compact(len(extrinsics)) + b"".join(extrinsics)),
            "digest": {"logs": []},
        }
        built.header_bytes = HEADER_CODEC.encode(built.header)
        built.hash = blake2_256(built.header_bytes)
        return built

    def _apply_signed(self, ctx: DispatchContext, ext: Extrinsic, valid: ValidTransaction) -> bool:
        """Apply a pool transaction; False when it is no longer valid (nonce or fee) and is dropped."""
        state = ctx.state
        account = System.Account.get(state, valid.sender)
        if account["nonce"] != valid.nonce:
            return False
        mark = len(ctx.events)
        if not self.runtime.balances.withdraw_fee(ctx, valid.sender, valid.fee):
            del ctx.events[mark:]
            return False
        System.inc_nonce(state, valid.sender)
        self._dispatch(ctx, ext.call, valid.sender, valid.weight,
                       fee_paid={"who": valid.sender, "actual_fee": valid.fee, "tip": valid.tip})
        return True

    def _dispatch(self, ctx: DispatchContext, call: Any, origin: bytes | None, weight: int,
                  fee_paid: dict[str, Any] | None = None) -> None:
        pallet_name, (call_name, args) = call
        pallet, call_def = self.runtime.calls[(pallet_name, call_name)]
        outer = ctx.state
        ctx.state = outer.child()
        mark = len(ctx.events)
        error: Any = None
        try:
            call_def.handler(pallet, ctx, origin, **(args or {}))
            ctx.state.commit()
        except DispatchError as exc:
            error = exc.value
        except Exception:  # a runtime bug must fail the extrinsic, never the node
            log.exception("dispatch of %s.%s crashed", pallet_name, call_name)
            error = ("Other", None)
        finally:
            ctx.state = outer
        if error is not None:
            del ctx.events[mark:]
        if fee_paid is not None:
            ctx.deposit_event(TransactionPayment, "TransactionFeePaid", fee_paid)
        # The only unsigned call is the timestamp inherent, Mandatory in FRAME.
        info = dispatch_info(weight, "Mandatory" if origin is None else "Normal")
        if error is None:
            ctx.deposit_event(System, "ExtrinsicSuccess", {"dispatch_info": info})
        else:
            ctx.deposit_event(System, "ExtrinsicFailed", {"dispatch_error": error, "dispatch_info": info})

    def _store_events(self, ctx: DispatchContext, number: int) -> None:
        codec = self.runtime.event_record_codec
        encoded = [codec.encode(record) for record in ctx.events]
        ctx.state.set(self.runtime.events_item.key(), encode_compact(len(encoded)) + b"".join(encoded))
        System.EventCount.set(ctx.state, len(encoded))
        for index, record in enumerate(ctx.events):
            for topic in record["topics"]:
                entries = System.EventTopics.get(ctx.state, topic)
                System.EventTopics.set(ctx.state, topic, entries + [(number, index)])


def _state_commitment(parent_root: bytes, changes: Changes) -> bytes:
    """A hash chain over each block's sorted writes: cheap, deterministic, and changes when the state does.

    It is not a Patricia-Merkle trie root; no client here verifies storage proofs.
    """
    digest = blake2_256(b"".join(k + b"\x01" + v if v is not None else k + b"\x00"
                                 for k, v in sorted(changes.items(), key=lambda kv: kv[0])))
    return blake2_256(parent_root + digest)


def genesis_header(state_root: bytes) -> tuple[dict[str, Any], bytes, bytes]:
    header = {"parent_hash": bytes(32), "number": 0, "state_root": state_root,
              "extrinsics_root": blake2_256(encode_compact(0)), "digest": {"logs": []}}
    encoded = HEADER_CODEC.encode(header)
    return header, encoded, blake2_256(encoded)

