"""DeCAI's agents as pure policies (workers/collab/agents.py): turns, labels, deposits and the claims walk."""
from __future__ import annotations

import random

from workers.collab.agents import AgentSpec, Claim, Pending, claims, contributes, label_for, next_wait, willing_deposit

GOOD = AgentSpec("Good", True, 10_000, 50, 10, 600, prob_mistake=0.0)
BAD = AgentSpec("Bad", False, 10_000, 100, 3, 3600)
DAY = 86_400


def test_waits_and_deposits_are_positive_and_deposits_capped_at_the_balance() -> None:
    rng = random.Random(1)
    tiny = AgentSpec("Tiny", True, 10, 1, 50, 0.5, stdev_wait_s=5)
    assert all(next_wait(rng, tiny) >= 1 for _ in range(200))
    assert all(willing_deposit(rng, tiny, 1_000) > 0 for _ in range(200))
    assert willing_deposit(rng, GOOD, 7) == 7


def test_the_bad_agent_always_contributes_a_flipped_label_the_good_one_by_accuracy() -> None:
    rng = random.Random(2)
    assert all(contributes(rng, BAD, 0.0) and label_for(rng, BAD, 1) == 0 for _ in range(50))
    assert not any(contributes(rng, GOOD, -0.15) for _ in range(50))
    assert sum(contributes(rng, GOOD, 0.35) for _ in range(2_000)) in range(900, 1_100)   # 0.35 + 0.15
    assert all(label_for(rng, GOOD, 1) == 1 for _ in range(50))


def pending(contribution: int, who: str, added_s: int, label: int = 1, taken: bool = False) -> Pending:
    return Pending(contribution, who, added_s, label, taken)


def walk(items: list[Pending], now_s: int, agrees: set[int], tried: set[int] | None = None) -> list[Claim]:
    return claims("me", items, now_s, refund_wait_s=DAY, any_claim_wait_s=9 * DAY,
                  agrees=lambda p: p.contribution in agrees, tried=tried or set())


def test_the_walk_refunds_its_own_reports_others_and_stops_at_the_first_too_young() -> None:
    items = [pending(0, "me", 0), pending(1, "other", 10), pending(2, "other", 20), pending(3, "me", DAY)]
    assert walk(items, DAY + 15, agrees={0, 2}) == [Claim("refund", 0), Claim("report", 1)]


def test_the_walk_skips_what_would_be_refused() -> None:
    items = [pending(0, "me", 0), pending(1, "other", 0), pending(2, "me", 0, taken=True)]
    assert walk(items, DAY, agrees={1, 2}) == []                  # 0: the model disagrees; 1: agrees; 2: taken
    assert walk([pending(1, "other", 0)], DAY, agrees=set(), tried={1}) == []


def test_past_the_any_claim_wait_everything_is_taken_whole() -> None:
    items = [pending(0, "me", 0), pending(1, "other", 0)]
    assert walk(items, 9 * DAY, agrees={0, 1}) == [Claim("report", 0), Claim("report", 1)]
