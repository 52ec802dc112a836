"""The money arithmetic of an accepted federated round (design section 4), as pure functions.

Kept out of the pallet so that the split can be read (and tested) without storage: every amount is an
integer, every division rounds down, and what rounding and zero factors leave stays reserved for the
requester (refunded with the task's end as `bounty - paid`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from devnet.runtime.pallets.task_bounties_types import PERBILL, perbill_mul


@dataclass(frozen=True)
class RoundSplit:
    """One round's reward R_r: `per_validator` to each deciding accepter, `clients` the pool, the rest to the
    aggregator (A, plus the validator share's division remainder)."""

    reward: int
    per_validator: int
    clients: int
    aggregator: int


def round_reward(bounty: int, rounds: int, round_number: int) -> int:
    """bounty // rounds; the last round also gets the remainder, so the rounds together pay the whole bounty."""
    share = bounty // rounds
    return share + (bounty % rounds if round_number == rounds else 0)


def split_round(reward: int, validator_share: int, client_share: int, accepters: int) -> RoundSplit:
    validators = perbill_mul(validator_share, reward)
    per_validator = validators // accepters
    clients = perbill_mul(client_share, reward - validators)
    return RoundSplit(reward, per_validator, clients, reward - per_validator * accepters - clients)


def lower_median(values: Sequence[int]) -> int:
    """The lower median: one quorum member's outlier factor cannot raise anyone's pay."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def client_factors(contributions: Sequence[Sequence[int]], rejected: set[int]) -> list[int]:
    """Per participant: the lower median of the deciding verdicts' factors (Perbill), 0 when rejected."""
    return [0 if i in rejected else lower_median([c[i] for c in contributions])
            for i in range(len(contributions[0]))]


def client_pay(pool: int, examples: Sequence[int], factors: Sequence[int]) -> list[int]:
    """pay_i = pool * n_i * f_i / (sum_j n_j * PERBILL), rounded down: pro rata by examples times the factor."""
    total = sum(examples) * PERBILL
    return [pool * n * f // total for n, f in zip(examples, factors)]


def slash_routes(amount: int, requester: bytes, listers: Sequence[bytes]) -> tuple[list[tuple[bytes, int]], int]:
    """Half of a client slash to the requester, the rest split among the validators that listed it; returns the
    routes and the remainder that is burned."""
    to_requester = amount // 2
    each = (amount - to_requester) // len(listers)
    routes = [(requester, to_requester)] + [(v, each) for v in listers]
    return routes, amount - to_requester - each * len(listers)
