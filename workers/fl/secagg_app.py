"""The aggregator's ServerApp for SecAgg+ tasks: Flower's own SecAgg+ workflow, a guard in front of it, and a
legacy FedAvg strategy that takes the aggregate as the workflow hands it over.

Flower 1.42 has SecAgg+ only on the legacy path (docs/design/private.md fact 1): `SecAggPlusWorkflow` needs a
`LegacyContext` and drives a legacy `Strategy` (`configure_fit`, `aggregate_fit(FitRes)`). So a SecAgg task
runs `run_round` once per round:

    DefaultWorkflow(fit_workflow=secagg_workflow(params, timeout, PrunedSecAggPlusWorkflow))(
        SecAggGuardGrid(grid, params, shapes), LegacyContext(context, ServerConfig(1), strategy))

* `SecAggGuardGrid` checks every reply of every stage with workers/fl/secagg_checks.py before the workflow
  sees it; a bad reply becomes an error reply (the workflow counts the client as dropped and, after key
  sharing, removes its masks with its neighbours' shares) and a `SecAggRefusal` naming the node, the stage
  and the reason, kept for the round document and the validators. It stamps every stage message with the task and
  round; a refused reply the client signed carries that signature as evidence (workers/fl/secagg_evidence.py),
  and each signed masked vector's digest goes to `on_masked` for the round document and the audit
  (workers/fl/secagg_masks.py).
* `PrunedSecAggPlusWorkflow` is Flower's workflow with one bookkeeping fix (a client that dropped before the
  masked-vector stage halted every round in Flower 1.42, its class docstring says why).
* `SecAggStrategy` returns the base model from `initialize_parameters` (else the workflow asks a random client
  for one), keeps paratrain's own round number (each DefaultWorkflow call counts from 1 again), refuses a
  round size the sum could wrap at, and in `aggregate_fit` takes the aggregate from the FitRes as it is: the
  workflow wrote the same dequantized weighted mean into every FitRes, so re-averaging could only change its
  bits. It casts to the base model's dtypes and hands a `SecAggRound` (the aggregate, each participant's
  example count and salted commitment, the dropouts) to `on_round` — where the chain commit will go.

The aggregator never holds an individual unmasked update: the client mod clears every ArrayRecord of its
reply, and the workflow decodes only masked vectors (tests/integration/test_secagg_round.py instruments both).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, Error, Message
from flwr.common import FitIns, FitRes, Parameters, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import Key, Stage
from flwr.server import ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat import LegacyContext
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import WorkflowState
from flwr.serverapp import Grid, ServerApp

from workers.fl.arrays import Arrays
from workers.fl.dp_record import claim_of
from workers.fl.secagg_checks import (
    configs_of,
    duplicate_keys,
    examples_of,
    reply_problem,
    stage_of,
)
from workers.fl.secagg_client import ACCOUNT, COMMITMENT, ROUND, SCHEME, SIGNATURE, TASK_ID, UPDATE_NORM
from workers.fl.secagg_evidence import (
    SIGNATURE_RECORD,
    STAMP_RECORD,
    EvidenceError,
    StageReply,
    evidence_document,
)
from workers.fl.secagg_pack import unpack
from workers.fl.secagg_params import SecAggParams, SecAggParamsError
from workers.fl.strategy import ForwardingGrid

log = logging.getLogger("paratrain.fl.secagg")

GUARD_REFUSED = 6   # flwr ErrorCode.MOD_FAILED_PRECONDITION, as workers/fl/client_app.py's refusals


class PrunedSecAggPlusWorkflow(SecAggPlusWorkflow):
    """Flower's SecAgg+ workflow, with one bookkeeping fix: a client that dropped *before* the masked-vector stage
    (in setup or share_keys, by a crash or a guard refusal) leaves the round's sampled set and every
    neighbourhood.

    Flower 1.42 keeps it in `sampled_node_ids` (the set is fixed before setup's replies arrive), so the unmask
    stage lists it as dead and asks every neighbour for its sk1 share, which none holds (its ciphertexts were
    never forwarded): each honest client raises KeyError in `_unmask` and the round halts ("Not enough shares").
    Such a client added no mask to anyone's vector and no one added a mask for it (pairwise masks are added
    only for the sources whose shares were forwarded), so leaving it out is exactly right. The masking, the
    sharing and the reconstruction are Flower's, unchanged."""

    def collect_masked_vectors_stage(self, grid: Grid, context: LegacyContext, state: WorkflowState) -> bool:
        keyed = set(state.active_node_ids)          # the clients whose shares are forwarded in this stage
        state.sampled_node_ids = keyed
        state.nid_to_neighbours = {nid: near & keyed for nid, near in state.nid_to_neighbours.items()
                                   if nid in keyed}
        return super().collect_masked_vectors_stage(grid, context, state)


