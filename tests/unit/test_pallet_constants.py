"""Pallet instances own their constants: two runtimes built in one process with different settings keep
their own metadata constants and behave by them (the pallets used to write them on the class, so the last
runtime built decided what every other one declared)."""
from __future__ import annotations

from test_pallet_invariants import ACCOUNTS, CAPS, SPEC, UNIT, Harness, submit_in_process, verdict

from devnet.metadata import metadata_value
from devnet.runtime.pallets.task_bounties import TaskBounties
from devnet.runtime.pallets.timestamp import Timestamp
from devnet.runtime.runtime import Runtime


def declared(runtime: Runtime, pallet: str, name: str) -> int:
    """The constant as the runtime's metadata V14 declares it (SCALE, little-endian integers)."""
    _, value = metadata_value(runtime)
    [entry] = [p for p in value["V14"]["pallets"] if p["name"] == pallet]
    [constant] = [c for c in entry["constants"] if c["name"] == name]
    return int.from_bytes(bytes.fromhex(constant["value"][2:]), "little")


def test_two_runtimes_declare_their_own_constants() -> None:
    first = Runtime(challenge_period_ms=1_234, verification_grace_ms=20_000)
    second = Runtime(challenge_period_ms=0, verification_grace_ms=60_000)  # built last: it used to win
    assert declared(first, "TaskBounties", "ChallengePeriod") == 1_234
    assert declared(first, "TaskBounties", "VerificationGrace") == 20_000
    assert declared(second, "TaskBounties", "ChallengePeriod") == 0
    assert declared(second, "TaskBounties", "VerificationGrace") == 60_000
    assert first.task_bounties.constant("ChallengePeriod") == 1_234
    assert second.task_bounties.constant("ChallengePeriod") == 0


def approve_one_task(h: Harness) -> tuple[str, dict]:
    """A task claimed, submitted and accepted by its one validator: its status after the quorum."""
    requester, trainer, validator = ACCOUNTS[:3]
    assert h.dispatch(trainer, "Workers", "register", role=("Trainer", None), stake=500 * UNIT, capabilities=CAPS)
    assert h.dispatch(validator, "Workers", "register", role=("Validator", None), stake=100 * UNIT,
                      capabilities=CAPS)
    assert h.dispatch(requester, "TaskBounties", "create_task", spec=SPEC, bounty=10 * UNIT, min_stake=0,
                      deadline=h.ctx.block_number + 50, validators_required=1, holdout_commitment=None)
    assert h.dispatch(trainer, "TaskBounties", "claim_task", task_id=0)
    submit_in_process(h, 0, trainer)
    assert h.dispatch(validator, "TaskBounties", "submit_verdict", task_id=0, verdict=verdict(True))
    status, detail = TaskBounties.Tasks.get(h.state, 0)["status"]
    return status, detail


def test_two_runtimes_in_one_process_pay_by_their_own_challenge_period() -> None:
    waits, pays_at_once = Harness(challenge_period_ms=4_000), Harness(challenge_period_ms=0)
    status, detail = approve_one_task(waits)
    assert status == "Approved" and detail["challenge_until"] == Timestamp.Now.get(waits.state) + 4_000
    assert approve_one_task(pays_at_once)[0] == "Accepted"
    assert declared(waits.runtime, "TaskBounties", "ChallengePeriod") == 4_000
