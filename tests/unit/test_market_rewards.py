"""DeCAI's reward loop on agreed scores (devnet/runtime/pallets/market_rewards.py), worked by hand, and the shape
rule that makes the validators' sequence of passes complete and checkable."""
from __future__ import annotations

import pytest

from devnet.runtime.pallets.market_rewards import ScoresError, check_passes, payouts, reward_balances


def test_a_negative_pass_drains_the_worst_to_zero_and_a_clean_pass_hands_out_the_rest() -> None:
    # pass 0: the worst (-2 of N=10) has 10 planck: 10*10//2 = 50 rounds; everyone moves by score*50//10
    # pass 1: no negative score: the remaining 950 rounds go out at its scores
    balances, used = reward_balances([10, 10, 10], 1000, 10, [[3, 1, -2], [4, 2]])
    assert (balances, used) == ([10 + 15 + 380, 10 + 5 + 190, 0], 2)
    assert payouts(balances, 1030) == balances[:2] + [0]


def test_the_loop_stops_when_the_bounty_rounds_are_spent() -> None:
    # 10*10//1 = 100 rounds would be needed to drain the worst; the bounty is 100: spent in pass 0
    balances, used = reward_balances([10, 10], 100, 10, [[2, -1], [3]])
    assert (balances, used) == ([30, 0], 1)


def test_the_worst_is_the_least_score_and_ties_go_to_the_earlier_participant() -> None:
    balances, _ = reward_balances([10, 10, 10], 10**6, 10, [[-1, -1, 0], [0, 0]])
    assert balances[0] == 0 and balances[1] == 10 - 10 and balances[2] == 10


def test_a_worst_already_below_zero_costs_no_rounds() -> None:
    # participant 1 has one stake of 4; pass 0 drains participant 0 (20 planck, score -4): 50 rounds, and
    # participant 1 (score -3) falls to 4 - 15 = -11; pass 1 removes it at 0 rounds; pass 2 gets the rest
    balances, used = reward_balances([20, 4, 20], 1000, 10, [[-4, -3, 1], [-3, 2], [5]])
    assert balances == [0, -11, 20 + 5 + 950 * 5 // 10] and used == 3
    assert payouts(balances, 1044)[1] == 0


def test_payouts_beyond_what_the_market_holds_are_scaled_down() -> None:
    assert payouts([50, 50, -5], 60) == [30, 30, 0]
    assert payouts([50, 10], 60) == [50, 10]


@pytest.mark.parametrize(("contributions", "passes", "why"), [
    ([1, 1], [[1]], "1 scores for 2"),
    ([1, 1], [[1, 2], [1]], "no negative score but is not the last"),
    ([1, 1], [[1, -1]], "stops while"),
    ([1], [[-1], [0]], "after everyone left"),
    ([1, 1], [[11, -1], [0]], "beyond"),
    ([2, 1], [[12, -11], [0]], "beyond"),
    ([1], [], "stops while"),
])
def test_an_incomplete_or_malformed_sequence_is_refused(contributions: list[int], passes: list[list[int]],
                                                         why: str) -> None:
    with pytest.raises(ScoresError, match=why):
        check_passes(contributions, 10, passes)


def test_complete_sequences_pass_the_shape_rule() -> None:
    check_passes([1, 1], 10, [[2, -1], [3]])
    check_passes([1, 1], 10, [[-1, -2], [-3]])     # everyone leaves
    check_passes([1, 1], 10, [[0, 4]])
    check_passes([3, 1], 10, [[25, -10], [30]])     # three runs may add up to more than N
    check_passes([], 10, [])