@dataclass(frozen=True)
class SecAggRefusal:
    """A reply the guard turned into a dropout: whose, in which stage, and why; `evidence` is the client's own
    signed reply (workers/fl/secagg_evidence.py) when it proves the fault, which is what lets the chain slash it."""

    round: int
    node_id: int
    stage: str
    reason: str
    account: str | None = None
    evidence: bytes | None = None


class SecAggGuardGrid(ForwardingGrid):
    """The grid the SecAgg+ workflow talks through: every reply checked (workers/fl/secagg_checks.py) first.

    It reads the stage and what each node was sent (its neighbours' keys, the active/dead lists) from the
    outgoing messages themselves, so it needs no access to the workflow's state; `shapes` are the model's
    (the strategy's base: legacy Parameters carry bytes without shapes). With a `task_id` it stamps every
    stage message with the task and round, which clients sign their replies under."""

    def __init__(self, grid: Grid, params: SecAggParams, shapes: Sequence[tuple[int, ...]], *,
                 round_of: Callable[[], int] = lambda: 0, task_id: int | None = None, require_signed: bool = False,
                 on_refusal: Callable[[SecAggRefusal], None] | None = None,
                 on_masked: Callable[[int, int, str, bytes], None] | None = None) -> None:
        self.grid, self.params, self.shapes, self.round_of = grid, params, [tuple(s) for s in shapes], round_of
        self.task_id, self.require_signed = task_id, require_signed
        self.on_refusal, self.on_masked = on_refusal, on_masked
        self.refusals: list[SecAggRefusal] = []

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        sent = list(messages)
        stage = stage_of(configs_of(sent[0].content)) if sent else None
        if stage is not None and self.task_id is not None:
            for message in sent:
                message.content.config_records[STAMP_RECORD] = ConfigRecord(
                    {"task-id": self.task_id, "round": self.round_of()})
        replies = list(self.grid.send_and_receive(sent, timeout=timeout))
        if stage is None:
            return replies
        for reply in replies:   # a uint32 masked vector back to Flower's int64 bytes (workers/fl/secagg_pack.py)
            if not reply.has_error():
                unpack(reply.content)
        by_node = {m.metadata.dst_node_id: m for m in sent}
        problems: dict[int, str] = {}
        for reply in replies:
            node = int(reply.metadata.src_node_id)
            if reply.has_error() or node not in by_node:
                continue
            problem = self._check(stage, node, by_node[node], reply)
            if problem is not None:
                problems[node] = problem
        proven = set(problems)
        if stage == Stage.COLLECT_MASKED_VECTORS:
            problems.update(self._masked(by_node, [r for r in replies if not r.has_error()
                                                   and int(r.metadata.src_node_id) in set(by_node) - proven]))
        if stage == Stage.SETUP:
            keys = {int(r.metadata.src_node_id): [configs_of(r.content)[Key.PUBLIC_KEY_1],  # type: ignore[index]
                                                  configs_of(r.content)[Key.PUBLIC_KEY_2]]  # type: ignore[index]
                    for r in replies if not r.has_error() and int(r.metadata.src_node_id) not in problems}
            problems.update({n: p for n, p in duplicate_keys(keys).items() if n not in problems})
        out = []
        for reply in replies:
            node = int(reply.metadata.src_node_id)
            if node not in problems:
                out.append(reply)
                continue
            signed = self._signed(stage, node, by_node[node], reply) if node in proven else None
            out.append(self._refuse(reply, stage, problems[node], signed))
        return out

    def _check(self, stage: str, node: int, request: Message, reply: Message) -> str | None:
        return reply_problem(stage, node, configs_of(request.content) or {}, configs_of(reply.content),
                             examples_of(reply.content), self.params, self.shapes)

    def _masked(self, by_node: Mapping[int, Message], replies: Sequence[Message]) -> dict[int, str]:
        """Each well-formed masked vector's signed digest, for the round document (the audit checks a drawn
        client's reveal against it, workers/fl/secagg_masks.py); with `require_signed`, the unsigned ones'
        refusals, which drop but never slash (anybody can strip a signature)."""
        unsigned: dict[int, str] = {}
        for reply in replies:
            node = int(reply.metadata.src_node_id)
            signed = self._signed(Stage.COLLECT_MASKED_VECTORS, node, by_node[node], reply)
            if signed is not None and self.on_masked is not None:
                self.on_masked(self.round_of(), node, signed.account, signed.digest())
            elif signed is None and self.require_signed:
                unsigned[node] = f"{Stage.COLLECT_MASKED_VECTORS}: the masked vector is not signed by its sender"
        return unsigned

    def _signed(self, stage: str, node: int, request: Message, reply: Message) -> StageReply | None:
        """The node's signed reply, if its signature covers this task, round, request and reply."""
        fields = reply.content.config_records.get(SIGNATURE_RECORD)
        answer = configs_of(reply.content)
        if self.task_id is None or fields is None or answer is None:
            return None
        account, scheme, signature = fields.get("account"), fields.get("scheme"), fields.get("signature")
        if not (isinstance(account, str) and isinstance(scheme, str) and isinstance(signature, bytes)):
            return None
        examples = examples_of(reply.content)
        signed = StageReply(self.task_id, self.round_of(), stage, node, account, scheme, signature,
                            dict(configs_of(request.content) or {}), dict(answer),
                            examples if isinstance(examples, int) else None)
        try:
            return signed if signed.signed() else None
        except EvidenceError:
            return None

    def _refuse(self, reply: Message, stage: str, reason: str, signed: StageReply | None = None) -> Message:
        refusal = SecAggRefusal(self.round_of(), int(reply.metadata.src_node_id), stage, reason,
                                signed.account if signed else None, evidence_document(signed) if signed else None)
        self.refusals.append(refusal)
        log.warning("secagg round %d: node %d refused in %s%s: %s", refusal.round, refusal.node_id, stage,
                    " (signed)" if signed else "", reason)
        if self.on_refusal is not None:
            self.on_refusal(refusal)
        return Message(metadata=reply.metadata, error=Error(code=GUARD_REFUSED, reason=f"paratrain guard: {reason}"))


