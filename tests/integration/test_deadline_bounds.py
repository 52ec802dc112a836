"""TaskBounties deadlines through runtime_bindings over a socket: a named error, never a codec failure (issue 10).

Before: 40 `create_task` calls with `deadline = u32::MAX` failed from the 33rd on with a codec traceback in
devnet's log and `DispatchError::Other` (the expiry slot spilled to block 2^32). Now every one of them is
refused with `DeadlineTooFar`, declared in the metadata with the bound `MaxDeadlineBlocks`.
"""
from __future__ import annotations

from typing import Any

import pytest

from runtime_bindings import Chain, Keypair
from runtime_bindings.generated.task_bounties import TaskBountiesError

UNIT = 10**12
U32_MAX = 2**32 - 1
SPEC = {"recipe": "digits_mlp", "spec_hash": "0x" + "11" * 32, "spec_uri": "file:///spec.json",
        "dataset_hash": "0x" + "22" * 32, "eval_metric": "accuracy", "eval_target": 900_000,
        "higher_is_better": True, "requirements": {"min_cpus": 1, "min_gpus": 0, "min_memory_mb": 1},
        "parent_model": None}


@pytest.fixture(scope="module")
def chain(devnet: Any) -> Chain:
    with Chain.connect(devnet.ws_url, timeout=10) as c:
        yield c


def create(chain: Chain, signer: Keypair, deadline: int) -> Any:
    return chain.task_bounties.create_task(signer, SPEC, UNIT, 0, deadline, 1, None)


def test_forty_tasks_at_u32_max_are_each_deadline_too_far(chain: Chain, devnet: Any) -> None:
    alice = Keypair.create_from_uri("//Alice")
    next_id = chain.task_bounties.next_task_id()
    reserved = chain.system.account(alice.ss58_address).data.reserved
    for _ in range(40):
        with pytest.raises(TaskBountiesError.DeadlineTooFar) as caught:
            create(chain, alice, U32_MAX)
        assert (caught.value.pallet, caught.value.name) == ("TaskBounties", "DeadlineTooFar")
    assert chain.task_bounties.next_task_id() == next_id
    assert chain.system.account(alice.ss58_address).data.reserved == reserved
    assert not [line for line in devnet.output if "Traceback" in line or "Codec" in line]


def test_the_bound_is_the_metadata_constant(chain: Chain) -> None:
    bob = Keypair.create_from_uri("//Bob")
    limit = chain.constant("TaskBounties", "MaxDeadlineBlocks")
    assert limit == 100_000_000
    # the call dispatches in the block after the best one: best + 1 + limit is the furthest deadline
    create(chain, bob, chain.best_number() + 1 + limit)
    with pytest.raises(TaskBountiesError.DeadlineTooFar):
        create(chain, bob, chain.best_number() + 2 + limit)
