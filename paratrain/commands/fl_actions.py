"""What `paratrain fl ...` and `paratrain client` do (their parser is paratrain.commands.fl).

Every refusal the pallet would make of a join (closed, joined already, too many clients, stake too low) is
checked against the chain first and answered as one line naming the pallet error, before anything is signed:
a refused extrinsic still pays its fee. The chain's own refusal, should the state change meanwhile, is
answered the same way (chain_errors).
"""
from __future__ import annotations

import argparse
import secrets
import time
from pathlib import Path
from typing import Any

from paratrain import argtypes
from paratrain.cli import CliError
from paratrain.commands.common import Node, chain_errors, chain_url, err, load_key, out, plural, short

TERMINAL = ("Completed", "Expired", "Cancelled")


# Helpers -------------------------------------------------------------------------------------------
def get_fl_task(node: Node, task_id: int) -> Any:
    with chain_errors(node.url):
        _require_pallet(node)
        task = node.chain.federated_tasks.tasks(task_id)
    if task is None:
        raise CliError(f"unknown federated task {task_id}: no such task on {node.url}")
    return task


def _require_pallet(node: Node) -> None:
    if "FederatedTasks" not in node.chain.metadata().pallets:
        raise CliError(f"the chain at {node.url} has no FederatedTasks pallet (runtime too old)")


def status_name(status: Any) -> str:
    return str(getattr(status, "VARIANT", status))


def data_commitment(path: Path) -> tuple[str, int]:
    """(blake2-256 hex of the file's bytes, its example count): what a client commits to on chain. The file
    must be a data set every recipe can read (a packaged arrays file with X and y)."""
    from workers.datasets import DatasetError, decode_dataset
    from workers.fl.client_tasks import MAX_SHARD_BYTES
    from workers.hashing import blake2_256_hex

    if not path.is_file():
        raise CliError(f"data file {path} does not exist")
    if path.stat().st_size > MAX_SHARD_BYTES:
        raise CliError(f"data file {path} is larger than {MAX_SHARD_BYTES >> 20} MiB")
    data = path.read_bytes()
    try:
        decoded = decode_dataset(data)
    except DatasetError as exc:
        raise CliError(f"bad data file {path}: {exc}") from None
    if "X" not in decoded.arrays or "y" not in decoded.arrays:
        raise CliError(f"bad data file {path}: not an arrays data set with X and y (see `paratrain fl partition`)")
    examples = int(decoded.arrays["X"].shape[0])
    if examples == 0:
        raise CliError(f"data file {path} holds no examples")
    return blake2_256_hex(data), examples


# partition -----------------------------------------------------------------------------------------
def partition(args: argparse.Namespace) -> int:
    from rich.table import Table

    from workers.fl.partition import PartitionError, federated_split

    try:
        split = federated_split(args.dataset, args.clients, args.alpha, args.seed,
                                holdout_fraction=args.holdout_fraction)
        manifest = split.write(args.out)
    except PartitionError as exc:
        raise CliError(f"cannot split {args.dataset!r}: {exc}") from None
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc}") from None
    table = Table(title=f"{args.dataset}: {args.clients} clients, alpha {args.alpha:g}, seed {args.seed}")
    for column in ("client", "file", "examples", "classes (examples)"):
        table.add_column(column)
    for shard in split.shards:
        classes = " ".join(f"{label}:{n}" for label, n in sorted(shard.label_counts.items()) if n)
        table.add_row(str(shard.client), f"client-{shard.client}.ptts", str(shard.num_examples), classes)
    out().print(table)
    out().print(f"holdout.ptts: {split.holdout_examples} examples (hash {split.holdout_hash}); manifest {manifest}")
    return 0


