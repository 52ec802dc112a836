"""`paratrain task create|list|show|watch|cancel|finalize|challenge` (the last two: paratrain.commands.challenge)."""
from __future__ import annotations

import argparse
import asyncio
import math
import re
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from paratrain import argtypes
from paratrain.cli import CliError
from paratrain.commands import challenge
from paratrain.commands.common import (
    Node,
    add_chain_argument,
    add_key_argument,
    add_orchestrator_argument,
    add_store_argument,
    chain_errors,
    chain_url,
    err,
    load_key,
    orchestrator_errors,
    orchestrator_target,
    out,
    short,
)
from runtime_bindings.generated.types import TaskStatus
from runtime_bindings.scale import encode_compact
from runtime_bindings.values import METRIC_SCALE

STATUSES = ("Open", "Claimed", "Submitted", "Accepted", "Expired", "Cancelled", "Approved", "Challenged")


def register(commands: argparse._SubParsersAction) -> None:
    task = commands.add_parser("task", help="post, list, inspect, watch and cancel training tasks")
    task.set_defaults(run=run)
    sub = task.add_subparsers(dest="task_command", required=True)

    create = sub.add_parser("create", help="store the spec document and data set, post the task with its bounty")
    create.add_argument("--recipe", required=True, help="registered recipe, e.g. digits_mlp")
    create.add_argument("--dataset", default=None,
                        help="built-in data set name (digits, ...), a data file, or a data set hash already "
                             "packaged (with --dataset-uri unless it is in --store); default: the recipe's")
    create.add_argument("--dataset-uri", default=None, metavar="URI", help="where a data set given by hash lives")
    create.add_argument("--bounty", required=True, type=argtypes.amount,
                        help="bounty in the chain's token, e.g. 10 or 2.5")
    create.add_argument("--deadline-blocks", type=argtypes.block_count, default=600, metavar="N",
                        help="the task expires N blocks from now if unclaimed (default 600)")
    create.add_argument("--validators", type=argtypes.count, default=1, metavar="N",
                        help="accepting verdicts needed (default 1)")
    create.add_argument("--min-stake", type=argtypes.amount, default=argtypes.Amount(0, None), metavar="AMOUNT",
                        help="least worker stake, in tokens (default 0)")
    create.add_argument("--hyperparameters", "--hp", nargs="+", default=[], metavar="K=V",
                        help="hyperparameter overrides, e.g. epochs=5 lr=0.01")
    create.add_argument("--metric", default=None, help="evaluation metric (default: the recipe's)")
    create.add_argument("--target", type=argtypes.metric_value, default=None,
                        help="evaluation target (default: the recipe's)")
    create.add_argument("--seed", type=argtypes.seed, default=0, help="training seed (default 0)")
    create.add_argument("--checkpoint-every", type=argtypes.count, default=None, metavar="K",
                        help="a checkpoint every K optimizer steps (default: about 64 checkpoints over the run, "
                             "the most an attestation carries)")
    create.add_argument("--timeout-s", type=argtypes.timeout, default=900.0,
                        help="training wall-clock limit (default 900)")
    create.add_argument("--memory-mb", type=argtypes.count, default=4096,
                        help="memory per training worker (default 4096)")
    create.add_argument("--min-cpus", type=argtypes.count_or_zero, default=1, help="requirement: CPUs (default 1)")
    create.add_argument("--min-gpus", type=argtypes.count_or_zero, default=0, help="requirement: GPUs (default 0)")
    create.add_argument("--min-memory-mb", type=argtypes.megabytes, default=0,
                        help="requirement: memory in MiB (default 0)")
    create.add_argument("--parent-model", default=None, metavar="HASH", help="a registered model to fine-tune")
    create.add_argument("--holdout", type=Path, default=None, metavar="FILE",
                        help="a private holdout data file: stored, committed on chain, revealed later")
    dp = create.add_argument_group("differential privacy (DP-SGD on a data set with a privacy budget)")
    dp.add_argument("--dp-epsilon", type=_positive("an epsilon"), default=None, metavar="E",
                    help="train with DP-SGD, spending at most epsilon E of the data set's budget")
    dp.add_argument("--dp-delta", type=_positive("a delta"), default=None, metavar="D", help="the run's delta")
    dp.add_argument("--max-grad-norm", type=_positive("a clipping norm"), default=None, metavar="C",
                    help="per-example gradient clipping norm")
    dp.add_argument("--noise-multiplier", type=_positive("a noise multiplier"), default=None, metavar="S",
                    help="noise multiplier sigma (default: the least that keeps the run within E)")
    dp.add_argument("--accountant", choices=("prv", "rdp"), default=None,
                    help="Opacus's accountant that counts epsilon (default prv)")
    add_store_argument(create)
    add_key_argument(create)
    add_chain_argument(create)

    lst = sub.add_parser("list", help="a table of tasks")
    lst.add_argument("--status", choices=STATUSES, help="only tasks with this status")
    lst.add_argument("--requester", metavar="ADDRESS", help="only tasks posted by this account")
    lst.add_argument("--full", action="store_true", help="full addresses")
    add_chain_argument(lst)

    show = sub.add_parser("show", help="every field of a task; optionally its training curve as a PNG")
    show.add_argument("task_id", type=argtypes.task_id)
    show.add_argument("--curve", type=Path, metavar="OUT.png", help="write the training curve (loss, metrics)")
    show.add_argument("--wait", type=argtypes.seconds, default=3.0, metavar="S",
                      help="with --curve: listen to the orchestrator's stream for up to S seconds (default 3)")
    show.add_argument("--history", type=Path, metavar="FILE",
                      help="with --curve: a recorded progress history (JSON lines) instead of the local one")
    add_chain_argument(show)
    add_orchestrator_argument(show)

    watch = sub.add_parser("watch", help="a live progress bar (epoch, loss) until the task is done")
    watch.add_argument("task_id", type=argtypes.task_id)
    watch.add_argument("--timeout", type=argtypes.timeout, default=None, metavar="S",
                       help="stop watching after S seconds (default: never)")
    add_store_argument(watch)
    add_chain_argument(watch)
    add_orchestrator_argument(watch)

    cancel = sub.add_parser("cancel", help="withdraw an Open task: bounty and deposit come back")
    cancel.add_argument("task_id", type=argtypes.task_id)
    add_key_argument(cancel)
    add_chain_argument(cancel)
    challenge.register(sub)


