"""The aggregator's Flower ServerApp: the chain says what to train and from where, ChainStrategy runs it.

``app`` (named by the FAB as ``workers.fl.server_app:app``) runs inside the ``flwr-serverapp`` process the
aggregator's SuperLink starts for a run submitted by the worker daemon (workers/fl/aggregator.py). Its run
config (`RunConfig`, the keys workers/fl/fab.py declares) names the task, the chain and the stores; its key
is the one the daemon put in the environment (workers/fl/child_key.py), never passed in the run config.

`serve` is the whole run and is what simulation runs call through `server_app(setup)`: it reads the task
(Running, with this account as its aggregator), fetches the spec document by its on-chain hash, builds
Flower's rule, and resumes from the chain: the model of the last committed round (or the initial model) by
hash, from this aggregator's store, a trusted store, or, for round 0, rebuilt from the spec and checked
against initial_model_hash. It runs Flower's strategy loop until every round is committed or a pass commits
nothing (too few good replies): a round that cannot be committed is never pretended.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from substrateinterface import Keypair

from runtime_bindings import Chain, fl
from workers.artifacts import ArtifactError, ArtifactStore, Kind, object_uri, store_root_of
from workers.fl.arrays import ArrayFormatError, Arrays, loads, model_bytes, model_hash
from workers.fl.attacks import to_record
from workers.fl.central_task import central_task
from workers.fl.committer import ChainCommitter, RoundCommitter
from workers.fl.spec import FlSpec, RuleSpec, SpecError, decode_spec
from workers.fl.strategy import ChainStrategy, FlTaskView, IdentityBook, RoundsVoided, make_rule
from workers.observers import Observer
from workers.uri_policy import UriPolicy

log = logging.getLogger("paratrain.fl.server_app")

MAX_IDLE_PASSES = 2
"""Strategy passes in a row that commit nothing before the run gives up (the daemon relaunches or releases)."""
_CHAIN_RULES = {"FedAvg": "fedavg", "FedMedian": "fedmedian", "FedTrimmedAvg": "fedtrimmedavg", "Krum": "krum",
                "MultiKrum": "multikrum"}


class ServerAppError(RuntimeError):
    """The run cannot go on: the task is not this aggregator's, its spec or model cannot be had, or a bad config."""


@dataclass(frozen=True)
class RunConfig:
    """The run config `flwr run --run-config` gives the ServerApp (declared in workers/fl/fab_template)."""

    task_id: int
    chain_url: str
    store: str
    trusted_stores: tuple[str, ...] = ()
    journal: str = ""

    @classmethod
    def from_run_config(cls, config: Mapping[str, Any]) -> RunConfig:
        task_id, chain_url = config.get("task-id"), config.get("chain-url")
        if isinstance(task_id, bool) or not isinstance(task_id, int) or not 0 <= task_id < 1 << 64:
            raise ServerAppError(f"run config task-id must be a task id, not {task_id!r}")
        if not isinstance(chain_url, str) or not chain_url:
            raise ServerAppError("run config chain-url is missing")
        store, trusted, journal = (config.get(k, "") for k in ("store", "trusted-stores", "journal"))
        if not all(isinstance(v, str) for v in (store, trusted, journal)):
            raise ServerAppError("run config store, trusted-stores and journal must be strings")
        return cls(task_id, chain_url, str(store), tuple(s for s in str(trusted).split(",") if s), str(journal))


@dataclass
class ServerSetup:
    """What `serve` needs: a chain, the aggregator's key, its store, the task; observers of the strategy."""

    chain: Chain
    keypair: Keypair
    store: ArtifactStore
    task_id: int
    committer: RoundCommitter | None = None
    observers: tuple[Observer, ...] = ()
    identity_timeout_s: float = 30.0
    poll_s: float = 0.5
    owns_chain: bool = False  # close the chain when the run ends
    strategies: list[ChainStrategy] = field(default_factory=list)


