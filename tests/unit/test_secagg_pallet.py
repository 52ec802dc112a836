"""FederatedTasks' SecAgg+ tasks in process: their parameters, the audit draw from chain randomness, the reveals,
and the verdict rules that let validators slash an audited client that cheated and never an honest one they could
not check (devnet/runtime/pallets/federated_secagg.py, docs/secagg.md)."""
from __future__ import annotations

from typing import Any

import pytest
from fl_pallet_harness import (
    AGGREGATORS,
    CLIENTS,
    GRACE_MS,
    OUTSIDER,
    PARTICIPANTS,
    REQUESTER,
    UNIT,
    VALIDATORS,
    FlHarness,
    model_hash,
)
from substrateinterface import Keypair

from devnet.runtime.pallets.federated import FederatedTasks
from devnet.runtime.pallets.federated_secagg import audit_count, audit_score, draw
from devnet.runtime.pallets.system import System
from devnet.runtime.pallets.task_bounties_types import PERBILL, perbill_mul

V1, V2 = VALIDATORS[:2]
NANO = 10**9


def secagg(**overrides: Any) -> dict[str, Any]:
    spec = {"num_shares": PERBILL, "reconstruction_threshold": 600_000_000, "clipping_range": 8 * NANO,
            "quantization_range": 2**22, "modulus_range": 2**32, "max_weight": 1000,
            "update_norm_bound": 4_500_000_000, "audit_rate": 100_000_000}
    spec.update(overrides)
    return spec


def create_args(h: FlHarness, params: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"spec": h.spec(**{"rule": ("FedAvg", None), **spec}), "secagg": params or secagg(),
            "bounty": 300 * UNIT, "join_deadline": h.now + 5, "deadline": h.now + 500, "validators_required": 2,
            "holdout_commitment": None}


def running(h: FlHarness, params: dict[str, Any] | None = None) -> int:
    task = int(FederatedTasks.NextTaskId.get(h.state))
    h.ok(REQUESTER, "create_secagg_task", **create_args(h, params))
    h.join(task, PARTICIPANTS)
    h.advance_to(h.task(task)["join_deadline"])
    h.ok(AGGREGATORS[0], "claim_aggregator", task=task, endpoint=b"127.0.0.1:9092")
    return task


def refused(h: FlHarness, error: str, who: Any, call: str, **args: Any) -> None:
    before, events = h.snapshot(), len(h.ctx.events)
    assert h.dispatch(who, call, **args) == error
    assert h.snapshot() == before and len(h.ctx.events) == events


def drawn(h: FlHarness, task: int, number: int) -> list[Keypair]:
    audit = FederatedTasks.Audits.get(h.state, task, number)
    return [k for k in PARTICIPANTS if k.public_key in audit["drawn"]]


def reveal(h: FlHarness, who: Keypair, task: int, number: int) -> str | None:
    return h.dispatch(who, "reveal_update", task=task, round=number,
                      reveal_hash=model_hash(f"reveal-{who.ss58_address}"), reveal_uri=b"file:///store/reveal")


@pytest.fixture
def h() -> FlHarness:
    harness = FlHarness()
    harness.register_workers()
    return harness


# Parameters -----------------------------------------------------------------------------------------
def test_a_secagg_task_stores_its_parameters_and_says_so(h: FlHarness) -> None:
    task = running(h)
    assert FederatedTasks.SecAggSpecs.get(h.state, task) == secagg()
    assert [e["audit_rate"] for e in h.events("SecAggRequired")] == [100_000_000]
    assert h.events("TaskCreated")[0]["task"] == task


@pytest.mark.parametrize(("params", "spec", "error"), [
    (secagg(reconstruction_threshold=500_000_000), {}, "InvalidSecAggParams"),   # 2 colluders of 4 shares
    (secagg(modulus_range=3 * 2**30), {}, "InvalidSecAggParams"),                # not a power of two
    (secagg(quantization_range=2**32), {}, "InvalidSecAggParams"),               # not below the modulus
    (secagg(audit_rate=0), {}, "InvalidSecAggParams"),                           # no audit, no check
    (secagg(update_norm_bound=0), {}, "InvalidSecAggParams"),
    (secagg(), {"rule": ("FedMedian", None)}, "SecAggNeedsFedAvg"),              # needs individual updates
    (secagg(), {"min_clients_per_round": 2}, "SecAggRoundSize"),                 # each learns the other's
    (secagg(quantization_range=2**30), {}, "SecAggRoundSize"),                   # 5 clients would wrap 2**32
])
def test_unsafe_secagg_parameters_are_refused_by_name(h: FlHarness, params: dict, spec: dict, error: str) -> None:
    refused(h, error, REQUESTER, "create_secagg_task", **create_args(h, params, **spec))


