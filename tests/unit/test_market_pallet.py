"""PredictionMarkets in process (devnet/runtime/pallets/market.py): the committed test set revealed by chain
randomness and by the owner, stakes, the validators' quorum on the passes that workers/collab/market_scores.py
computes, DeCAI's payout, abandonment, and every bad input refused by name with nothing changed."""
from __future__ import annotations

import random
from typing import Any

import pytest
from fl_pallet_harness import CLIENTS, OUTSIDER, REQUESTER, UNIT, VALIDATORS, FlHarness

from devnet.runtime.pallets.market import PredictionMarkets as PM
from devnet.runtime.pallets.market import drawn_index, piece_hash
from devnet.runtime.pallets.system import System
from paratrain_api.collab_classifiers import TO_FLOAT
from workers.collab.market_scores import Contribution, score_passes

PALLET = "PredictionMarkets"
GOOD, BAD, OTHER = CLIENTS[:3]
STAKE, BOUNTY = 10 * UNIT, 1000 * UNIT
DAY_MS = 86_400_000


def sample(x: float, y: float, label: int) -> dict[str, Any]:
    return {"input": ("Dense", [round(x * TO_FLOAT), round(y * TO_FLOAT)]), "label": label}


def blob(rng: random.Random, label: int) -> dict[str, Any]:
    centre = 1.0 if label else -1.0
    return sample(centre + rng.gauss(0, 0.6), centre + rng.gauss(0, 0.6), label)


RNG = random.Random(7)
PIECES = [[blob(RNG, i % 2) for i in range(12)] for _ in range(3)]
GOOD_DATA = [blob(RNG, i % 2) for i in range(6)]
BAD_DATA = [{**s, "label": 1 - s["label"]} for s in (blob(RNG, i % 2) for i in range(6))]
# the deployed model: both centroids near the origin, class 0 slightly on the wrong side
INITIAL = ("NearestCentroid", {"centroids": [[round(0.2 * TO_FLOAT)] * 2, [round(0.1 * TO_FLOAT)] * 2],
                               "counts": [1, 1]})


def terms(**overrides: int) -> dict[str, int]:
    return {"bounty": BOUNTY, "stake": STAKE, "min_contributions": 4, "min_length_s": 3600,
            "validators_required": 2, **overrides}


class Harness(FlHarness):
    def call(self, who: Any, call: str, **args: Any) -> str | None:
        refused = self.dispatch(who, call, PALLET, **args)
        return refused.removeprefix(f"{PALLET}.") if refused else None

    def refused(self, error: str, who: Any, call: str, **args: Any) -> None:
        before, events = self.snapshot(), len(self.ctx.events)
        assert self.call(who, call, **args) == error
        assert self.snapshot() == before and len(self.ctx.events) == events

    def open(self, **overrides: Any) -> int:
        market = PM.NextMarketId.get(self.state)
        args = {"features": 2, "classes": 2, "initial": INITIAL,
                "piece_hashes": [piece_hash(p) for p in PIECES], "terms": terms(), **overrides}
        assert self.call(REQUESTER, "open", **args) is None
        return market

    def drawn(self, market: int) -> int:
        record = PM.Markets.get(self.state, market)
        return drawn_index(bytes(System.BlockHash.get(self.state, record["opened_at"])), market, len(PIECES))

    def participating(self) -> int:
        market = self.open()
        self.advance()
        assert self.call(REQUESTER, "reveal_initial", market=market, piece=PIECES[self.drawn(market)]) is None
        return market

    def contribute(self, market: int, who: Any, data: list[dict[str, Any]]) -> None:
        for s in data:
            assert self.call(who, "contribute", market=market, input=s["input"], label=s["label"]) is None

    def others(self, market: int) -> list[Any]:
        return [p for i, p in enumerate(PIECES) if i != self.drawn(market)]

    def scoring(self) -> int:
        market = self.participating()
        self.contribute(market, GOOD, GOOD_DATA[:3])
        self.contribute(market, BAD, BAD_DATA)
        self.contribute(market, GOOD, GOOD_DATA[3:])
        assert self.call(REQUESTER, "end", market=market, pieces=self.others(market)) is None
        return market

    def passes(self, market: int) -> list[list[int]]:
        """What an honest validator submits: the scorer run on what the chain stores."""
        record = PM.Markets.get(self.state, market)
        accounts = [bytes(p["account"]) for p in PM.Participants.get(self.state, market)]
        contributions = [PM.Contributions.get(self.state, market, i) for i in range(record["contributions"])]
        test = [(s["input"], s["label"]) for p in self.others(market) for s in p]
        return score_passes(record["initial"], 2, [
            Contribution(accounts.index(bytes(c["contributor"])), c["input"], c["label"]) for c in contributions],
            test, len(accounts))

    def total(self, who: Any) -> int:
        account = self.account(who)
        return account["free"] + account["reserved"]


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    for validator in VALIDATORS[:3]:
        harness.register(validator, "Validator")
    return harness


