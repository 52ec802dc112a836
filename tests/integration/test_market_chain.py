"""PredictionMarkets over a real socket: a devnet process, the typed bindings, two validators that replay the
market off chain (workers/collab/market_validator.py). DeCAI's prediction market on breast_cancer: the owner
commits three test-set pieces, reveals the drawn one, a good and a bad contributor stake, the owner reveals the
rest, the validators' quorum settles it on chain; the good contributor is paid more than it staked and the bad
one less, to the planck of what the chain moved. The validator daemons score a market on their own, once each,
from its finalized MarketEnded. Bad input is refused with the pallet's typed error."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from runtime_bindings import Chain, Keypair
from runtime_bindings import collab as bc
from runtime_bindings.generated import prediction_markets as pm
from runtime_bindings.generated import types as t
from workers.collab.market_run import MarketConfig, MarketResult, MarketRun
from workers.collab.market_validator import MarketNotScoring, market_passes
from workers.observers import Recorder
from workers.validator import ValidatorConfig, ValidatorDaemon

pytestmark = pytest.mark.slow  # a devnet process

ALICE, BOB, CHARLIE, DAVE, EVE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Dave",
                                                                                "Eve"))
CAPS = t.Capabilities(8, 0, "", 16_000)
CONFIG = MarketConfig(contributions=30)


@pytest.fixture(scope="module")
def chain(devnet) -> Iterator[Chain]:
    with Chain.connect(devnet.ws_url, timeout=10) as connected:
        for validator in (DAVE, EVE):
            connected.workers.register(validator, "Validator", connected.constant("Workers", "MinValidatorStake"),
                                       CAPS)
        yield connected


@pytest.fixture(scope="module")
def settled(chain: Chain) -> MarketResult:
    events: list[str] = []
    result = MarketRun(chain, ALICE, {"Good": BOB, "Bad": CHARLIE}, [DAVE, EVE], CONFIG,
                       observers=[lambda event, detail: events.append(event)]).run()
    assert events.count("contributed") == CONFIG.contributions and events.count("scored") == 2
    return result


def test_the_quorum_settles_good_data_above_its_stake_and_bad_data_below(chain: Chain, settled: MarketResult) -> None:
    good, bad = settled.agents["Good"], settled.agents["Bad"]
    assert good["stake"] > 0 and bad["stake"] > 0
    assert good["stake"] + bad["stake"] == CONFIG.contributions * CONFIG.stake
    assert good["payout"] > good["stake"] and bad["payout"] < bad["stake"]
    assert settled.change("Good") == good["payout"] - good["stake"]
    assert settled.change("Bad") == bad["payout"] - bad["stake"]
    record = chain.prediction_markets.markets(settled.market)
    assert record.phase == "Settled" and record.revealed_index == settled.revealed_piece
    assert settled.returned == CONFIG.bounty + CONFIG.contributions * CONFIG.stake - good["payout"] - bad["payout"]
    for who in (ALICE, BOB, CHARLIE):
        assert chain.system.account(who.ss58_address).data.reserved == 0


def test_the_validators_agreed_on_the_passes_the_chain_settled(chain: Chain, settled: MarketResult) -> None:
    assert settled.passes[0][0] > 0 > settled.passes[0][1]
    with pytest.raises(MarketNotScoring, match="Settled"):
        market_passes(chain, settled.market)
    with pytest.raises(pm.WrongPhase):
        chain.prediction_markets.submit_scores(DAVE, settled.market, settled.passes)


def test_bad_input_is_refused_by_name(chain: Chain, settled: MarketResult) -> None:
    piece = [t.Sample(input=bc.dense([0.0, 1.0]), label=0), t.Sample(input=bc.dense([1.0, 0.0]), label=1)]
    other = [t.Sample(input=bc.dense([2.0, 2.0]), label=1)]
    initial = t.ModelParams.NearestCentroid(centroids=[[0, 0], [bc.TO_FLOAT, bc.TO_FLOAT]], counts=[1, 1])
    terms = t.MarketTerms(bounty=10**12, stake=10**12, min_contributions=1, min_length_s=3600,
                          validators_required=1)
    with pytest.raises(pm.TooFewPieces):
        chain.prediction_markets.open(ALICE, 2, 2, initial, [bc.piece_hash(piece)], terms)
    receipt = chain.prediction_markets.open(ALICE, 2, 2, initial, [bc.piece_hash(piece), bc.piece_hash(other)], terms)
    market = int(next(e.market for e in receipt.events if e.name == "MarketOpened"))
    with pytest.raises(pm.WrongPhase):
        chain.prediction_markets.contribute(BOB, market, bc.dense([1.0, 1.0]), 1)
    drawn = bc.drawn_piece(receipt.block_hash, market, 2)
    assert drawn == bc.drawn_piece(bytes(chain.system.block_hash(receipt.block_number)), market, 2)
    pieces = (piece, other)
    with pytest.raises(pm.PieceMismatch):
        chain.prediction_markets.reveal_initial(ALICE, market, pieces[1 - drawn])
    with pytest.raises(pm.NotOwner):
        chain.prediction_markets.reveal_initial(BOB, market, pieces[drawn])
    chain.prediction_markets.reveal_initial(ALICE, market, pieces[drawn])
    assert chain.prediction_markets.markets(market).phase == "Participation"
    with pytest.raises(pm.DimensionMismatch):
        chain.prediction_markets.contribute(BOB, market, bc.dense([1.0]), 1)
    with pytest.raises(pm.ClassOutOfRange):
        chain.prediction_markets.contribute(BOB, market, bc.dense([1.0, 1.0]), 2)
    with pytest.raises(pm.CannotEndYet):
        chain.prediction_markets.end(ALICE, market, [pieces[1 - drawn]])


def small_market(chain: Chain, contributions: list[tuple[Keypair, list[float], int]]) -> tuple[int, int]:
    """A two-feature market whose owner revealed its test set (Scoring); (market, the block it ended in)."""
    test = [t.Sample(input=bc.dense([x, x]), label=int(x > 0)) for x in (-2.0, -1.5, -1.0, 1.0, 1.5, 2.0)]
    pieces = [test[:2], test[2:4], test[4:]]
    initial = t.ModelParams.NearestCentroid(centroids=[[bc.TO_FLOAT, bc.TO_FLOAT], [0, 0]], counts=[1, 1])
    terms = t.MarketTerms(bounty=50 * 10**12, stake=10**12, min_contributions=len(contributions),
                          min_length_s=86_400, validators_required=2)
    receipt = chain.prediction_markets.open(ALICE, 2, 2, initial, [bc.piece_hash(p) for p in pieces], terms)
    market = int(next(e.market for e in receipt.events if e.name == "MarketOpened"))
    drawn = bc.drawn_piece(receipt.block_hash, market, 3)
    chain.prediction_markets.reveal_initial(ALICE, market, pieces[drawn])
    for who, values, label in contributions:
        chain.prediction_markets.contribute(who, market, bc.dense(values), label)
    ended = chain.prediction_markets.end(ALICE, market, [p for i, p in enumerate(pieces) if i != drawn])
    return market, int(ended.block_number)


def test_the_validator_daemons_score_an_ended_market_once_each_and_settle_it(chain: Chain, tmp_path) -> None:
    good = [(BOB, [-1.0, -1.0], 0), (BOB, [1.2, 1.2], 1)]
    bad = [(CHARLIE, [1.5, 1.5], 0), (CHARLIE, [-1.5, -1.5], 1)]
    market, ended_at = small_market(chain, good + bad)
    expected = market_passes(chain, market)
    daemons, threads, recorders = {}, [], {}
    for who in ("Dave", "Eve"):
        config = ValidatorConfig(chain_url=chain.url, key=f"//{who}", store=str(tmp_path / f"{who}-store"),
                                 state_dir=str(tmp_path / f"{who}-state"), from_block=ended_at, poll_interval_s=0.2)
        daemons[who], recorders[who] = ValidatorDaemon(config), Recorder(maxlen=20, only={"market-scored"})
        daemons[who].subscribe(recorders[who])
        threads.append(threading.Thread(target=daemons[who].run, daemon=True))
        threads[-1].start()
    try:
        deadline = time.monotonic() + 60
        while chain.prediction_markets.markets(market).phase != "Settled":
            assert time.monotonic() < deadline, "the daemons did not settle the market"
            time.sleep(0.3)
        while sum(len(r.events) for r in recorders.values()) < 2:
            assert time.monotonic() < deadline, "a daemon did not report its scores"
            time.sleep(0.2)
    finally:
        for daemon in daemons.values():
            daemon.stop()
        for thread in threads:
            thread.join(60)
    scored = [detail for r in recorders.values() for _, detail in r.events]
    assert sorted(d["votes"] for d in scored) == [1, 2] and [d["settled"] for d in scored].count(True) == 1
    for who in ("Dave", "Eve"):
        submitted = chain.prediction_markets.scored(market, Keypair.create_from_uri(f"//{who}").ss58_address)
        assert submitted is not None and all(not d.state.markets for d in daemons.values())
    assert expected[0][0] > 0 > expected[0][1]
