"""A data owner's ClientApp in a SecAgg+ round: the route from its deployed ClientApp into Flower's secaggplus_mod.

The deployed ClientApp (workers/fl/client_app.py) serves every task the node joined, with the Message API. A
SecAgg+ round's four stages are TRAIN messages carrying Flower's ``secaggplus_configs`` record; `secagg_route`
takes exactly those and runs them through::

    pack_mod -> stage_sign_mod -> secaggplus_mod -> clip_commit_mod(the joined task's settings, keep, sign)
        -> local training

* every stage's reply is signed with the node's key when it is well formed (workers/fl/secagg_sign.py), so
  a malformed one it sent can be proved against it and slashed, and an honest one never can; the masked vector
  goes out as uint32, half Flower's int64 (workers/fl/secagg_pack.py);
* the settings are the task's own spec document (``<state>/tasks.json``, checked against the chain's spec_hash
  when the daemon joined), never the aggregator's message: the norm bound, the SecAgg+ parameters, and the
  model's array names, in name order (the aggregator sends them in that order, workers/fl/secagg_serve.py);
* training is the task's recipe on the committed shard (workers/fl/local_training.py), as for a plain round;
* the commitment is signed with the node's key, once per (task, round) (`claim_signature`, as plain updates);
* the reveal document is kept in the state directory (`keep_reveal`): the client daemon publishes it if, and
  only if, the chain draws this client for the round's audit (workers/fl/secagg_reveal.py).

The tests' and the demo's poisoners run here too (workers/fl/attacks.py): ``flip-labels`` trains on mirrored
labels, ``scale:K`` sends its update K times as long and skips the clipping; other update attacks are not
modelled under SecAgg (the plain path's mod never sees these messages).

A round the node cannot take part in (not joined, not a SecAgg task, more examples than committed) is a
refusal, which Flower's workflow counts as a dropout.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flwr.app import Context, Message
from flwr.client.mod import secaggplus_mod
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.compat.common import recorddict_compat as compat

from runtime_bindings.fl import UpdateCommitment, sign_update
from runtime_bindings.fl_private import sign_private_update
from workers.fl.client_tasks import (
    JoinedTask,
    NotJoinedError,
    claim_signature,
    joined_task,
    keep_masking,
    keep_reveal,
    rounds_signed,
)
from workers.fl.dp_claims import CapReached
from workers.fl.dp_local import train_private_round
from workers.fl.dp_record import claim_fields, to_chain
from workers.fl.local_training import train_round
from workers.fl.model import initial_model
from workers.fl.secagg_audit import reveal_document
from workers.fl.secagg_client import ROUND, TASK_ID, Reveal, SecAggClientRefusal, SecAggClientSettings, clip_commit_mod
from workers.fl.secagg_evidence import model_shapes
from workers.fl.secagg_pack import pack_mod
from workers.fl.secagg_sign import StageSigner, stage_sign_mod
from workers.fl.spec import FlSpec, SpecError, decode_spec

Handler = Callable[[Message, Context], Message]


def is_secagg_message(msg: Message) -> bool:
    return msg.metadata.message_type.split(".")[0] == "train" and RECORD_KEY_CONFIGS in msg.content.config_records


def _task(node: Any, msg: Message) -> tuple[JoinedTask, FlSpec, int, int]:
    fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    task_id, round_ = fitins.config.get(TASK_ID), fitins.config.get(ROUND)
    if not isinstance(task_id, int) or not isinstance(round_, int) or isinstance(task_id, bool):
        raise SecAggClientRefusal("the round's config names no task and round")
    entry = joined_task(node.state_dir, task_id)
    spec = decode_spec(entry.spec, require_canonical=True)
    if spec.secagg is None:
        raise SecAggClientRefusal(f"task {task_id} does not aggregate under SecAgg+")
    return entry, spec, task_id, round_


def _skips_clipping(node: Any) -> bool:
    """``scale:K`` under SecAgg (tests and the demo): the update K times as long and not clipped, which nobody
    sees in the sum; only the audit can catch it, when the chain draws this client."""
    return node.attack is not None and node.attack.kind == "scale"


def secagg_route(resolve: Callable[[Context], Any]) -> Callable[[Message, Context, Handler], Message]:
    """The outermost mod of the deployed ClientApp: SecAgg+ stage messages to Flower's mod (module docstring),
    everything else on to the plain path."""

    def trained(msg: Message, ctx: Context, claims: dict[str, Any]) -> Message:
        node = resolve(ctx)
        entry, spec, task_id, round_ = _task(node, msg)
        fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
        names = sorted(initial_model(spec))
        base = dict(zip(names, parameters_to_ndarrays(fitins.parameters), strict=True))
        attack = node.attack
        metrics: dict[str, Any] = {}
        if spec.dp is not None:   # a private task: DP-SGD, and the claim signed with the commitment
            try:
                result, claim = train_private_round(spec, base, entry.read_shard(), task_id=task_id, round_=round_,
                                                    secret=node.keypair.private_key,
                                                    rounds=rounds_signed(node.state_dir, task_id, round_) + 1)
            except CapReached as exc:
                raise SecAggClientRefusal(f"this client's privacy budget for task {task_id} is spent ({exc})") \
                    from None
            claims["claim"] = claim
            metrics = claim_fields(claim)
        else:
            result = train_round(spec, base, entry.read_shard(), task_id=task_id, round_=round_,
                                 poison_labels=attack is not None and attack.kind == "flip-labels")
        if result.num_examples > entry.num_examples:
            raise SecAggClientRefusal(f"trained on {result.num_examples} examples, more than the "
                                      f"{entry.num_examples} committed")
        arrays = result.arrays
        if _skips_clipping(node):   # the poisoner's update, K times as long (tests and the demo)
            arrays = {n: (base[n] + attack.factor * (arrays[n] - base[n])).astype(arrays[n].dtype) for n in names}
        fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([arrays[n] for n in names]),
                        result.num_examples, metrics)
        return Message(compat.fitres_to_recorddict(fitres, keep_input=False), reply_to=msg)

    def committed(msg: Message, ctx: Context) -> Message:
        node = resolve(ctx)
        _, spec, _, _ = _task(node, msg)
        bound = float("inf") if _skips_clipping(node) else spec.secagg.update_norm_bound
        settings = SecAggClientSettings(spec.secagg.params, bound, sorted(initial_model(spec)))

        def keep(_: Context, reveal: Reveal) -> None:
            keep_reveal(node.state_dir, reveal.task_id, reveal.round, reveal_document(reveal, node.keypair.public_key))

        claims: dict[str, Any] = {}

        def sign(_: Context, task_id: int, round_: int, base_hash: bytes, commitment: bytes,
                 examples: int) -> tuple[str, str, bytes]:
            claim_signature(node.state_dir, task_id, round_, base_hash, commitment)
            if "claim" in claims:
                signed = sign_private_update(node.keypair, UpdateCommitment.of(task_id, round_, base_hash, commitment,
                                                                               examples), to_chain(claims["claim"]))
            else:
                signed = sign_update(node.keypair, task_id, round_, base_hash, commitment, examples)
            return node.keypair.ss58_address, signed.scheme, signed.signature

        return clip_commit_mod(settings, keep, sign)(msg, ctx, lambda m, c: trained(m, c, claims))

    def signer_of(ctx: Context, task_id: int) -> StageSigner | None:
        node = resolve(ctx)
        try:
            spec = decode_spec(joined_task(node.state_dir, task_id).spec, require_canonical=True)
        except (NotJoinedError, SpecError):
            return None
        if spec.secagg is None:
            return None
        return StageSigner(node.keypair, spec.secagg.params, model_shapes(spec),
                           bad_shares=node.attack is not None and node.attack.kind == "bad-shares",
                           keep_masking=lambda task, round_, record: keep_masking(node.state_dir, task, round_,
                                                                                  record))

    signed = stage_sign_mod(signer_of)

    def route(msg: Message, ctx: Context, call_next: Handler) -> Message:
        if not is_secagg_message(msg):
            return call_next(msg, ctx)
        return pack_mod(msg, ctx, lambda m, c: signed(m, c, lambda m2, c2: secaggplus_mod(m2, c2, committed)))

    return route


__all__ = ["is_secagg_message", "secagg_route"]
