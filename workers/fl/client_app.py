"""The data owner's Flower ClientApp: identity replies, local training, and the signature on every update.

``app`` (this module's ClientApp, named by the FAB as ``workers.fl.client_app:app``) answers two kinds of
message from the aggregator's ServerApp:

* ``query.identity``: the account this node speaks for, proven by signing
  ``b"paratrain/fl-identity/v1" ++ SCALE((task, node_id, run_id))`` (runtime_bindings.fl) with the node's own
  node id and run id, for a task this client joined. Node ids are handed out by the SuperLink and trusted by
  nobody; this signature is the only link from a node to a chain account.
* ``train``: the task's recipe trained on the local shard (workers/fl/local_training.py) with the
  requester's hyperparameters from the spec document the client daemon checked against the chain's spec_hash
  (``<paratrain-state>/tasks.json``); the aggregator's train config is read only for the task id, round and
  base hash. Reply ``{"arrays": ArrayRecord, "metrics": MetricRecord{"num-examples", "train-loss"}}``.

Mods, outermost first: `secagg_route` (a SecAgg+ task's rounds: Flower's secaggplus_mod with paratrain's
clip/commit mod, workers/fl/secagg_node.py), `sign_update_mod`, `central_clip_mod` (Flower's fixedclipping_mod,
for a central-DP task whose clients clip), then the attack mod (workers/fl/attacks.py), so
a poisoner's update is signed like any other and its sender can be paid nothing and slashed. The signing mod
refuses a model whose hash is not the base hash it is asked to sign against, takes the O_EXCL slot of (task, round)
(workers/fl/client_tasks.py), signs ``UpdateCommitment{task, round, base, update_hash, num_examples}`` and
adds ``reply.content["paratrain"] = ConfigRecord{account, update-hash, num-examples, signature, scheme}``.

Where a node's settings come from: in deployment, the node config (``paratrain-state``, ``paratrain-attack``,
set by the client daemon on its SuperNode's command line) and the key from ``$PARATRAIN_FL_KEY``
(workers/fl/child_key.py); in simulation, where every node shares one process, `client_app(nodes)` maps
Flower's ``partition-id`` to a `ClientNode`. A refusal is an error reply with its reason, never a traceback.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM
from substrateinterface import Keypair

from runtime_bindings.fl import UpdateCommitment, sign_identity, sign_update
from runtime_bindings.fl_private import sign_private_update
from workers.fl.arrays import model_hash, update_hash
from workers.fl.attacks import ATTACK_KEY, Attack, make_attack_mod, parse_attack, record_arrays, to_record
from workers.fl.child_key import import_key, key_from_env
from workers.fl.client_tasks import ClientStateError, JoinedTask, claim_signature, joined_task, rounds_signed
from workers.fl.dp_claims import CapReached
from workers.fl.dp_local import train_private_round
from workers.fl.dp_record import CLAIM_RECORD, claim_fields, claim_of
from workers.fl.local_training import LocalTrainingError, train_round
from workers.fl.secagg_node import secagg_route
from workers.fl.spec import FlSpec, SpecError, decode_spec

STATE_KEY = "paratrain-state"
TASK_ID, ROUND, BASE_HASH = "paratrain.task-id", "paratrain.round", "paratrain.base-hash"
CONFIG_RECORD, ARRAYS_RECORD, METRICS_RECORD, PARATRAIN_RECORD = "config", "arrays", "metrics", "paratrain"
NUM_EXAMPLES, TRAIN_LOSS = "num-examples", "train-loss"
REFUSED = 6  # flwr ErrorCode.MOD_FAILED_PRECONDITION: the client declined, nothing crashed
PARTITION_ID = "partition-id"
MAX_CONFIG_INT = 2**64 - 1


class ClientRefusal(ValueError):
    """A message this client will not answer; its text is the error reply's reason."""


@dataclass(frozen=True)
class ClientNode:
    """One data owner's settings as a ClientApp sees them: its state directory, its key (workers/fl/child_key.py
    form) and the attack it is told to run (tests and the demo only)."""

    state_dir: Path
    key: str
    attack: str | None = None

    def keypair(self) -> Keypair:
        return import_key(self.key)


NodeResolver = Callable[[Context], "ResolvedNode"]


@dataclass(frozen=True)
class ResolvedNode:
    state_dir: Path
    keypair: Keypair
    attack: Attack | None


