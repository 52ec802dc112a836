"""The client's outermost SecAgg+ mod: each stage's reply signed with the account key, if and only if it is
well formed (why: workers/fl/secagg_evidence.py).

It sits outside Flower's `secaggplus_mod`, so it sees what the aggregator asked and exactly what Flower answered.
A message without the guard's stamp (task and round) is answered unsigned: such a reply can be dropped but
never held against its sender. A masked-vector reply's masking record (workers/fl/secagg_masks.py) goes to
`keep_masking`, for the reveal if the chain draws this client.

``bad-shares`` (workers/fl/attacks.py) is the tests' and the demo's malicious client: it cuts a ciphertext off
its share-keys reply and signs it without the check, as a client out to break its neighbours' round would.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flwr.app import ConfigRecord, Context, Message
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_STATE, Key, Stage

from workers.fl.secagg_checks import configs_of, examples_of, reply_problem, stage_of
from workers.fl.secagg_evidence import SIGNATURE_RECORD, STAMP_RECORD, StageReply, signature_fields
from workers.fl.secagg_masks import MaskingRecord, masking_document, secrets_of
from workers.fl.secagg_params import SecAggParams

log = logging.getLogger("paratrain.fl.secagg")

Handler = Callable[[Message, Context], Message]


@dataclass(frozen=True)
class StageSigner:
    """What a client signs a task's stage replies with: its key, and the task's settings its own check uses."""

    keypair: Any
    params: SecAggParams
    shapes: Sequence[tuple[int, ...]]
    bad_shares: bool = False
    keep_masking: Callable[[int, int, bytes], None] | None = None   # (task, round, masking record) for the audit


def stamp_of(msg: Message) -> tuple[int, int] | None:
    """The (task, round) the guard stamped on a stage message (None: unstamped or malformed)."""
    stamp = msg.content.config_records.get(STAMP_RECORD)
    task_id, round_ = (stamp.get("task-id"), stamp.get("round")) if stamp is not None else (None, None)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (task_id, round_)):
        return None
    return task_id, round_  # type: ignore[return-value]


def masking_of(signed: StageReply, ctx: Context) -> MaskingRecord:
    """The masking record of this node's signed masked-vector reply, from the state Flower's mod saved."""
    state = ctx.state.config_records[RECORD_KEY_STATE]
    rd_seed, sk1, keys = secrets_of(state, signed.asked[Key.SOURCE_LIST])
    return MaskingRecord(signed, rd_seed, sk1, keys)


def stage_sign_mod(signer_of: Callable[[Context, int], StageSigner | None]) -> Callable[[Message, Context, Handler],
                                                                                       Message]:
    """The mod: `signer_of(ctx, task_id)` says how this node signs for the stamped task (None: it does not)."""

    def mod(msg: Message, ctx: Context, call_next: Handler) -> Message:
        stamp, stage = stamp_of(msg), stage_of(configs_of(msg.content))
        asked = dict(configs_of(msg.content) or {})   # before Flower's mod, which takes the stage out of it
        reply = call_next(msg, ctx)
        answer = None if reply.has_error() else configs_of(reply.content)
        if stamp is None or stage is None or answer is None:
            return reply
        signer = signer_of(ctx, stamp[0])
        if signer is None:
            return reply
        if signer.bad_shares and stage == Stage.SHARE_KEYS:
            answer[Key.CIPHERTEXT_LIST] = list(answer[Key.CIPHERTEXT_LIST])[:-1]
        elif (problem := reply_problem(stage, int(msg.metadata.dst_node_id), asked, answer, examples_of(reply.content),
                                       signer.params, signer.shapes)) is not None:
            log.warning("secagg task %d round %d: this node's own %s reply is malformed, sent unsigned: %s",
                        stamp[0], stamp[1], stage, problem)
            return reply
        examples = examples_of(reply.content)
        examples = examples if isinstance(examples, int) else None
        fields = signature_fields(signer.keypair, stamp[0], stamp[1], stage, asked, dict(answer), examples)
        reply.content.config_records[SIGNATURE_RECORD] = ConfigRecord(fields)
        if stage == Stage.COLLECT_MASKED_VECTORS and signer.keep_masking is not None:
            signed = StageReply(stamp[0], stamp[1], stage, int(msg.metadata.dst_node_id), fields["account"],
                                fields["scheme"], fields["signature"], asked, dict(answer), examples)
            signer.keep_masking(stamp[0], stamp[1], masking_document(masking_of(signed, ctx)))
        return reply

    return mod


__all__ = ["StageSigner", "masking_of", "stage_sign_mod", "stamp_of"]
