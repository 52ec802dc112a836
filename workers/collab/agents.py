"""DeCAI's simulated contributors as pure policies (Harris and Waggoner, microsoft/0xDeCA10B `simulation/`):
when each acts, what it labels, what it is willing to deposit, and which claims it makes. No chain here, so the
choices are unit-tested alone; workers/collab/experiment.py plays them against a real devnet.

As in DeCAI's `simulate.py`:

* an agent's next turn comes ``normalvariate(mean_wait_s, stdev_wait_s)`` seconds after its last one (drawn
  again until at least 1);
* on its turn it takes the next sample of the stream. A good agent contributes with probability ``accuracy +
  0.15`` (a model that is already good is less worth feeding) and mislabels with ``prob_mistake``; a bad agent
  always contributes, with the label flipped;
* it is willing to deposit ``normalvariate(mean_deposit, stdev_deposit)`` (drawn again until above 0, capped
  at its free balance) and contributes only when the chain's deposit is within that;
* then it walks the unclaimed contributions in the order they were added: it stops at the first one younger
  than the refund wait; one older than the any-claim wait it takes whole; its own it asks to refund; another's
  it reports.

Two changes. A failed extrinsic costs a fee on chain where DeCAI's simulation charged nothing, so before claiming
an agent asks the model (a free runtime-API call) and claims only what would succeed: a refund when the model
agrees with the label, a report when it does not. And DeCAI's agents, once every sample is submitted, only take
what is past the any-claim wait (a shortcut to end its simulation); here they go on refunding and reporting as
before, so the last day's contributions settle like the others.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

GOOD_EXTRA = 0.15   # a good agent contributes with probability accuracy + this (DeCAI's simulate.py)


@dataclass(frozen=True)
class AgentSpec:
    name: str
    good: bool
    start_balance: int        # planck
    mean_deposit: int         # planck
    stdev_deposit: int
    mean_wait_s: float
    stdev_wait_s: float = 1.0
    prob_mistake: float = 0.0


@dataclass(frozen=True)
class Pending:
    """A contribution not yet fully claimed, as the agents track it."""

    contribution: int
    contributor: str          # the account's SS58 address
    added_s: int
    label: int
    taken_from: bool = False  # a reporter took part of it: its contributor can no longer ask for a refund


@dataclass(frozen=True)
class Claim:
    action: str               # "refund" or "report"
    contribution: int


def next_wait(rng: random.Random, spec: AgentSpec) -> int:
    while (wait := int(rng.normalvariate(spec.mean_wait_s, spec.stdev_wait_s))) < 1:
        pass
    return wait


def willing_deposit(rng: random.Random, spec: AgentSpec, free: int) -> int:
    while (deposit := int(rng.normalvariate(spec.mean_deposit, spec.stdev_deposit))) <= 0:
        pass
    return min(deposit, free)


def contributes(rng: random.Random, spec: AgentSpec, accuracy: float) -> bool:
    return not spec.good or rng.random() < accuracy + GOOD_EXTRA


def label_for(rng: random.Random, spec: AgentSpec, truth: int) -> int:
    """The label the agent sends for a binary sample whose true label is `truth`."""
    if not spec.good:
        return 1 - truth
    return 1 - truth if rng.random() < spec.prob_mistake else truth


def claims(me: str, pending: Sequence[Pending], now_s: int, *, refund_wait_s: int, any_claim_wait_s: int,
           agrees: Callable[[Pending], bool], tried: set[int]) -> list[Claim]:
    """What the agent `me` claims now, in add order (module docstring); `agrees(p)` asks whether the model
    predicts p's label; `tried` are the contributions it already reported (a reporter takes once)."""
    out = []
    for p in pending:
        age = now_s - p.added_s
        if age < refund_wait_s:
            break
        if age >= any_claim_wait_s:
            out.append(Claim("report", p.contribution))
        elif p.contributor == me:
            if not p.taken_from and agrees(p):
                out.append(Claim("refund", p.contribution))
        elif p.contribution not in tried and not agrees(p):
            out.append(Claim("report", p.contribution))
    return out


__all__ = ["AgentSpec", "Claim", "Pending", "claims", "contributes", "label_for", "next_wait", "willing_deposit"]