def deployment_node(ctx: Context) -> ResolvedNode:
    """A SuperNode's settings: its node config and the key its client daemon put in the environment."""
    state = ctx.node_config.get(STATE_KEY)
    if not isinstance(state, str) or not state:
        raise ClientRefusal(f"the node config has no {STATE_KEY!r}: start the SuperNode with `paratrain client`")
    attack = ctx.node_config.get(ATTACK_KEY)
    return ResolvedNode(Path(state), key_from_env(), parse_attack(str(attack) if attack is not None else None))


def simulated_nodes(nodes: Sequence[ClientNode]) -> NodeResolver:
    """Settings by Flower simulation's ``partition-id`` (every node runs in the same process)."""
    def resolve(ctx: Context) -> ResolvedNode:
        pid = ctx.node_config.get(PARTITION_ID)
        if not isinstance(pid, int) or not 0 <= pid < len(nodes):
            raise ClientRefusal(f"no client node for partition {pid!r}")
        node = nodes[pid]
        return ResolvedNode(node.state_dir, node.keypair(), parse_attack(node.attack))
    return resolve


def _config_int(config: ConfigRecord, key: str) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CONFIG_INT:
        raise ClientRefusal(f"config {key!r} is missing or not an integer")
    return value


def _config_record(msg: Message) -> ConfigRecord:
    if CONFIG_RECORD not in msg.content.config_records:
        raise ClientRefusal(f"the message has no {CONFIG_RECORD!r} record")
    return msg.content.config_records[CONFIG_RECORD]


def _spec(entry: JoinedTask) -> FlSpec:
    """The joined task's spec document (its bytes are the ones whose hash the chain holds)."""
    try:
        return decode_spec(entry.spec, require_canonical=True)
    except SpecError as exc:
        raise ClientRefusal(f"task {entry.task_id}: the spec document cannot be used ({exc})") from None


def _refuse(msg: Message, reason: str) -> Message:
    return Message(Error(code=REFUSED, reason=reason), reply_to=msg)


def _guarded(handler: Callable[[Message, Context], Message]) -> Callable[[Message, Context], Message]:
    """A handler whose refusals (and the state directory's) become error replies with their reason."""
    def run(msg: Message, ctx: Context) -> Message:
        try:
            return handler(msg, ctx)
        except (ClientRefusal, ClientStateError, LocalTrainingError, ValueError) as exc:
            return _refuse(msg, str(exc))
    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def central_clip_mod(msg: Message, ctx: Context, call_next: Callable[[Message, Context], Message]) -> Message:
    """Flower's fixedclipping_mod for a train message that carries a clipping norm (a central-DP task clipped by
    the clients, whose server wrapper sends the norm): the update is clipped before it is signed."""
    config = msg.content.config_records.get("config")
    if msg.metadata.message_type.split(".")[0] != "train" or config is None or KEY_CLIPPING_NORM not in config:
        return call_next(msg, ctx)
    return fixedclipping_mod(msg, ctx, call_next)