def _positive(what: str) -> Any:
    """An argparse type for a finite number above zero."""
    def parse(value: str) -> float:
        try:
            number = float(value) if re.fullmatch(r"[0-9.eE+-]+", value) else math.nan
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number > 0):
            raise argparse.ArgumentTypeError(f"{argtypes.shown(value)} is not {what} (a number above 0)")
        return number
    parse.__name__ = what.replace(" ", "_")
    return parse


def run(args: argparse.Namespace) -> int:
    return {"create": _create, "list": _list, "show": _show, "watch": _watch, "cancel": _cancel,
            "finalize": challenge.run_finalize, "challenge": challenge.run_challenge}[args.task_command](args)


# Helpers -------------------------------------------------------------------------------------------
def get_task(node: Node, task_id: int) -> Any:
    with chain_errors(node.url):
        task = node.chain.task_bounties.tasks(task_id)
    if task is None:
        raise CliError(f"unknown task {task_id}: no such task on {node.url}")
    return task


def parse_hyperparameters(items: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliError(f"bad hyperparameter {item!r}: expected KEY=VALUE, e.g. epochs=5")
        raw = raw.strip()
        value: Any
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        result[key] = value
    return result


def holdout_commitment(salt: bytes, holdout_hash: bytes, holdout_size: int, uri: bytes) -> bytes:
    """blake2_256(SCALE((salt: H256, holdout_hash: H256, holdout_size: u64, holdout_uri: BoundedVec<u8>))), as
    the pallet checks it: the holdout's bytes are committed as well as their location."""
    import hashlib

    encoded = salt + holdout_hash + holdout_size.to_bytes(8, "little") + encode_compact(len(uri)) + uri
    return hashlib.blake2b(encoded, digest_size=32).digest()


def _hash_arg(value: str, what: str) -> str:
    text = value.lower().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise CliError(f"bad {what} {argtypes.shown(value)}: expected 64 hex digits")
    return text


# create -------------------------------------------------------------------------------------------
def _create(args: argparse.Namespace) -> int:
    from paratrain.task_specs import chain_dp_spec, chain_task_spec  # the one mapping, shared with paratrain.local
    from runtime_bindings.generated.task_bounties import TaskCreatedEvent
    from workers.artifacts import ArtifactError, ArtifactStore
    from workers.recipes import RecipeError, get_recipe
    from workers.engine import checkpoint_every_auto
    from workers.spec import Evaluation, Limits, SpecError, TaskSpec

    keypair = load_key(args)
    try:
        recipe = get_recipe(args.recipe)
    except RecipeError as exc:
        raise CliError(str(exc)) from None
    hyperparameters = parse_hyperparameters(args.hyperparameters)
    unknown = sorted(set(hyperparameters) - set(recipe.defaults)) if recipe.defaults else []
    if unknown:
        raise CliError(f"unknown hyperparameter {unknown[0]!r} for {recipe.name} "
                       f"(known: {', '.join(sorted(recipe.defaults))})")
    parent = "0x" + _hash_arg(args.parent_model, "--parent-model") if args.parent_model else None
    dp_args = (args.dp_epsilon, args.dp_delta, args.max_grad_norm)
    private = any(a is not None for a in (*dp_args, args.noise_multiplier, args.accountant))
    if private and None in dp_args:
        raise CliError("a private task needs --dp-epsilon, --dp-delta and --max-grad-norm together")

    url = chain_url(args)
    with Node(url) as node:  # connect before any storing: an unreachable node fails fast
        bounty = node.planck(args.bounty, "--bounty")
        min_stake = node.planck(args.min_stake, "--min-stake")
        try:
            store = ArtifactStore(args.store)
            dataset = _dataset_ref(args, recipe, store)
            spec = TaskSpec(recipe=recipe.name, dataset=dataset,
                            evaluation=Evaluation(metric=args.metric or recipe.metric,
                                                  target=recipe.expected if args.target is None else args.target,
                                                  mode=recipe.mode),
                            hyperparameters=hyperparameters, seed=args.seed, checkpoint_every=args.checkpoint_every or 1,
                            limits=Limits(timeout_s=args.timeout_s, memory_mb=args.memory_mb))
            if args.checkpoint_every is None:
                spec = replace(spec, checkpoint_every=checkpoint_every_auto(spec, store))
            else:
                _check_checkpoint_count(spec, store)
            if private:
                spec = _private_spec(args, node, spec, store)
            document = spec.canonical_bytes()
            spec_digest = store.put(document)
            spec_uri = store.uri(spec_digest)
            commitment = None
            holdout: tuple[str, str, int, str] | None = None
            if args.holdout is not None:
                holdout = _store_holdout(args.holdout, store)
                salt, digest, size, uri = holdout
                commitment = "0x" + holdout_commitment(bytes.fromhex(salt), bytes.fromhex(digest), size,
                                                       uri.encode()).hex()
        except SpecError as exc:
            raise CliError(f"bad task spec: {exc}") from None
        except (ArtifactError, OSError) as exc:
            raise CliError(f"artifact store {args.store or 'default'}: {exc}") from None
        if len(spec_uri.encode()) > 256:
            raise CliError(f"the spec URI is longer than 256 bytes: use a shorter --store ({spec_uri})")

        chain_spec = chain_task_spec(spec, spec_uri, spec_hash=spec_digest, parent_model=parent,
                                     requirements=(args.min_cpus, args.min_gpus, args.min_memory_mb))
        with chain_errors(url, who=keypair.ss58_address):
            deadline = node.chain.best_number() + args.deadline_blocks
            if deadline > argtypes.U32_MAX:
                raise CliError(f"--deadline-blocks {args.deadline_blocks}: the deadline would be past the last "
                               f"block number a chain can have ({argtypes.U32_MAX})")
            if spec.privacy is None:
                receipt = node.chain.task_bounties.create_task(keypair, chain_spec, bounty, min_stake, deadline,
                                                               args.validators, commitment)
            else:
                receipt = node.chain.task_bounties.create_private_task(
                    keypair, chain_spec, chain_dp_spec(spec.privacy), bounty, min_stake, deadline, args.validators,
                    commitment)
        created = receipt.find(TaskCreatedEvent)
        if not created:
            raise CliError("the task was included but no TaskCreated event was found")
        task_id = int(created[0].task_id)
        log = err()
        log.print(f"task {task_id} created in block #{receipt.block_number}: {recipe.name} on "
                  f"{args.dataset or recipe.dataset}, bounty {node.fmt(bounty)}, deadline block #{deadline}, "
                  f"{args.validators} validator(s)")
        log.print(f"  spec {spec_uri}")
        if holdout is not None:
            log.print(f"  holdout {holdout[3]} committed; reveal it later with salt 0x{holdout[0]}, hash "
                      f"0x{holdout[1]} and size {holdout[2]} (kept only here: note them down)")
        print(task_id)
    return 0


def _private_spec(args: argparse.Namespace, node: Node, spec: Any, store: Any) -> Any:
    """`spec` with its "privacy" section (paratrain.task_specs.dp_privacy), after the data set's budget was found
    able to reserve the cap; prints the sigma and q it derived. One-line CliErrors for a data set without a
    budget or with too little left, and for terms no run can meet."""
    from paratrain.task_specs import PrivacyTermsError, budget_shortfall, dp_privacy
    from runtime_bindings import privacy as units
    from workers.privacy import PrivacyError

    with chain_errors(node.url):
        shortfall = budget_shortfall(node.chain, spec.dataset.hash, args.dp_epsilon, args.dp_delta)
    if shortfall:
        raise CliError(shortfall)
    try:
        privacy, sigma, rate, steps = dp_privacy(spec, store, epsilon=args.dp_epsilon, delta=args.dp_delta,
                                                 max_grad_norm=args.max_grad_norm,
                                                 noise_multiplier=args.noise_multiplier,
                                                 accountant=args.accountant or "prv")
    except (PrivacyError, PrivacyTermsError, ValueError) as exc:
        raise CliError(f"bad differential-privacy terms: {exc}") from None
    derived = "given" if args.noise_multiplier is not None else "derived"
    err().print(f"DP-SGD: noise multiplier sigma {sigma:g} ({derived}), sample rate q {units.rate_from_chain(rate):.9g}, "
                f"{steps} steps, clipping norm {privacy.max_grad_norm:g}, epsilon <= {privacy.epsilon:g} at delta "
                f"{privacy.delta:g} ({privacy.accountant})")
    return replace(spec, privacy=privacy)


def _check_checkpoint_count(spec: Any, store: Any) -> None:
    """Refuse a --checkpoint-every that no worker could honour (an attestation carries at most
    MAX_CHECKPOINTS checkpoints), at creation rather than after a worker has claimed the task."""
    from workers.engine import total_steps
    from workers.spec import MAX_CHECKPOINTS

    steps = total_steps(spec, store)
    count = -(-steps // spec.checkpoint_every)
    if count > MAX_CHECKPOINTS:
        raise CliError(f"--checkpoint-every {spec.checkpoint_every} gives {count} checkpoints over the run's "
                       f"{steps} steps; at most {MAX_CHECKPOINTS}: use {-(-steps // MAX_CHECKPOINTS)} or more, "
                       f"or leave it out")


def _dataset_ref(args: argparse.Namespace, recipe: Any, store: Any) -> Any:
    from workers.datasets import DatasetError, add_dataset
    from workers.spec import DatasetRef

    source = args.dataset or recipe.dataset
    plain = source.lower().removeprefix("0x")
    if re.fullmatch(r"[0-9a-f]{64}", plain) and not Path(source).exists():
        uri = args.dataset_uri
        if uri is None:
            if not store.exists(plain):
                raise CliError(f"data set {plain} is not in the store {store.root}: pass --dataset-uri")
            uri = store.uri(plain)
        return DatasetRef(hash=plain, uri=uri)
    if args.dataset_uri:
        raise CliError("--dataset-uri goes with a data set hash, not a name or file")
    try:
        digest, uri = add_dataset(source, store)
    except DatasetError as exc:
        raise CliError(f"bad --dataset: {exc}") from None
    return DatasetRef(hash=digest, uri=uri)


def _store_holdout(path: Path, store: Any) -> tuple[str, str, int, str]:
    """The holdout packaged into the store: (salt, hash, size, URI), what the commitment binds."""
    from workers.datasets import DatasetError, add_dataset

    if not path.is_file():
        raise CliError(f"holdout file {path} does not exist")
    try:
        digest, uri = add_dataset(str(path), store)
    except DatasetError as exc:
        raise CliError(f"bad --holdout: {exc}") from None
    return secrets.token_bytes(32).hex(), digest, len(store.get(digest)), uri


# list ---------------------------------------------------------------------------------------------
def _list(args: argparse.Namespace) -> int:
    from rich.table import Table

    url = chain_url(args)
    with Node(url) as node:
        with chain_errors(url):
            at = node.chain.best_hash()
            rows = sorted(node.chain.task_bounties.tasks.entries(page_size=200, at=at), key=lambda kv: int(kv[0]))
            now_ms = int(node.chain.timestamp.now(at=at) or 0)
        table = Table(title=f"tasks on {url}", title_justify="left")
        for name, justify in (("id", "right"), ("status", "left"), ("recipe", "left"), ("bounty", "right"),
                              ("requester", "left"), ("worker", "left"), ("step", "right"), ("deadline", "right")):
            table.add_column(name, justify=justify, no_wrap=True)
        shown = 0
        for task_id, task in rows:
            status = task.status
            if args.status and status.name != args.status:
                continue
            if args.requester and task.requester != args.requester:
                continue
            step = str(task.progress.step) if task.progress is not None else "-"
            with chain_errors(url):
                result = (node.chain.task_bounties.results(task_id, at=at)
                          if isinstance(status, TaskStatus.Challenged) else None)
            shown_status = challenge.list_status(status, now_ms, result)
            table.add_row(str(task_id), shown_status, task.spec.recipe.text, node.fmt(task.bounty),
                          short(task.requester, args.full), short(getattr(status, "worker", None), args.full), step,
                          f"#{task.deadline}")
            shown += 1
    console = out()
    if shown == 0:
        console.print("no tasks" + (f" with status {args.status}" if args.status else "") + f" on {url}")
        return 0
    if args.full:
        console.width = max(console.width, 200)
    console.print(table)
    return 0


# show ---------------------------------------------------------------------------------------------
def _show(args: argparse.Namespace) -> int:
    from rich.panel import Panel
    from rich.table import Table

    url = chain_url(args)
    with Node(url) as node:
        task = get_task(node, args.task_id)
        with chain_errors(url):
            result = node.chain.task_bounties.results(args.task_id)
            genesis = node.chain.block_hash(0) or "0x"
            best = node.chain.best_number()
            now_ms = int(node.chain.timestamp.now() or 0)
        status = task.status
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        spec = task.spec
        req = spec.requirements
        rows: list[tuple[str, str]] = [
            *challenge.show_rows(node, args.task_id, status, result, now_ms),
            ("requester", task.requester),
            ("recipe", spec.recipe.text),
            ("bounty", node.fmt(task.bounty)),
            ("deposit", node.fmt(task.deposit)),
            ("min stake", node.fmt(task.min_stake)),
            ("deadline", f"block #{task.deadline} (best #{best})"),
            ("validators", str(task.validators_required)),
            ("evaluation", (f"{spec.eval_metric.text} {'>=' if spec.higher_is_better else '<='} "
                            f"{spec.eval_target / METRIC_SCALE:g}")),
            ("requirements", f"{req.min_cpus} CPU, {req.min_gpus} GPU, {req.min_memory_mb} MiB"),
            ("spec hash", str(spec.spec_hash)),
            ("spec uri", spec.spec_uri.text),
            ("dataset hash", str(spec.dataset_hash)),
            ("parent model", str(spec.parent_model) if spec.parent_model else "-"),
            ("holdout", str(task.holdout_commitment) if task.holdout_commitment else "-"),
            ("created", f"block #{task.created_at}"),
            ("attempts", str(task.attempts)),
            ("progress", f"step {task.progress.step}, checkpoint root {task.progress.checkpoint_root}"
                         if task.progress is not None else "-"),
        ]
        if result is not None:
            att = result.attestation
            metrics = ", ".join(f"{k.text}={v / METRIC_SCALE:g}" for k, v in att.metrics)
            rows += [("model hash", str(att.model_hash)), ("artifact", att.artifact_uri.text),
                     ("metrics", metrics or "-"), ("submitted", f"block #{result.submitted_at}"),
                     ("verdicts", f"{len(result.accepts)} accept, {len(result.rejects)} reject"
                                  + (f" in the challenge round (quorum {2 * task.validators_required + 1})"
                                     if isinstance(status, TaskStatus.Challenged) else ""))]
        for key, value in rows:
            grid.add_row(key, value)
        out().print(Panel(grid, title=f"task {args.task_id}", title_align="left", expand=False))
        if args.curve is not None:
            _curve(args, genesis, task, status.name)
    return 0


def _curve(args: argparse.Namespace, genesis: str, task: Any, status: str) -> None:
    from paratrain.commands import progress

    if args.curve.suffix.lower() != ".png":
        raise CliError(f"--curve {args.curve}: the curve is written as PNG, name the file *.png")
    points: list[progress.Point] = []
    local = progress.history_path(genesis, args.task_id, int(task.created_at))
    if args.history is not None:
        if not args.history.is_file():
            raise CliError(f"history file {args.history} does not exist")
        points = progress.load_history(args.history)
    else:
        points = progress.load_history(local)
        notes: list[str] = []
        if status not in progress.TERMINAL and args.wait > 0:
            target = orchestrator_target(args)
            try:
                with orchestrator_errors(target):
                    live, _ = asyncio.run(progress.collect(
                        target, args.task_id, wait_s=args.wait,
                        on_point=lambda p: progress.append_history(local, p)))
                points += live
            except CliError as exc:
                notes.append(str(exc))
        if not points and notes:
            raise CliError(f"no training progress recorded for task {args.task_id} ({notes[0]})")
    points = progress.merge(points)
    if not points:
        raise CliError(f"no training progress for task {args.task_id} (status {status}): nothing was "
                       "reported yet; no curve written")
    try:
        progress.write_curve(points, args.curve, title=f"task {args.task_id}: {task.spec.recipe.text}")
    except OSError as exc:
        raise CliError(f"cannot write {args.curve}: {exc.strerror or exc}") from None
    err().print(f"training curve ({len(points)} points, steps {points[0].step}..{points[-1].step}) "
                f"written to {args.curve}")


# watch --------------------------------------------------------------------------------------------
def _watch(args: argparse.Namespace) -> int:
    from paratrain.commands import progress

    url = chain_url(args)
    target = orchestrator_target(args)
    with Node(url) as node:
        task = get_task(node, args.task_id)
        with chain_errors(url):
            genesis = node.chain.block_hash(0) or "0x"
        status = task.status.name
        total_epochs = _epochs(task, getattr(args, "store", None))
    console = err()
    if status in progress.TERMINAL:
        console.print(f"task {args.task_id} is {status}: nothing to watch")
        return 0
    local = progress.history_path(genesis, args.task_id, int(task.created_at))
    with orchestrator_errors(target):
        final = asyncio.run(_watch_live(target, args.task_id, status, total_epochs, local, args.timeout))
    if final in progress.TERMINAL:
        console.print(f"task {args.task_id} is {final}")
    else:  # collect only returns early for a terminal status: the timeout ran out
        console.print(f"stopped watching task {args.task_id} after {args.timeout:g} s")
    return 0


def _epochs(task: Any, store_root: str | None) -> int | None:
    """The run's epoch count from the spec document, when the store can serve it."""
    try:
        from workers.artifacts import ArtifactStore
        from workers.recipes import get_recipe
        from workers.spec import decode_spec

        raw = ArtifactStore(store_root).fetch(task.spec.spec_uri.text, task.spec.spec_hash.hex())
        spec = decode_spec(raw)
        epochs = spec.hyperparameters.get("epochs", get_recipe(spec.recipe).defaults.get("epochs"))
        return int(epochs) if isinstance(epochs, (int, float)) and epochs > 0 else None
    except Exception:  # noqa: BLE001 - the bar is then open-ended, nothing else changes
        return None


async def _watch_live(target: str, task_id: int, status: str, total_epochs: int | None, local: Path,
                      timeout: float | None) -> str | None:
    """The live bar until the task is terminal or `timeout` runs out; the last status heard.

    Ctrl-C is not caught here: asyncio.run turns it into KeyboardInterrupt, which the people's commands
    report as one line with status 130. The bar is drawn on a terminal only (transient elsewhere), so a
    redirected stderr gets the messages and not a dump of the last frame."""
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from rich.markup import escape

    from paratrain.commands import progress as prog

    console = err()
    state: dict[str, Any] = {"status": status, "epoch": 0, "loss": None, "step": 0, "note": ""}
    columns = [SpinnerColumn(), TextColumn("task {task.fields[task_id]} [bold]{task.fields[status]}[/bold]"),
               BarColumn(), TextColumn("epoch {task.fields[epoch]}{task.fields[of]}"),
               TextColumn("step {task.fields[step]}"), TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(),
               TextColumn("{task.fields[note]}")]
    with Progress(*columns, console=console, transient=not console.is_terminal) as bar:
        job = bar.add_task("train", total=total_epochs, task_id=task_id, status=status, epoch=0,
                           of=f"/{total_epochs}" if total_epochs else "", step=0, loss="-", note="")

        def redraw() -> None:
            if state["status"] == "Accepted" and total_epochs:
                state["epoch"] = max(int(state["epoch"]), total_epochs)
            loss = state["loss"]
            # what the orchestrator sent is shown as text: a "[" in it must not be read as markup
            bar.update(job, status=escape(str(state["status"])[:40]), epoch=state["epoch"], step=state["step"],
                       note=escape(state["note"]),
                       loss="-" if loss is None else f"{loss:.4f}",
                       completed=min(int(state["epoch"]), total_epochs) if total_epochs else None)

        def on_event(event: Any) -> None:
            state["note"] = ""
            if event.kind == "State":
                state["status"] = str(event.detail.get("status") or state["status"])
                step = event.detail.get("progress_step")
                if isinstance(step, int) and step:
                    state["step"] = step
            elif event.kind in prog.STATUS_OF_EVENT:
                state["status"] = prog.STATUS_OF_EVENT[event.kind]
                if event.kind in ("TaskReopened", "ClaimReleased", "LeaseExpired"):
                    bar.console.print(f"task {task_id}: {event.kind} in block #{event.block}; waiting for a new worker")
            redraw()

        def on_point(point: prog.Point) -> None:
            prog.append_history(local, point)
            state.update(epoch=point.epoch, step=point.step, loss=point.loss)

        def on_retry(delay: float, reason: str) -> None:
            state["note"] = f"(orchestrator: {reason[:80]}; reconnecting in {delay:g} s)"
            redraw()

        _, final = await prog.collect(target, task_id, wait_s=timeout, on_event=on_event, on_point=on_point,
                                      on_retry=on_retry)
    return final


# cancel -------------------------------------------------------------------------------------------
def _cancel(args: argparse.Namespace) -> int:
    from runtime_bindings import ModuleError
    from runtime_bindings.generated.task_bounties import TaskCancelledEvent

    keypair = load_key(args)
    url = chain_url(args)
    with Node(url) as node:
        task = get_task(node, args.task_id)
        status = task.status.name
        if task.requester != keypair.ss58_address:
            raise CliError(f"task {args.task_id} was posted by {task.requester}: only its requester may cancel it")
        if status != "Open":
            raise CliError(f"task {args.task_id} is {status}: only an Open task can be cancelled")
        with chain_errors(url, who=keypair.ss58_address):
            try:
                receipt = node.chain.task_bounties.cancel_task(keypair, args.task_id)
            except ModuleError as exc:
                if exc.name == "TaskNotOpen":
                    raise CliError(f"task {args.task_id} is no longer Open: it cannot be cancelled") from None
                raise
        events = receipt.find(TaskCancelledEvent)
        refund = f", refunded {node.fmt(events[0].refund)}" if events else ""
        out().print(f"task {args.task_id} cancelled in block #{receipt.block_number}{refund}")
    return 0


__all__ = ["holdout_commitment", "parse_hyperparameters", "register", "run"]
