"""`LocalMarket`: devnet, a chain connection, the orchestrator and (optionally) Ray in one `with` block,
with the accounts, tasks and daemons a scenario adds to it, all stopped in reverse order at its end."""
from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paratrain._local.cluster import RayCluster
from paratrain._local.errors import HarnessError
from paratrain._local.processes import DaemonProcess, DevnetProcess, OrchestratorProcess
from paratrain._local.threads import DaemonThread, DevnetThread, OrchestratorThread
from paratrain.task_specs import post_task

if TYPE_CHECKING:
    from runtime_bindings.generated import types as t

UNIT = 10**12
TRAINER_STAKE = 1_000 * UNIT
VALIDATOR_STAKE = 100 * UNIT


def dev_keypair(name: str) -> Any:
    """The development account //`name` (Alice, Bob, ... are endowed at genesis)."""
    from runtime_bindings import Keypair

    return Keypair.create_from_uri(f"//{name}")


def capabilities(cpus: int | None = None, memory_mb: int = 8_000, gpus: int = 0, gpu_model: str = "") -> t.Capabilities:
    """The on-chain Capabilities of a local worker: this machine's CPUs unless told otherwise."""
    from runtime_bindings.generated import types as t
    from runtime_bindings.values import Bytes

    return t.Capabilities(cpus or os.cpu_count() or 2, gpus, Bytes(gpu_model.encode()), memory_mb)


def register_account(chain: Any, keypair: Any, role: str, stake: int, caps: Any = None) -> Any:
    """Workers.register `keypair` as a Trainer or Validator with `stake`; the receipt."""
    if role not in ("Trainer", "Validator"):
        raise HarnessError(f"a role is Trainer or Validator, not {role!r}")
    return chain.workers.register(keypair, role, stake, caps if caps is not None else capabilities())


def fund(chain: Any, funder: Any, accounts: list[Any], amount: int) -> None:
    """transfer_keep_alive `amount` from `funder` to each of `accounts` (keypairs or SS58 addresses)."""
    for account in accounts:
        chain.balances.transfer_keep_alive(funder, getattr(account, "ss58_address", account), amount)


class LocalMarket:
    """The chain side of a local market, started on entry:

        with LocalMarket(tmp, challenge_period_ms=0, ray_cpus=2) as market:
            market.register("Bob", "Trainer")
            task_id, receipt = market.post(spec, requester_store)
            worker = market.daemon_thread(WorkerDaemon(DaemonConfig(orchestrator=market.target, ...)), "worker")

    `subprocesses` (the default) runs devnet and the orchestrator as `paratrain devnet|orchestrator`
    processes (a part can be killed, and its CPU is not this process's); otherwise they run on threads here.
    `ray_cpus` starts a local Ray cluster first (before any gRPC thread exists: Ray forks). Everything
    the market started, the daemons included, is stopped in reverse order when the block ends."""

    def __init__(self, root: str | Path, *, subprocesses: bool = True, challenge_period_ms: int = 0,
                 devnet_args: tuple[str, ...] = (), ray_cpus: int | None = None,
                 ray_temp_dir: Path | None = None) -> None:
        self.root = Path(root)
        self.subprocesses, self.challenge_period_ms = subprocesses, challenge_period_ms
        self.devnet_args, self.ray_cpus, self.ray_temp_dir = devnet_args, ray_cpus, ray_temp_dir
        self._stack = ExitStack()
        self.ray: RayCluster | None = None
        self.devnet: DevnetProcess | DevnetThread | None = None
        self.orchestrator: OrchestratorProcess | OrchestratorThread | None = None
        self.chain: Any = None

    @property
    def chain_url(self) -> str:
        if self.devnet is None:
            raise HarnessError("the market has not started")
        return self.devnet.ws_url

    @property
    def target(self) -> str:
        """The orchestrator's gRPC address."""
        if self.orchestrator is None:
            raise HarnessError("the market has not started")
        return self.orchestrator.target

    def __enter__(self) -> LocalMarket:
        from runtime_bindings import Chain

        self.root.mkdir(parents=True, exist_ok=True)
        try:
            if self.ray_cpus is not None:
                self.ray = self._stack.enter_context(RayCluster(self.ray_temp_dir, cpus=self.ray_cpus))
            if self.subprocesses:
                self.devnet = self._stack.enter_context(
                    DevnetProcess("--challenge-period-ms", str(self.challenge_period_ms), *self.devnet_args))
            else:
                if self.devnet_args:
                    raise HarnessError("devnet arguments need a devnet subprocess (subprocesses=True)")
                self.devnet = self._stack.enter_context(DevnetThread(0, self.challenge_period_ms))
            self.chain = self._stack.enter_context(Chain.connect(self.devnet.ws_url, timeout=30))
            db = self.root / "orchestrator.db"
            self.orchestrator = self._stack.enter_context(
                OrchestratorProcess(self.devnet.ws_url, db) if self.subprocesses
                else OrchestratorThread(self.devnet.ws_url, db))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    # Accounts and tasks -------------------------------------------------------------------------
    def register(self, name: str, role: str, stake: int | None = None, caps: Any = None) -> Any:
        """Register //`name` as a Trainer or Validator (default stakes: TRAINER_STAKE, VALIDATOR_STAKE)."""
        keypair = dev_keypair(name)
        register_account(self.chain, keypair, role, stake if stake is not None else
                 (TRAINER_STAKE if role == "Trainer" else VALIDATOR_STAKE), caps)
        return keypair

    def post(self, spec: Any, store: Any, *, requester: str = "Alice", bounty: int = 10 * UNIT,
             **options: Any) -> tuple[int, Any]:
        """Store the spec document in the requester's `store` and create_task for it (task_specs.post_task's
        `options`); (the task's id, the receipt)."""
        spec_hash = store.put(spec.canonical_bytes())
        return post_task(self.chain, dev_keypair(requester), spec, store.uri(spec_hash), bounty=bounty,
                         spec_hash=spec_hash, **options)

    # Daemons ---------------------------------------------------------------------------------
    def daemon_thread(self, daemon: Any, name: str) -> DaemonThread:
        """Start a WorkerDaemon or ValidatorDaemon on a thread here (subscribe to it first); stopped with the
        market."""
        return self._stack.enter_context(DaemonThread(daemon, name))

    def daemon_process(self, kind: str, args: list[str], log_path: str | Path) -> DaemonProcess:
        """Start `paratrain worker|validator ARGS` against this market's chain; stopped with the market.
        `--chain` (and for a worker `--orchestrator`) are added here, and `--metrics-port 0` (any free port:
        two daemons on one machine cannot share the default) unless ARGS say otherwise about metrics."""
        given = ["--chain", self.chain_url] + (["--orchestrator", self.target] if kind == "worker" else [])
        if not any(a.split("=", 1)[0] in ("--metrics-port", "--no-metrics") for a in args):
            given += ["--metrics-port", "0"]
        return self._stack.enter_context(DaemonProcess(kind, [*given, *args], log_path))
