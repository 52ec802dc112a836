"""The generated constants (``chain.<pallet>.<constant>``) over a memory chain: typed as the metadata says
and equal to the dynamic `Chain.constant`, so callers need no ``int(chain.constant(...))``; and a decoded
heartbeat's step read through the generated `Progress`."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from memory_chain import memory_chain

from devnet.rpc.inprocess import InProcessNode
from orchestrator.errors import InvalidArgument
from orchestrator.handlers import ChainConstants, _heartbeat_step
from runtime_bindings import Chain
from runtime_bindings.base import DecodedExtrinsic
from runtime_bindings.generated import types as t
from runtime_bindings.transport import json_object
from runtime_bindings.values import ScaleValue


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    with InProcessNode() as node, memory_chain(node) as c:
        yield c


def test_integer_constants_are_ints_equal_to_the_dynamic_read(chain: Chain) -> None:
    for pallet, typed, name in [(chain.task_bounties, "claim_lease", "ClaimLease"),
                                (chain.task_bounties, "max_claims_per_worker", "MaxClaimsPerWorker"),
                                (chain.workers, "min_trainer_stake", "MinTrainerStake"),
                                (chain.balances, "existential_deposit", "ExistentialDeposit")]:
        value = getattr(pallet, typed)
        assert type(value) is int and value == chain.constant(pallet.pallet_name, name), name
    assert ChainConstants.from_chain(chain) == ChainConstants(chain.task_bounties.max_claims_per_worker,
                                                              chain.task_bounties.claim_lease,
                                                              chain.workers.min_trainer_stake)


def test_struct_constants_decode_to_their_generated_class(chain: Chain) -> None:
    version = chain.system.version
    assert isinstance(version, t.RuntimeVersion)
    assert version.spec_version == json_object(chain.rpc("state_getRuntimeVersion"), "version")["specVersion"]
    assert isinstance(chain.system.db_weight, t.RuntimeDbWeight)


def heartbeat(progress: ScaleValue) -> DecodedExtrinsic:
    return DecodedExtrinsic(None, "TaskBounties", "heartbeat", {"task_id": 1, "progress": progress})


def test_heartbeat_step_is_read_as_the_chains_progress() -> None:
    assert _heartbeat_step(heartbeat({"step": 7, "checkpoint_root": "0x" + "aa" * 32}), 0) == 7
    assert _heartbeat_step(heartbeat(None), 3) == 3
    with pytest.raises(InvalidArgument):
        _heartbeat_step(heartbeat({"step": 7}), 0)  # no checkpoint_root: not a Progress