def test_a_client_may_not_commit_to_more_examples_than_max_weight(h: FlHarness) -> None:
    task = int(FederatedTasks.NextTaskId.get(h.state))
    h.ok(REQUESTER, "create_secagg_task", **create_args(h, secagg(max_weight=100)))
    refused(h, "ExamplesAboveMaxWeight", PARTICIPANTS[0], "join", task=task, data_hash=model_hash("d"),
            num_examples=101, stake=10 * UNIT)
    h.ok(PARTICIPANTS[0], "join", task=task, data_hash=model_hash("d"), num_examples=100, stake=10 * UNIT)


# The draw -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("rate", "n", "count"), [(100_000_000, 4, 1), (100_000_000, 20, 2),
                                                  (100_000_000, 21, 3), (1, 128, 1), (PERBILL, 7, 7)])
def test_audit_count_is_at_least_one_and_rounds_up(rate: int, n: int, count: int) -> None:
    assert audit_count(rate, n) == count


def test_the_draw_waits_for_the_commit_blocks_hash_then_picks_the_lowest_scores(h: FlHarness) -> None:
    task = running(h, secagg(audit_rate=500_000_000))
    h.commit(task, 1)
    refused(h, "AuditNotDue", OUTSIDER, "draw_audit", task=task, round=1)
    h.advance()
    h.ok(OUTSIDER, "draw_audit", task=task, round=1)
    committed_at = h.round(task, 1)["committed_at"]
    seed = System.BlockHash.get(h.state, committed_at)
    accounts = sorted(k.public_key for k in PARTICIPANTS)
    expected = sorted(sorted(accounts, key=lambda a: audit_score(seed, task, 1, a))[:2])
    audit = FederatedTasks.Audits.get(h.state, task, 1)
    assert audit["seed"] == seed and audit["drawn"] == expected == draw(seed, task, 1, accounts, 500_000_000)
    assert audit["reveal_until"] == h.round(task, 1)["verify_until"] - GRACE_MS // 2
    (event,) = h.events("AuditDrawn")
    assert event["drawn"] == expected
    refused(h, "AuditAlreadyDrawn", OUTSIDER, "draw_audit", task=task, round=1)


def test_a_plain_task_has_no_audit(h: FlHarness) -> None:
    task = h.running()
    h.commit(task, 1)
    h.advance()
    refused(h, "NotSecAgg", OUTSIDER, "draw_audit", task=task, round=1)


def test_another_seed_draws_other_clients() -> None:
    accounts = [bytes([i]) * 32 for i in range(40)]
    draws = {tuple(draw(bytes([s]) * 32, 0, 1, accounts, 100_000_000)) for s in range(20)}
    assert len(draws) > 10   # 4 of 40 from 20 seeds: not a fixed set


# Reveals and verdicts -------------------------------------------------------------------------------
def test_verdicts_wait_for_the_reveals_and_only_drawn_clients_reveal_once(h: FlHarness) -> None:
    task = running(h, secagg(audit_rate=500_000_000))
    h.commit(task, 1)
    h.advance()
    h.ok(OUTSIDER, "draw_audit", task=task, round=1)
    audited = drawn(h, task, 1)
    others = [k for k in PARTICIPANTS if k not in audited]
    assert len(audited) == 2
    assert h.verdict(V1, task, 1) == "AuditOpen"
    refused(h, "NotAudited", others[0], "reveal_update", task=task, round=1,
            reveal_hash=model_hash("x"), reveal_uri=b"file:///store/x")
    assert reveal(h, audited[0], task, 1) is None
    assert reveal(h, audited[0], task, 1) == "AlreadyRevealed"
    assert h.verdict(V1, task, 1) == "AuditOpen"     # one drawn client has not revealed yet
    assert reveal(h, audited[1], task, 1) is None
    record = FederatedTasks.AuditReveals.get(h.state, task, 1, audited[1].public_key)
    assert record["reveal_uri"] == b"file:///store/reveal" and record["revealed_at"] == h.now
    assert h.verdict(V1, task, 1) is None and h.verdict(V2, task, 1) is None
    assert h.round(task, 1)["status"][0] == "Accepted"
    assert h.events("ClientSlashed") == []
    assert len(h.events("ClientPaid")) == len(PARTICIPANTS)


