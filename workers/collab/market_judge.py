"""The validator daemon's part in prediction markets: every market whose owner revealed its test set (the
finalized MarketEnded event) is scored once (market_validator.py), and the validator's quorum settles it.

The markets to score live in ``state.markets`` (market id -> the block it ended in), saved by `save`, so a
restarted daemon scores what it had not. A market that is no longer scoring (settled by the others, abandoned)
or that this validator already scored leaves the list; a failed chain call keeps it for the next loop.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from runtime_bindings import BindingsError
from runtime_bindings.generated import prediction_markets as pm
from workers.collab.market_validator import MarketNotScoring, score_market

log = logging.getLogger(__name__)
PALLET = "PredictionMarkets"


class MarketJudge:
    def __init__(self, *, chain: Any, keypair: Any, state: Any, save: Callable[[], None],
                 notify: Callable[..., None]) -> None:
        self.chain, self.keypair, self.state = chain, keypair, state
        self._save, self._notify = save, notify

    def take_in(self, event: Any, block: Any) -> None:
        """One PredictionMarkets event of a finalized block: an ended market becomes one to score."""
        if event.name == "MarketEnded":
            self.state.markets[str(int(event.market))] = {"block": int(block.number)}
            log.info("market %d: test set revealed in block %d (%d samples); scoring it", int(event.market),
                     block.number, int(event.test_samples))

    def score_pending(self) -> None:
        for key in sorted(self.state.markets, key=int):
            market = int(key)
            try:
                receipt = score_market(self.chain, market, self.keypair)
            except (MarketNotScoring, pm.AlreadyScored, pm.WrongPhase, pm.BadScores) as exc:   # BadScores: a bug
                self._notify("market-abstained", market=market, reason=str(exc))
                log.info("market %d: not scored: %s", market, exc)
            except BindingsError as exc:
                log.warning("market %d: scoring failed, retried next loop: %s", market, exc)
                continue
            else:
                votes = next((int(e.votes) for e in receipt.events if e.name == "ScoresSubmitted"), 0)
                settled = any(e.name == "MarketSettled" for e in receipt.events)
                self._notify("market-scored", market=market, votes=votes, settled=settled)
                log.info("market %d: scores submitted (%d vote(s) for them)%s", market, votes,
                         "; the market settled" if settled else "")
            del self.state.markets[key]
            self._save()


__all__ = ["MarketJudge"]