def test_a_market_pays_good_data_from_bad_data_and_the_bounty(h: Harness) -> None:
    market = h.scoring()
    before = {who.ss58_address: h.total(who) for who in (REQUESTER, GOOD, BAD)}
    issuance = h.issuance()
    passes = h.passes(market)
    assert passes[0][0] > 0 > passes[0][1], passes        # good raised test accuracy, bad lowered it
    assert h.call(VALIDATORS[0], "submit_scores", market=market, passes=passes) is None
    assert PM.Markets.get(h.state, market)["phase"][0] == "Scoring"       # one vote of the two required
    assert h.call(VALIDATORS[1], "submit_scores", market=market, passes=passes) is None
    assert PM.Markets.get(h.state, market)["phase"][0] == "Settled"
    paid = {bytes(e["contributor"]): (e["stake"], e["payout"]) for e in h.events("Paid", PALLET)}
    good_stake, good_payout = paid[GOOD.public_key]
    bad_stake, bad_payout = paid[BAD.public_key]
    assert (good_stake, bad_stake) == (6 * STAKE, 6 * STAKE)
    assert good_payout > good_stake and bad_payout < bad_stake
    assert h.total(GOOD) - before[GOOD.ss58_address] == good_payout - good_stake
    assert h.total(BAD) - before[BAD.ss58_address] == bad_payout - bad_stake
    gained = good_payout + bad_payout - good_stake - bad_stake
    assert h.total(REQUESTER) - before[REQUESTER.ss58_address] == -gained
    assert all(h.account(who)["reserved"] == 0 for who in (REQUESTER, GOOD, BAD))
    assert h.issuance() == issuance
    settled = h.events("MarketSettled", PALLET)[-1]
    assert settled["returned"] == BOUNTY - gained


def test_the_quorum_counts_only_identical_passes(h: Harness) -> None:
    market = h.scoring()
    honest = h.passes(market)
    forged = [[s + (1 if i == 1 else 0) for i, s in enumerate(p)] for p in honest]
    assert h.call(VALIDATORS[0], "submit_scores", market=market, passes=honest) is None
    assert h.call(VALIDATORS[1], "submit_scores", market=market, passes=forged) is None
    assert PM.Markets.get(h.state, market)["phase"][0] == "Scoring"
    h.refused("AlreadyScored", VALIDATORS[1], "submit_scores", market=market, passes=honest)
    assert h.call(VALIDATORS[2], "submit_scores", market=market, passes=honest) is None
    assert PM.Markets.get(h.state, market)["phase"][0] == "Settled"