# create --------------------------------------------------------------------------------------------
def create(args: argparse.Namespace) -> int:
    from paratrain.commands.task import holdout_commitment, parse_hyperparameters
    from paratrain.fl_specs import (
        FlTaskTerms,
        chain_central_dp,
        chain_dp_spec,
        chain_fl_task_spec,
        chain_secagg_spec,
    )
    from runtime_bindings.generated.federated_tasks import TaskCreatedEvent
    from workers.artifacts import ArtifactError, ArtifactStore
    from workers.fl.dp_task import DpTaskError, FlDp
    from workers.fl.secagg_params import SecAggParamsError
    from workers.fl.spec import SpecError, build_spec

    keypair = load_key(args)
    if args.min_clients > args.max_clients:
        raise CliError(f"--min-clients {args.min_clients} is more than --max-clients {args.max_clients}")
    rule = args.rule or ("fedavg" if args.secagg or args.central_dp else "fedmedian")
    if args.central_dp is not None:
        if args.secagg:
            raise CliError("--central-dp cannot be combined with --secagg: the aggregator would noise a sum only it "
                           "sees, and nobody could check the noise")
        if args.dp_epsilon is None:
            raise CliError("--central-dp needs --dp-epsilon, each client's epsilon cap for the task")
        if rule != "fedavg":
            raise CliError(f"--central-dp needs --rule fedavg (its noise is calibrated to a mean), not {rule}")
    try:
        secagg = _secagg_settings(args)
        dp_terms = None if args.dp_epsilon is None else FlDp(
            args.accountant, args.dp_epsilon, args.dp_delta,
            args.clipping_norm if args.central_dp else args.max_grad_norm, args.noise_multiplier)
        dp, central = (None, dp_terms) if args.central_dp else (dp_terms, None)
        if central is not None:
            _check_central_cap(central, args.central_dp, args.rounds)
        spec = build_spec(recipe=args.recipe, rule=rule, rounds=args.rounds,
                          min_clients_per_round=args.min_clients, fraction_per_round=args.fraction,
                          hyperparameters=parse_hyperparameters(args.hyperparameters), seed=args.seed,
                          round_timeout_s=args.round_timeout_s, aggregate_tolerance=args.tolerance, secagg=secagg,
                          dp=dp)
    except (SpecError, SecAggParamsError, DpTaskError) as exc:
        raise CliError(f"bad federated spec: {exc}") from None
    url = chain_url(args)
    with Node(url) as node:  # connect before storing anything: an unreachable node fails fast
        _require_pallet(node)
        bounty = node.planck(args.bounty, "--bounty")
        client_stake = node.planck(args.client_stake, "--client-stake")
        try:
            store = ArtifactStore(args.store)
            initial_hash = store_initial_model(spec, store)
            spec_digest = store.put(spec.canonical_bytes())
            spec_uri = store.uri(spec_digest)
            commitment, holdout = None, None
            if args.holdout is not None:
                holdout = _store_holdout(args.holdout, store)
                salt, digest, size, uri = holdout
                commitment = "0x" + holdout_commitment(bytes.fromhex(salt), bytes.fromhex(digest), size,
                                                       uri.encode()).hex()
        except (ArtifactError, OSError) as exc:
            raise CliError(f"artifact store {args.store or 'default'}: {exc}") from None
        terms = FlTaskTerms(max_clients=args.max_clients, client_share=args.client_share,
                            min_client_stake=client_stake)
        chain_spec = chain_fl_task_spec(spec, spec_uri, spec_hash=spec_digest, initial_model_hash=initial_hash,
                                        terms=terms)
        with chain_errors(url, who=keypair.ss58_address):
            now = node.chain.best_number()
            join_deadline, deadline = now + args.join_blocks, now + args.deadline_blocks
            if deadline > argtypes.U32_MAX:
                raise CliError(f"--deadline-blocks {args.deadline_blocks}: past the last block number a chain "
                               f"can have ({argtypes.U32_MAX})")
            if join_deadline >= deadline:
                raise CliError(f"--join-blocks {args.join_blocks} must be fewer than --deadline-blocks "
                               f"{args.deadline_blocks}")
            if central is not None:
                receipt = node.chain.federated_tasks.create_central_dp_task(
                    keypair, chain_spec, chain_central_dp(central, args.central_dp), bounty, join_deadline, deadline,
                    args.validators, commitment)
            elif dp is not None:
                receipt = node.chain.federated_tasks.create_private_task(
                    keypair, chain_spec, chain_dp_spec(dp), None if secagg is None else chain_secagg_spec(secagg),
                    bounty, join_deadline, deadline, args.validators, commitment)
            elif secagg is None:
                receipt = node.chain.federated_tasks.create_task(keypair, chain_spec, bounty, join_deadline,
                                                                 deadline, args.validators, commitment)
            else:
                receipt = node.chain.federated_tasks.create_secagg_task(
                    keypair, chain_spec, chain_secagg_spec(secagg), bounty, join_deadline, deadline, args.validators,
                    commitment)
        created = receipt.find(TaskCreatedEvent)
        if not created:
            raise CliError("the task was included but no TaskCreated event was found")
        task_id = int(created[0].task)
        log = err()
        log.print(f"federated task {task_id} created in block #{receipt.block_number}: {args.recipe}, "
                  f"{plural(args.rounds, 'round')} of {spec.rule.text}, bounty {node.fmt(bounty)}, clients join "
                  f"until block #{join_deadline}, deadline block #{deadline}")
        log.print(f"  spec {spec_uri}; initial model {initial_hash}")
        if dp is not None:
            log.print(f"  DP-SGD on every client: noise {dp.noise_multiplier:g}, clipping {dp.max_grad_norm:g}, "
                      f"at most epsilon {dp.epsilon:g} (delta {dp.delta:g}, {dp.accountant}) of each client's own "
                      "budget for its data: a client joins only with a budget for its data (paratrain budget set)")
        if central is not None:
            log.print(f"  central DP: each round's mean of updates clipped to L2 {central.max_grad_norm:g} (by the "
                      f"{'aggregator' if args.central_dp == 'server' else 'clients'}) noised with sigma "
                      f"{central.noise_multiplier:g}, at most epsilon {central.epsilon:g} (delta {central.delta:g}, "
                      f"{central.accountant}) of each client's own budget for its data")
        if secagg is not None:
            log.print(f"  SecAgg+: all-to-all shares, threshold {secagg.params.reconstruction_threshold:g}, updates "
                      f"clipped to L2 {secagg.update_norm_bound:g}, {secagg.audit_rate / 10**7:g}% of each round "
                      f"audited")
        if holdout is not None:
            salt, digest, size, uri = holdout
            log.print(f"  holdout committed; after round 1 reveal it with: paratrain fl reveal {task_id} "
                      f"--salt {salt} --holdout-hash {digest} --size {size} --uri {uri} (kept only here)")
        print(task_id)
    return 0


