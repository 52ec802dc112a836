"""What a prediction market's validator computes off chain: every pass of DeCAI's reward loop, scored with the
same integer model the chain runs (paratrain_api.collab_classifiers), so that honest validators submit the very
same numbers and the pallet settles on them (devnet/runtime/pallets/market_rewards.py states the loop).

A pass retrains from the market's initial parameters on the contributions of the participants still in, in
their order, and scores a run of consecutive contributions from one participant by the change it caused in the
count of test samples predicted right; a participant's score is the sum over its runs (DeCAI evaluates at the
same points). The next pass drops the pass's worst participant (least score, the earlier on ties) if that score
is negative; the sequence ends at a pass with no negative score or when nobody is left. Values are in the
classifiers' form: an input ``("Dense" | "Sparse", values)``, parameters ``(kind, fields)``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from paratrain_api.collab_classifiers import predict, update


@dataclass(frozen=True)
class Contribution:
    participant: int     # index into the market's participants, in the order of their first contribution
    input: Any
    label: int


def correct(params: Any, features: int, test: Sequence[tuple[Any, int]]) -> int:
    """How many test samples the model predicts right."""
    return sum(predict(params, features, values) == label for values, label in test)


def pass_scores(initial: Any, features: int, contributions: Sequence[Contribution],
                test: Sequence[tuple[Any, int]], active: Sequence[int]) -> list[int]:
    """One pass: the score of each participant in `active` (in that order) from its contributions' runs."""
    scores = dict.fromkeys(active, 0)
    kept = [c for c in contributions if c.participant in scores]
    params, before = initial, correct(initial, features, test)
    for position, contribution in enumerate(kept):
        params = update(params, features, contribution.input, contribution.label)
        if position + 1 == len(kept) or kept[position + 1].participant != contribution.participant:
            after = correct(params, features, test)
            scores[contribution.participant] += after - before
            before = after
    return [scores[p] for p in active]


def score_passes(initial: Any, features: int, contributions: Sequence[Contribution],
                 test: Sequence[tuple[Any, int]], participants: int) -> list[list[int]]:
    """The complete sequence of passes the pallet's `submit_scores` takes."""
    active, passes = list(range(participants)), []
    while active:
        scores = pass_scores(initial, features, contributions, test, active)
        passes.append(scores)
        worst = min(range(len(active)), key=lambda i: (scores[i], i))
        if scores[worst] >= 0:
            break
        del active[worst]
    return passes


__all__ = ["Contribution", "correct", "pass_scores", "score_passes"]
