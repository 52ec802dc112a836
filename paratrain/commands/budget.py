"""`paratrain budget set|lower|show DATA_HASH`: a data owner's differential-privacy budget on chain.

A budget (epsilon, delta) is promised once per data set hash by whoever sets it; private tasks on that data
set reserve their epsilon cap and delta from it and spend what their accepted result claims (basic composition:
epsilons add, deltas add). The promise may be lowered, never raised or deleted (docs/privacy-budgets.md).

Since the budget is a promise to the people in the data set, `set` and `lower` take exactly the value written:
an epsilon with more than 6 decimals or a delta that is not a whole number of 1e-15 is refused rather than
rounded (rounding either way would promise something other than what the owner wrote). Every refusal the pallet
would make is checked first against the chain's state and answered as one line naming the pallet error, before
anything is signed; should the state change in between, the chain's own refusal reads the same.
"""
from __future__ import annotations

import argparse
import contextlib
import re
from collections.abc import Iterator
from typing import Any

from paratrain.cli import CliError
from paratrain.commands.common import Node, add_chain_argument, add_key_argument, chain_errors, chain_url, load_key, out

REMEDIES = {
    "BudgetExists": "a budget is set once; lower it with `paratrain budget lower` (by its owner)",
    "NoBudget": "set one with `paratrain budget set DATA_HASH --epsilon E --delta D`",
    "NotBudgetOwner": "only the account that set the budget may lower it",
    "CannotRaiseBudget": "a budget is a public promise: it can only be lowered",
    "BelowCommitted": "wait until reserving tasks end, or lower less",
    "InvalidPrivacyParams": "give an epsilon in (0, MaxEpsilon] and a delta in [MinDelta, MaxDelta]",
}


def register(commands: argparse._SubParsersAction) -> None:
    budget = commands.add_parser("budget", help="a data set's privacy budget: set it, lower it, show what is left")
    budget.set_defaults(run=run)
    sub = budget.add_subparsers(dest="budget_command", required=True)
    for name, text in (("set", "promise a budget for a data set (once; you become its owner)"),
                       ("lower", "lower your budget (never below what is spent plus reserved)")):
        parser = sub.add_parser(name, help=text)
        parser.add_argument("data_hash", help="the data set's content hash (64 hex digits, 0x optional)")
        parser.add_argument("--epsilon", required=True, type=_number, metavar="E", help="epsilon, e.g. 8")
        parser.add_argument("--delta", required=True, type=_number, metavar="D", help="delta, e.g. 1e-5")
        add_key_argument(parser)
        add_chain_argument(parser)
    show = sub.add_parser("show", help="the budget, what is spent and reserved, what remains, the live reservations")
    show.add_argument("data_hash", help="the data set's content hash (64 hex digits, 0x optional)")
    add_chain_argument(show)


def run(args: argparse.Namespace) -> int:
    return {"set": _set, "lower": _lower, "show": _show}[args.budget_command](args)


# Parsing and formatting -------------------------------------------------------------------------
def _number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"must be above 0: {value!r}")
    return number


def _hash(value: str) -> str:
    text = value.lower().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise CliError(f"bad data set hash {value!r}: expected 64 hex digits")
    return "0x" + text


def exact_chain_values(epsilon: float, delta: float) -> tuple[int, int]:
    """(micro-epsilon, delta in 1e-15) that are exactly the values written, or a CliError."""
    from runtime_bindings import privacy as units

    try:
        chain_epsilon, chain_delta = units.epsilon_to_chain(epsilon), units.delta_to_chain(delta)
    except ValueError as exc:
        raise CliError(f"bad budget: {exc}") from None
    if units.epsilon_from_chain(chain_epsilon) != epsilon:
        raise CliError(f"bad --epsilon {epsilon!r}: the chain holds epsilon in steps of 1e-6; give at most 6 decimals")
    if units.delta_from_chain(chain_delta) != delta:
        raise CliError(f"bad --delta {delta!r}: the chain holds delta in steps of 1e-15")
    return chain_epsilon, chain_delta


def pair(epsilon: int, delta: int) -> str:
    """(epsilon, delta) in chain units as a person writes them."""
    from runtime_bindings import privacy as units

    return f"epsilon {units.epsilon_from_chain(epsilon)!r}, delta {units.delta_from_chain(delta)!r}"


# Refusals ---------------------------------------------------------------------------------------
def refusal(name: str, detail: str) -> CliError:
    """The one line for a PrivacyBudgets refusal: what is wrong, the pallet error, what to do."""
    return CliError(f"{detail} (PrivacyBudgets.{name}): {REMEDIES[name]}")