def serve(grid: Grid, setup: ServerSetup, context: Context | None = None) -> int:
    """Run the task's remaining rounds on `grid`; the chain's last committed round when it stops. A SecAgg+
    task's rounds run Flower's legacy SecAgg+ workflow, which needs the run's `context`
    (workers/fl/secagg_serve.py)."""
    chain, me = setup.chain, setup.keypair.ss58_address
    committer = setup.committer or ChainCommitter(chain, setup.keypair)
    task = _running_task(chain, setup.task_id, me)
    spec = fetch_spec(setup.store, task)
    view = task_view(chain, setup.task_id, task, spec)
    rule = _checked_rule(spec, task)
    identities = IdentityBook(view, query_timeout=setup.identity_timeout_s)
    for observer in setup.observers:
        identities.subscribe(observer)
    if spec.secagg is not None:
        from workers.fl.secagg_serve import serve_secagg

        if context is None:
            raise ServerAppError(f"task {setup.task_id} aggregates under SecAgg+: its run needs the run's context")
        return serve_secagg(grid, context, setup, spec, view, identities, max_idle_passes=MAX_IDLE_PASSES)
    idle = 0
    while idle < MAX_IDLE_PASSES:
        if int(_task(chain, setup.task_id).last_committed) >= view.rounds:
            break  # every round committed (the task may be Completed already)
        task = _running_task(chain, setup.task_id, me)
        committed = int(task.last_committed)
        base = resume_model(chain, setup.store, setup.task_id, task, spec)
        inner = make_rule(rule, min_clients=view.min_clients, fraction=spec.fraction)
        if view.central is not None:   # Flower's fixed-clipping wrapper, seeded per round by the strategy
            inner = view.central.wrap(inner, view.min_clients)
        strategy = ChainStrategy(inner, task=view,
                                 committer=committer, store=setup.store, identities=identities,
                                 first_round=committed + 1, node_wait_s=spec.round_timeout_s,
                                 gate=lambda round_: wait_for_round(chain, setup.task_id, round_, me,
                                                                    poll_s=setup.poll_s))
        for observer in setup.observers:
            strategy.subscribe(observer)
        setup.strategies.append(strategy)
        log.info("task %d: rounds %d..%d from model %s", setup.task_id, committed + 1, view.rounds,
                 model_hash(base).hex()[:16])
        try:
            strategy.start(grid=grid, initial_arrays=to_record(base), num_rounds=view.rounds - committed,
                           timeout=spec.round_timeout_s, train_config=ConfigRecord())
        except RoundsVoided as exc:
            log.info("task %d: %s; starting again from the chain", setup.task_id, exc)
        idle = idle + 1 if strategy.next_round == committed + 1 else 0
    return int(_task(chain, setup.task_id).last_committed)


def wait_for_round(chain: Chain, task_id: int, round_: int, me: str, *, poll_s: float = 0.5,
                   max_wait_s: float | None = None) -> None:
    """Return once the chain can take `round_` from this aggregator: the round before it is the last
    committed and at most MaxRoundsAhead rounds wait for verdicts. RoundsVoided when the chain's last
    committed round is no longer `round_ - 1` (rounds timed out); ServerAppError when the task left this
    aggregator, or the verdicts do not come within `max_wait_s` (default: the pallet's grace per pending
    round, plus a minute: by then the pallet has timed the rounds out)."""
    ahead = int(chain.federated_tasks.max_rounds_ahead)
    if max_wait_s is None:
        max_wait_s = int(chain.federated_tasks.verification_grace) / 1000 * (ahead + 1) + 60.0
    deadline = time.monotonic() + max_wait_s
    while True:
        task = _running_task(chain, task_id, me)
        if int(task.last_committed) != round_ - 1:
            raise RoundsVoided(f"round {round_} was to follow round {round_ - 1}, the chain's last committed round "
                               f"is {int(task.last_committed)}")
        if round_ - int(task.last_accepted) <= ahead:
            return
        if time.monotonic() >= deadline:
            raise ServerAppError(f"task {task_id}: no verdicts on round {int(task.last_accepted) + 1} within "
                                 f"{max_wait_s:.0f} s")
        time.sleep(poll_s)


def _task(chain: Chain, task_id: int) -> Any:
    task = chain.federated_tasks.tasks(task_id)
    if task is None:
        raise ServerAppError(f"there is no federated task {task_id}")
    return task


def _running_task(chain: Chain, task_id: int, me: str) -> Any:
    task = _task(chain, task_id)
    status = task.status
    if getattr(status, "VARIANT", "") != "Running" or str(status.aggregator) != me:
        raise ServerAppError(f"task {task_id} is not running with {me} as its aggregator "
                             f"({getattr(status, 'VARIANT', status)})")
    return task


def fetch_spec(store: ArtifactStore, task: Any) -> FlSpec:
    """The task's spec document by its on-chain hash (the store's policy says which URIs may be opened)."""
    uri, digest = task.spec.spec_uri.text, bytes(task.spec.spec_hash)
    try:
        return decode_spec(store.fetch(uri, digest, kind=Kind.SPEC, keep=True), require_canonical=True)
    except (ArtifactError, OSError) as exc:
        raise ServerAppError(f"the spec document {uri} cannot be fetched: {exc}") from None
    except SpecError as exc:
        raise ServerAppError(f"the spec document {uri} is not usable: {exc}") from None


def _checked_rule(spec: FlSpec, task: Any) -> RuleSpec:
    """The spec document's rule, which must be the chain's (validators recompute the chain's)."""
    chain_rule = task.spec.rule
    name = _CHAIN_RULES.get(getattr(chain_rule, "VARIANT", ""), "")
    params = {k: int(getattr(chain_rule, k)) for k in ("beta", "num_malicious", "num_to_select")
              if hasattr(chain_rule, k)}
    expected = RuleSpec(name, **params) if name else None
    if expected is None or expected != spec.rule or int(task.spec.min_clients_per_round) != spec.min_clients_per_round:
        raise ServerAppError(f"the spec document's rule {spec.rule.text} or minimum of {spec.min_clients_per_round} "
                             "clients is not the chain's")
    return spec.rule


