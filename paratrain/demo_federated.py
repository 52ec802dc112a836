"""`paratrain demo --federated`: a federated task from posting to payout, on this machine, with real processes.

What runs (docs/demo.md, "The federated demo"):

- devnet on a thread of this process (instant seal), one artifact store directory all parties name;
- //Alice, the requester, splits scikit-learn's digits into a stratified holdout and eight non-IID
  Dirichlet(alpha) shards (workers.fl.partition), and posts **two** tasks with the same spec but the rule:
  FedAvg, and the robust rule (`--rule`, FedMedian by default); she reveals the holdout once round 1 of a
  task is committed;
- eight data owners join both tasks with their shard's hash and size; each runs one Flower SuperNode
  process (workers.fl.flower_procs) to the aggregator's published endpoint, its ClientApp signing its updates
  with the owner's key; clients 6 and 7 poison (`scale:1000`, `sign-flip`);
- //Bob, a Trainer, runs the worker's aggregator role (workers.fl.aggregator, what `paratrain worker`
  starts): it claims both tasks, runs one SuperLink process and a Flower run per task, and commits every round;
- //Charlie and //Dave run validator daemons on threads: each round is recomputed, measured on the holdout,
  scored client by client, and voted on; a quorum of two pays.

Live lines come from the chain (rounds committed, verdicts, payouts and slashes); at the end the demo draws
the validators' measured accuracy per round for both rules (PNG) and prints what every client was paid or
slashed. It exits 0 only when every honest client was paid in the robust task and neither poisoner was paid
in either, and it stops every process it started (Ctrl-C included).
"""
from __future__ import annotations

import logging
import shutil
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

log = logging.getLogger("paratrain.demo")

CLIENTS = 8
POISONERS = {6: "scale:1000", 7: "sign-flip"}
UNIT = 10**12
BOUNTY = 100 * UNIT
CLIENT_STAKE = 10 * UNIT
METRIC_SCALE = 1_000_000
PNG_FILE = "fl-accuracy.png"
EXIT_OK, EXIT_FAILED = 0, 1


@dataclass
class FederatedDemoOptions:
    rule: str = "fedmedian"
    alpha: float = 0.5
    rounds: int = 5
    png: str = PNG_FILE
    port: int = 0
    seed: int = 1
    keep: bool = False
    timeout_s: float = 1800.0
    round_timeout_s: float = 300.0   # how long a round waits for its clients (a loaded 2-core machine is slow)
    secagg: bool = False             # one FedAvg task under SecAgg+ instead (paratrain/demo_secagg.py)
    dp_epsilon: float | None = None  # with secagg: every client under local DP-SGD (paratrain/demo_private.py)


@dataclass
class TaskSeen:
    """One task as the demo follows it on chain."""

    rule: str
    task_id: int
    revealed: bool = False
    rounds: dict[int, str] = field(default_factory=dict)         # round -> status seen last
    accuracy: dict[int, float] = field(default_factory=dict)     # round -> median measured metric
    status: str = "Joining"


class DemoFailed(RuntimeError):
    """Something the demo needs did not happen (one line, no traceback)."""