@contextlib.contextmanager
def budget_errors(url: str, who: str) -> Iterator[None]:
    """chain_errors, with PrivacyBudgets' refusals (a state changed since the checks) given their remedy."""
    from runtime_bindings import ModuleError

    with chain_errors(url, who=who):
        try:
            yield
        except ModuleError as exc:
            if exc.pallet != "PrivacyBudgets" or exc.name not in REMEDIES:
                raise
            raise refusal(exc.name, f"the chain refused it: {exc.docs.rstrip('.')}") from None


def _budget(node: Node, data_hash: str) -> Any:
    with chain_errors(node.url):
        budget = node.chain.privacy_budgets.budgets(data_hash)
    if budget is None:
        raise refusal("NoBudget", f"data set {data_hash} has no privacy budget")
    return budget


def _check_bounds(node: Node, epsilon: int, delta: int) -> None:
    from runtime_bindings import privacy as units

    with chain_errors(node.url):
        pallet = node.chain.privacy_budgets
        top, low, high = pallet.max_epsilon, pallet.min_delta, pallet.max_delta
    if epsilon > top:
        raise refusal("InvalidPrivacyParams", f"epsilon {units.epsilon_from_chain(epsilon)!r} is above MaxEpsilon "
                                              f"({units.epsilon_from_chain(top)!r})")
    if not low <= delta <= high:
        raise refusal("InvalidPrivacyParams", f"delta {units.delta_from_chain(delta)!r} is outside [MinDelta, "
                                              f"MaxDelta] = [{units.delta_from_chain(low)!r}, "
                                              f"{units.delta_from_chain(high)!r}]")


# The commands -----------------------------------------------------------------------------------
def _set(args: argparse.Namespace) -> int:
    data_hash = _hash(args.data_hash)
    epsilon, delta = exact_chain_values(args.epsilon, args.delta)
    keypair = load_key(args)
    url = chain_url(args)
    with Node(url) as node:
        _check_bounds(node, epsilon, delta)
        with chain_errors(url):
            existing = node.chain.privacy_budgets.budgets(data_hash)
        if existing is not None:
            promised = pair(existing.epsilon, existing.delta)
            raise refusal("BudgetExists", f"data set {data_hash} already has a budget ({promised}, owner "
                                          f"{existing.owner})")
        with budget_errors(url, keypair.ss58_address):
            receipt = node.chain.privacy_budgets.set_budget(keypair, data_hash, epsilon, delta)
        out().print(f"budget of {data_hash} set to {pair(epsilon, delta)} in block #{receipt.block_number}; "
                    f"owner {keypair.ss58_address}")
    return 0


def _lower(args: argparse.Namespace) -> int:
    data_hash = _hash(args.data_hash)
    epsilon, delta = exact_chain_values(args.epsilon, args.delta)
    keypair = load_key(args)
    url = chain_url(args)
    with Node(url) as node:
        budget = _budget(node, data_hash)
        if budget.owner != keypair.ss58_address:
            raise refusal("NotBudgetOwner", f"the budget of {data_hash} is {budget.owner}'s")
        if epsilon > budget.epsilon or delta > budget.delta:
            raise refusal("CannotRaiseBudget", f"{pair(epsilon, delta)} is above the budget "
                                               f"({pair(budget.epsilon, budget.delta)})")
        committed = (budget.spent_epsilon + budget.reserved_epsilon, budget.spent_delta + budget.reserved_delta)
        if epsilon < committed[0] or delta < committed[1]:
            raise refusal("BelowCommitted", f"{pair(epsilon, delta)} is below what is spent plus reserved "
                                            f"({pair(*committed)})")
        with budget_errors(url, keypair.ss58_address):
            receipt = node.chain.privacy_budgets.lower_budget(keypair, data_hash, epsilon, delta)
        out().print(f"budget of {data_hash} lowered to {pair(epsilon, delta)} in block #{receipt.block_number}")
    return 0


def _show(args: argparse.Namespace) -> int:
    data_hash = _hash(args.data_hash)
    url = chain_url(args)
    with Node(url) as node:
        budget = _budget(node, data_hash)
        with chain_errors(url):
            held = sorted((int(task), "bounty", value) for (task, _), value
                          in node.chain.privacy_budgets.bounty_reservations.entries()
                          if str(value.data_hash) == data_hash)
        rows = [("data set", data_hash), ("owner", str(budget.owner)), ("budget", pair(budget.epsilon, budget.delta)),
                ("spent", pair(budget.spent_epsilon, budget.spent_delta)),
                ("reserved", pair(budget.reserved_epsilon, budget.reserved_delta)),
                ("remaining", pair(budget.epsilon - budget.spent_epsilon - budget.reserved_epsilon,
                                   budget.delta - budget.spent_delta - budget.reserved_delta)),
                ("set at", f"block #{budget.created_at}")]
        rows += [("reservation", f"{market} task {task}: {pair(value.epsilon, value.delta)}")
                 for task, market, value in held]
        console = out()
        width = max(len(key) for key, _ in rows)
        for key, value in rows:
            console.print(f"{key:<{width}}  {value}")
    return 0
