"""`paratrain stake register|bond-extra|update-capabilities|unregister|withdraw|show`: the operator's side of
the Workers pallet, joining the market as a Trainer or Validator and leaving it.

Every refusal the pallet would make is checked first against the chain's state (the registration, the role's
minimum stake, the unbonding block, the open claims) and answered as one line that names the pallet error and
says what to do, before anything is signed: a refused extrinsic still pays its fee, and an operator who gave
a stake too small should lose nothing. Should the state change between the check and the block, the
chain's own refusal is answered the same way.

Capabilities are detected on this machine (workers.capabilities: the cgroup's CPU and memory limits in a
container, torch's CUDA devices) unless given by flags. They may be declared from another machine than the
worker's, so a declaration beyond this machine is only warned about here; the worker daemon refuses to start
on a machine that lacks what its account declared.
"""
from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

from orchestrator.domain import Capabilities
from paratrain import argtypes
from paratrain.cli import CliError
from paratrain.commands.common import (
    Node,
    add_chain_argument,
    add_key_argument,
    address_or_own,
    chain_errors,
    chain_url,
    err,
    load_key,
    out,
    plural,
)

ROLES = {"trainer": "Trainer", "validator": "Validator"}
MIN_STAKE = {"Trainer": "MinTrainerStake", "Validator": "MinValidatorStake"}
# What to do about each refusal of the Workers pallet (the detail, when the state is known, comes before)
REMEDIES = {
    "AlreadyRegistered": "add stake with `paratrain stake bond-extra`, change capabilities with "
                         "`paratrain stake update-capabilities`, or unregister and withdraw first to change the role",
    "NotRegistered": "register it first with `paratrain stake register --role trainer|validator --stake AMOUNT`",
    "InsufficientStake": "register with a larger --stake",
    "GpuModelTooLong": "give a shorter --gpu-model",
    "ZeroAmount": "give an amount above zero",
    "NotActive": "an unbonding worker cannot bond more: withdraw with `paratrain stake withdraw` once the "
                 "period is over, then register again",
    "AlreadyUnbonding": "withdraw with `paratrain stake withdraw` once the unbonding period is over",
    "HasActiveClaims": "unregister once its tasks are settled: a claim is finished or released, a result paid "
                       "or rejected (stop the worker only after that)",
    "HasPendingVerdicts": "unregister once the results it voted on are settled (paid or rejected)",
    "NotUnbonding": "start the unbonding period with `paratrain stake unregister` first",
    "StillUnbonding": "run `paratrain stake withdraw` again once that block is reached",
}


def register(commands: argparse._SubParsersAction) -> None:
    stake = commands.add_parser("stake", help="register as a Trainer or Validator, bond stake, leave and withdraw")
    stake.set_defaults(run=run)
    sub = stake.add_subparsers(dest="stake_command", required=True)

    reg = sub.add_parser("register", help="register the key's account as a Trainer or Validator, reserving a stake")
    reg.add_argument("--role", required=True, type=str.lower, choices=tuple(ROLES), help="trainer or validator")
    reg.add_argument("--stake", required=True, type=argtypes.amount, metavar="AMOUNT",
                     help="stake to reserve, in the chain's token (at least MinTrainerStake or MinValidatorStake)")
    _capability_arguments(reg)
    add_key_argument(reg)
    add_chain_argument(reg)

    bond = sub.add_parser("bond-extra", help="reserve more stake for a registered worker")
    bond.add_argument("amount", type=argtypes.amount, help="amount to add, in the chain's token")
    add_key_argument(bond)
    add_chain_argument(bond)

    update = sub.add_parser("update-capabilities",
                            help="declare the hardware anew (fields not given are detected on this machine)")
    _capability_arguments(update)
    add_key_argument(update)
    add_chain_argument(update)

    unreg = sub.add_parser("unregister", help="start the unbonding period (refused while claims or verdicts are open)")
    add_key_argument(unreg)
    add_chain_argument(unreg)

    withdraw = sub.add_parser("withdraw", help="after the unbonding period: unreserve the stake and leave")
    add_key_argument(withdraw)
    add_chain_argument(withdraw)

    show = sub.add_parser("show", help="registration, stake, unbonding state, open claims and reputation")
    show.add_argument("account", nargs="?", help="SS58 address (default: the --key's account)")
    add_key_argument(show, required=False)
    add_chain_argument(show)


def _capability_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("capabilities (default: detected on this machine, cgroup limits included)")
    group.add_argument("--cpus", type=argtypes.count, metavar="N", help="CPUs")
    group.add_argument("--gpus", type=argtypes.count_or_zero, metavar="N", help="GPUs")
    group.add_argument("--gpu-model", metavar="NAME", help="the GPUs' model, e.g. 'NVIDIA H100'")
    group.add_argument("--memory-mb", type=argtypes.memory_mb, metavar="MIB", help="memory in MiB")


def run(args: argparse.Namespace) -> int:
    return {"register": _register, "bond-extra": _bond_extra, "update-capabilities": _update_capabilities,
            "unregister": _unregister, "withdraw": _withdraw, "show": _show}[args.stake_command](args)


