"""DeCAI's prediction-market reward loop (Harris and Waggoner, microsoft/0xDeCA10B, the simulation's
`PredictionMarket.process_contribution`) on scores the validators agreed on, in integer planck.

A pass retrains the market's model from its initial parameters on the contributions of the participants still
in, in order, and scores each participant by the change in test accuracy its contributions caused, counted in
test samples (``correct after - correct before``, summed over its contributions). The validators compute every
pass (workers/collab/market_scores.py) and this loop consumes them:

* balances start at each participant's stakes; the bounty is the number of "rounds" to hand out, in planck;
* the pass's worst participant is the one of least score (ties: the earlier participant). If that score is
  negative, the pass lasts ``rounds = balance_worst * N // -score_worst`` (N the test samples), at most the
  rounds left: every balance moves by ``floor(score * rounds / N)``, so the worst one's falls to about zero,
  and the worst participant leaves the next passes;
* if no score is negative, the rest of the rounds are handed out at this pass's scores and the loop ends;
  it ends too when the rounds are spent or nobody is left.

DeCAI tracks the worst contributor as it goes, and its tracker can keep a contributor whose score later rose;
here the worst is the pass's minimum, which any reader of the scores can check. A balance may end below zero
(a participant with less stake than the worst but almost its score); it is paid nothing, and if the positive
balances exceed what the market holds (stakes and bounty) they are scaled down to it (`payouts`).

The validators submit the complete sequence, until a pass with no negative score or nobody left, whatever the
bounty: it depends on the contributions and the test set alone, so honest validators agree on it exactly.
"""
from __future__ import annotations

from collections.abc import Sequence


class ScoresError(ValueError):
    """The submitted passes are not a complete sequence for this market (`name`: the pallet error)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.name = "BadScores"


def check_passes(contributions: Sequence[int], test_samples: int, passes: Sequence[Sequence[int]]) -> None:
    """Every pass scores the participants still in (the first all of them, `contributions` giving each one's
    count), each score within +-N per contribution (a run moves the count of right predictions by at most N),
    and the sequence ends exactly where the loop runs out of negative scores or of participants."""
    active = list(range(len(contributions)))
    for number, scores in enumerate(passes):
        if not active:
            raise ScoresError(f"pass {number} comes after everyone left")
        if len(scores) != len(active):
            raise ScoresError(f"pass {number} has {len(scores)} scores for {len(active)} participants")
        if any(abs(s) > test_samples * contributions[p] for s, p in zip(scores, active)):
            raise ScoresError(f"pass {number} has a score beyond +-{test_samples} test samples a contribution")
        worst = _worst(scores)
        if scores[worst] >= 0 and number != len(passes) - 1:
            raise ScoresError(f"pass {number} has no negative score but is not the last")
        del active[worst]
    if active and (not passes or min(passes[-1]) < 0):
        raise ScoresError("the sequence stops while a participant with a negative score remains")


def _worst(scores: Sequence[int]) -> int:
    return min(range(len(scores)), key=lambda i: (scores[i], i))


def reward_balances(stakes: Sequence[int], bounty: int, test_samples: int,
                    passes: Sequence[Sequence[int]]) -> tuple[list[int], int]:
    """Each participant's final balance (planck, may be negative) and the passes the loop used; `passes` must
    have passed `check_passes`."""
    balances = list(stakes)
    active = list(range(len(stakes)))
    remaining, used = bounty, 0
    for scores in passes:
        if remaining == 0 or not active:
            break
        used += 1
        worst = _worst(scores)
        if scores[worst] < 0:
            rounds = min(max(balances[active[worst]], 0) * test_samples // -scores[worst], remaining)
        else:
            rounds = remaining
        remaining -= rounds
        for position, participant in enumerate(active):
            balances[participant] += scores[position] * rounds // test_samples
        if scores[worst] >= 0:
            break
        del active[worst]
    return balances, used


def payouts(balances: Sequence[int], held: int) -> list[int]:
    """What each participant is paid: its balance if positive, all scaled down (floor) when they would exceed
    `held`, what the market holds."""
    owed = [max(b, 0) for b in balances]
    total = sum(owed)
    if total <= held:
        return owed
    return [o * held // total for o in owed]


__all__ = ["ScoresError", "check_passes", "payouts", "reward_balances"]