def _check_central_cap(terms: Any, clipped_by: str, rounds: int) -> None:
    """Refuse central-DP terms whose rounds would spend more than the cap: the last rounds could never be released."""
    from paratrain.fl_specs import chain_central_dp
    from workers.fl.central_task import CentralTask
    from workers.privacy.accounting import PrivacyError

    try:
        over = CentralTask.from_chain(chain_central_dp(terms, clipped_by)).over_the_cap(rounds)
    except PrivacyError as exc:
        raise CliError(f"bad central DP terms: {exc}") from None
    if over is not None:
        raise CliError(f"--central-dp: {over}; raise --dp-epsilon or --noise-multiplier, or lower --rounds")


def _secagg_settings(args: argparse.Namespace) -> Any:
    """The SecAgg+ settings `fl create --secagg` asks for (None without --secagg)."""
    from workers.fl.secagg_task import secagg_task

    if not args.secagg:
        return None
    return secagg_task(update_norm_bound=args.norm_bound, audit_rate=args.audit_rate,
                       reconstruction_threshold=args.secagg_threshold / 10**9, clipping_range=args.clipping_range,
                       max_weight=args.max_weight)


def store_initial_model(spec: Any, store: Any) -> str:
    """The task's initial model (workers.fl.model.initial_model: the recipe's model built with the spec's seed)
    put in `store`; its hash (hex), the task's initial_model_hash."""
    from workers.fl.arrays import model_bytes
    from workers.fl.model import ModelError, initial_model

    try:
        model = initial_model(spec)
    except ModelError as exc:
        raise CliError(f"the recipe {spec.recipe} cannot build its initial model: {exc}") from None
    return str(store.put(model_bytes(model)))


