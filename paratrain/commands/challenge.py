"""`paratrain task finalize|challenge`, and how `task list|show` describe a challenge period.

On a chain with a challenge period, a quorum of accepts makes a result Approved until ``challenge_until``
(a Timestamp.Now moment, ms) instead of paying at once. While the period runs, a staked Validator that did
not approve it may challenge it with the hash of its evidence document (`task challenge`; the deposit is
reserved); a challenge round of 2 * validators_required + 1 verdicts settles it. Once the period is over
anyone may pay the result out (`task finalize`); the worker's daemon does it itself, and on_initialize in
the next block does too. Time left is reckoned by the later of the chain's time and the local clock: the
chain's moments are wall-clock ms, and an idle instant-seal chain's Now stays at its last block.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

from paratrain import argtypes
from paratrain.cli import CliError
from paratrain.commands.common import (
    Node,
    add_chain_argument,
    add_key_argument,
    chain_errors,
    chain_url,
    load_key,
    out,
    short,
)
from runtime_bindings.generated.types import TaskStatus, TaskStatusApproved


def _hash(value: str) -> str:
    text = value.lower().removeprefix("0x")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise argparse.ArgumentTypeError(f"not a 32-byte hash: {argtypes.shown(value)} (expected 64 hex digits)")
    return text


def register(sub: argparse._SubParsersAction) -> None:
    """Add `task finalize` and `task challenge` (task.py owns the `task` parser)."""
    finalize = sub.add_parser("finalize", help="pay out an Approved task whose challenge period is over "
                                               "(anyone may; the worker's daemon does it too)")
    finalize.add_argument("task_id", type=argtypes.task_id)
    add_key_argument(finalize)
    add_chain_argument(finalize)

    challenge = sub.add_parser("challenge", help="challenge an Approved result within its challenge period "
                                                 "(a staked Validator; the challenge deposit is reserved)")
    challenge.add_argument("task_id", type=argtypes.task_id)
    challenge.add_argument("--evidence", required=True, type=_hash, metavar="HASH",
                           help="blake2-256 of the evidence document (as the validator daemon stores it)")
    add_key_argument(challenge)
    add_chain_argument(challenge)


# Describing the period ---------------------------------------------------------------------------
def left_ms(challenge_until: int, chain_now_ms: int) -> int:
    """Milliseconds left in the period (workers.payout's rule: the later of the chain's and the local clock)."""
    from workers.payout import period_left_ms

    return period_left_ms(challenge_until, chain_now_ms, int(time.time() * 1000))


def period_text(challenge_until: int, left: int) -> str:
    from workers.payout import moment_text

    return f"until {moment_text(challenge_until)}, " + (f"{left / 1000:.1f} s left" if left else "over")


def list_status(status: TaskStatus, chain_now_ms: int, result: Any) -> str:
    """The status column of `task list`."""
    if isinstance(status, TaskStatus.Approved):
        left = left_ms(status.challenge_until, chain_now_ms)
        return f"Approved ({left / 1000:.1f} s left)" if left else "Approved (period over)"
    if isinstance(status, TaskStatus.Challenged) and result is not None:
        return f"Challenged ({len(result.rejects)} reject, {len(result.accepts)} accept)"
    return status.name


def show_rows(node: Node, task_id: int, status: TaskStatus, result: Any,
              chain_now_ms: int) -> list[tuple[str, str]]:
    """The status row of `task show` and, in a challenge period or round, who approved and who challenged."""
    from workers.payout import moment_text

    if isinstance(status, TaskStatus.Approved):
        until = status.challenge_until
        left = left_ms(until, chain_now_ms)
        hint = "" if left else f" (anyone may pay it out: paratrain task finalize {task_id})"
        rows = [("status", f"Approved, worker {status.worker}, challenge period {period_text(until, left)}{hint}")]
    elif isinstance(status, TaskStatus.Challenged):
        rows = [("status", (f"Challenged, worker {status.worker}, challenger {status.challenger}, "
                            f"settles by {moment_text(status.settle_until)}"))]
    else:  # lease_until is a block number, verify_until a Timestamp moment (ms)
        shown = {"lease_until": lambda v: f"#{v}", "verify_until": lambda v: moment_text(int(v))}
        detail = [(f.name, getattr(status, f.name)) for f in dataclasses.fields(status)] \
            if dataclasses.is_dataclass(status) else []
        return [("status", status.name + "".join(f", {k} {shown.get(k, str)(v)}" for k, v in detail))]
    if result is not None and result.approved_by:
        rows.append(("approved by", ", ".join(short(a) for a in result.approved_by)))
    challenge = result.challenge if result is not None else None
    if challenge is not None:
        rows.append(("challenge", (f"by {challenge.challenger}, deposit {node.fmt(challenge.deposit)}, evidence "
                                   f"{challenge.evidence_hash}, opened in block #{challenge.opened_at}")))
    return rows


# Commands ----------------------------------------------------------------------------------------
def _approved(node: Node, task_id: int, action: str) -> TaskStatusApproved:
    from paratrain.commands.task import get_task

    status = get_task(node, task_id).status
    if isinstance(status, TaskStatus.Accepted):
        raise CliError(f"task {task_id} is already Accepted: its bounty was paid out")
    if not isinstance(status, TaskStatus.Approved):
        raise CliError(f"task {task_id} is {status.name}: only an Approved task (a result in its challenge period) "
                       f"can be {action}")
    return status


def run_finalize(args: argparse.Namespace) -> int:
    from runtime_bindings import ModuleError
    from runtime_bindings.generated.task_bounties import TaskAcceptedEvent

    keypair = load_key(args)
    url = chain_url(args)
    with Node(url) as node:
        until = _approved(node, args.task_id, "finalized").challenge_until
        with chain_errors(url):
            left = left_ms(until, int(node.chain.timestamp.now() or 0))
        if left:
            raise CliError(f"task {args.task_id}: the challenge period is not over ({period_text(until, left)})")
        with chain_errors(url, who=keypair.ss58_address):
            try:
                receipt = node.chain.task_bounties.finalize_result(keypair, args.task_id)
            except ModuleError as exc:
                if exc.name == "ChallengePeriodNotOver":
                    raise CliError(f"task {args.task_id}: the challenge period is not over by the chain's clock "
                                   "yet (it is behind this machine's): try again in a moment") from None
                if exc.name == "NotApproved":
                    raise CliError(f"task {args.task_id} is no longer Approved (paid out or challenged "
                                   "meanwhile): see paratrain task show") from None
                raise
        [paid] = receipt.find(TaskAcceptedEvent) or [None]
        text = (f": worker {paid.worker} paid {node.fmt(paid.worker_reward)}, "
                f"{node.fmt(paid.validator_reward)} to each approving validator" if paid is not None else "")
        out().print(f"task {args.task_id} finalized in block #{receipt.block_number}{text}")
    return 0


def run_challenge(args: argparse.Namespace) -> int:
    from runtime_bindings.generated.task_bounties import ResultChallengedEvent
    from workers.payout import moment_text

    keypair = load_key(args)
    url = chain_url(args)
    with Node(url) as node:
        _approved(node, args.task_id, "challenged")
        with chain_errors(url, who=keypair.ss58_address):
            receipt = node.chain.task_bounties.challenge_result(keypair, args.task_id, "0x" + args.evidence)
        [opened] = receipt.find(ResultChallengedEvent) or [None]
        text = (f": deposit {node.fmt(opened.deposit)} reserved; the challenge round settles by "
                f"{moment_text(int(opened.settle_until))}" if opened is not None else "")
        out().print(f"task {args.task_id} challenged in block #{receipt.block_number}{text}")
    return 0


__all__ = ["list_status", "register", "run_challenge", "run_finalize", "show_rows"]
