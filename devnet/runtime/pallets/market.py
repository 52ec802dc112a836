"""pallet_prediction_markets: DeCAI's prediction market (Harris and Waggoner, microsoft/0xDeCA10B, left in
simulation there because evaluating a model on chain costs too much), settled on chain by validators' scores.

1. `open`: the bounty provider commits ``blake2_256(SCALE(Vec<Sample>))`` of 2..MaxPieces test-set pieces, the
   initial model (a CollaborativeModels kind, collab_classifiers) and the terms; the bounty is held (reserved).
2. `reveal_initial`: from the next block on, ``blake2_256(MARKET_DOMAIN ++ hash of the opening block ++
   SCALE(market))`` picks the piece to reveal (unknown to the owner when it signed); its samples go on chain and
   participation opens. Contributors see what the test data looks like without seeing the rest.
3. `contribute`: stake `terms.stake` per labelled example; the model does not learn yet.
4. `end`: once min_contributions were made or min_length_s passed, the owner reveals every other piece, each
   checked against its commitment; they are the test set (N samples) and scoring opens for ScoringWindowS.
5. `submit_scores`: each active validator replays the contributions off chain with the same integer model
   (workers/collab/market_scores.py) and submits every pass's scores (market_rewards.py); when
   `validators_required` of them submitted the same passes, the pallet runs DeCAI's reward loop on them and pays
   out at once: stakes lost by bad data and the bounty pay the good data, the rest goes back to the owner.
6. `abandon`, by anyone: an owner that did not end the market by ``min_length_s + RevealGraceS`` after opening
   forfeits its bounty to the contributors (pro rata to their contributions; withholding the test set after
   seeing the contributions must not pay); a market no quorum scored by its deadline returns every stake and
   the bounty. Stakes always come back whole.

Money moves only by reserve, unreserve and repatriation, so total issuance changes by fees alone. Grinding:
devnet's instant seal lets whoever authors blocks retry the opening block; a production chain would draw from
BABE's VRF randomness.
"""
from __future__ import annotations

from typing import Any

from devnet.crypto import blake2_256
from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import BAD_ORIGIN, Constant, ModuleError, Pallet, StorageItem, call
from devnet.runtime.pallets.collab_types import Input, ModelParams
from devnet.runtime.pallets.market_rewards import ScoresError, check_passes, payouts, reward_balances
from devnet.runtime.pallets.market_types import (
    ERRORS,
    EVENTS,
    MARKET,
    PALLET,
    PASSES,
    PIECE,
    MarketContribution,
    MarketRecord,
    MarketTerms,
    Participant,
    Passes,
    Piece,
)
from devnet.runtime.pallets.system import System
from devnet.runtime.pallets.timestamp import Timestamp
from devnet.scale.codec import codec_for
from devnet.scale.types import H256, U32, U64, AccountId, Sequence
from paratrain_api.collab_classifiers import ModelInputError, check_params, predict

MARKET_DOMAIN = b"paratrain/market-reveal/v1"
MAX_PIECES, MAX_PIECE_SAMPLES = 8, 512
MAX_CONTRIBUTIONS, MAX_PARTICIPANTS = 1024, 64
MAX_VALIDATORS_REQUIRED = 16
DAY_S = 86_400
BASE_WEIGHT, PER_VALUE_WEIGHT = 100_000_000, 200_000


def piece_hash(piece: Any) -> bytes:
    """The commitment to a test-set piece: blake2_256 of its SCALE encoding (Vec<Sample>)."""
    return blake2_256(codec_for(Piece).encode(piece))


def drawn_index(opening_block_hash: bytes, market: int, pieces: int) -> int:
    return int.from_bytes(blake2_256(MARKET_DOMAIN + opening_block_hash + market.to_bytes(8, "little")),
                          "little") % pieces