def _store_holdout(path: Path, store: Any) -> tuple[str, str, int, str]:
    from workers.datasets import DatasetError, add_dataset

    if not path.is_file():
        raise CliError(f"holdout file {path} does not exist")
    try:
        digest, uri = add_dataset(str(path), store)
    except DatasetError as exc:
        raise CliError(f"bad --holdout: {exc}") from None
    return secrets.token_bytes(32).hex(), digest, len(store.get(digest)), uri


# join ----------------------------------------------------------------------------------------------
def join(args: argparse.Namespace) -> int:
    from runtime_bindings.generated.federated_tasks import ClientJoinedEvent

    keypair = load_key(args)
    data_hash, examples = data_commitment(args.data)
    url = chain_url(args)
    with Node(url) as node:
        task = get_fl_task(node, args.task_id)
        me = keypair.ss58_address
        stake = task.spec.min_client_stake if args.stake is None else node.planck(args.stake, "--stake")
        with chain_errors(url, who=me):
            check_join(node, task, args.task_id, me, stake)
            receipt = node.chain.federated_tasks.join(keypair, args.task_id, "0x" + data_hash, examples, stake)
        if not receipt.find(ClientJoinedEvent):
            raise CliError("the join was included but no ClientJoined event was found")
        err().print(f"{short(me)} joined federated task {args.task_id} in block #{receipt.block_number} with "
                    f"{plural(examples, 'example')} (data {data_hash[:16]}…) and a stake of {node.fmt(stake)}")
    return 0


def check_join(node: Node, task: Any, task_id: int, me: str, stake: int) -> None:
    """The pallet's join refusals, checked before signing (each names the error the pallet would give)."""
    status = status_name(task.status)
    now = node.chain.best_number()
    if status != "Joining" or now >= task.join_deadline:
        raise CliError(f"FederatedTasks.JoinClosed: task {task_id} is {status}"
                       + (f", its join deadline (block #{task.join_deadline}) passed" if status == "Joining" else ""))
    if task.requester == me:
        raise CliError(f"FederatedTasks.RequesterCannotJoin: {short(me)} posted task {task_id}")
    if node.chain.federated_tasks.clients(task_id, me) is not None:
        raise CliError(f"FederatedTasks.AlreadyJoined: {short(me)} already joined task {task_id}")
    if task.clients >= task.spec.max_clients:
        raise CliError(f"FederatedTasks.TooManyClients: task {task_id} has its {task.spec.max_clients} clients")
    if stake < task.spec.min_client_stake:
        raise CliError(f"FederatedTasks.ClientStakeTooLow: task {task_id} asks at least "
                       f"{node.fmt(task.spec.min_client_stake)}, not {node.fmt(stake)}")


# reveal, withdraw ----------------------------------------------------------------------------------
def reveal(args: argparse.Namespace) -> int:
    from paratrain.commands.task import _hash_arg

    keypair = load_key(args)
    salt, digest = _hash_arg(args.salt, "--salt"), _hash_arg(args.holdout_hash, "--holdout-hash")
    url = chain_url(args)
    with Node(url) as node:
        get_fl_task(node, args.task_id)
        with chain_errors(url, who=keypair.ss58_address):
            receipt = node.chain.federated_tasks.reveal_holdout(keypair, args.task_id, "0x" + salt, "0x" + digest,
                                                                args.size, args.uri.encode())
        err().print(f"holdout of federated task {args.task_id} revealed in block #{receipt.block_number}")
    return 0


