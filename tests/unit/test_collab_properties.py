"""Property-based: random sequences of deposits, refunds and takes from many accounts on a Deposit-Refund-Take
model (devnet/runtime/pallets/collab.py). Every deposit is refunded, taken or still held, exactly once; what is
held is what the contributors have reserved; total issuance never moves (the harness dispatches without fees)."""
from __future__ import annotations

from collections import defaultdict

from fl_pallet_harness import CLIENTS, OUTSIDER, REQUESTER
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_collab_pallet import DAY, Harness, dense, drt, perceptron

from devnet.runtime.pallets.collab import CollaborativeModels as CM

ACCOUNTS = [*CLIENTS[:5], OUTSIDER, REQUESTER]
POINTS = [(dense(x, y), int(x > 0)) for x in (-1, 0.5, 1) for y in (-1, 1)]   # (input, the true label)

operation = st.one_of(
    # the last field: 3 of 4 contributions honest, the rest with the label flipped
    st.tuples(st.just("add"), st.integers(0, len(ACCOUNTS) - 1), st.integers(0, len(POINTS) - 1), st.integers(0, 3)),
    st.tuples(st.just("refund"), st.integers(0, len(ACCOUNTS) - 1), st.integers(0, 40), st.just(0)),
    st.tuples(st.just("report"), st.integers(0, len(ACCOUNTS) - 1), st.integers(0, 40), st.just(0)),
    st.tuples(st.just("wait"), st.sampled_from([1, 60, 3_600, DAY, DAY, 3 * DAY, 9 * DAY]), st.just(0), st.just(0)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=10, max_size=80))
def test_every_deposit_is_refunded_taken_or_held_exactly_once(ops: list[tuple[str, int, int, int]]) -> None:
    h = Harness()
    issuance = h.issuance()
    model = h.deploy(perceptron(), mechanism=drt(owner_claim_wait_s=3 * DAY))
    reserved0 = {k.public_key: h.account(k)["reserved"] for k in ACCOUNTS}
    refunds: dict[int, int] = defaultdict(int)
    takes: dict[int, int] = defaultdict(int)
    for kind, a, b, c in ops:
        if kind == "wait":
            h.wait(a)
            continue
        who = ACCOUNTS[a]
        mark = len(h.ctx.events)
        if kind == "add":
            values, truth = POINTS[b]
            h.call(who, "add_data", model=model, input=values, label=truth if c < 3 else 1 - truth)
        else:   # one of the contributions so far (a missing one is test_collab_pallet's)
            count = CM.Models.get(h.state, model)["contributions"]
            if not count:
                continue
            entry = CM.Contributions.get(h.state, model, b % count)
            if kind == "refund" and a % 2:       # half the refunds asked by the contributor itself
                who = entry["contributor"]
            h.call(who, kind, model=model, contribution=b % count)
        for event in h.events(pallet="CollaborativeModels")[len(h.events(pallet="CollaborativeModels")) -
                                                          _new(h, mark):]:
            if event["name"] == "Refunded":
                assert refunds[event["contribution"]] == 0, "refunded twice"
                refunds[event["contribution"]] += event["amount"]
            elif event["name"] == "Taken":
                takes[event["contribution"]] += event["amount"]
    record = CM.Models.get(h.state, model)
    held = 0
    for contribution in range(record["contributions"]):
        entry = CM.Contributions.get(h.state, model, contribution)
        assert entry["deposit"] == refunds[contribution] + takes[contribution] + entry["claimable"]
        assert not (refunds[contribution] and takes[contribution]), "both refunded and taken"
        held += entry["claimable"]
    assert record["held"] == held
    assert sum(h.account(k)["reserved"] - reserved0[k.public_key] for k in ACCOUNTS) == held
    assert h.issuance() == issuance


def _new(h: Harness, mark: int) -> int:
    """How many of the pallet's events the last call deposited."""
    return sum(1 for record in h.ctx.events[mark:] if record["event"][0] == "CollaborativeModels")