# Refusals -----------------------------------------------------------------------------------------
def refusal(name: str, detail: str) -> CliError:
    """The one line for a Workers refusal: what is wrong, the pallet error, what to do."""
    return CliError(f"{detail} (Workers.{name}): {REMEDIES[name]}")


@contextlib.contextmanager
def stake_errors(url: str, who: str) -> Iterator[None]:
    """chain_errors, with the Workers pallet's refusals (a state changed since the checks) given their remedy."""
    from runtime_bindings import ModuleError

    with chain_errors(url, who=who):
        try:
            yield
        except ModuleError as exc:
            if exc.pallet != "Workers" or exc.name not in REMEDIES:
                raise
            raise refusal(exc.name, f"the chain refused it: {exc.docs.rstrip('.')}") from None


def _capabilities(args: argparse.Namespace, node: Node) -> Capabilities:
    """The declared capabilities: the flags given, the rest detected; a warning when they exceed this machine."""
    from workers.capabilities import detect, shortfalls

    machine = detect()
    declared = Capabilities(cpus=machine.cpus if args.cpus is None else args.cpus,
                             gpus=machine.gpus if args.gpus is None else args.gpus,
                             gpu_model=machine.gpu_model if args.gpu_model is None else args.gpu_model.strip(),
                             memory_mb=machine.memory_mb if args.memory_mb is None else args.memory_mb)
    with chain_errors(node.url):
        longest = node.chain.workers.max_gpu_model_len
    if len(declared.gpu_model.encode()) > longest:
        raise refusal("GpuModelTooLong", f"--gpu-model is {len(declared.gpu_model.encode())} bytes, more than "
                                         f"MaxGpuModelLen ({longest})")
    beyond = shortfalls(machine, declared)
    if beyond:
        err().print("[yellow]warning:[/yellow] more than this machine has (" + "; ".join(beyond)
                    + "): a worker on this machine will refuse to start")
    return declared


def _on_chain(caps: Capabilities) -> dict[str, object]:
    """The call argument: gpu_model as text, which the encoder writes as its UTF-8 bytes."""
    return {"cpus": caps.cpus, "gpus": caps.gpus, "gpu_model": caps.gpu_model, "memory_mb": caps.memory_mb}


def _describe(caps: Capabilities) -> str:
    model = caps.gpu_model
    gpus = plural(caps.gpus, 'GPU') + (f" ({model})" if caps.gpus and model else "")
    return f"{plural(caps.cpus, 'CPU')}, {gpus}, {caps.memory_mb:,} MiB"


def _registration(node: Node, who: str) -> Any:
    with chain_errors(node.url):
        info = node.chain.workers.workers(who)
    if info is None:
        raise refusal("NotRegistered", f"{who} is not a registered worker")
    return info


def _open_claims(node: Node, who: str) -> list[int]:
    """The tasks the worker holds (claimed, or its result not yet paid or rejected), in id order. Under the
    worker's prefix the map yields the task id alone, though it is typed with the whole (worker, task) key."""
    with chain_errors(node.url):
        keys = [key for key, _ in node.chain.task_bounties.claims_by_worker.entries(who)]
    return sorted(int(key[-1] if isinstance(key, tuple) else key) for key in keys)


def _check_free(node: Node, who: str, amount: int) -> None:
    with chain_errors(node.url):
        free = node.chain.system.account(who).data.free
    if free < amount:
        raise CliError(f"insufficient balance: {who} has {node.fmt(free)} free, the stake is {node.fmt(amount)}")


# The commands -------------------------------------------------------------------------------------
def _register(args: argparse.Namespace) -> int:
    keypair = load_key(args)
    who, role = keypair.ss58_address, ROLES[args.role]
    url = chain_url(args)
    with Node(url) as node:
        stake = node.planck(args.stake, "--stake")
        with chain_errors(url):
            info = node.chain.workers.workers(who)
            pallet = node.chain.workers
            minimum = pallet.min_trainer_stake if role == "Trainer" else pallet.min_validator_stake
        if info is not None:
            raise refusal("AlreadyRegistered", f"{who} is already registered as a {info.role.name}")
        if stake < minimum:
            raise refusal("InsufficientStake", f"a stake of {node.fmt(stake)} is below {MIN_STAKE[role]} "
                                               f"({node.fmt(minimum)})")
        caps = _capabilities(args, node)
        _check_free(node, who, stake)
        with stake_errors(url, who):
            receipt = node.chain.workers.register(keypair, role, stake, _on_chain(caps))
        out().print(f"registered {who} as a {role} with {node.fmt(stake)} staked in block #{receipt.block_number} "
                    f"({_describe(caps)})")
    return 0