def withdraw(args: argparse.Namespace) -> int:
    from runtime_bindings.generated.federated_tasks import StakeWithdrawnEvent

    keypair = load_key(args)
    url = chain_url(args)
    with Node(url) as node:
        task = get_fl_task(node, args.task_id)
        me = keypair.ss58_address
        status = status_name(task.status)
        with chain_errors(url, who=me):
            info = node.chain.federated_tasks.clients(args.task_id, me)
            if info is None:
                raise CliError(f"FederatedTasks.NotClient: {short(me)} did not join task {args.task_id}")
            if info.withdrawn:
                raise CliError(f"FederatedTasks.AlreadyWithdrawn: {short(me)} withdrew from task {args.task_id}")
            if status not in TERMINAL:
                raise CliError(f"FederatedTasks.StakeLocked: task {args.task_id} is {status}; the stake comes "
                               "back once it is completed, expired or cancelled")
            receipt = node.chain.federated_tasks.withdraw_stake(keypair, args.task_id)
        amount = sum(int(e.amount) for e in receipt.find(StakeWithdrawnEvent))
        err().print(f"{node.fmt(amount)} of stake withdrawn from federated task {args.task_id}")
    return 0


# status --------------------------------------------------------------------------------------------
def status(args: argparse.Namespace) -> int:
    url = chain_url(args)
    with Node(url) as node:
        if not args.watch:
            out().print(_status_view(node, args))
            return 0
        from rich.live import Live

        with Live(_status_view(node, args), console=out(), auto_refresh=False) as live:
            while True:
                task = get_fl_task(node, args.task_id)
                live.update(_status_view(node, args, task), refresh=True)
                if status_name(task.status) in TERMINAL:
                    return 0
                time.sleep(args.interval)


def _status_view(node: Node, args: argparse.Namespace, task: Any = None) -> Any:
    from rich.console import Group
    from rich.table import Table

    from runtime_bindings.values import METRIC_SCALE

    task = task or get_fl_task(node, args.task_id)
    full = args.full
    with chain_errors(node.url):
        rounds = sorted(node.chain.federated_tasks.rounds.entries(args.task_id), key=lambda kv: int(kv[0]))
        clients = list(node.chain.federated_tasks.clients.entries(args.task_id))
        secagg = node.chain.federated_tasks.sec_agg_specs(args.task_id)
        dp = node.chain.privacy_budgets.federated_privacy(args.task_id)
        central = node.chain.privacy_budgets.federated_central_dp(args.task_id)
        paying = dp is not None or central is not None   # the clients pay in epsilon from their own budgets
        reservations = {str(account): node.chain.privacy_budgets.federated_reservations(args.task_id, str(account))
                        for account, _ in clients} if paying else {}
        audits = {number: node.chain.federated_tasks.audits(args.task_id, number) for number, _ in rounds} \
            if secagg is not None else {}
        refused = {number: node.chain.federated_tasks.sec_agg_refused(args.task_id, number) or []
                   for number, _ in rounds} if secagg is not None else {}
    status = task.status
    head = (f"federated task {args.task_id}: {status_name(status)}"
            + (f" (aggregator {short(str(status.aggregator), full)}, lease until #{status.lease_until})"
               if status_name(status) == "Running" else "")
            + f"; {task.last_accepted}/{task.spec.rounds} rounds accepted, {task.last_committed} committed; "
            f"paid {node.fmt(task.paid)} of {node.fmt(task.bounty)}")
    table = Table(title="rounds")
    for column in ("round", "status", "participants", "global model", "accepts", "rejects",
                   *(("audited (revealed)", "refused (signed)") if secagg is not None else ())):
        table.add_column(column)
    for number, record in rounds:
        audit = audits.get(number)
        audited = (f"{len(audit.drawn)} ({audit.revealed})" if audit is not None else "not drawn",
                   str(len(refused.get(number, [])))) if secagg is not None else ()
        table.add_row(str(number), status_name(record.status), str(len(record.participants)),
                      _hash_text(record.global_model_hash, full), str(len(record.accepts)), str(len(record.rejects)),
                      *audited)
    people = Table(title="clients")
    for column in ("client", "examples", "stake", "paid", "rounds paid", "rounds rejected",
                   *(("epsilon spent / held",) if paying else ())):
        people.add_column(column)
    for account, info in sorted(clients, key=lambda kv: str(kv[0])):
        held = reservations.get(str(account))
        spent = (f"{held.spent_epsilon / 10**6:g} / {held.epsilon / 10**6:g}" if held is not None else "closed",) \
            if paying else ()
        people.add_row(short(str(account), full), str(info.num_examples), node.fmt(info.stake), node.fmt(info.paid),
                       str(info.rounds_paid), str(info.rounds_rejected), *spent)
    target = task.spec.eval_target / METRIC_SCALE
    lines = [head, f"target {task.spec.eval_metric.decode(errors='replace')} {target:g}"]
    if dp is not None:
        lines.append(f"DP-SGD on every client: noise {dp.noise_multiplier / 10**6:g}, clipping "
                     f"{dp.max_grad_norm / 10**6:g}, at most epsilon {dp.epsilon_cap / 10**6:g} of each client's "
                     "budget")
    if central is not None:
        lines.append(f"central DP: each round's mean of updates clipped to L2 {central.clipping_norm / 10**6:g} "
                     f"(by the {'aggregator' if central.clipping.name == 'ServerFixed' else 'clients'}) noised with "
                     f"sigma {central.noise_multiplier / 10**6:g}, at most epsilon {central.epsilon_cap / 10**6:g} of "
                     "each client's budget")
    if secagg is not None:
        lines.append(f"SecAgg+: threshold {secagg.reconstruction_threshold / 10**7:g}% of the shares, updates clipped "
                     f"to L2 {secagg.update_norm_bound / 10**9:g}, at most {secagg.max_weight} examples a client, "
                     f"{secagg.audit_rate / 10**7:g}% of each round audited")
    return Group(*lines, table, people)