def task_view(chain: Chain, task_id: int, task: Any, spec: FlSpec) -> FlTaskView:
    """The task as the strategy sees it; clients that were rejected in a round or withdrew are left out."""
    clients = {}
    for key, info in chain.federated_tasks.clients.entries(task_id):
        account = key[-1] if isinstance(key, tuple) else key
        if info is not None and int(info.rounds_rejected) == 0 and not info.withdrawn:
            clients[fl.account_public_key(str(account))] = int(info.num_examples)
    return FlTaskView(task_id=task_id, rounds=int(task.spec.rounds), min_clients=int(task.spec.min_clients_per_round),
                      max_update_bytes=spec.max_update_bytes, rule=spec.rule.text, clients=clients,
                      private=chain.privacy_budgets.federated_privacy(task_id) is not None,
                      central=central_task(chain, task_id))


def resume_model(chain: Chain, store: ArtifactStore, task_id: int, task: Any, spec: FlSpec) -> Arrays:
    """The model the next round starts from: round `last_committed`'s global model (the base the pallet
    checks), or the initial model before round 1."""
    committed = int(task.last_committed)
    roots: tuple[str, ...] = ()
    if committed == 0:
        digest = bytes(task.spec.initial_model_hash)
    else:
        record = chain.federated_tasks.rounds(task_id, committed)
        if record is None:
            raise ServerAppError(f"task {task_id}: round {committed} is committed but has no record")
        digest = bytes(record.global_model_hash)
        root = store_root_of(record.artifact_uri.text)
        roots = (root,) if root else ()
    data = _fetch_model(store, digest, roots)
    if data is None and committed == 0:
        from workers.fl.model import ModelError, initial_model
        try:
            built = initial_model(spec)
        except ModelError as exc:
            raise ServerAppError(f"task {task_id}: the initial model cannot be built: {exc}") from None
        if model_hash(built) != digest:
            raise ServerAppError(f"task {task_id}: the spec's initial model is not the chain's initial_model_hash")
        store.put(model_bytes(built))
        return built
    if data is None:
        raise ServerAppError(f"task {task_id}: the model {digest.hex()[:16]} of round {committed} is in no "
                             "trusted store")
    try:
        arrays, _ = loads(data)
    except ArrayFormatError as exc:
        raise ServerAppError(f"task {task_id}: the model {digest.hex()[:16]} is not a model: {exc}") from None
    return arrays


def _fetch_model(store: ArtifactStore, digest: bytes, roots: Iterable[str]) -> bytes | None:
    """The model's bytes from this store, or from `roots` and the trusted stores (kept here); None if absent."""
    if store.exists(digest):
        return store.get(digest)
    for root in (*roots, *store.policy.roots):
        try:
            return store.fetch(object_uri(root, digest), digest, keep=True)
        except (ArtifactError, OSError):
            continue
    return None


def journal_observer(path: str) -> Observer:
    """An observer that keeps the last committed round in `path` (JSON, replaced whole), so the worker
    daemon can tell how far its run got without reading the chain."""
    def observe(what: str, detail: Mapping[str, Any]) -> None:
        if what != "round-committed":
            return
        entry = {k: detail[k] for k in ("task_id", "round", "global_model_hash", "round_doc_hash", "block_number")}
        target = Path(path)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entry, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, target)
    return observe


def deployment_setup(context: Context) -> ServerSetup:
    """The setup of a ServerApp started by the aggregator's SuperLink: run config, and the key from the
    environment its worker daemon set."""
    from workers.fl.child_key import key_from_env

    config = RunConfig.from_run_config(context.run_config)
    try:
        keypair = key_from_env()
    except ValueError as exc:
        raise ServerAppError(f"no aggregator key in the environment: {exc}") from None
    store = ArtifactStore(config.store or None, policy=UriPolicy(config.trusted_stores))
    return ServerSetup(chain=Chain.connect(config.chain_url), keypair=keypair, store=store, task_id=config.task_id,
                       observers=(journal_observer(config.journal),) if config.journal else (), owns_chain=True)


def server_app(setup: Callable[[Context], ServerSetup] = deployment_setup) -> ServerApp:
    """The ServerApp whose run `setup(context)` describes (deployment by default)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        chosen = setup(context)
        try:
            last = serve(grid, chosen, context)
        finally:
            if chosen.owns_chain:
                chosen.chain.close()
        log.info("task %d: the run ends with round %d committed", chosen.task_id, last)

    return app


app = server_app()

__all__ = ["RunConfig", "ServerAppError", "ServerSetup", "app", "deployment_setup", "fetch_spec", "journal_observer",
           "resume_model", "serve", "server_app", "task_view", "wait_for_round"]