@dataclass(frozen=True)
class Participant:
    node_id: int
    num_examples: int
    commitment: bytes     # the client's salted commitment to its clipped model (workers/fl/secagg_client.py)
    update_norm: float
    account: str = ""     # the data owner and its signature of the commitment ("" and b"": the client signed none)
    scheme: str = ""
    signature: bytes = b""
    claim: Any = None     # a private task's cumulative DP claim (runtime_bindings' DpClaim), signed with it


@dataclass(frozen=True)
class SecAggRound:
    """One aggregated SecAgg round: what the aggregator learnt, and nothing more."""

    round: int
    base: Arrays
    aggregate: Arrays
    participants: tuple[Participant, ...]
    dropouts: int
    round_s: float


class SecAggStrategy(FedAvg):
    """Legacy FedAvg for the SecAgg+ workflow (module docstring). `base` is the model the next round starts from,
    by name in the order Flower carries it; `first_round` is paratrain's number for the next round."""

    def __init__(self, base: Arrays, params: SecAggParams, *, min_clients: int = 3, fraction: float = 1.0,
                 first_round: int = 1, task_id: int = 0, on_round: Callable[[SecAggRound], None] | None = None) -> None:
        super().__init__(fraction_fit=fraction, fraction_evaluate=0.0, min_fit_clients=min_clients,
                         min_evaluate_clients=0, min_available_clients=min_clients, accept_failures=True)
        self.base, self.params, self.next_round, self.task_id = dict(base), params, first_round, task_id
        self.on_round = on_round
        self.rounds: list[SecAggRound] = []
        self._started, self._sampled = 0.0, 0

    def __repr__(self) -> str:
        return f"SecAggStrategy(round {self.next_round}, {self.params})"

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters:
        return ndarrays_to_parameters(list(self.base.values()))

    def configure_fit(self, server_round: int, parameters: Parameters,
                      client_manager: ClientManager) -> list[tuple[ClientProxy, FitIns]]:
        chosen = self.select(super().configure_fit(server_round, parameters, client_manager))
        try:
            self.params.check_round(len(chosen))
        except SecAggParamsError as exc:
            log.warning("secagg round %d not started: %s", self.next_round, exc)
            return []
        self._started, self._sampled = time.monotonic(), len(chosen)
        return [(proxy, FitIns(fitins.parameters, {**fitins.config, ROUND: self.next_round, TASK_ID: self.task_id}))
                for proxy, fitins in chosen]

    def select(self, chosen: list[tuple[ClientProxy, FitIns]]) -> list[tuple[ClientProxy, FitIns]]:
        """The sampled clients and their instructions (FedAvg's sample; a subclass may narrow it)."""
        return chosen

    def aggregate_fit(self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
                      failures: list[Any]) -> tuple[Parameters | None, dict[str, Any]]:
        if not results:
            return None, {}
        tensors = results[0][1].parameters.tensors
        if any(res.parameters.tensors != tensors for _, res in results):
            log.error("secagg round %d: the workflow's FitRes carry different aggregates", self.next_round)
            return None, {}
        values = parameters_to_ndarrays(results[0][1].parameters)
        if len(values) != len(self.base):
            log.error("secagg round %d: %d aggregate arrays, the model has %d", self.next_round, len(values),
                      len(self.base))
            return None, {}
        aggregate = {name: np.asarray(v).astype(self.base[name].dtype).reshape(self.base[name].shape)
                     for name, v in zip(self.base, values, strict=True)}
        participants = tuple(sorted((Participant(int(proxy.node_id), int(res.num_examples),
                                                 _bytes(res.metrics.get(COMMITMENT)),
                                                 float(res.metrics.get(UPDATE_NORM, float("nan"))),
                                                 _text(res.metrics.get(ACCOUNT)), _text(res.metrics.get(SCHEME)),
                                                 _bytes(res.metrics.get(SIGNATURE)), claim_of(res.metrics))
                                     for proxy, res in results), key=lambda p: p.node_id))
        # Flower lists a collect-stage failure twice (once per loop over the replies): count the sampled instead
        done = SecAggRound(self.next_round, self.base, aggregate, participants, self._sampled - len(participants),
                           time.monotonic() - self._started)
        self.rounds.append(done)
        if self.on_round is not None:
            self.on_round(done)
        self.base, self.next_round = aggregate, self.next_round + 1
        return ndarrays_to_parameters(list(aggregate.values())), {"clients": len(participants)}


