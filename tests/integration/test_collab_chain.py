"""CollaborativeModels over a real socket: a devnet process, the typed bindings (generated calls, storage and
errors; runtime_bindings/collab.py for predict through state_call). A model is deployed, learns from real
extrinsics, predicts without a transaction, refunds a good contribution, and refuses bad input by name."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime_bindings import Chain, Keypair
from runtime_bindings import collab as bc
from runtime_bindings.generated import collaborative_models as cm
from runtime_bindings.generated import types as t

pytestmark = pytest.mark.slow  # a devnet process

ALICE, BOB, CHARLIE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie"))
WAITS = t.Waits(refund_wait_s=0, owner_claim_wait_s=3_600, any_claim_wait_s=7_200)
COST_WEIGHT = 10**9


@pytest.fixture(scope="module")
def chain(devnet) -> Iterator[Chain]:
    with Chain.connect(devnet.ws_url, timeout=10) as connected:
        yield connected


@pytest.fixture(scope="module")
def model(chain: Chain) -> int:
    receipt = chain.collaborative_models.deploy(
        ALICE, 2, 2, t.ModelParams.Perceptron(weights=[0, 0], intercept=0, learning_rate=bc.TO_FLOAT),
        t.Mechanism.DepositRefundTake(waits=WAITS, cost_weight=COST_WEIGHT))
    return int(next(e.model for e in receipt.events if e.name == "ModelDeployed"))


def test_a_contribution_updates_the_model_and_holds_its_deposit(chain: Chain, model: int) -> None:
    assert bc.predict(chain, model, bc.dense([1.0, 0.5])) == 0
    reserved = chain.system.account(BOB.ss58_address).data.reserved
    receipt = chain.collaborative_models.add_data(BOB, model, bc.dense([1.0, 0.5]), 1)
    (added,) = [e for e in receipt.events if e.name == "DataAdded"]
    assert added.deposit > 0 and chain.system.account(BOB.ss58_address).data.reserved == reserved + added.deposit
    params = chain.collaborative_models.parameters(model)
    assert params.weights == [bc.TO_FLOAT, bc.TO_FLOAT // 2]     # w += lr * x on the misprediction
    assert bc.predict(chain, model, bc.dense([1.0, 0.5])) == 1
    assert bc.predict(chain, model, bc.sparse([0])) == 1


def test_a_good_contribution_is_refunded(chain: Chain, model: int) -> None:
    receipt = chain.collaborative_models.add_data(CHARLIE, model, bc.dense([-1.0, 0.0]), 0)
    contribution = int(next(e.contribution for e in receipt.events if e.name == "DataAdded"))
    receipt = chain.collaborative_models.refund(CHARLIE, model, contribution)
    (refunded,) = [e for e in receipt.events if e.name == "Refunded"]
    assert refunded.amount > 0
    assert chain.collaborative_models.contributor_stats(model, CHARLIE.ss58_address).good == 1


def test_bad_input_is_refused_by_name(chain: Chain, model: int) -> None:
    with pytest.raises(cm.DimensionMismatch):
        chain.collaborative_models.add_data(BOB, model, bc.dense([1.0, 2.0, 3.0]), 0)
    with pytest.raises(cm.ClassOutOfRange):
        chain.collaborative_models.add_data(BOB, model, bc.dense([1.0, 2.0]), 5)
    with pytest.raises(cm.NotContributor):
        chain.collaborative_models.refund(ALICE, model, 0)
    with pytest.raises(cm.DimensionMismatch):
        bc.predict(chain, model, bc.dense([1.0]))
    with pytest.raises(cm.ModelNotFound):
        bc.predict(chain, model + 100, bc.dense([1.0, 0.0]))


def test_dev_time_travel_moves_the_chain_through_the_refund_wait(chain: Chain) -> None:
    """The experiment's clock: dev_timeTravel (chopsticks' call) sets the next blocks' timestamp."""
    from runtime_bindings import RpcError

    waits = t.Waits(refund_wait_s=86_400, owner_claim_wait_s=86_400, any_claim_wait_s=86_400)
    receipt = chain.collaborative_models.deploy(
        ALICE, 2, 2, t.ModelParams.Perceptron(weights=[0, 0], intercept=0, learning_rate=bc.TO_FLOAT),
        t.Mechanism.DepositRefundTake(waits=waits, cost_weight=COST_WEIGHT))
    model = int(next(e.model for e in receipt.events if e.name == "ModelDeployed"))
    receipt = chain.collaborative_models.add_data(BOB, model, bc.dense([-1.0, 0.0]), 0)
    contribution = int(next(e.contribution for e in receipt.events if e.name == "DataAdded"))
    with pytest.raises(cm.TooEarly):
        chain.collaborative_models.refund(BOB, model, contribution)
    now = int(chain.timestamp.now())
    assert chain.rpc("dev_timeTravel", [now + 86_400_000 + 1_000]) == now + 86_400_000 + 1_000
    chain.collaborative_models.refund(BOB, model, contribution)
    assert int(chain.timestamp.now()) >= now + 86_400_000
    with pytest.raises(RpcError, match="only moves forward"):
        chain.rpc("dev_timeTravel", [now])