def _bond_extra(args: argparse.Namespace) -> int:
    keypair = load_key(args)
    who = keypair.ss58_address
    url = chain_url(args)
    with Node(url) as node:
        amount = node.planck(args.amount)
        if amount == 0:
            raise refusal("ZeroAmount", "bad amount: zero")
        info = _registration(node, who)
        if info.status.name != "Active":
            raise refusal("NotActive", f"{who} is unbonding (its stake unlocks at block #{info.status.unlock_at})")
        _check_free(node, who, amount)
        with stake_errors(url, who):
            receipt = node.chain.workers.bond_extra(keypair, amount)
        out().print(f"bonded {node.fmt(amount)} more in block #{receipt.block_number}: "
                    f"{node.fmt(info.stake + amount)} staked")
    return 0


def _update_capabilities(args: argparse.Namespace) -> int:
    keypair = load_key(args)
    who = keypair.ss58_address
    url = chain_url(args)
    with Node(url) as node:
        _registration(node, who)
        caps = _capabilities(args, node)
        with stake_errors(url, who):
            receipt = node.chain.workers.update_capabilities(keypair, _on_chain(caps))
        out().print(f"capabilities of {who} are now {_describe(caps)} (block #{receipt.block_number})")
    return 0


def _unregister(args: argparse.Namespace) -> int:
    from runtime_bindings.generated.workers import UnbondingStartedEvent

    keypair = load_key(args)
    who = keypair.ss58_address
    url = chain_url(args)
    with Node(url) as node:
        info = _registration(node, who)
        if info.status.name != "Active":
            raise refusal("AlreadyUnbonding", f"{who} is already unbonding until block #{info.status.unlock_at}")
        if info.active_claims:
            tasks = ", ".join(str(task) for task in _open_claims(node, who)) or "?"
            raise refusal("HasActiveClaims", f"{who} holds {plural(info.active_claims, 'open claim')} (task {tasks})")
        if info.pending_verdicts:
            raise refusal("HasPendingVerdicts",
                          f"{who} has {plural(info.pending_verdicts, 'verdict')} on results not yet settled")
        with stake_errors(url, who):
            receipt = node.chain.workers.unregister(keypair)
        unlock_at = receipt.find(UnbondingStartedEvent)[0].unlock_at
        out().print(f"unbonding {node.fmt(info.stake)} since block #{receipt.block_number}: withdraw it from block "
                    f"#{unlock_at} with `paratrain stake withdraw`")
    return 0


def _withdraw(args: argparse.Namespace) -> int:
    keypair = load_key(args)
    who = keypair.ss58_address
    url = chain_url(args)
    with Node(url) as node:
        info = _registration(node, who)
        if info.status.name != "Unbonding":
            raise refusal("NotUnbonding", f"{who} is still active: it has not unregistered")
        with chain_errors(url):
            best = node.chain.best_number()
        if best + 1 < info.status.unlock_at:  # the extrinsic lands in the next block at the earliest
            left = info.status.unlock_at - best
            raise refusal("StillUnbonding", f"the unbonding period ends at block #{info.status.unlock_at}, "
                                            f"{plural(left, 'block')} from now")
        with stake_errors(url, who):
            receipt = node.chain.workers.withdraw(keypair)
        out().print(f"withdrew {node.fmt(info.stake)} in block #{receipt.block_number}: {who} is no longer "
                    "registered")
    return 0


def _show(args: argparse.Namespace) -> int:
    from workers.capabilities import from_chain

    who = address_or_own(args, args.account, "account")
    url = chain_url(args)
    with Node(url) as node:
        with chain_errors(url):
            info = node.chain.workers.workers(who)
            reputation = node.chain.workers.reputation(who)
            best = node.chain.best_number()
        claims = _open_claims(node, who) if info is not None else []
        rows = [("account", who)]
        if info is None:
            rows.append(("registered", "no (register with `paratrain stake register`)"))
        else:
            rows += [("role", info.role.name), ("stake", f"{node.fmt(info.stake)} (reserved)"),
                     ("status", _status(info.status, best)), ("registered", f"block #{info.registered_at}"),
                     ("capabilities", _describe(from_chain(info.capabilities))),
                     ("open claims", f"{info.active_claims}" + (f" (task {', '.join(map(str, claims))})"
                                                                if claims else "")),
                     ("open verdicts", str(info.pending_verdicts))]
            if info.active_claims or info.pending_verdicts:
                rows.append(("bonded", "the whole stake, until those are settled: unregistering is refused"))
        rows += [("completed", str(reputation.tasks_completed)), ("rejected", str(reputation.tasks_rejected)),
                 ("expired", str(reputation.tasks_expired)), ("slashed", node.fmt(reputation.total_slashed))]
        console = out()
        width = max(len(key) for key, _ in rows)
        for key, value in rows:
            console.print(f"{key:<{width}}  {value}")
    return 0


def _status(status: Any, best: int) -> str:
    if status.name == "Active":
        return "active"
    if best + 1 >= status.unlock_at:
        return f"unbonding: withdrawable now (since block #{status.unlock_at}): `paratrain stake withdraw`"
    left = status.unlock_at - best
    return f"unbonding: withdrawable from block #{status.unlock_at} ({plural(left, 'block')} from now)"