@dataclass(frozen=True)
class SecAggSetup:
    """What one SecAgg run needs: its strategy, how many rounds, each stage's timeout, refusal observers."""

    strategy: SecAggStrategy
    rounds: int
    timeout: float | None = None
    on_refusal: Callable[[SecAggRefusal], None] | None = None


def secagg_server_app(setup: Callable[[Grid, Context], SecAggSetup]) -> ServerApp:
    """The ServerApp of a SecAgg task: `setup(grid, context)` says what to run; the rounds run one
    DefaultWorkflow each, and the run stops at the first round that halts."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        chosen = setup(grid, context)
        for _ in range(chosen.rounds):
            if run_round(grid, context, chosen.strategy, timeout=chosen.timeout, on_refusal=chosen.on_refusal) is None:
                log.warning("secagg round %d halted; the run ends", chosen.strategy.next_round)
                return

    return app


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else b""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def run_round(grid: Grid, context: Context, strategy: SecAggStrategy, *, timeout: float | None = None,
              guard: bool = True, require_signed: bool = False,
              on_refusal: Callable[[SecAggRefusal], None] | None = None,
              on_masked: Callable[[int, int, str, bytes], None] | None = None) -> SecAggRound | None:
    """One SecAgg+ round of `strategy` on `grid`; the round, or None when it halted (too many dropouts, too few
    clients): a round without a result is never pretended."""
    before = len(strategy.rounds)
    round_ = strategy.next_round
    shapes = [a.shape for a in strategy.base.values()]
    guarded = SecAggGuardGrid(grid, strategy.params, shapes, round_of=lambda: round_, task_id=strategy.task_id,
                              require_signed=require_signed, on_refusal=on_refusal,
                              on_masked=on_masked) if guard else grid
    legacy = LegacyContext(context, config=ServerConfig(num_rounds=1), strategy=strategy)
    DefaultWorkflow(fit_workflow=secagg_workflow(strategy.params, timeout, PrunedSecAggPlusWorkflow))(guarded, legacy)
    return strategy.rounds[-1] if len(strategy.rounds) > before else None


def secagg_workflow(params: SecAggParams, timeout: float | None = None,
                    kind: type[SecAggPlusWorkflow] = SecAggPlusWorkflow) -> SecAggPlusWorkflow:
    """Flower's SecAggPlusWorkflow (or its subclass `kind`) with a task's checked settings."""
    return kind(params.num_shares, params.reconstruction_threshold, max_weight=float(params.max_weight),
                clipping_range=float(params.clipping_range), quantization_range=params.quantization_range,
                modulus_range=params.modulus_range, timeout=timeout)


def fedavg(models: Mapping[int, Arrays], examples: Mapping[int, int]) -> Arrays:
    """Plain FedAvg of named models (float64): the reference a SecAgg aggregate is held to."""
    total = sum(examples[k] for k in models)
    names = next(iter(models.values()))
    return {name: sum(np.asarray(models[k][name], dtype=np.float64) * examples[k] for k in models) / total
            for name in names}


__all__ = ["Participant", "PrunedSecAggPlusWorkflow", "SecAggGuardGrid", "SecAggRefusal", "SecAggRound", "SecAggSetup",
           "SecAggStrategy", "fedavg", "run_round", "secagg_server_app", "secagg_workflow"]