class FederatedDemo:
    poisoners: dict[int, str] = POISONERS
    checks = "recompute, holdout, leave-one-out"

    def __init__(self, options: FederatedDemoOptions, console: Console) -> None:
        self.options, self.console = options, console
        self.started = time.monotonic()
        self.chain: Any = None
        self.tasks: list[TaskSeen] = []
        self.clients: list[Any] = []
        self.shards: list[Any] = []

    def say(self, text: str, mark: str = "[green]✓[/green]") -> None:
        self.console.print(f"[dim]{time.monotonic() - self.started:6.1f}s[/dim] {mark} {text}", highlight=False,
                           soft_wrap=True)

    # The run -------------------------------------------------------------------------------------------
    def run(self, stack: ExitStack) -> int:
        from paratrain.local import DevnetThread
        from runtime_bindings import Chain

        opts = self.options
        root = Path(tempfile.mkdtemp(prefix="paratrain-fl-demo-"))
        if opts.keep:
            stack.callback(lambda: self.say(f"kept the temporary directory {root}", "[cyan]i[/cyan]"))
        else:
            stack.callback(shutil.rmtree, root, True)
        self.root = root
        devnet = stack.enter_context(DevnetThread(opts.port))
        self.say(f"devnet (instant seal) at [bold]{devnet.url}[/bold]")
        self.chain = Chain.connect(devnet.url, timeout=30)
        stack.callback(self.chain.close)
        from workers.artifacts import ArtifactStore

        self.store = ArtifactStore(str(root / "store"))
        self._accounts()
        self._post_tasks()
        aggregator = self._start_aggregator(devnet.url)
        stack.callback(aggregator.stop)
        endpoint = self._wait_for_claims()
        self._start_clients(stack, endpoint)
        self._start_validators(stack, devnet.url)
        stack.callback(aggregator.halt)  # first on the way out: no run is started again while the rest stops
        self._follow()
        return self._settle()

    # Parties ------------------------------------------------------------------------------------------
    def _accounts(self) -> None:
        from paratrain.local import TRAINER_STAKE, VALIDATOR_STAKE, capabilities, dev_keypair, fund, register_account
        from runtime_bindings import Keypair

        self.alice, self.bob = dev_keypair("Alice"), dev_keypair("Bob")
        self.validators = [dev_keypair("Charlie"), dev_keypair("Dave")]
        self.clients = [Keypair.create_from_uri(f"//FlDemoClient{i}") for i in range(CLIENTS)]
        fund(self.chain, self.alice, self.clients, 100 * UNIT)
        register_account(self.chain, self.bob, "Trainer", TRAINER_STAKE, capabilities(2, memory_mb=4_096))
        for validator in self.validators:
            register_account(self.chain, validator, "Validator", VALIDATOR_STAKE, capabilities(2, memory_mb=4_096))
        self.say(f"registered: //Bob as Trainer (the aggregator), //Charlie and //Dave as Validators; {CLIENTS} "
                 f"data owners funded")

    def _post_tasks(self) -> None:
        from workers.fl.spec import build_spec

        opts = self.options
        self._split()
        self.say(f"//Alice split digits: holdout of {self.split.holdout_examples}, eight non-IID shards "
                 f"(alpha {opts.alpha:g}) of {self._sizes()} examples; clients 6 and 7 will poison "
                 f"({POISONERS[6]}, {POISONERS[7]})")
        # every client in every round: training is seeded, so the rounds, verdicts and payouts are the same on
        # every run (with a minimum of 6, round 1 took whichever six answered first, and one such CI run left an
        # honest client unpaid in the robust task)
        for rule in ("fedavg", opts.rule):
            self._post(build_spec(recipe="digits_mlp", rule=rule, rounds=opts.rounds,
                                  min_clients_per_round=len(self.clients),
                                  seed=opts.seed, round_timeout_s=opts.round_timeout_s,
                                  hyperparameters={"local_epochs": 3, "lr": 0.01}))
        self._until_join_deadline()

    def _split(self) -> None:
        """//Alice's split of the digits (the poisoners' shards marked) and her holdout commitment."""
        from paratrain.commands.task import holdout_commitment
        from workers.fl.partition import federated_split

        opts = self.options
        split = federated_split("digits", CLIENTS, opts.alpha, opts.seed, attacks=self.poisoners)
        self.split = split
        holdout_hash = self.store.put(split.holdout)
        self.holdout = ("ab" * 32, holdout_hash, split.holdout_size, self.store.uri(holdout_hash))
        self.commitment = "0x" + holdout_commitment(bytes.fromhex(self.holdout[0]), bytes.fromhex(holdout_hash),
                                                    split.holdout_size, self.holdout[3].encode()).hex()

    def _sizes(self) -> str:
        return ", ".join(str(s.num_examples) for s in self.split.shards)

    def _post(self, spec: Any) -> int:
        """Post `spec` (create_private_task when it has a dp object, else create_secagg_task when it has a secagg
        object) and join every data owner to it."""
        from paratrain.fl_specs import FlTaskTerms, chain_dp_spec, chain_fl_task_spec, chain_secagg_spec
        from workers.fl.arrays import model_bytes
        from workers.fl.client_tasks import JoinedTask, record_task
        from workers.fl.model import initial_model

        document = spec.canonical_bytes()
        spec_hash = self.store.put(document)
        initial_hash = self.store.put(model_bytes(initial_model(spec)))
        on_chain = chain_fl_task_spec(spec, self.store.uri(spec_hash), spec_hash=spec_hash,
                                      initial_model_hash=initial_hash,
                                      terms=FlTaskTerms(max_clients=CLIENTS, client_share=700_000_000,
                                                        min_client_stake=CLIENT_STAKE))
        now, fl = self.chain.best_number(), self.chain.federated_tasks
        windows = (BOUNTY, now + 2 * CLIENTS + 4, now + 5_000, 2, self.commitment)
        secagg = None if spec.secagg is None else chain_secagg_spec(spec.secagg)
        if spec.dp is not None:
            receipt = fl.create_private_task(self.alice, on_chain, chain_dp_spec(spec.dp), secagg, *windows)
        elif secagg is not None:
            receipt = fl.create_secagg_task(self.alice, on_chain, secagg, *windows)
        else:
            receipt = fl.create_task(self.alice, on_chain, *windows)
        task_id = int(next(e.task for e in receipt.events if e.name == "TaskCreated"))
        label = spec.rule.text + ("+secagg" if spec.secagg is not None else "") + ("+dp" if spec.dp is not None else "")
        self.tasks.append(TaskSeen(label, task_id))
        for keypair, shard in zip(self.clients, self.split.shards, strict=True):
            state = self.root / f"client-{shard.client}"
            state.mkdir(parents=True, exist_ok=True)
            data = state / "shard.ptts"
            data.write_bytes(shard.data)
            record_task(state, JoinedTask(task_id=task_id, spec=document, spec_hash=spec.spec_hash_hex(),
                                          data=data, data_hash=shard.hash, num_examples=shard.num_examples))
            fl.join(keypair, task_id, "0x" + shard.hash, shard.num_examples, CLIENT_STAKE)
        self.say(f"//Alice posted task [bold]#{task_id}[/bold] ({label}, {spec.rounds} rounds, bounty "
                 f"{BOUNTY // UNIT} PARA); all {CLIENTS} data owners joined with a stake of "
                 f"{CLIENT_STAKE // UNIT} PARA")
        return task_id

    def _until_join_deadline(self) -> None:
        last = max(self.chain.federated_tasks.tasks(t.task_id).join_deadline for t in self.tasks)
        while self.chain.best_number() < last:  # instant seal: blocks come with extrinsics
            self.chain.system.remark(self.alice, b"paratrain demo: join deadline")

    def _start_aggregator(self, url: str) -> Any:
        from workers.fl.aggregator import Aggregator, AggregatorConfig

        store = str(self.root / "store")
        config = AggregatorConfig(chain_url=url, state_dir=str(self.root / "aggregator"), store=store,
                                  trusted_stores=(store,), poll_s=0.5,
                                  max_relaunches=8)  # its first runs may give up before the SuperNodes are up
        from runtime_bindings import Chain

        self.aggregator = Aggregator(Chain.connect(url, timeout=30), self.bob, config).start()
        return self.aggregator

    def _wait_for_claims(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            statuses = [self.chain.federated_tasks.tasks(t.task_id).status for t in self.tasks]
            if all(s.VARIANT == "Running" for s in statuses):
                endpoint = bytes(statuses[0].endpoint).decode()
                which = "both tasks" if len(self.tasks) == 2 else "the task"
                self.say(f"//Bob claimed {which} as their aggregator; SuperLink at [bold]{endpoint}[/bold]")
                return endpoint
            time.sleep(0.5)
        raise DemoFailed("the aggregator did not claim the tasks within 60 s")

    def _start_clients(self, stack: ExitStack, endpoint: str) -> None:
        from workers.fl.child_key import child_env
        from workers.fl.flower_procs import SuperNodeProcess

        nodes = []
        for keypair, shard in zip(self.clients, self.split.shards, strict=True):
            state = self.root / f"client-{shard.client}"
            config = {"paratrain-state": str(state), "paratrain-data": str(state / "shard.ptts")}
            if shard.attack:
                config["paratrain-attack"] = shard.attack
            node = SuperNodeProcess(endpoint, state / "supernode", node_config=config,
                                    log_path=state / "supernode.log", env=child_env(keypair, {}))
            nodes.append(node)
        stack.callback(_all, nodes, lambda node: node.stop())
        for node in nodes:  # from this thread: a child started with PR_SET_PDEATHSIG dies with the thread
            node.start(timeout=180)
        self.nodes = nodes
        self.say(f"{CLIENTS} SuperNodes connected (node ids {', '.join(str(n.node_id) for n in nodes)})")

    def _start_validators(self, stack: ExitStack, url: str) -> None:
        from paratrain.local import DaemonThread
        from workers.validator import ValidatorConfig, ValidatorDaemon

        store = str(self.root / "store")
        for i, keypair in enumerate(self.validators):
            config = ValidatorConfig(chain_url=url, key="", store=store, trusted_stores=(store,),
                                     state_dir=str(self.root / f"validator-{i}"),
                                     from_block=self.chain.finalized_number())
            thread = DaemonThread(ValidatorDaemon(config, keypair=keypair), f"validator-{i}")
            stack.enter_context(thread)
        self.say(f"//Charlie and //Dave validate every round ({self.checks}), 2 of 2 decide")

    # Following --------------------------------------------------------------------------------------------
    def _follow(self) -> None:
        deadline = time.monotonic() + self.options.timeout_s
        while time.monotonic() < deadline:
            if all(t.status in ("Completed", "Expired", "Cancelled") for t in self.tasks):
                return
            for seen in self.tasks:
                self._observe(seen)
            time.sleep(1.0)
        raise DemoFailed(f"the tasks did not end within {self.options.timeout_s:g} s")

    def _observe(self, seen: TaskSeen) -> None:
        fl = self.chain.federated_tasks
        task = fl.tasks(seen.task_id)
        status = str(task.status.VARIANT)
        if status != seen.status:
            seen.status = status
            if status in ("Completed", "Expired"):
                self.say(f"task #{seen.task_id} ({seen.rule}): {status}")
        if not seen.revealed and int(task.last_committed) >= 1:
            salt, digest, size, uri = self.holdout
            fl.reveal_holdout(self.alice, seen.task_id, "0x" + salt, "0x" + digest, size, uri.encode())
            seen.revealed = True
            self.say(f"//Alice revealed the holdout of task #{seen.task_id} (round 1 is committed)")
        for number, record in sorted(fl.rounds.entries(seen.task_id), key=lambda kv: int(kv[0])):
            number, state = int(number), str(record.status.VARIANT)
            if seen.rounds.get(number) == state:
                continue
            first_sight = number not in seen.rounds
            seen.rounds[number] = state
            if state == "Pending" or first_sight:
                self.say(f"task #{seen.task_id} ({seen.rule}) round {number}: committed with "
                         f"{len(record.participants)} signed updates, global model "
                         f"{bytes(record.global_model_hash).hex()[:12]}…")
                if state == "Pending":
                    continue
            measured = sorted(int(v.measured_metric) for _, v in fl.round_verdicts.entries(seen.task_id, number))
            if measured:
                seen.accuracy[number] = measured[(len(measured) - 1) // 2] / METRIC_SCALE
            accuracy = f", accuracy {seen.accuracy[number]:.3f}" if number in seen.accuracy else ""
            self.say(f"task #{seen.task_id} ({seen.rule}) round {number}: {state}{accuracy}",
                     "[green]✓[/green]" if state == "Accepted" else "[yellow]![/yellow]")

    # The end ----------------------------------------------------------------------------------------------
    def _settle(self) -> int:
        for seen in self.tasks:
            self._observe(seen)
        png = Path(self.options.png).expanduser().resolve()
        self._plot(png)
        fl = self.chain.federated_tasks
        table = Table(title="what each data owner got (PARA)")
        table.add_column("client")
        table.add_column("role")
        for seen in self.tasks:
            table.add_column(f"#{seen.task_id} {seen.rule}: paid")
            table.add_column("slashed")
        ok = True
        robust = self.tasks[1]
        for i, keypair in enumerate(self.clients):
            poisoner = i in POISONERS
            row = [f"client {i}", POISONERS[i] if poisoner else "honest"]
            for seen in self.tasks:
                info = fl.clients(seen.task_id, keypair.ss58_address)
                paid, slashed = int(info.paid), CLIENT_STAKE - int(info.stake)
                row += [f"{paid / UNIT:,.4f}", f"{slashed / UNIT:,.4f}" if slashed else "-"]
                if poisoner and paid > 0:
                    ok = False
                if not poisoner and seen is robust and paid == 0:
                    ok = False
            table.add_row(*row)
        self.console.print(table)
        self.say(f"accuracy per round for {self.tasks[0].rule} and {robust.rule}: [bold]{png}[/bold]")
        if not ok:
            self.say("[red]an honest client went unpaid in the robust task, or a poisoner was paid[/red]",
                     "[red]✗[/red]")
            return EXIT_FAILED
        self.say("every honest client was paid in the robust task; neither poisoner was paid in either")
        return EXIT_OK

    def _plot(self, png: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        fig, ax = plt.subplots(figsize=(6, 4))
        for seen in self.tasks:
            rounds = sorted(seen.accuracy)
            ax.plot(rounds, [seen.accuracy[r] for r in rounds], marker="o", label=seen.rule)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("round")
        ax.set_ylabel("accuracy on the holdout (validators)")
        ax.set_ylim(0, 1)
        ax.set_title(f"digits, {CLIENTS} clients ({len(self.poisoners)} poisoning), alpha {self.options.alpha:g}")
        ax.legend()
        png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png, dpi=100, bbox_inches="tight")
        plt.close(fig)


def _all(nodes: list[Any], action: Any) -> None:
    """`action` on every node at once (stopping each waits for its processes)."""
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(action, nodes))


def run_federated_demo(options: FederatedDemoOptions, console: Console | None = None) -> int:
    """Run the federated demo; its exit status (0: honest clients paid in the robust task, poisoners not).
    Everything it started is stopped on the way out, Ctrl-C included (status 130)."""
    from paratrain.demo import _ignore_interrupts, _interrupt_on_sigterm

    console = console or Console()
    if options.dp_epsilon is not None:
        from paratrain.demo_private import PrivateSecAggDemo

        demo: FederatedDemo = PrivateSecAggDemo(options, console)
    elif options.secagg:
        from paratrain.demo_secagg import SecAggDemo

        demo = SecAggDemo(options, console)
    else:
        demo = FederatedDemo(options, console)
    code = EXIT_FAILED
    previous = _interrupt_on_sigterm()  # SIGTERM stops everything as Ctrl-C does
    with ExitStack() as stack:  # each Flower child's stop ends its group and every process carrying its marker
        try:
            code = demo.run(stack)
        except DemoFailed as exc:
            demo.say(f"[red]the demo failed:[/red] {exc}", "[red]✗[/red]")
        except KeyboardInterrupt:
            code = 130
            demo.say("interrupted: stopping the SuperNodes, the aggregator, the validators and devnet",
                     "[yellow]![/yellow]")
        except Exception as exc:  # noqa: BLE001 - one line, not a traceback
            log.debug("the federated demo failed", exc_info=True)
            demo.say(f"[red]the demo failed:[/red] {type(exc).__name__}: {exc}", "[red]✗[/red]")
        finally:
            _ignore_interrupts()  # the clean-up runs to its end
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
    demo.say("everything stopped", "[dim]·[/dim]")
    return code