def client_app(resolve: NodeResolver = deployment_node) -> ClientApp:
    """The ClientApp whose nodes' settings `resolve` gives (deployment by default)."""

    def sign_update_mod(msg: Message, ctx: Context, call_next: Callable[[Message, Context], Message]) -> Message:
        if msg.metadata.message_type.split(".")[0] != "train":
            return call_next(msg, ctx)
        try:
            node = resolve(ctx)
            config = _config_record(msg)
            task_id, round_ = _config_int(config, TASK_ID), _config_int(config, ROUND)
            claimed_base = config.get(BASE_HASH)
            if not isinstance(claimed_base, bytes) or len(claimed_base) != 32:
                raise ClientRefusal(f"config {BASE_HASH!r} is missing or not 32 bytes")
            if ARRAYS_RECORD not in msg.content.array_records:
                raise ClientRefusal("the message carries no global model")
            if model_hash(record_arrays(msg.content.array_records[ARRAYS_RECORD])) != claimed_base:
                raise ClientRefusal("the global model sent is not the one its base hash names")
        except (ClientRefusal, ClientStateError, ValueError) as exc:
            return _refuse(msg, str(exc))
        reply = call_next(msg, ctx)
        if reply.has_error():
            return reply
        try:
            digest = update_hash(record_arrays(reply.content.array_records[ARRAYS_RECORD]))
            examples = reply.content.metric_records[METRICS_RECORD][NUM_EXAMPLES]
            if isinstance(examples, bool) or not isinstance(examples, int):
                raise ClientRefusal("the reply's num-examples is not an integer")
            claim = reply.content.config_records.get(CLAIM_RECORD)
            claim_signature(node.state_dir, task_id, round_, claimed_base, digest)
            if claim is None:
                signed = sign_update(node.keypair, task_id, round_, claimed_base, digest, examples)
            else:   # a private task: the claim is signed with the update
                typed = claim_of(claim)
                if typed is None:
                    raise ClientRefusal("the round's DP claim is malformed")
                signed = sign_private_update(node.keypair, UpdateCommitment.of(task_id, round_, claimed_base, digest,
                                                                               examples), typed)
        except (ClientRefusal, ClientStateError, KeyError, ValueError) as exc:
            return _refuse(msg, str(exc))
        fields = {"account": node.keypair.ss58_address, "update-hash": digest, "num-examples": examples,
                  "signature": signed.signature, "scheme": signed.scheme}
        if claim is not None:
            fields.update(dict(claim))
            del reply.content.config_records[CLAIM_RECORD]
        reply.content[PARATRAIN_RECORD] = ConfigRecord(fields)
        return reply

    def attack_of(ctx: Context) -> Attack | None:
        return resolve(ctx).attack

    def max_update_bytes(msg: Message, ctx: Context) -> int:
        task_id = _config_int(_config_record(msg), TASK_ID)
        return _spec(joined_task(resolve(ctx).state_dir, task_id)).max_update_bytes

    app = ClientApp(mods=[secagg_route(resolve), sign_update_mod, central_clip_mod,
                          make_attack_mod(attack_of, max_update_bytes)])

    @app.query("identity")
    @_guarded
    def identity(msg: Message, ctx: Context) -> Message:
        """Sign (task, this node's id, this run's id) for a joined task."""
        node = resolve(ctx)
        task_id = _config_int(_config_record(msg), TASK_ID)
        joined_task(node.state_dir, task_id)
        signed = sign_identity(node.keypair, task_id, int(ctx.node_id), int(ctx.run_id))
        return Message(RecordDict({PARATRAIN_RECORD: ConfigRecord({
            "account": node.keypair.ss58_address, "signature": signed.signature, "scheme": signed.scheme,
            "node-id": int(ctx.node_id), "run-id": int(ctx.run_id)})}), reply_to=msg)

    @app.train()
    @_guarded
    def train(msg: Message, ctx: Context) -> Message:
        """One round of local training with the requester's hyperparameters, on the committed shard."""
        node = resolve(ctx)
        config = _config_record(msg)
        task_id, round_ = _config_int(config, TASK_ID), _config_int(config, ROUND)
        entry = joined_task(node.state_dir, task_id)
        spec = _spec(entry)
        if ARRAYS_RECORD not in msg.content.array_records:
            raise ClientRefusal("the message carries no global model")
        base = record_arrays(msg.content.array_records[ARRAYS_RECORD])
        records: dict[str, Any] = {}
        if spec.dp is not None:   # local DP-SGD; the claim goes to the signing mod, which signs it with the update
            try:
                result, claim = train_private_round(
                    spec, base, entry.read_shard(), task_id=task_id, round_=round_, secret=node.keypair.private_key,
                    rounds=rounds_signed(node.state_dir, task_id, round_) + 1)
            except CapReached as exc:
                raise ClientRefusal(f"task {task_id}: this client's privacy budget for the task is spent ({exc})") \
                    from None
            records[CLAIM_RECORD] = ConfigRecord(claim_fields(claim))
        else:
            result = train_round(spec, base, entry.read_shard(), task_id=task_id, round_=round_,
                                 poison_labels=node.attack is not None and node.attack.kind == "flip-labels")
        if result.num_examples > entry.num_examples:
            raise ClientRefusal(f"trained on {result.num_examples} examples, more than the {entry.num_examples} "
                                f"committed")
        return Message(RecordDict({
            ARRAYS_RECORD: to_record(result.arrays),
            METRICS_RECORD: MetricRecord({NUM_EXAMPLES: result.num_examples, TRAIN_LOSS: result.train_loss}),
            **records}), reply_to=msg)

    return app


app = client_app()

__all__ = ["BASE_HASH", "ROUND", "STATE_KEY", "TASK_ID", "ClientNode", "ClientRefusal", "app",
           "client_app", "deployment_node", "simulated_nodes"]