def test_an_audited_cheat_is_slashed_and_no_unaudited_client_can_be(h: FlHarness) -> None:
    task = running(h)
    h.commit(task, 1)
    h.advance()
    h.ok(OUTSIDER, "draw_audit", task=task, round=1)
    (cheat,) = drawn(h, task, 1)
    honest = [k for k in PARTICIPANTS if k != cheat]
    assert reveal(h, cheat, task, 1) is None
    # a validator may not slash a client it could not have checked
    assert h.verdict(V1, task, 1, rejected=[honest[0]]) == "RejectedNotAudited"
    stake = h.client(task, cheat)["stake"]
    assert h.verdict(V1, task, 1, rejected=[cheat]) is None
    assert h.verdict(V2, task, 1, rejected=[cheat]) is None
    (slash,) = h.events("ClientSlashed")
    assert slash["client"] == cheat.public_key and slash["amount"] == perbill_mul(200_000_000, stake)
    paid = {e["client"] for e in h.events("ClientPaid")}
    assert paid == {k.public_key for k in honest}


def test_a_drawn_client_that_does_not_reveal_in_time_can_be_rejected(h: FlHarness) -> None:
    task = running(h)
    h.commit(task, 1)
    h.advance()
    h.ok(OUTSIDER, "draw_audit", task=task, round=1)
    (silent,) = drawn(h, task, 1)
    assert h.verdict(V1, task, 1, rejected=[silent]) == "AuditOpen"
    h.advance(GRACE_MS // 2 // 1_000)          # the reveal window is half the grace, from the commit
    assert reveal(h, silent, task, 1) == "RevealClosed"
    assert h.verdict(V1, task, 1, rejected=[silent]) is None
    assert h.verdict(V2, task, 1, rejected=[silent]) is None
    assert [e["client"] for e in h.events("ClientSlashed")] == [silent.public_key]


def test_a_round_committed_again_gets_a_fresh_draw(h: FlHarness) -> None:
    task = running(h)
    h.commit(task, 1)
    h.advance()
    h.ok(OUTSIDER, "draw_audit", task=task, round=1)
    (first,) = drawn(h, task, 1)
    assert reveal(h, first, task, 1) is None
    h.advance_past_grace()                      # no quorum: the round is void and may be committed again
    assert h.round(task, 1)["status"][0] == "Void"
    h.commit(task, 1)
    assert FederatedTasks.Audits.get(h.state, task, 1) is None
    assert FederatedTasks.AuditReveals.get(h.state, task, 1, first.public_key) is None
    h.advance()
    h.ok(OUTSIDER, "draw_audit", task=task, round=1)
    assert FederatedTasks.Audits.get(h.state, task, 1)["seed"] == System.BlockHash.get(
        h.state, h.round(task, 1)["committed_at"])


def test_only_an_active_validator_registers_a_seal_key_and_may_replace_it(h: FlHarness) -> None:
    validator = VALIDATORS[0]
    h.ok(validator, "register_seal_key", key=model_hash("seal key 1"))
    assert FederatedTasks.SealKeys.get(h.state, validator.public_key) == model_hash("seal key 1")
    h.ok(validator, "register_seal_key", key=model_hash("seal key 2"))   # a new key replaces the old one
    assert FederatedTasks.SealKeys.get(h.state, validator.public_key) == model_hash("seal key 2")
    assert [e["key"] for e in h.events("SealKeyRegistered")] == [model_hash("seal key 1"), model_hash("seal key 2")]
    before, events = h.snapshot(), len(h.ctx.events)
    assert h.dispatch(CLIENTS[0], "register_seal_key", "FederatedTasks", key=model_hash("x")) == "NotValidator"
    assert h.snapshot() == before and len(h.ctx.events) == events