def _hash_text(value: Any, full: bool) -> str:
    text = str(value)
    return text if full else text[:18] + "…"


# client --------------------------------------------------------------------------------------------
def client(args: argparse.Namespace) -> int:
    """`paratrain client`: the data owner's daemon (workers.fl.client_daemon) until its tasks end or a signal.
    The stake defaults to the largest least-stake of its tasks, so one amount joins every one of them."""
    from pathlib import Path as _Path

    from workers._daemon_base import stop_on_signals
    from workers.artifacts import ArtifactStore
    from workers.fl.client_daemon import ClientConfig, ClientDaemon, ClientDaemonError

    keypair = load_key(args)
    data_commitment(args.data)  # a bad file is one line now, not a daemon error later
    url = chain_url(args)
    with Node(url) as node:
        tasks = [get_fl_task(node, task_id) for task_id in args.tasks]
        stake = max(int(t.spec.min_client_stake) for t in tasks) if args.stake is None \
            else node.planck(args.stake, "--stake")
        state = args.state_dir or _Path.home() / ".cache" / "paratrain" / "client" / keypair.ss58_address
        state.mkdir(parents=True, exist_ok=True)
        config = ClientConfig(tasks=list(args.tasks), data=args.data, state_dir=state, stake=stake,
                              attack=args.attack, log_path=state / "supernode.log")
        daemon = ClientDaemon(config, chain=node.chain, keypair=keypair, store=ArtifactStore(args.store))
        stop_on_signals(lambda name: daemon.stop())
        err().print(f"client {short(keypair.ss58_address)}: serving {plural(len(tasks), 'task')} "
                    f"({', '.join(str(t) for t in args.tasks)}) with {args.data}; state in {state}")
        try:
            with chain_errors(url, who=keypair.ss58_address):
                return int(daemon.run())
        except ClientDaemonError as exc:
            raise CliError(str(exc)) from None
