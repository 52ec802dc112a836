"""Property-based: over random markets (accounts, contributions, stakes, bounties and any complete sequence of
passes the validators could agree on) the pallet pays exactly what DeCAI's loop says, every planck held comes
out once (payouts plus what returns to the owner equal the bounty plus the stakes), no reserve is left behind
and total issuance does not move."""
from __future__ import annotations

from typing import Any

from fl_pallet_harness import CLIENTS, REQUESTER, UNIT, VALIDATORS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_market_pallet import BAD_DATA, GOOD_DATA, INITIAL, PIECES, Harness

from devnet.runtime.pallets.market import PredictionMarkets as PM
from devnet.runtime.pallets.market import piece_hash
from devnet.runtime.pallets.market_rewards import payouts, reward_balances

DATA = GOOD_DATA + BAD_DATA


@st.composite
def markets(draw: Any) -> dict[str, Any]:
    order = draw(st.lists(st.integers(0, 4), min_size=1, max_size=12))     # who contributes, in order
    participants = list(dict.fromkeys(order))
    counts = [order.count(p) for p in participants]
    active, passes = list(range(len(participants))), []
    while active:
        scores = [draw(st.integers(-3 * counts[p], 3 * counts[p])) for p in active]
        passes.append(scores)
        worst = min(range(len(scores)), key=lambda i: (scores[i], i))
        if scores[worst] >= 0:
            break
        del active[worst]
    return {"order": order, "passes": passes, "stake": draw(st.integers(1, 50)) * UNIT,
            "bounty": draw(st.integers(1, 500)) * UNIT}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markets())
def test_every_planck_held_by_a_market_comes_out_exactly_once(m: dict[str, Any]) -> None:
    h = Harness()
    for validator in VALIDATORS[:2]:
        h.register(validator, "Validator")
    issuance = h.issuance()
    accounts = [CLIENTS[i] for i in range(5)]
    before = {who.ss58_address: h.total(who) for who in (REQUESTER, *accounts)}
    market = PM.NextMarketId.get(h.state)
    assert h.call(REQUESTER, "open", features=2, classes=2, initial=INITIAL,
                  piece_hashes=[piece_hash(p) for p in PIECES],
                  terms={"bounty": m["bounty"], "stake": m["stake"], "min_contributions": len(m["order"]),
                         "min_length_s": 3600, "validators_required": 2}) is None
    h.advance()
    assert h.call(REQUESTER, "reveal_initial", market=market, piece=PIECES[h.drawn(market)]) is None
    for n, who in enumerate(m["order"]):
        sample = DATA[n % len(DATA)]
        assert h.call(accounts[who], "contribute", market=market, input=sample["input"],
                      label=sample["label"]) is None
    assert h.call(REQUESTER, "end", market=market, pieces=h.others(market)) is None
    for validator in VALIDATORS[:2]:
        assert h.call(validator, "submit_scores", market=market, passes=m["passes"]) is None
    assert PM.Markets.get(h.state, market)["phase"][0] == "Settled"

    participants = list(dict.fromkeys(m["order"]))
    stakes = [m["stake"] * m["order"].count(p) for p in participants]
    test_samples = PM.Markets.get(h.state, market)["test_samples"]
    balances, _ = reward_balances(stakes, m["bounty"], test_samples, m["passes"])
    expected = payouts(balances, m["bounty"] + sum(stakes))
    paid = [e["payout"] for e in h.events("Paid", "PredictionMarkets")]
    returned = h.events("MarketSettled", "PredictionMarkets")[-1]["returned"]
    assert paid == expected
    assert sum(paid) + returned == m["bounty"] + sum(stakes)
    for p, stake, payout in zip(participants, stakes, paid):
        assert h.total(accounts[p]) - before[accounts[p].ss58_address] == payout - stake
    assert h.total(REQUESTER) - before[REQUESTER.ss58_address] == returned - m["bounty"]
    assert all(h.account(who)["reserved"] == 0 for who in (REQUESTER, *accounts))
    assert h.issuance() == issuance
