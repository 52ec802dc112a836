"""`paratrain demo`: the whole market in one command, on embedded defaults.

One process starts every party and one real task goes through the loop::

    devnet (thread, free port) <- orchestrator (own event loop thread: indexer + gRPC worker API)
    Ray: a local cluster (2 CPUs), torn down at the end
    //Alice  requester: packages the digits data set and the task spec into her artifact store, posts
             create_task (digits_mlp, bounty, accuracy target = the recipe's 0.95, 2 validators)
    //Bob    Trainer (registered with a stake): the worker daemon in a thread, Ray Train DDP (2 workers)
    //Charlie, //Dave  Validators (registered with a stake): validator daemons in threads

devnet runs with a challenge period (5 s by default, `--challenge-period-ms`): the quorum of accepts makes
the result Approved, and once the period is over unchallenged the worker daemon sends finalize_result and
is paid. Progress is followed live from the orchestrator's WatchTask stream (claim, step/epoch/loss,
heartbeats, submission, verdicts, approval and its challenge period, payout). The end: the verdicts, the payout, the on-chain model record, every
party's free and reserved balance before and after (checked against the payout and the fees each paid),
and the training curve as a PNG. Exit status 0 only when TaskAccepted paid the worker and the worker's
balance shows it; 1 with the reason otherwise; 130 on Ctrl-C (or SIGTERM). Every thread, the Ray cluster
and the temporary directory (artifact stores, states, Ray's session) are gone when it returns.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import queue
import shutil
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from paratrain.argtypes import concentration, count, non_negative, port_or_any, positive, positive_real
from paratrain.commands.fl import rule as fl_rule
from paratrain.local import (
    DEVNET_DEFAULT_CHALLENGE_PERIOD_MS,
    DaemonThread,
    DevnetThread,
    HarnessError,
    OrchestratorThread,
    RayCluster,
    capabilities,
    chain_task_spec,
    dev_keypair,
    register_account,
)

UNIT = 10**12
SYMBOL = "PARA"
BOUNTY = 100 * UNIT
TRAINER_STAKE = 1_000 * UNIT
VALIDATOR_STAKE = 100 * UNIT
REQUESTER, TRAINER, VALIDATORS = "Alice", "Bob", ("Charlie", "Dave")
RECIPE = "digits_mlp"
DEFAULT_WORKERS = 1           # Ray Train workers of the training run (2+: DDP; the spot checks then replay on Ray)
CHECKPOINT_EVERY = 11         # optimizer steps (half an epoch of digits): the curve's resolution
DEFAULT_EPOCHS = 8
DEFAULT_CHALLENGE_PERIOD_MS = DEVNET_DEFAULT_CHALLENGE_PERIOD_MS  # long enough to read, short enough to wait for
CURVE_FILE = "paratrain-demo-curve.png"
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
FAILURES = ("WorkerSlashed", "TaskReopened", "VerificationTimedOut", "TaskExpired", "TaskCancelled",
            "ClaimReleased", "LeaseExpired", "ChallengeUpheld")


class DemoFailed(Exception):
    """The loop did not close: the message says where."""


@dataclass
class DemoOptions:
    port: int = 0
    epochs: int = DEFAULT_EPOCHS
    out: str = "."
    keep: bool = False
    timeout_s: float = 600.0
    workers: int = DEFAULT_WORKERS
    spot_checks: int = 2
    challenge_period_ms: int = DEFAULT_CHALLENGE_PERIOD_MS


# Command line ------------------------------------------------------------------------------------
def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="run the whole market once: devnet, orchestrator, Ray, a worker and "
                                            "validators; one digits task posted, trained, verified and paid")
    add_demo_arguments(demo).set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    """`paratrain demo`: run_demo on the parsed options; it ends the process itself (see run_demo).
    `--federated` runs the federated demo instead (paratrain.demo_federated), `--collab` the collaborative-model
    one (paratrain.demo_collab), `--market` the prediction market (paratrain.demo_market)."""
    if getattr(args, "secagg", False) and not getattr(args, "federated", False):
        from paratrain.cli import CliError

        raise CliError("--secagg runs with --federated: paratrain demo --federated --secagg")
    dp_epsilon = getattr(args, "dp_epsilon", None)
    if dp_epsilon is not None:
        from paratrain.cli import CliError
        from paratrain.demo_private import BUDGET_EPSILON

        if not args.secagg:
            raise CliError("--dp-epsilon runs with --federated --secagg: paratrain demo --federated --secagg "
                           "--dp-epsilon 3")
        if dp_epsilon > BUDGET_EPSILON:
            raise CliError(f"--dp-epsilon {dp_epsilon:g} is more than the budget of epsilon {BUDGET_EPSILON:g} each "
                           "data owner sets for its shard")
    if getattr(args, "market", False):
        from paratrain.demo_market import MarketDemoOptions, run_market_demo

        return run_market_demo(MarketDemoOptions(port=args.port, out=args.out, samples=args.samples))
    if getattr(args, "collab", False):
        from paratrain.demo_collab import CollabDemoOptions, run_collab_demo

        return run_collab_demo(CollabDemoOptions(port=args.port, out=args.out, samples=args.samples))
    if getattr(args, "federated", False):
        from paratrain.demo_federated import FederatedDemoOptions, run_federated_demo

        return run_federated_demo(FederatedDemoOptions(rule=args.rule, alpha=args.alpha, rounds=args.rounds,
                                                       png=args.png, port=args.port, keep=args.keep,
                                                       secagg=args.secagg, dp_epsilon=dp_epsilon))
    return run_demo(options=options_from_args(args))


def add_demo_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--port", type=port_or_any, default=0, help="devnet port (default: any free port)")
    parser.add_argument("--epochs", type=positive, default=DEFAULT_EPOCHS,
                        help=f"training epochs of the digits classifier (default {DEFAULT_EPOCHS})")
    parser.add_argument("--out", default=".", metavar="DIR",
                        help=f"where the training curve {CURVE_FILE} is written (default: here)")
    parser.add_argument("--workers", type=positive, default=DEFAULT_WORKERS, metavar="N",
                        help="Ray Train workers for the training run (default 1; 2 or more train with torch DDP and "
                             "the validators replay their spot checks on Ray too, which takes minutes longer)")
    parser.add_argument("--challenge-period-ms", type=non_negative, default=DEFAULT_CHALLENGE_PERIOD_MS,
                        metavar="MS", help="devnet's challenge period: how long an approved result may be challenged "
                                           f"before it pays (default {DEFAULT_CHALLENGE_PERIOD_MS}; 0: pay at once)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (artifact stores, daemon states, Ray logs)")
    federated = parser.add_argument_group("federated", "paratrain demo --federated: eight data owners (two "
                                          "poisoning), one aggregator, two validators; FedAvg against --rule")
    federated.add_argument("--federated", action="store_true", help="run the federated demo (docs/demo.md)")
    federated.add_argument("--rule", type=fl_rule, default="fedmedian",
                           help="the robust rule set against FedAvg (default fedmedian)")
    federated.add_argument("--alpha", type=concentration, default=0.5,
                           help="Dirichlet concentration of the non-IID split (default 0.5)")
    federated.add_argument("--rounds", type=count, default=5, metavar="N", help="rounds per task (default 5)")
    federated.add_argument("--secagg", action="store_true",
                           help="with --federated: one FedAvg task under SecAgg+, half of each round audited, one "
                                "client sending an unclipped update (docs/secagg.md)")
    federated.add_argument("--dp-epsilon", type=positive_real, default=None, metavar="E",
                           help="with --federated --secagg: every client trains with DP-SGD, spending at most "
                                "epsilon E of its own budget of 8 (docs/dp-sgd.md)")
    federated.add_argument("--png", default="fl-accuracy.png", metavar="PATH",
                           help="where the accuracy-per-round picture is written (default fl-accuracy.png)")
    collab = parser.add_argument_group("collab", "paratrain demo --collab: DeCAI's experiment, a model on chain fed "
                                       "by a good and a bad agent under Deposit-Refund-Take (docs/collab.md)")
    collab.add_argument("--collab", action="store_true", help="run the collaborative-model demo")
    collab.add_argument("--market", action="store_true",
                        help="run DeCAI's prediction market: a bounty, a good and a bad contributor, two validators "
                             "whose quorum settles it on chain (writes market-payouts.png)")
    collab.add_argument("--samples", type=positive, default=None, metavar="N",
                        help="with --collab: stream only the first N examples (default all 420); with --market: "
                             "N contributions (default 60)")
    return parser


def options_from_args(args: argparse.Namespace) -> DemoOptions:
    return DemoOptions(port=getattr(args, "port", 0), epochs=getattr(args, "epochs", DEFAULT_EPOCHS),
                       out=getattr(args, "out", "."), keep=getattr(args, "keep", False),
                       workers=getattr(args, "workers", DEFAULT_WORKERS),
                       challenge_period_ms=getattr(args, "challenge_period_ms", DEFAULT_CHALLENGE_PERIOD_MS))


# What the demo saw ---------------------------------------------------------------------------------
@dataclass
class Observed:
    task_id: int = 0
    claimed_block: int | None = None
    heartbeats: int = 0
    curve: list[dict[str, float]] = field(default_factory=list)   # {step, epoch, loss, accuracy, val_loss}
    submitted: dict[str, Any] | None = None
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    approved: dict[str, Any] | None = None      # ResultApproved: {block, challenge_until, ...}
    accepted: dict[str, Any] | None = None
    failure: str | None = None
    total_steps: int = 0


def _name_of(accounts: dict[str, Any], address: str) -> str:
    for name, kp in accounts.items():
        if kp.ss58_address == address:
            return f"//{name}"
    return address[:10] + "…"


def _para(planck: int, signed: bool = False) -> str:
    return f"{planck / UNIT:+,.6f}" if signed else f"{planck / UNIT:,.6f}"


def _para4(planck: int) -> str:
    return f"{planck / UNIT:,.4f}"


def _short(h: Any, n: int = 18) -> str:
    h = str(h)  # a chain hash (H256) or the stream's 0x-hex
    return h if len(h) <= n else h[:n] + "…"


# The demo ------------------------------------------------------------------------------------------
class Demo:
    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.options, self.console = options, console
        self.started = time.monotonic()
        self.accounts = {n: dev_keypair(n) for n in (REQUESTER, TRAINER, *VALIDATORS)}
        self.roles = {REQUESTER: "requester", TRAINER: "worker", **{v: "validator" for v in VALIDATORS}}
        self.seen = Observed()
        self.events: queue.Queue[Any] = queue.Queue()
        self.chain: Any = None
        self.tmp: Path | None = None
        self.worker: DaemonThread | None = None
        self.validators: dict[str, DaemonThread] = {}
        self.votes: dict[str, dict[int, dict[str, Any]]] = {}  # validator -> task -> its "vote" event

    # Output ----------------------------------------------------------------------------------
    def say(self, text: str, mark: str = "[green]✓[/green]") -> None:
        # soft_wrap: a line (a failure's message above all) stays one line at any terminal width
        self.console.print(f"[dim]{time.monotonic() - self.started:6.1f}s[/dim] {mark} {text}", highlight=False,
                           soft_wrap=True)

    # Set-up ----------------------------------------------------------------------------------
    def run(self, stack: ExitStack) -> int:
        opts = self.options
        out_dir = Path(opts.out).expanduser().resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="paratrain-demo-"))
        if opts.keep:
            stack.callback(lambda: self.say(f"kept the temporary directory {self.tmp}", "[cyan]i[/cyan]"))
        else:
            stack.callback(shutil.rmtree, self.tmp, True)

        # Ray first: its processes are forked before any gRPC thread exists
        stack.enter_context(RayCluster(self.tmp / "r", cpus=max(2, opts.workers)))
        stack.callback(self._stop_daemons)  # before Ray goes: the daemons may be inside a Ray call
        self.say(f"Ray: a local cluster with {max(2, opts.workers)} CPUs")

        devnet = stack.enter_context(DevnetThread(opts.port, opts.challenge_period_ms))
        period = f"challenge period {opts.challenge_period_ms / 1000:g} s" if opts.challenge_period_ms \
            else "no challenge period"
        self.say(f"devnet (instant seal, {period}) at [bold]{devnet.url}[/bold]")
        from runtime_bindings import Chain

        self.chain = Chain.connect(devnet.url, timeout=30)
        stack.callback(self.chain.close)

        orch = stack.enter_context(OrchestratorThread(devnet.url, self.tmp / "orchestrator.db"))
        self.say(f"orchestrator: chain indexer + gRPC worker API at [bold]{orch.target}[/bold]")

        self._register()
        self.before = self._balances()
        spec, total = self._post_task()
        self.seen.total_steps = total
        self._start_daemons(orch.target)
        watch = asyncio.run_coroutine_threadsafe(self._watch(orch.target, self.seen.task_id), orch.loop)
        stack.callback(watch.cancel)
        self._follow(spec)
        return self._settle(spec, out_dir)

    def _register(self) -> None:
        caps = capabilities(max(2, self.options.workers), memory_mb=4_096)
        chain, kp = self.chain, self.accounts
        register_account(chain, kp[TRAINER], "Trainer", TRAINER_STAKE, caps)
        for name in VALIDATORS:
            register_account(chain, kp[name], "Validator", VALIDATOR_STAKE, caps)
        self.say(f"registered on chain: //{TRAINER} as Trainer (stake {TRAINER_STAKE // UNIT:,} {SYMBOL}), "
                 + ", ".join(f"//{v}" for v in VALIDATORS)
                 + f" as Validators (stake {VALIDATOR_STAKE // UNIT:,} {SYMBOL} each)")

    def _post_task(self) -> tuple[Any, int]:
        from workers import ArtifactStore, DatasetRef, Evaluation, Limits, TaskSpec, add_dataset
        from workers.engine import total_steps
        from workers.recipes import get_recipe

        store = ArtifactStore(self.tmp / "alice-store")
        digest, uri = add_dataset("digits", store)
        target = get_recipe(RECIPE).expected
        spec = TaskSpec(recipe=RECIPE, dataset=DatasetRef(digest, uri), evaluation=Evaluation("accuracy", target),
                        hyperparameters={"epochs": self.options.epochs}, seed=11, checkpoint_every=CHECKPOINT_EVERY,
                        limits=Limits(timeout_s=300, memory_mb=1024))
        spec_hash = store.put(spec.canonical_bytes())
        on_chain = chain_task_spec(spec, store.uri(spec_hash), spec_hash=spec_hash)
        self.validators_from = self.chain.finalized_number()
        receipt = self.chain.task_bounties.create_task(self.accounts[REQUESTER], on_chain, BOUNTY, 0,
                                                       self.chain.best_number() + 1_000, len(VALIDATORS), None)
        self.seen.task_id = next(e.task_id for e in receipt.events if e.name == "TaskCreated")
        self.posted_block = receipt.block_number
        total = total_steps(spec, store, self.options.workers)
        self.say(f"//{REQUESTER} posted task [bold]#{self.seen.task_id}[/bold] in block {receipt.block_number}: "
                 f"{RECIPE} on digits ({self.options.epochs} epochs, {total} steps), target accuracy ≥ {target}, "
                 f"bounty {BOUNTY // UNIT:,} {SYMBOL}, {len(VALIDATORS)} validators required")
        return spec, total

    def _start_daemons(self, target: str) -> None:
        from workers.daemon import DaemonConfig, WorkerDaemon
        from workers.validator import ValidatorConfig, ValidatorDaemon

        tmp, url = self.tmp, self.chain.url
        # each party opens its own store and the stores it was told to trust (the URI policy, docs/security.md):
        # the worker reads the requester's spec and data set; validators also copy the worker's checkpoints
        requester, worker = str(tmp / "alice-store"), str(tmp / "bob-store")
        for name in VALIDATORS:
            config = ValidatorConfig(chain_url=url, key=f"//{name}", store=str(tmp / f"{name.lower()}-store"),
                                     trusted_stores=(requester, worker), state_dir=str(tmp / f"{name.lower()}-state"), spot_checks=self.options.spot_checks,
                                     from_block=self.validators_from, poll_interval_s=0.2)
            validator = ValidatorDaemon(config, keypair=self.accounts[name])
            validator.subscribe(self._vote_recorder(name))
            self.validators[name] = DaemonThread(validator, f"validator-{name}").start()
        config = DaemonConfig(orchestrator=target, chain_url=url, key=f"//{TRAINER}", store=worker,
                              trusted_stores=(requester,), num_workers=self.options.workers, state_dir=str(tmp / "bob-state"), poll_wait_s=1.0,
                              cpus=max(2, self.options.workers), memory_mb=4_096, max_failures=0)
        self.worker = DaemonThread(WorkerDaemon(config, keypair=self.accounts[TRAINER]), "worker").start()
        plural = "s" if self.options.workers > 1 else ""
        self.say(f"worker daemon //{TRAINER} ({self.options.workers} Ray Train worker{plural}) and validator daemons "
                 + ", ".join(f"//{v}" for v in VALIDATORS) + " running")

    def _vote_recorder(self, name: str) -> Callable[[str, Mapping[str, Any]], None]:
        """An observer of validator //`name`: its votes, for the verdicts table (the segments it checked)."""
        votes = self.votes.setdefault(name, {})

        def observe(what: str, detail: Mapping[str, Any]) -> None:
            if what == "vote":
                votes[int(detail["task_id"])] = dict(detail)
        return observe

    def _stop_daemons(self) -> None:
        daemons = [d for d in (self.worker, *self.validators.values()) if d is not None]
        for d in daemons:
            d.stop()
        for d in daemons:
            d.join(3)

    async def _watch(self, target: str, task_id: int) -> None:
        """WatchTask from the orchestrator into the queue, reconnecting until cancelled."""
        from orchestrator import errors
        from orchestrator.client import TaskClient

        async with TaskClient(target, timeout_s=5) as client:
            while True:
                try:
                    async for event in client.watch_task(task_id):
                        self.events.put(event)
                except (errors.NotFound, errors.Unavailable):
                    pass  # not indexed yet / not yet serving
                except errors.ApiError as exc:
                    self.events.put(exc)
                await asyncio.sleep(0.2)

    # Following the task ----------------------------------------------------------------------
    def _follow(self, spec: Any) -> None:
        seen, deadline = self.seen, time.monotonic() + self.options.timeout_s
        columns = (TextColumn("  [bold]training[/bold]"), BarColumn(bar_width=24), TaskProgressColumn(),
                   TextColumn("{task.fields[info]}"), TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=False) as bar:
            task_bar = bar.add_task("training", total=seen.total_steps, info="waiting for a worker", visible=False)
            while seen.accepted is None and seen.failure is None:
                try:
                    event = self.events.get(timeout=0.25)
                except queue.Empty:
                    event = None
                if isinstance(event, Exception):
                    raise DemoFailed(f"the orchestrator's WatchTask stream failed: {event}")
                if event is not None:
                    self._on_event(event, bar, task_bar)
                if time.monotonic() > deadline:
                    raise DemoFailed(f"no payout within {self.options.timeout_s:.0f} s "
                                     f"(last state: {self._where()})")
                self._check_daemons()

    def _where(self) -> str:
        from workers.payout import moment_text

        s = self.seen
        if s.submitted is None:
            return "training" if s.claimed_block else "waiting for the worker's claim"
        if s.approved is not None:
            return f"approved, challenge period until {moment_text(int(s.approved['challenge_until']))}"
        return f"submitted, {len(s.verdicts)} of {len(VALIDATORS)} verdicts"

    def _check_daemons(self) -> None:
        worker = self.worker
        if worker is not None and not worker.thread.is_alive() and self.seen.submitted is None:
            d = worker.daemon
            why = worker.error or d.status.last_error or next(iter(d.refused.values()), None) or "it stopped"
            # the submission may be in the queue still: give the stream a moment
            time.sleep(1.0)
            if self.seen.submitted is None and self.events.empty():
                raise DemoFailed(f"the worker daemon exited without submitting a result: {why}")
        if worker is not None and not worker.thread.is_alive() and self.seen.approved is not None \
                and self.seen.accepted is None and self.events.empty():
            raise DemoFailed(f"the worker daemon exited before finalizing its payout: "
                             f"{worker.error or worker.daemon.status.last_error or 'it stopped'}")
        for name, v in self.validators.items():
            if not v.thread.is_alive() and self.seen.accepted is None and self.events.empty():
                raise DemoFailed(f"the validator daemon //{name} exited (status {v.exit_code}): "
                                 f"{v.error or 'see the log above'}")

    def _on_event(self, event: Any, bar: Progress, task_bar: Any) -> None:
        from runtime_bindings.values import METRIC_SCALE
        from workers.payout import moment_text

        seen, kind, d = self.seen, event.kind, event.detail
        who = lambda key: _name_of(self.accounts, str(d.get(key, "")))  # noqa: E731
        if kind == "Progress":
            metrics = dict(d.get("metrics") or {})
            point = {"step": int(d["step"]), "epoch": int(d["epoch"]), "loss": float(d["loss"]), **metrics}
            if not seen.curve or point["step"] > seen.curve[-1]["step"]:
                seen.curve.append(point)
            accuracy = f" · accuracy {metrics['accuracy']:.4f}" if "accuracy" in metrics else ""
            bar.update(task_bar, completed=point["step"], visible=True,
                       info=f"epoch {point['epoch'] + 1}/{self.options.epochs} · step {point['step']}/"
                            f"{seen.total_steps} · loss {point['loss']:.4f}{accuracy} · heartbeats {seen.heartbeats}")
        elif kind == "State":
            status = d.get("status")
            if status and status != "Open" and seen.claimed_block is None:
                self.say(f"task #{seen.task_id} is {status} (by {who('worker')})", "[cyan]i[/cyan]")
        elif kind == "TaskClaimed":
            seen.claimed_block = event.block
            self.say(f"claimed by {who('worker')} in block {event.block} (lease until block {d.get('lease_until')}): "
                     f"spec and data set verified against their on-chain hashes; training on Ray")
            bar.update(task_bar, visible=True, info="starting the Ray Train workers")
        elif kind == "Heartbeat":
            seen.heartbeats += 1
        elif kind == "ResultSubmitted":
            bar.update(task_bar, completed=seen.total_steps)
            bar.stop_task(task_bar)
            seen.submitted = {"block": event.block, **d}
            final = seen.curve[-1] if seen.curve else {}
            acc = f", accuracy {final['accuracy']:.4f}" if "accuracy" in final else ""
            self.say(f"result submitted by {who('worker')} in block {event.block}: model "
                     f"{_short(d.get('model_hash'))}{acc}, signed attestation; validators have until "
                     f"{moment_text(int(d.get('verify_until') or 0))}")
        elif kind == "VerdictSubmitted":
            verdict = dict(d.get("verdict") or {})
            record = {"validator": str(d.get("validator")), "accept": bool(verdict.get("accept")),
                      "measured": int(verdict.get("measured_metric", 0)),
                      "evidence": str(verdict.get("evidence_hash", "")), "block": event.block}
            seen.verdicts.append(record)
            self.say(f"verdict by {who('validator')} in block {event.block}: "
                     + ("[green]ACCEPT[/green]" if record["accept"] else "[red]REJECT[/red]")
                     + f" (re-measured accuracy {record['measured'] / METRIC_SCALE:.4f})")
        elif kind == "ResultApproved":
            seen.approved = {"block": event.block, **d}
            until = int(d.get("challenge_until", 0))
            approvers = len(self.chain.task_bounties.results(seen.task_id).approved_by)
            self.say(f"[bold]approved[/bold] by {approvers} validators in block {event.block}; challenge period until "
                     f"{moment_text(until)} ({max(0, until - time.time() * 1000) / 1000:.1f} s): any other staked "
                     f"validator may challenge it with a deposit until then", "[cyan]i[/cyan]")
        elif kind == "ResultChallenged":
            self.say(f"challenged by {who('challenger')} in block {event.block}: a challenge round settles it by "
                     f"{moment_text(int(d.get('settle_until') or 0))}", "[yellow]![/yellow]")
        elif kind in ("ChallengeDismissed", "ChallengeTimedOut"):
            self.say(f"{kind} in block {event.block}: the approval stands", "[cyan]i[/cyan]")
        elif kind == "TaskAccepted":
            seen.accepted = {"block": event.block, **d}
            how = " (challenge period over, unchallenged)" if seen.approved is not None else ""
            self.say(f"[bold]accepted[/bold] in block {event.block}{how}: bounty paid, model registered")
        elif kind in FAILURES:
            seen.failure = f"{kind} in block {event.block}: {d}"
            self.say(f"{kind} in block {event.block}", "[red]✗[/red]")

    # The end ---------------------------------------------------------------------------------
    def _balances(self) -> dict[str, tuple[int, int]]:
        out = {}
        for name, kp in self.accounts.items():
            data = self.chain.system.account(kp.ss58_address).data
            out[name] = (int(data.free), int(data.reserved))
        return out

    def _chain_events(self, since: int) -> list[tuple[int, Any]]:
        found = []
        for number in range(since, self.chain.best_number() + 1):
            for record in self.chain.events_at(self.chain.block_hash(number)):
                found.append((number, record.event))
        return found

    def _settle(self, spec: Any, out_dir: Path) -> int:
        from runtime_bindings.values import METRIC_SCALE

        seen, chain, kp = self.seen, self.chain, self.accounts
        self._stop_daemons()  # the worker's finalize_result, if it sent one, is done now
        if seen.failure:
            raise DemoFailed(f"the task did not pay out: {seen.failure}")
        after = self._balances()
        events = self._chain_events(self.posted_block)
        task_id = seen.task_id
        accepted = [(n, e) for n, e in events if e.pallet == "TaskBounties" and e.name == "TaskAccepted"
                    and e.task_id == task_id]
        if not accepted:
            raise DemoFailed(f"no TaskAccepted event for task #{task_id} on chain")
        block, acc = accepted[0]
        fees: dict[str, int] = {n: 0 for n in kp}
        for _, e in events:
            if e.pallet == "TransactionPayment" and e.name == "TransactionFeePaid":
                for n, k in kp.items():
                    if e.who == k.ss58_address:
                        fees[n] += int(e.actual_fee)
        verdicts = [e for _, e in events if e.pallet == "TaskBounties" and e.name == "VerdictSubmitted"
                    and e.task_id == task_id]
        accepting = [e.validator for e in verdicts if e.verdict.accept]
        worker_reward, validator_reward = int(acc.worker_reward), int(acc.validator_reward)
        expected = {REQUESTER: -(worker_reward + validator_reward * len(accepting)),
                    TRAINER: worker_reward if acc.worker == kp[TRAINER].ss58_address else 0}
        for name in VALIDATORS:
            expected[name] = validator_reward if kp[name].ss58_address in accepting else 0

        # Verdicts
        metric_claimed = None
        result = chain.task_bounties.results(task_id)
        if result is not None:
            metric_claimed = {k.text: v for k, v in result.attestation.metrics}.get("accuracy")
        table = Table(title=f"verdicts on task #{task_id} (quorum {len(VALIDATORS)})", title_justify="left")
        for column in ("validator", "verdict", "measured accuracy", "claimed", "spot-checked segments", "evidence",
                       "block"):
            table.add_column(column)
        for e in verdicts:
            name = _name_of(kp, e.validator)
            local = self.votes.get(name.lstrip("/"), {}).get(task_id, {})
            table.add_row(name, "[green]ACCEPT[/green]" if e.verdict.accept else "[red]REJECT[/red]",
                          f"{e.verdict.measured_metric / METRIC_SCALE:.4f}",
                          f"{metric_claimed / METRIC_SCALE:.4f}" if metric_claimed is not None else "?",
                          ", ".join(str(s) for s in local.get("segments", [])) or "-",
                          _short(e.verdict.evidence_hash), str(next(n for n, x in events if x is e)))
        self.console.print(table)

        # Payout
        if seen.approved is not None:
            payouts = self.worker.daemon.payouts if self.worker is not None else None
            by_worker = payouts is not None and any(p["task_id"] == task_id and p["finalized"] for p in payouts.paid)
            self.say(f"the challenge period ended unchallenged; the payout in block {block} was made by "
                     + (f"//{TRAINER}'s finalize_result" if by_worker else "the chain's on_initialize"))
        table = Table(title=f"payout in block {block} (bounty {_para(BOUNTY)} {SYMBOL})", title_justify="left")
        for column in ("to", "role", f"amount ({SYMBOL})"):
            table.add_column(column, justify="left" if column != f"amount ({SYMBOL})" else "right")
        table.add_row(_name_of(kp, acc.worker), "worker reward", _para(worker_reward))
        for v in accepting:
            table.add_row(_name_of(kp, v), "validator reward", _para(validator_reward))
        table.add_row("", "total", _para(worker_reward + validator_reward * len(accepting)))
        self.console.print(table)

        # The model record
        record = chain.models.models(acc.model_hash)
        if record is None:
            raise DemoFailed(f"the model {acc.model_hash} is not registered on chain")
        table = Table(title=f"on-chain model record Models.Models({_short(acc.model_hash, 20)})", title_justify="left",
                      show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        table.add_row("model_hash", str(acc.model_hash))
        table.add_row("owner", f"{_name_of(kp, record.owner)} ({record.owner})")
        table.add_row("trainer", f"{_name_of(kp, record.trainer)} ({record.trainer})")
        table.add_row("task_id", str(record.task_id))
        table.add_row("recipe", record.recipe.text)
        table.add_row("dataset_hash", str(record.dataset_hash))
        table.add_row("metrics", ", ".join(f"{k.text}={v / METRIC_SCALE:.4f}" for k, v in record.metrics))
        table.add_row("artifact_uri", record.artifact_uri.text)
        table.add_row("attestation_hash", str(record.attestation_hash))
        table.add_row("parent", "none" if record.parent is None else str(record.parent))
        table.add_row("block", str(record.block))
        self.console.print(table)

        # Balances
        table = Table(title=f"balances ({SYMBOL}, free + reserved) before the task was posted and after the payout",
                      title_justify="left")
        for column in ("account", "role", "free before", "reserved before", "free after", "reserved after",
                       "change", "fees paid", "change = payout − fees"):
            table.add_column(column, justify="left" if column in ("account", "role") else "right")
        ok: dict[str, bool] = {}
        for name in kp:
            (f0, r0), (f1, r1) = self.before[name], after[name]
            change = (f1 + r1) - (f0 + r0)
            ok[name] = change == expected[name] - fees[name]
            table.add_row(f"//{name}", self.roles[name], _para4(f0), _para4(r0), _para4(f1), _para4(r1),
                          _para(change, True), _para(fees[name]),
                          "[green]✓[/green]" if ok[name] else "[red]✗[/red]")
        self.console.print(table)

        # The curve
        png = out_dir / CURVE_FILE
        self._plot(png, spec)
        self.say(f"training curve ({len(seen.curve)} points: loss and validation accuracy by step) written to "
                 f"[bold]{png}[/bold]")
        paid = acc.worker == kp[TRAINER].ss58_address and worker_reward > 0 and ok[TRAINER]
        if not paid:
            raise DemoFailed(f"the worker's balance does not show the payout of {_para(worker_reward)} {SYMBOL}")
        if not all(ok.values()):
            bad = ", ".join(f"//{n}" for n, good in ok.items() if not good)
            raise DemoFailed(f"balances do not add up for {bad}")
        self.say(f"[bold green]the bounty reached the worker:[/bold green] //{TRAINER} +{_para(worker_reward)} "
                 f"{SYMBOL} (TaskAccepted in block {block}), in {time.monotonic() - self.started:.1f} s")
        return EXIT_OK

    def _plot(self, png: Path, spec: Any) -> None:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        curve = self.seen.curve
        steps = [p["step"] for p in curve]
        fig, loss_ax = plt.subplots(figsize=(8, 4.5), dpi=110)
        loss_ax.plot(steps, [p["loss"] for p in curve], color="tab:blue", marker=".", label="training loss")
        if any("val_loss" in p for p in curve):
            val = [p for p in curve if "val_loss" in p]
            loss_ax.plot([p["step"] for p in val], [p["val_loss"] for p in val], color="tab:cyan", linestyle="--",
                         label="validation loss")
        loss_ax.set_xlabel("optimizer step")
        loss_ax.set_ylabel("loss")
        acc_ax = loss_ax.twinx()
        acc_ax.plot([p["step"] for p in curve if "accuracy" in p], [p["accuracy"] for p in curve if "accuracy" in p],
                    color="tab:orange", marker=".", label="validation accuracy")
        acc_ax.axhline(spec.evaluation.target, color="tab:red", linestyle=":", label=f"target {spec.evaluation.target}")
        acc_ax.set_ylabel("accuracy")
        acc_ax.set_ylim(0, 1.0)
        handles = loss_ax.get_legend_handles_labels()[0] + acc_ax.get_legend_handles_labels()[0]
        fig.legend(handles=handles, loc="center right", bbox_to_anchor=(0.88, 0.5))
        loss_ax.set_title(f"paratrain demo: task #{self.seen.task_id}, {spec.recipe} on digits, "
                          f"{self.options.workers} Ray Train worker{'s' if self.options.workers > 1 else ''}")
        fig.tight_layout()
        fig.savefig(png)
        plt.close(fig)


def run_demo(port: int = 0, *, epochs: int = DEFAULT_EPOCHS, out: str = ".", keep: bool = False,
             options: DemoOptions | None = None, console: Console | None = None,
             exit_process: bool = True) -> int:
    """Run the demo; the exit status (0: the bounty reached the worker).

    Interrupted (Ctrl-C, SIGTERM), it stops everything it started (status 130). With `exit_process` (the
    command line), once everything is stopped and the output flushed, the process ends with the status at
    once: threads of the libraries torn down under it (Ray, gRPC) get no say in the interpreter's shutdown,
    which otherwise lingers for seconds or, after an interrupted ray.init, can crash."""
    options = options or DemoOptions(port=port, epochs=epochs, out=out, keep=keep)
    console = console or (Console() if sys.stdout.isatty() else Console(width=120))
    demo = Demo(options, console)
    previous = _interrupt_on_sigterm()
    quiet = _quiet_libraries()
    code = EXIT_FAILED
    stack = ExitStack()
    try:
        with stack:
            try:
                code = demo.run(stack)
            except (DemoFailed, HarnessError) as exc:
                demo.say(f"[red]the demo failed:[/red] {exc}", "[red]✗[/red]")
                code = EXIT_FAILED
            except KeyboardInterrupt:
                code = EXIT_INTERRUPTED
                _ignore_interrupts()
                logging.disable(logging.CRITICAL)  # the daemons' complaints while they are torn down
                demo.say("interrupted: stopping the worker, validators, Ray, the orchestrator and devnet",
                         "[yellow]![/yellow]")
            except Exception as exc:  # noqa: BLE001 - one line, not a traceback
                logging.getLogger("paratrain.demo").debug("demo failed", exc_info=True)
                demo.say(f"[red]the demo failed:[/red] {type(exc).__name__}: {exc}", "[red]✗[/red]")
                code = EXIT_FAILED
            finally:
                _ignore_interrupts()  # the clean-up runs to its end
    finally:
        logging.disable(logging.NOTSET)
        quiet()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    demo.say("everything stopped" + ("" if options.keep else "; temporary files removed"), "[dim]·[/dim]")
    if exit_process:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _interrupt_on_sigterm() -> Any:
    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return signal.signal(signal.SIGTERM, raise_interrupt)
    except ValueError:  # not the main thread
        return None


def _ignore_interrupts() -> None:
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except ValueError:
        pass


def _quiet_libraries() -> Callable[[], None]:
    """Ray's and Ray Train's chatter would break the live display: warnings and up only, put back after."""
    saved = {}
    for name in ("ray", "ray.train", "ray.tune", "ray.data", "websocket", "substrateinterface", "grpc", "urllib3",
                 "fsspec", "filelock", "matplotlib"):
        logger = logging.getLogger(name)
        saved[name] = logger.level
        logger.setLevel(logging.ERROR)
    # Ray Train's controller polls its workers every 2 s by default, and each checkpoint report waits for a poll:
    # a short task would spend most of its time waiting. The Ray processes inherit this environment.
    env = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2"),
           "GRPC_VERBOSITY": os.environ.get("GRPC_VERBOSITY", "ERROR")}
    old_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)

    def restore() -> None:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return restore
