"""Polkadot.js (@polkadot/api 16.5.6), unchanged, makes every SecAgg+ call of FederatedTasks on a real devnet.

`tests/js/secagg_flow.mjs` creates a SecAgg task (after two refused ones), joins three clients (a fourth over
max_weight is refused), commits a round with signatures made in Node.js, draws the audit, reveals the drawn
client's update and accepts the round, trying the pallet's SecAgg refusals on the way. These tests run it as a
real `node` process against the `devnet` fixture and check its report against the chain, read through
runtime_bindings: the module errors Polkadot.js decodes, that a refused call changed nothing, that the stored
SecAggSpec is the one sent, and that the draw Node.js read is the one the seed (the commit block's hash) gives.
"""
from __future__ import annotations

from typing import Any

import pytest
from js_flow import NEEDS_NODE, run_flow

from devnet.runtime.pallets.federated_secagg import draw
from runtime_bindings import Chain
from runtime_bindings.fl import account_public_key

pytestmark = [pytest.mark.slow, pytest.mark.compat, NEEDS_NODE]


@pytest.fixture(scope="module")
def flow(devnet) -> dict[str, Any]:
    return run_flow("secagg_flow.mjs", devnet.ws_url, timeout=150)


@pytest.fixture(scope="module")
def chain(devnet) -> Chain:
    with Chain.connect(devnet.ws_url, timeout=10) as connected:
        yield connected


@pytest.mark.parametrize(("label", "error"), [
    ("threshold 50%", "InvalidSecAggParams"), ("FedMedian", "SecAggNeedsFedAvg"),
    ("join above max_weight", "ExamplesAboveMaxWeight"), ("draw twice", "AuditAlreadyDrawn"),
    ("undrawn reveal", "NotAudited"), ("verdict before the reveal", "AuditOpen"),
    ("reject an undrawn client", "RejectedNotAudited"),
])
def test_each_refusal_is_the_named_module_error_and_changes_nothing(flow, label, error) -> None:
    refused = flow["refusals"][label]
    assert refused["error"]["full"] == f"federatedTasks.{error}" and refused["error"]["docs"]
    assert refused["unchanged"] and not any(e.startswith("federatedTasks.") for e in refused["events"])


def test_the_stored_secagg_spec_is_the_one_sent(flow, chain) -> None:
    task = flow["create"]["taskId"]
    spec = chain.federated_tasks.sec_agg_specs(task)
    assert vars(spec) == {"num_shares": 10**9, "reconstruction_threshold": 600_000_000,
                          "clipping_range": 8 * 10**9, "quantization_range": 2**22, "modulus_range": 2**32,
                          "max_weight": 1000, "update_norm_bound": 4_500_000_000, "audit_rate": 300_000_000}
    assert int(flow["create"]["spec"]["auditRate"]) == 300_000_000
    assert flow["create"]["required"]["data"]["auditRate"] == "300000000"
    assert flow["auditRevealShare"] == str(chain.constant("FederatedTasks", "AuditRevealShare"))


def test_the_draw_polkadot_js_read_is_the_one_the_commit_blocks_hash_gives(flow, chain) -> None:
    task, committed_at = flow["create"]["taskId"], flow["committedAt"]
    seed = bytes.fromhex(chain.block_hash(committed_at)[2:])
    participants = sorted(account_public_key(a) for a, _ in chain.federated_tasks.rounds(task, 1).participants)
    expected = draw(seed, task, 1, participants, 300_000_000)
    assert [account_public_key(a) for a in flow["audit"]["drawn"]] == expected and len(expected) == 1
    assert flow["audit"]["seed"] == "0x" + seed.hex()


def test_the_drawn_clients_reveal_is_stored_and_the_round_accepted(flow, chain) -> None:
    task = flow["create"]["taskId"]
    (drawn,) = flow["audit"]["drawn"]
    stored = chain.federated_tasks.audit_reveals(task, 1, drawn)
    assert bytes(stored.reveal_hash).hex() == "7e" * 32 and stored.reveal_uri.text == "file:///reveals/1"
    assert chain.federated_tasks.audits(task, 1).revealed == 1
    assert flow["verdict"]["status"] == "Accepted" and flow["verdict"]["accepted"] is not None
