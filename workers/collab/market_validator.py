"""A prediction market's validator against the chain: read what the market stores (its initial model, the
contributions in order, the revealed test set), compute every pass off chain (market_scores.py) and submit them
(PredictionMarkets.submit_scores). Nothing it reads is executed: inputs are integers the shared model takes."""
from __future__ import annotations

from typing import Any

from runtime_bindings import collab as bc
from workers.collab.market_scores import Contribution, score_passes


class MarketNotScoring(ValueError):
    """The market does not exist or is not in its Scoring phase: there is nothing to score yet, or any more."""


def market_passes(chain: Any, market: int) -> list[list[int]]:
    """The complete sequence of passes for `market`, from chain state at the best block."""
    pallet = chain.prediction_markets
    record = pallet.markets(market)
    if record is None or record.phase != "Scoring":
        raise MarketNotScoring(f"market {market} is {'missing' if record is None else record.phase}, not Scoring")
    accounts = [str(p.account) for p in pallet.participants(market) or []]
    contributions = []
    for index in range(record.contributions):
        entry = pallet.contributions(market, index)
        contributions.append(Contribution(accounts.index(str(entry.contributor)), bc.plain(entry.input),
                                          int(entry.label)))
    test = [(bc.plain(sample.input), int(sample.label))
            for index in range(len(record.piece_hashes)) if index != record.revealed_index
            for sample in pallet.pieces(market, index) or []]
    return score_passes(bc.plain(record.initial), record.features, contributions, test, len(accounts))


def score_market(chain: Any, market: int, validator: Any) -> Any:
    """Compute and submit `market`'s passes signed by `validator`; the receipt (the quorum's settles it)."""
    return chain.prediction_markets.submit_scores(validator, market, market_passes(chain, market))


__all__ = ["MarketNotScoring", "market_passes", "score_market"]
