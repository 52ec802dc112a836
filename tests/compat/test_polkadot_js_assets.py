"""Polkadot.js (@polkadot/api 16.5.6), unchanged, registers a data set, buys access and opens a payment channel.

The accepted model and its service are made here first (paratrain/_local/serving.py: a digits_mlp posted,
trained, attested and accepted through TaskBounties; ModelServices.register by its owner). Then
`tests/js/assets_flow.mjs` runs as a real `node` process against the `devnet` fixture: it registers a Paid data
set (and is refused registering it twice), buys access, opens a channel (refused with a zero deposit), signs a
payment with the registry's own SCALE and has the service's owner claim it. These tests check its report against
the chain, read through runtime_bindings.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from js_flow import NEEDS_NODE, run_flow

from paratrain._local.serving import accepted_model
from runtime_bindings import Chain, Keypair
from runtime_bindings.values import Bytes
from workers.artifacts import ArtifactStore

pytestmark = [pytest.mark.slow, pytest.mark.compat, NEEDS_NODE]
ALICE, BOB, CHARLIE, DAVE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Dave"))
DATASET = "0x" + "5a" * 32


@pytest.fixture(scope="module")
def chain(devnet) -> Iterator[Chain]:
    with Chain.connect(devnet.ws_url, timeout=20) as connected:
        yield connected


@pytest.fixture(scope="module")
def flow(devnet, chain: Chain, tmp_path_factory) -> dict[str, Any]:
    made = accepted_model(chain, ArtifactStore(tmp_path_factory.mktemp("store")), ALICE, CHARLIE, DAVE)
    chain.model_services.register(ALICE, made.model_hash, 10**9, Bytes(b"127.0.0.1:8001"))
    report = run_flow("assets_flow.mjs", devnet.ws_url, made.model_hash, timeout=120)
    report["model_hash"] = made.model_hash
    return report


def test_the_data_set_is_registered_once_and_access_bought(flow: dict[str, Any], chain: Chain) -> None:
    record = chain.datasets.datasets(DATASET)
    assert record is not None and str(record.owner) == ALICE.ss58_address and record.access == "Paid"
    assert record.license.text == "CC-BY-4.0" and int(record.price) == 2 * 10**12 and record.grants == 1
    refused = flow["refusals"]["registered twice"]
    assert refused["error"]["full"] == "datasets.AlreadyRegistered" and refused["unchanged"]
    assert flow["grant"] is True and chain.datasets.grants(DATASET, BOB.ss58_address) is not None


def test_the_channel_opens_and_the_signed_payment_is_claimed(flow: dict[str, Any], chain: Chain) -> None:
    refused = flow["refusals"]["zero deposit"]
    assert refused["error"]["full"] == "paymentChannels.InvalidDeposit" and refused["unchanged"]
    channel = int(flow["opened"]["data"]["channel"])
    record = chain.payment_channels.channels(channel)
    assert str(record.sender) == BOB.ss58_address and str(record.recipient) == ALICE.ss58_address
    assert str(record.service) == flow["model_hash"] and bytes(record.signing_key) == BOB.public_key
    assert int(flow["claimed"]["data"]["amount"]) == 3 * 10**9 and int(record.claimed) == 3 * 10**9
    assert int(record.deposit) == 2 * 10**9 and record.nonce == 1
