"""Types, events and errors of pallet_prediction_markets (market.py)."""
from __future__ import annotations

from devnet.runtime.framework import ErrorDef, EventDef
from devnet.runtime.pallets.collab_types import Input, ModelParams
from devnet.runtime.pallets.models import I64
from devnet.scale.types import H256, U32, U64, U128, AccountId, Composite, Option, Sequence, enum, fields

PALLET = "pallet_prediction_markets"
MARKET = ("market", U64, "MarketId")
BALANCE = "BalanceOf<T>"

Sample = Composite((PALLET, "types", "Sample"), fields(("input", Input, "Input"), ("label", U32, "u32")))
Piece = Sequence(Sample)
PIECE = ("piece", Piece, "BoundedVec<Sample, T::MaxPieceSamples>")
MarketPhase = enum((PALLET, "types", "MarketPhase"), ("Initialization", ()), ("Participation", ()),
                   ("Scoring", ()), ("Settled", ()), ("Abandoned", ()))
MarketTerms = Composite((PALLET, "types", "MarketTerms"), fields(
    ("bounty", U128, BALANCE), ("stake", U128, BALANCE), ("min_contributions", U32, "u32"),
    ("min_length_s", U64, "u64"), ("validators_required", U32, "u32")))
MarketRecord = Composite((PALLET, "types", "MarketRecord"), fields(
    ("owner", AccountId, "T::AccountId"), ("features", U32, "u32"), ("classes", U32, "u32"),
    ("initial", ModelParams, "ModelParams"), ("terms", MarketTerms, "MarketTerms<T>"),
    ("piece_hashes", Sequence(H256), "BoundedVec<H256, T::MaxPieces>"), ("opened_at", U32, "BlockNumberFor<T>"),
    ("opened_s", U64, "u64"), ("revealed_index", Option(U32), "Option<u32>"), ("phase", MarketPhase, "MarketPhase"),
    ("participation_from_s", U64, "u64"), ("scoring_until_s", U64, "u64"), ("contributions", U32, "u32"),
    ("test_samples", U32, "u32")))
MarketContribution = Composite((PALLET, "types", "MarketContribution"), fields(
    ("contributor", AccountId, "T::AccountId"), ("input", Input, "Input"), ("label", U32, "u32")))
Participant = Composite((PALLET, "types", "Participant"), fields(
    ("account", AccountId, "T::AccountId"), ("contributions", U32, "u32")))
Passes = Sequence(Sequence(I64))
PASSES = ("passes", Passes, "BoundedVec<BoundedVec<i64, T::MaxParticipants>, T::MaxParticipants>")

EVENTS = (
    EventDef("MarketOpened", fields(MARKET, ("owner", AccountId, "T::AccountId"), ("pieces", U32, "u32"),
                                    ("bounty", U128, BALANCE)),
             "A bounty provider opened a market on committed test-set pieces; chain randomness (the hash of this "
             "block) picks the piece it must reveal before participation opens."),
    EventDef("PieceRevealed", fields(MARKET, ("index", U32, "u32"), ("samples", U32, "u32")),
             "The drawn test-set piece matched its commitment: participation is open."),
    EventDef("Contributed", fields(MARKET, ("index", U32, "u32"), ("contributor", AccountId, "T::AccountId"),
                                   ("label", U32, "u32")),
             "A contribution was staked; the model learns from it only when the market is scored."),
    EventDef("MarketEnded", fields(MARKET, ("test_samples", U32, "u32"), ("scoring_until_s", U64, "u64")),
             "The other pieces matched their commitments: validators score the contributions on them."),
    EventDef("ScoresSubmitted", fields(MARKET, ("validator", AccountId, "T::AccountId"),
                                       ("scores_hash", H256, "H256"), ("votes", U32, "u32")),
             "A validator submitted the passes' scores it computed (votes: how many submitted the same)."),
    EventDef("Paid", fields(MARKET, ("contributor", AccountId, "T::AccountId"), ("stake", U128, BALANCE),
                            ("payout", U128, BALANCE)),
             "The reward loop ran on the agreed scores: the contributor got `payout` for its `stake`."),
    EventDef("MarketSettled", fields(MARKET, ("passes", U32, "u32"), ("returned", U128, BALANCE)),
             "Every contributor was paid; `returned` of the bounty and the lost stakes went back to the owner."),
    EventDef("MarketAbandoned", fields(MARKET, ("to_contributors", U128, BALANCE)),
             "The owner did not reveal in time (its bounty went to the contributors, `to_contributors`) or no "
             "quorum scored the market in time (the bounty went back); every stake came back."),
)
ERRORS = tuple(ErrorDef(n, d) for n, d in (
    ("MarketNotFound", "No prediction market with this id."),
    ("TooFewPieces", "A market commits 2..MaxPieces test-set pieces."),
    ("InvalidTerms", "The stake, the bounty and the validators required must be positive (validators at most "
                     "MaxValidatorsRequired)."),
    ("WrongPhase", "The market is not in the phase this call needs."),
    ("NotOwner", "Only the market's owner may reveal its test set."),
    ("DrawNotReady", "The piece to reveal is drawn from the hash of the block that opened the market: wait a block."),
    ("PieceMismatch", "The revealed piece's hash is not the committed one."),
    ("WrongPieces", "Reveal every piece but the drawn one, each once, in index order."),
    ("TooManySamples", "A piece holds at most MaxPieceSamples samples."),
    ("CannotEndYet", "A market ends after min_contributions contributions or min_length_s seconds."),
    ("TooManyContributions", "The market holds at most MaxContributions contributions (MaxParticipants accounts)."),
    ("CannotPayStake", "The contributor's free balance does not cover the stake."),
    ("CannotPayBounty", "The owner's free balance does not cover the bounty."),
    ("NotValidator", "Only an active validator with the minimum stake scores markets."),
    ("AlreadyScored", "This validator already submitted scores for this market."),
    ("BadScores", "The passes are not a complete score sequence for this market's participants."),
    ("TooEarly", "The deadline for this market's reveal or scoring has not passed."),
    ("InvalidDimensions", "A model has 1..MaxFeatures features and 2..MaxClasses classes (a perceptron exactly 2)."),
    ("DimensionMismatch", "An input or the parameters do not have the model's number of features or classes."),
    ("ClassOutOfRange", "A label is not one of the model's classes."),
    ("FeatureOutOfRange", "A sparse input names a feature index beyond the model's features."),
    ("ValueOutOfRange", "An input value is beyond +-MaxValue (fixed point, 1e9 per unit)."),
    ("InputNotSupported", "This model takes sparse inputs only (Naive Bayes counts feature indices)."),
))

__all__ = ["BALANCE", "ERRORS", "EVENTS", "MARKET", "PALLET", "PASSES", "PIECE", "MarketContribution",
           "MarketPhase", "MarketRecord", "MarketTerms", "Participant", "Passes", "Piece", "Sample"]
