"""DeCAI's prediction market run on a chain, end to end: a bounty provider, a good and a bad contributor and the
validators, every step a real extrinsic (pallet PredictionMarkets, docs/collab.md).

The data ship with scikit-learn (breast_cancer, split as the Deposit-Refund-Take experiment splits it,
experiment.split_data, with a 1 % initial share: a market pays for improving a weak model): the initial share's
class means are the market's NearestCentroid; the test share is cut into `pieces` pieces whose hashes the owner
commits when it opens the market with its bounty. Chain randomness
(the opening block's hash) names the piece the owner reveals first; then the stream's examples arrive one per
turn, to the bad contributor (labels flipped) with probability `bad_share`, each staked. The owner ends the
market by revealing the other pieces, and each validator replays the contributions off chain and submits the
passes' scores (market_validator.py); the quorum's submission settles the market on chain, its Paid events are
the result. Money is reported as free balance plus the fees paid, so what moves it is the market alone.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workers.collab.experiment import split_data
from workers.collab.market_validator import market_passes, score_market

UNIT = 10**12
Observer = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class MarketConfig:
    seed: int = 0xDECA10B
    init_fraction: float = 0.01        # a weak model to improve (4 examples): what a bounty is offered for
    test_fraction: float = 0.2
    pieces: int = 3
    contributions: int = 60
    bad_share: float = 1 / 3
    stake: int = UNIT
    bounty: int = 100 * UNIT
    validators_required: int = 2


@dataclass
class MarketResult:
    market: int
    revealed_piece: int
    passes: list[list[int]]
    test_samples: int
    agents: dict[str, dict[str, int]] = field(default_factory=dict)   # name -> stake, payout, start, end, fees
    returned: int = 0
    participants: list[str] = field(default_factory=list)   # agent names in the chain's participant order

    def change(self, name: str) -> int:
        return self.agents[name]["end"] - self.agents[name]["start"]

    def scored(self) -> list[list[tuple[str, int]]]:
        """Each pass's (agent, score), the pass's worst leaving the next as the pallet has it leave."""
        active, out = list(self.participants), []
        for scores in self.passes:
            out.append(list(zip(active, scores)))
            worst = min(range(len(scores)), key=lambda i: (scores[i], i))
            if scores[worst] < 0:
                del active[worst]
        return out


class MarketRun:
    """One market on `chain` (a runtime_bindings.Chain): `owner` provides the bounty, `agents` maps "Good" and
    "Bad" to keypairs, `validators` are registered validators (at least `validators_required`)."""

    def __init__(self, chain: Any, owner: Any, agents: dict[str, Any], validators: Sequence[Any],
                 config: MarketConfig = MarketConfig(), *, observers: Sequence[Observer] = ()) -> None:
        self.chain, self.owner, self.agents, self.validators = chain, owner, agents, list(validators)
        self.config, self.observers = config, tuple(observers)
        self.data = split_data(config.seed, config.init_fraction, config.test_fraction)
        self.fees = dict.fromkeys(agents, 0)

    def notify(self, event: str, **detail: Any) -> None:
        for observer in self.observers:
            observer(event, detail)

    def run(self) -> MarketResult:
        from runtime_bindings import collab as bc
        from runtime_bindings.generated import types as t

        c, x, y = self.config, self.data["x_init"], self.data["y_init"]
        pieces = [[t.Sample(input=bc.dense(v), label=int(label)) for v, label in zip(xs, ys)]
                  for xs, ys in zip(np.array_split(self.data["x_test"], c.pieces),
                                    np.array_split(self.data["y_test"], c.pieces))]
        initial = t.ModelParams.NearestCentroid(
            centroids=[[bc.to_fixed(v) for v in x[y == k].mean(axis=0)] for k in (0, 1)],
            counts=[int((y == k).sum()) for k in (0, 1)])
        terms = t.MarketTerms(bounty=c.bounty, stake=c.stake, min_contributions=c.contributions,
                              min_length_s=30 * 86_400, validators_required=c.validators_required)
        start = {name: self._free(kp) for name, kp in self.agents.items()}
        receipt = self.chain.prediction_markets.open(self.owner, x.shape[1], 2, initial,
                                                     [bc.piece_hash(p) for p in pieces], terms)
        market = int(next(e.market for e in receipt.events if e.name == "MarketOpened"))
        revealed = bc.drawn_piece(receipt.block_hash, market, c.pieces)
        self.chain.prediction_markets.reveal_initial(self.owner, market, pieces[revealed])
        self.notify("opened", market=market, revealed=revealed, samples=c.contributions)
        self._contribute(market)
        self.chain.prediction_markets.end(self.owner, market, [p for i, p in enumerate(pieces) if i != revealed])
        self.notify("ended", market=market)
        passes = market_passes(self.chain, market)
        settled = None
        for number, validator in enumerate(self.validators[:c.validators_required]):
            settled = score_market(self.chain, market, validator)
            self.notify("scored", validator=number)
        result = MarketResult(market, revealed, passes, sum(len(p) for i, p in enumerate(pieces) if i != revealed))
        names = {kp.ss58_address: name for name, kp in self.agents.items()}
        result.participants = [names[str(p.account)] for p in self.chain.prediction_markets.participants(market)]
        paid = {str(e.contributor): (int(e.stake), int(e.payout)) for e in settled.events if e.name == "Paid"}
        result.returned = int(next(e.returned for e in settled.events if e.name == "MarketSettled"))
        for name, keypair in self.agents.items():
            stake, payout = paid.get(keypair.ss58_address, (0, 0))
            result.agents[name] = {"stake": stake, "payout": payout, "start": start[name], "fees": self.fees[name],
                                   "end": self._free(keypair) + self.fees[name]}
        return result

    def _contribute(self, market: int) -> None:
        from runtime_bindings import collab as bc

        rng, c = random.Random(self.config.seed), self.config
        stream = zip(self.data["x_stream"][:c.contributions], self.data["y_stream"][:c.contributions])
        for number, (values, label) in enumerate(stream):
            name = "Bad" if rng.random() < c.bad_share else "Good"
            given = 1 - int(label) if name == "Bad" else int(label)
            receipt = self.chain.prediction_markets.contribute(self.agents[name], market, bc.dense(values), given)
            self.fees[name] += int(receipt.fee or 0)
            self.notify("contributed", sample=number + 1, agent=name)

    def _free(self, keypair: Any) -> int:
        return int(self.chain.system.account(keypair.ss58_address).data.free)


__all__ = ["MarketConfig", "MarketResult", "MarketRun"]
