"""Polkadot.js (@polkadot/api 16.5.6), unchanged, deploys a collaborative model, adds data and calls predict.

`tests/js/collab_flow.mjs` deploys a Perceptron, adds one example (after two refused ones), asks the runtime API
`CollaborativeModelsApi_predict` through `state_call` with the registry's own types, and refunds. These tests run
it as a real `node` process against the `devnet` fixture and check its report against the chain, read through
runtime_bindings.
"""
from __future__ import annotations

from typing import Any

import pytest
from js_flow import NEEDS_NODE, run_flow

from runtime_bindings import Chain

pytestmark = [pytest.mark.slow, pytest.mark.compat, NEEDS_NODE]
TO_FLOAT = 10**9


@pytest.fixture(scope="module")
def flow(devnet) -> dict[str, Any]:
    return run_flow("collab_flow.mjs", devnet.ws_url, timeout=120)


@pytest.fixture(scope="module")
def chain(devnet) -> Chain:
    with Chain.connect(devnet.ws_url, timeout=10) as connected:
        yield connected


@pytest.mark.parametrize(("label", "error"), [
    ("wrong dimension", "collaborativeModels.DimensionMismatch"),
    ("class out of range", "collaborativeModels.ClassOutOfRange"),
])
def test_each_refusal_is_the_named_module_error_and_changes_nothing(flow, label, error) -> None:
    refused = flow["refusals"][label]
    assert refused["error"]["full"] == error and refused["error"]["docs"]
    assert refused["unchanged"] and not any(e.startswith("collaborativeModels.") for e in refused["events"])


def test_the_contribution_updated_the_model_polkadot_js_and_the_bindings_read_alike(flow, chain) -> None:
    params = chain.collaborative_models.parameters(flow["model"])
    assert [str(w) for w in params.weights] == flow["weights"] == [str(TO_FLOAT), str(TO_FLOAT // 2)]
    assert int(flow["reserved"]) >= int(flow["added"]["data"]["deposit"]) > 0


def test_predict_through_state_call_with_the_registrys_types(flow) -> None:
    assert flow["before"] == {"ok": 0} and flow["after"] == {"ok": 1} and flow["sparse"] == {"ok": 1}
    assert flow["missing"] == {"err": "collaborativeModels.ModelNotFound"}


def test_the_deposit_came_back(flow) -> None:
    assert int(flow["refunded"]["data"]["amount"]) == int(flow["added"]["data"]["deposit"])