def test_bad_input_is_refused_by_name_and_changes_nothing(h: Harness) -> None:
    hashes = [piece_hash(p) for p in PIECES]
    base = {"features": 2, "classes": 2, "initial": INITIAL, "piece_hashes": hashes, "terms": terms()}
    h.refused("TooFewPieces", REQUESTER, "open", **{**base, "piece_hashes": hashes[:1]})
    h.refused("InvalidTerms", REQUESTER, "open", **{**base, "terms": terms(stake=0)})
    h.refused("InvalidTerms", REQUESTER, "open", **{**base, "terms": terms(validators_required=0)})
    h.refused("DimensionMismatch", REQUESTER, "open", **{**base, "features": 3})
    h.refused("CannotPayBounty", REQUESTER, "open", **{**base, "terms": terms(bounty=10**9 * UNIT)})
    market = h.open()
    h.refused("DrawNotReady", REQUESTER, "reveal_initial", market=market, piece=PIECES[0])
    h.advance()
    drawn = h.drawn(market)
    h.refused("WrongPhase", GOOD, "contribute", market=market, **_args(GOOD_DATA[0]))
    h.refused("NotOwner", GOOD, "reveal_initial", market=market, piece=PIECES[drawn])
    h.refused("PieceMismatch", REQUESTER, "reveal_initial", market=market, piece=PIECES[(drawn + 1) % 3])
    h.refused("MarketNotFound", REQUESTER, "reveal_initial", market=9, piece=PIECES[drawn])
    assert h.call(REQUESTER, "reveal_initial", market=market, piece=PIECES[drawn]) is None
    h.refused("WrongPhase", REQUESTER, "reveal_initial", market=market, piece=PIECES[drawn])
    h.refused("ClassOutOfRange", GOOD, "contribute", market=market, input=GOOD_DATA[0]["input"], label=2)
    h.refused("DimensionMismatch", GOOD, "contribute", market=market, input=("Dense", [0]), label=0)
    h.refused("ValueOutOfRange", GOOD, "contribute", market=market, input=("Dense", [10**13, 0]), label=0)
    h.contribute(market, GOOD, GOOD_DATA[:2])
    h.refused("CannotEndYet", REQUESTER, "end", market=market, pieces=h.others(market))
    h.contribute(market, BAD, BAD_DATA[:2])
    h.refused("WrongPieces", REQUESTER, "end", market=market, pieces=h.others(market)[:1])
    h.refused("PieceMismatch", REQUESTER, "end", market=market, pieces=h.others(market)[::-1])
    h.refused("NotValidator", OUTSIDER, "submit_scores", market=market, passes=[[1, -1], [1]])
    h.refused("WrongPhase", VALIDATORS[0], "submit_scores", market=market, passes=[[1, -1], [1]])
    assert h.call(REQUESTER, "end", market=market, pieces=h.others(market)) is None
    h.refused("BadScores", VALIDATORS[0], "submit_scores", market=market, passes=[[1, -1]])
    h.refused("BadScores", VALIDATORS[0], "submit_scores", market=market, passes=[[1, 2, 3]])
    h.refused("WrongPhase", GOOD, "contribute", market=market, **_args(GOOD_DATA[0]))
    h.refused("TooEarly", OUTSIDER, "abandon", market=market)


def _args(s: dict[str, Any]) -> dict[str, Any]:
    return {"input": s["input"], "label": s["label"]}


def test_a_stake_beyond_the_free_balance_is_refused(h: Harness) -> None:
    market = h.open(terms=terms(stake=h.account(OTHER)["free"] + 1))
    h.advance()
    assert h.call(REQUESTER, "reveal_initial", market=market, piece=PIECES[h.drawn(market)]) is None
    h.refused("CannotPayStake", OTHER, "contribute", market=market, **_args(GOOD_DATA[0]))


def test_an_owner_that_withholds_the_test_set_forfeits_the_bounty_to_the_contributors(h: Harness) -> None:
    market = h.participating()
    h.contribute(market, GOOD, GOOD_DATA[:3])
    h.contribute(market, BAD, BAD_DATA[:1])
    start = {who.ss58_address: h.total(who) for who in (REQUESTER, GOOD, BAD)}
    h.refused("TooEarly", OUTSIDER, "abandon", market=market)
    h.advance(1, ms_per_block=DAY_MS + 3_600_000)
    assert h.call(OUTSIDER, "abandon", market=market) is None
    assert h.total(GOOD) - start[GOOD.ss58_address] == BOUNTY * 3 // 4
    assert h.total(BAD) - start[BAD.ss58_address] == BOUNTY // 4
    assert h.total(REQUESTER) - start[REQUESTER.ss58_address] == -BOUNTY
    assert all(h.account(who)["reserved"] == 0 for who in (REQUESTER, GOOD, BAD))
    h.refused("WrongPhase", OUTSIDER, "abandon", market=market)


def test_a_market_no_quorum_scored_returns_every_stake_and_the_bounty(h: Harness) -> None:
    market = h.scoring()
    start = {who.ss58_address: h.total(who) for who in (REQUESTER, GOOD, BAD)}
    assert h.call(VALIDATORS[0], "submit_scores", market=market, passes=h.passes(market)) is None
    h.advance(1, ms_per_block=DAY_MS)
    assert h.call(OUTSIDER, "abandon", market=market) is None
    assert {who.ss58_address: h.total(who) for who in (REQUESTER, GOOD, BAD)} == start
    assert all(h.account(who)["reserved"] == 0 for who in (REQUESTER, GOOD, BAD))
    h.refused("WrongPhase", VALIDATORS[1], "submit_scores", market=market, passes=h.passes(market))


def test_a_market_ended_without_contributions_settles_at_once(h: Harness) -> None:
    market = h.participating()
    h.advance(1, ms_per_block=3_600_000)
    before = h.total(REQUESTER)
    assert h.call(REQUESTER, "end", market=market, pieces=h.others(market)) is None
    assert PM.Markets.get(h.state, market)["phase"][0] == "Settled"
    assert h.account(REQUESTER)["reserved"] == 0 and h.total(REQUESTER) == before
