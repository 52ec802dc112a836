"""The data owner's daemon (`paratrain client`): join federated tasks, serve their rounds, collect the pay.

One loop, for the tasks it is given::

    set-up   the local shard (its hash and size are the data commitment; the bytes never leave this machine)
    join     for each task not yet joined: the spec document fetched by spec_uri and checked against the
             chain's spec_hash, then join(task, data_hash, n, stake), then <state>/tasks.json (what every
             ClientApp process reads: workers/fl/client_tasks.py)
    serve    while a task is Running: one SuperNode child (workers/fl/flower_procs.py) to the endpoint its
             aggregator published, restarted when it exits or the endpoint changes (a new aggregator); its
             ClientApps get the key through $PARATRAIN_FL_KEY (workers/fl/child_key.py), the state directory
             and the attack (tests and the demo) through the node config
    report   every ClientPaid / ClientSlashed naming this account, from finalized events ("paid", "slashed")
    reveal   for a SecAgg task, each round's kept reveal document: published when the chain draws this client
             for the round's audit, deleted when it does not (workers/fl/secagg_reveal.py; "revealed")
    finish   once every task is Completed, Expired or Cancelled: withdraw_stake for each, the child stopped

The daemon signs only join and withdraw_stake itself; updates are signed inside the ClientApp (the key never
goes on a command line or to disk). It imports no Flower: it only starts Flower's processes.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from substrateinterface import Keypair

from workers.artifacts import ArtifactError, ArtifactStore, Kind
from workers.fl.child_key import child_env
from workers.fl.client_tasks import JoinedTask, kept_reveals, load_tasks, record_task
from workers.fl.flower_procs import FlowerProcessError, SuperNodeProcess
from workers.fl.secagg_reveal import RevealState, settle_reveal
from workers.fl.spec import SpecError, decode_spec
from workers.hashing import blake2_256_hex
from workers.observers import Observable

log = logging.getLogger("paratrain.fl.client")

PALLET = "FederatedTasks"
TERMINAL = ("Completed", "Expired", "Cancelled")
STATE_KEY, ATTACK_KEY = "paratrain-state", "paratrain-attack"  # the ClientApp's node-config keys (it imports flwr)
MAX_SHARD_BYTES = 1 << 30


class ClientDaemonError(RuntimeError):
    """The daemon cannot go on: a task it cannot join, a shard it cannot read, a refused call (one line)."""


@dataclass
class ClientConfig:
    tasks: list[int]
    data: Path                       # the local shard (PTTS1 arrays data set, X and y)
    state_dir: Path
    stake: int                       # planck per task (at least the task's min_client_stake)
    poll_s: float = 1.0
    attack: str | None = None        # tests and the demo: what this client is told to do
    supernode_timeout_s: float = 120.0
    log_path: Path | None = None     # the SuperNode's output


def _status(task: Any) -> tuple[str, Any]:
    status = task.status
    name = getattr(status, "VARIANT", None) or getattr(status, "name", None) or str(status)
    return str(name), status


@dataclass
class _Served:
    endpoint: str = ""
    child: SuperNodeProcess | None = None
    restarts: int = 0
    tasks: set[int] = field(default_factory=set)


class ClientDaemon(Observable):
    """`run()` until every task is over (returns 0), or `stop()`; events: "joined", "supernode-started",
    "paid", "slashed", "withdrawn", "finished"."""

    def __init__(self, config: ClientConfig, *, chain: Any, keypair: Keypair, store: ArtifactStore) -> None:
        self.config, self.chain, self.keypair, self.store = config, chain, keypair, store
        self._stop = threading.Event()
        self._served = _Served()
        self._next_block: int | None = None

    @property
    def account(self) -> str:
        return str(self.keypair.ss58_address)

    def stop(self) -> None:
        self._stop.set()

    # Set-up -------------------------------------------------------------------------------------
    def read_shard(self) -> tuple[str, int]:
        """(data_hash, num_examples) of the local shard."""
        from workers.fl.model import ModelError, read_examples

        try:
            if self.config.data.stat().st_size > MAX_SHARD_BYTES:
                raise ClientDaemonError(f"{self.config.data} is larger than {MAX_SHARD_BYTES} bytes")
            raw = self.config.data.read_bytes()
            examples = read_examples(raw)
        except OSError as exc:
            raise ClientDaemonError(f"cannot read the shard {self.config.data}: {exc.strerror}") from None
        except ModelError as exc:
            raise ClientDaemonError(f"{self.config.data}: {exc}") from None
        return blake2_256_hex(raw), len(examples)

    def join(self, task_id: int, data_hash: str, examples: int) -> None:
        """Join `task_id` unless already joined, and record it for the ClientApps either way."""
        fl = self.chain.federated_tasks
        task = fl.tasks(task_id)
        if task is None:
            raise ClientDaemonError(f"task {task_id} does not exist")
        spec_hash = bytes(task.spec.spec_hash).hex()
        try:
            spec_bytes = self.store.fetch(bytes(task.spec.spec_uri).decode(), spec_hash, kind=Kind.SPEC)
            decode_spec(spec_bytes, require_canonical=True)
        except (ArtifactError, SpecError, UnicodeDecodeError, ValueError) as exc:
            raise ClientDaemonError(f"task {task_id}: its spec document cannot be used: {exc}") from None
        mine = fl.clients(task_id, self.account)
        if mine is None:
            try:
                fl.join(self.keypair, task_id, "0x" + data_hash, examples, self.config.stake)
            except Exception as exc:  # noqa: BLE001 - the bindings' typed errors name the pallet's refusal
                raise ClientDaemonError(f"task {task_id}: join refused: {exc}") from None
            log.info("task %d: joined with %d examples (data %s)", task_id, examples, data_hash[:16])
        elif bytes(mine.data_hash).hex() != data_hash:
            joined_with = bytes(mine.data_hash).hex()[:16]
            raise ClientDaemonError(f"task {task_id}: this account joined with other data ({joined_with}), not "
                                    f"{self.config.data}")
        record_task(self.config.state_dir, JoinedTask(task_id, spec_bytes, spec_hash, self.config.data.resolve(),
                                                      data_hash, examples))
        self._notify("joined", task_id=task_id, examples=examples, already=mine is not None)

    # The loop -----------------------------------------------------------------------------------
    def run(self) -> int:
        data_hash, examples = self.read_shard()
        for task_id in self.config.tasks:
            self.join(task_id, data_hash, examples)
        self._next_block = int(self.chain.finalized_number())
        try:
            while not self._stop.is_set():
                statuses = {t: _status(self.chain.federated_tasks.tasks(t)) for t in self.config.tasks}
                self._report()
                self._settle_reveals()
                if all(name in TERMINAL for name, _ in statuses.values()):
                    self._finish(statuses)
                    return 0
                running = [(t, s) for t, (name, s) in statuses.items() if name == "Running"]
                self._serve(running)
                self._stop.wait(self.config.poll_s)
            return 0
        finally:
            self._stop_child()

    def _serve(self, running: list[tuple[int, Any]]) -> None:
        """Keep one SuperNode on the endpoint of the running tasks' aggregator (the first, when they differ)."""
        if not running:
            self._stop_child()
            return
        endpoint = bytes(running[0][1].endpoint).decode("utf-8", errors="replace")
        served = self._served
        if served.child is not None and served.child.alive and served.endpoint == endpoint:
            return
        if served.child is not None:
            log.info("SuperNode %s; starting it again (to %s)", "exited" if not served.child.alive
                     else f"was connected to {served.endpoint}", endpoint)
            served.restarts += 1
        self._stop_child()
        node_config: dict[str, str | int | float | bool] = {STATE_KEY: str(self.config.state_dir.resolve())}
        if self.config.attack:
            node_config[ATTACK_KEY] = self.config.attack
        child = SuperNodeProcess(endpoint, self.config.state_dir / "supernode", node_config=node_config,
                                 log_path=self.config.log_path, env=child_env(self.keypair, {}))
        try:
            child.start(timeout=self.config.supernode_timeout_s)
        except FlowerProcessError as exc:
            log.warning("the SuperNode to %s did not start (%s); trying again", endpoint, str(exc).splitlines()[0])
            child.stop()
            return
        served.child, served.endpoint = child, endpoint
        self._notify("supernode-started", endpoint=endpoint, node_id=child.node_id, restarts=served.restarts)

    def _stop_child(self) -> None:
        if self._served.child is not None:
            self._served.child.stop()
            self._served.child = None

    def _report(self) -> None:
        """Each ClientPaid / ClientSlashed of this account in the finalized blocks since the last look."""
        head = int(self.chain.finalized_number())
        if self._next_block is None or head < self._next_block:
            return
        for block in self.chain.events.finalized(from_block=self._next_block, to_block=head, own_connection=False):
            for record in block.records:
                event = record.event
                if event.pallet != PALLET or event.name not in ("ClientPaid", "ClientSlashed") \
                        or str(event.client) != self.account or int(event.task) not in self.config.tasks:
                    continue
                if event.name == "ClientPaid":
                    log.info("task %d round %d: paid %d (factor %d/1e9)", int(event.task), int(event.round),
                             int(event.amount), int(event.factor))
                    self._notify("paid", task_id=int(event.task), round=int(event.round), amount=int(event.amount))
                else:
                    log.warning("task %d round %d: slashed %d", int(event.task), int(event.round), int(event.amount))
                    self._notify("slashed", task_id=int(event.task), round=int(event.round),
                                 amount=int(event.amount))
        self._next_block = head + 1

    def _settle_reveals(self) -> None:
        """Each SecAgg reveal document the ClientApp kept: published if the chain drew this client for the
        round's audit, deleted once the audit passed it by or the round is over (an undrawn update never
        leaves this machine); kept, and asked about again next poll, until then."""
        for task_id, round_, path in kept_reveals(self.config.state_dir):
            try:
                state = settle_reveal(self.chain, self.keypair, self.store, task_id, round_, path.read_bytes())
            except Exception as exc:  # noqa: BLE001 - a refused call or a lost connection: asked again next poll
                log.warning("task %d round %d: the audit reveal failed, trying again: %s", task_id, round_, exc)
                continue
            if not state.final:
                continue
            if state is RevealState.REVEALED:
                log.info("task %d round %d: drawn for the audit, the update is revealed to the validators",
                         task_id, round_)
                self._notify("revealed", task_id=task_id, round=round_)
            path.unlink(missing_ok=True)

    def _finish(self, statuses: dict[int, tuple[str, Any]]) -> None:
        self._stop_child()
        fl = self.chain.federated_tasks
        for task_id in self.config.tasks:
            mine = fl.clients(task_id, self.account)
            if mine is None or bool(mine.withdrawn):
                continue
            try:
                fl.withdraw_stake(self.keypair, task_id)
            except Exception as exc:  # noqa: BLE001 - the bindings' typed errors name the pallet's refusal
                raise ClientDaemonError(f"task {task_id}: withdraw_stake refused: {exc}") from None
            log.info("task %d (%s): withdrew %d", task_id, statuses[task_id][0], int(mine.stake))
            self._notify("withdrawn", task_id=task_id, amount=int(mine.stake))
        self._notify("finished", tasks=sorted(self.config.tasks), joined=sorted(load_tasks(self.config.state_dir)))


__all__ = ["ClientConfig", "ClientDaemon", "ClientDaemonError"]