class PredictionMarkets(Pallet):
    name = "PredictionMarkets"
    index = 26
    module = PALLET
    events = EVENTS
    errors = ERRORS

    Markets = StorageItem(MarketRecord, (("Twox64Concat", U64),), docs="market -> its owner, model, terms, phase.")
    Pieces = StorageItem(Piece, (("Twox64Concat", U64), ("Twox64Concat", U32)),
                         docs="(market, piece index) -> a revealed test-set piece.")
    Contributions = StorageItem(MarketContribution, (("Twox64Concat", U64), ("Twox64Concat", U32)),
                                docs="(market, index) -> a staked contribution, in the order the model learns them.")
    Participants = StorageItem(Sequence(Participant), (("Twox64Concat", U64),),
                               docs="market -> its contributors in the order of their first contribution.")
    ScoreVotes = StorageItem(U32, (("Twox64Concat", U64), ("Identity", H256)), default=0,
                             docs="(market, hash of the passes) -> the validators that submitted them.")
    Scored = StorageItem(H256, (("Twox64Concat", U64), ("Blake2_128Concat", AccountId)),
                         docs="(market, validator) -> the hash of the passes it submitted.")
    NextMarketId = StorageItem(U64, default=0, docs="The id the next market gets.")

    def __init__(self, balances: Any, workers: Any) -> None:
        self.balances, self.workers = balances, workers
        self.constants = (
            Constant("MaxPieces", U32, MAX_PIECES, "The most test-set pieces a market commits."),
            Constant("MaxPieceSamples", U32, MAX_PIECE_SAMPLES, "The most samples in one piece."),
            Constant("MaxContributions", U32, MAX_CONTRIBUTIONS, "The most contributions a market takes."),
            Constant("MaxParticipants", U32, MAX_PARTICIPANTS, "The most contributing accounts a market takes."),
            Constant("MaxValidatorsRequired", U32, MAX_VALIDATORS_REQUIRED, "The largest quorum a market asks."),
            Constant("RevealGraceS", U64, DAY_S, "Seconds after min_length_s the owner has to end its market."),
            Constant("ScoringWindowS", U64, DAY_S, "Seconds validators have to reach a quorum on the scores."),
        )

    @call(0, ("features", U32, "u32"), ("classes", U32, "u32"), ("initial", ModelParams, "ModelParams"),
          ("piece_hashes", Sequence(H256), "BoundedVec<H256, T::MaxPieces>"),
          ("terms", MarketTerms, "MarketTerms<T>"), weight=300_000_000)
    def open(self, ctx: DispatchContext, origin: bytes | None, features: int, classes: int, initial: Any,
             piece_hashes: Any, terms: Any) -> None:
        """Open a market: commit the test-set pieces and the initial model, hold the bounty."""
        owner = _signed(origin)
        self._checked(lambda: check_params(initial, features, classes))
        if not 2 <= len(piece_hashes) <= MAX_PIECES:
            raise self.error("TooFewPieces")
        if not (terms["bounty"] > 0 and terms["stake"] > 0
                and 1 <= terms["validators_required"] <= MAX_VALIDATORS_REQUIRED):
            raise self.error("InvalidTerms")
        try:
            self.balances.reserve(ctx, owner, terms["bounty"])
        except ModuleError:
            raise self.error("CannotPayBounty") from None
        market = self.NextMarketId.get(ctx.state)
        self.NextMarketId.set(ctx.state, market + 1)
        self.Markets.set(ctx.state, market, {
            "owner": owner, "features": features, "classes": classes, "initial": initial, "terms": terms,
            "piece_hashes": [bytes(h) for h in piece_hashes], "opened_at": System.Number.get(ctx.state),
            "opened_s": _now_s(ctx), "revealed_index": None, "phase": ("Initialization", None),
            "participation_from_s": 0, "scoring_until_s": 0, "contributions": 0, "test_samples": 0})
        self.Participants.set(ctx.state, market, [])
        ctx.deposit_event(self, "MarketOpened", {"market": market, "owner": owner, "pieces": len(piece_hashes),
                                                 "bounty": terms["bounty"]})

    @call(1, MARKET, PIECE, weight=BASE_WEIGHT)
    def reveal_initial(self, ctx: DispatchContext, origin: bytes | None, market: int, piece: Any) -> None:
        """The owner reveals the piece chain randomness drew; participation opens."""
        record = self._owned(ctx, origin, market, "Initialization")
        if System.Number.get(ctx.state) <= record["opened_at"]:
            raise self.error("DrawNotReady")
        index = drawn_index(bytes(System.BlockHash.get(ctx.state, record["opened_at"])), market,
                            len(record["piece_hashes"]))
        self._check_piece(record, index, piece)
        self.Pieces.set(ctx.state, market, index, piece)
        record.update(revealed_index=index, phase=("Participation", None), participation_from_s=_now_s(ctx))
        self.Markets.set(ctx.state, market, record)
        ctx.deposit_event(self, "PieceRevealed", {"market": market, "index": index, "samples": len(piece)})

    @call(2, MARKET, ("input", Input, "Input"), ("label", U32, "u32"), weight=BASE_WEIGHT)
    def contribute(self, ctx: DispatchContext, origin: bytes | None, market: int, input: Any,  # noqa: A002
                   label: int) -> None:
        """Stake on one labelled example; the market's model learns it when the market is scored."""
        who = _signed(origin)
        record = self._in_phase(ctx, market, "Participation")
        self._check_sample(record, {"input": input, "label": label})
        participants = self.Participants.get(ctx.state, market)
        position = next((i for i, p in enumerate(participants) if bytes(p["account"]) == who), None)
        if record["contributions"] >= MAX_CONTRIBUTIONS or (position is None
                                                             and len(participants) >= MAX_PARTICIPANTS):
            raise self.error("TooManyContributions")
        try:
            self.balances.reserve(ctx, who, record["terms"]["stake"])
        except ModuleError:
            raise self.error("CannotPayStake") from None
        if position is None:
            participants.append({"account": who, "contributions": 1})
        else:
            participants[position]["contributions"] += 1
        self.Participants.set(ctx.state, market, participants)
        index = record["contributions"]
        self.Contributions.set(ctx.state, market, index, {"contributor": who, "input": input, "label": label})
        record["contributions"] = index + 1
        self.Markets.set(ctx.state, market, record)
        ctx.deposit_event(self, "Contributed", {"market": market, "index": index, "contributor": who,
                                                "label": label})

    @call(3, MARKET, ("pieces", Sequence(Piece), "BoundedVec<BoundedVec<Sample, T::MaxPieceSamples>, "
                      "T::MaxPieces>"), weight=BASE_WEIGHT)
    def end(self, ctx: DispatchContext, origin: bytes | None, market: int, pieces: Any) -> None:
        """The owner reveals the other pieces, in index order: they are the test set the validators score on."""
        record = self._owned(ctx, origin, market, "Participation")
        terms = record["terms"]
        if record["contributions"] < terms["min_contributions"] \
                and _now_s(ctx) < record["participation_from_s"] + terms["min_length_s"]:
            raise self.error("CannotEndYet")
        others = [i for i in range(len(record["piece_hashes"])) if i != record["revealed_index"]]
        if len(pieces) != len(others):
            raise self.error("WrongPieces")
        for index, piece in zip(others, pieces):
            self._check_piece(record, index, piece)
        for index, piece in zip(others, pieces):
            self.Pieces.set(ctx.state, market, index, piece)
        scoring_until = _now_s(ctx) + DAY_S
        record.update(phase=("Scoring", None), scoring_until_s=scoring_until,
                      test_samples=sum(len(p) for p in pieces))
        self.Markets.set(ctx.state, market, record)
        ctx.deposit_event(self, "MarketEnded", {"market": market, "test_samples": record["test_samples"],
                                                "scoring_until_s": scoring_until})
        if not record["contributions"]:
            self._settle(ctx, market, record, [])

    @call(4, MARKET, PASSES, weight=BASE_WEIGHT)
    def submit_scores(self, ctx: DispatchContext, origin: bytes | None, market: int, passes: Any) -> None:
        """A validator's scores of every pass; the quorum's settles the market."""
        who = _signed(origin)
        info = self.workers.active_with_role(ctx, who, "Validator")
        if info is None or info["stake"] < self.workers.min_stake["Validator"]:
            raise self.error("NotValidator")
        record = self._in_phase(ctx, market, "Scoring")
        if self.Scored.get(ctx.state, market, who) is not None:
            raise self.error("AlreadyScored")
        participants = self.Participants.get(ctx.state, market)
        try:
            check_passes([p["contributions"] for p in participants], record["test_samples"], passes)
        except ScoresError:
            raise self.error("BadScores") from None
        scores_hash = blake2_256(codec_for(Passes).encode(passes))
        votes = self.ScoreVotes.get(ctx.state, market, scores_hash) + 1
        self.ScoreVotes.set(ctx.state, market, scores_hash, votes)
        self.Scored.set(ctx.state, market, who, scores_hash)
        ctx.deposit_event(self, "ScoresSubmitted", {"market": market, "validator": who, "scores_hash": scores_hash,
                                                    "votes": votes})
        if votes >= record["terms"]["validators_required"]:
            self._settle(ctx, market, record, passes)

    @call(5, MARKET, weight=BASE_WEIGHT)
    def abandon(self, ctx: DispatchContext, origin: bytes | None, market: int) -> None:
        """Anyone closes a market its owner did not end, or no quorum scored, in time; stakes come back whole."""
        _signed(origin)
        record = self._market(ctx, market)
        phase, now = record["phase"][0], _now_s(ctx)
        if phase in ("Settled", "Abandoned"):
            raise self.error("WrongPhase")
        if phase == "Scoring":
            if now < record["scoring_until_s"]:
                raise self.error("TooEarly")
            forfeit = 0
        else:
            if now < record["opened_s"] + record["terms"]["min_length_s"] + DAY_S:
                raise self.error("TooEarly")
            forfeit = record["terms"]["bounty"] if record["contributions"] else 0
        owner, stake = record["owner"], record["terms"]["stake"]
        paid = 0
        for p in self.Participants.get(ctx.state, market):
            self.balances.unreserve(ctx, p["account"], stake * p["contributions"])
            share = forfeit * p["contributions"] // record["contributions"] if forfeit else 0
            if share:
                self.balances.repatriate_reserved(ctx, owner, p["account"], share, "Free")
                paid += share
        self.balances.unreserve(ctx, owner, record["terms"]["bounty"] - paid)
        record["phase"] = ("Abandoned", None)
        self.Markets.set(ctx.state, market, record)
        ctx.deposit_event(self, "MarketAbandoned", {"market": market, "to_contributors": paid})

    def weight_of(self, call_name: str, args: dict[str, Any]) -> int | None:
        """The calls that carry samples are charged for their values: each is hashed, checked and stored."""
        if call_name == "contribute":
            return BASE_WEIGHT + PER_VALUE_WEIGHT * len(args["input"][1])
        if call_name == "reveal_initial":
            return BASE_WEIGHT + PER_VALUE_WEIGHT * sum(len(s["input"][1]) + 1 for s in args["piece"])
        if call_name == "end":
            return BASE_WEIGHT + PER_VALUE_WEIGHT * sum(len(s["input"][1]) + 1 for p in args["pieces"] for s in p)
        if call_name == "submit_scores":
            return BASE_WEIGHT + PER_VALUE_WEIGHT * sum(len(p) for p in args["passes"])
        return None

    def _settle(self, ctx: DispatchContext, market: int, record: dict[str, Any], passes: Any) -> None:
        """Run the reward loop on the agreed passes and pay: losers' stakes to the owner's hold first, then the
        winners from it, then what is left back to the owner (module docstring)."""
        owner, terms = record["owner"], record["terms"]
        participants = self.Participants.get(ctx.state, market)
        stakes = [terms["stake"] * p["contributions"] for p in participants]
        balances, used = reward_balances(stakes, terms["bounty"], max(record["test_samples"], 1), passes)
        pay = payouts(balances, terms["bounty"] + sum(stakes))
        for p, stake, amount in zip(participants, stakes, pay):
            if amount < stake:
                self.balances.repatriate_reserved(ctx, p["account"], owner, stake - amount, "Reserved")
                self.balances.unreserve(ctx, p["account"], amount)
        for p, stake, amount in zip(participants, stakes, pay):
            if amount >= stake:
                self.balances.unreserve(ctx, p["account"], stake)
                self.balances.repatriate_reserved(ctx, owner, p["account"], amount - stake, "Free")
        returned = terms["bounty"] + sum(stakes) - sum(pay)
        self.balances.unreserve(ctx, owner, returned)
        for p, stake, amount in zip(participants, stakes, pay):
            ctx.deposit_event(self, "Paid", {"market": market, "contributor": p["account"], "stake": stake,
                                             "payout": amount})
        record["phase"] = ("Settled", None)
        self.Markets.set(ctx.state, market, record)
        ctx.deposit_event(self, "MarketSettled", {"market": market, "passes": used, "returned": returned})

    def _check_piece(self, record: dict[str, Any], index: int, piece: Any) -> None:
        if len(piece) > MAX_PIECE_SAMPLES:
            raise self.error("TooManySamples")
        for sample in piece:
            self._check_sample(record, sample)
        if piece_hash(piece) != bytes(record["piece_hashes"][index]):
            raise self.error("PieceMismatch")

    def _check_sample(self, record: dict[str, Any], sample: Any) -> None:
        if not 0 <= sample["label"] < record["classes"]:
            raise self.error("ClassOutOfRange")
        self._checked(lambda: predict(record["initial"], record["features"], sample["input"]))

    def _checked(self, compute: Any) -> Any:
        try:
            return compute()
        except ModelInputError as exc:
            raise self.error(exc.name) from None

    def _market(self, ctx: DispatchContext, market: int) -> dict[str, Any]:
        record = self.Markets.get(ctx.state, market)
        if record is None:
            raise self.error("MarketNotFound")
        return record

    def _in_phase(self, ctx: DispatchContext, market: int, phase: str) -> dict[str, Any]:
        record = self._market(ctx, market)
        if record["phase"][0] != phase:
            raise self.error("WrongPhase")
        return record

    def _owned(self, ctx: DispatchContext, origin: bytes | None, market: int, phase: str) -> dict[str, Any]:
        who = _signed(origin)
        record = self._market(ctx, market)
        if bytes(record["owner"]) != who:
            raise self.error("NotOwner")
        if record["phase"][0] != phase:
            raise self.error("WrongPhase")
        return record


def _signed(origin: bytes | None) -> bytes:
    if origin is None:
        raise BAD_ORIGIN
    return origin


def _now_s(ctx: DispatchContext) -> int:
    return Timestamp.Now.get(ctx.state) // 1000


__all__ = ["MAX_CONTRIBUTIONS", "MAX_PARTICIPANTS", "MAX_PIECES", "MAX_PIECE_SAMPLES", "PredictionMarkets",
           "drawn_index", "piece_hash"]
