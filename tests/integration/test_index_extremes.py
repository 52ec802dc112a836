"""The index against a real devnet with every indexed call's arguments at the ends of their chain types.

Random valid arguments (hypothesis, edges drawn often) of TaskBounties.create_task / claim_task / heartbeat /
release_claim / cancel_task and Workers.register / bond_extra / update_capabilities / unregister are submitted,
then the index must agree with chain storage field by field (read through runtime_bindings at the index's
block), and the indexer must go on indexing the blocks after them. A call the chain refuses (the bounty a dev
account cannot reserve, a byte string over its metadata bound...) must leave nothing in the index.

Regression: a legal `min_memory_mb = 2^63` once stopped the indexer for good (SQLite INTEGER is 64-bit signed).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from orchestrator.domain import Capabilities, TaskView, WorkerView
from orchestrator.index import Index
from orchestrator.indexer import Indexer
from paratrain.local import DevnetProcess
from runtime_bindings import Chain, DispatchError, Keypair
from runtime_bindings.generated import types as t

pytestmark = pytest.mark.slow  # hypothesis drives a devnet through hundreds of extreme calls

U32, U64, U128 = (1 << 32) - 1, (1 << 64) - 1, (1 << 128) - 1
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
FEES = 10**13  # left free for transaction fees (a call costs well under 10^10 planck here)
ALICE, BOB, CHARLIE, DAVE, EVE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Dave", "Eve"))


def edged(low: int, high: int, *edges: int) -> st.SearchStrategy[int]:
    """Integers in low..high, the type's ends (and `edges`) drawn far more often than chance would."""
    ends = sorted({low, min(low + 1, high), max(high - 1, low), high, *(e for e in edges if low <= e <= high)})
    return st.one_of(st.sampled_from(ends), st.integers(low, high))


def blobs(bound: int) -> st.SearchStrategy[bytes]:
    """BoundedVec<u8> contents up to their metadata bound: empty, full, NUL-holding, non-UTF-8, and text that
    looks like hex ("0x41" is the text the chain holds, not the byte "A")."""
    full = st.binary(min_size=bound, max_size=bound)
    return st.one_of(st.sampled_from([b"", b"\x00", b"0x41", b"0xfffe", b"\xff" * bound, "é".encode() * (bound // 2)]),
                     full, st.binary(max_size=bound), st.text(max_size=bound // 4).map(str.encode))


hashes = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())


@dataclass
class Market:
    chain: Chain
    index: Index
    indexer: Indexer
    bounds: dict[str, int]

    def synced(self) -> None:
        """Wait (polling, bounded) until the index holds the chain's finalized head; the indexer never failed."""
        target = self.chain.finalized_number()
        assert self.indexer.wait_for(target, timeout=30), (self.indexer.height, target, self.indexer.last_error)
        assert self.indexer.last_error is None, self.indexer.last_error

    def free(self, who: Keypair) -> int:
        return self.chain.system.account(who.ss58_address).data.free


def _max_deadline_blocks(chain: Chain) -> int:
    """How far ahead a deadline may be: TaskBounties.MaxDeadlineBlocks where the runtime declares it, else
    anything a u32 block number can hold."""
    try:
        return int(chain.constant("TaskBounties", "MaxDeadlineBlocks"))
    except KeyError:
        return U32


@pytest.fixture(scope="module")
def market(devnet: DevnetProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    chain = Chain.connect(devnet.ws_url, timeout=10)
    index = Index(tmp_path_factory.mktemp("index") / "index.db")
    indexer = Indexer(devnet.ws_url, index, poll_interval=0.05).start()
    names = ("MaxRecipeLen", "MaxUriLen", "MaxMetricNameLen", "MaxValidatorsRequired", "MinBounty", "TaskDeposit")
    bounds = {n: int(chain.constant("TaskBounties", n)) for n in names}
    bounds |= {n: int(chain.constant("Workers", n)) for n in ("MaxGpuModelLen", "MinTrainerStake", "MinValidatorStake")}
    bounds["MaxDeadlineBlocks"] = _max_deadline_blocks(chain)
    market = Market(chain, index, indexer, bounds)
    # Bob: a Trainer with every capability at its maximum and all he can stake; Charlie the least a Trainer may be
    chain.workers.register(BOB, "Trainer", market.free(BOB) - FEES,
                           t.Capabilities(U32, U32, b"\xff" * bounds["MaxGpuModelLen"], U64))
    chain.workers.register(CHARLIE, "Trainer", bounds["MinTrainerStake"], t.Capabilities(0, 0, b"", 0))
    try:
        market.synced()
        yield market
    finally:
        indexer.stop()
        index.close()
        chain.close()


# Field-by-field agreement with storage ------------------------------------------------------------

def assert_task_agrees(m: Market, task_id: int) -> TaskView:
    stored = m.chain.task_bounties.tasks(task_id, at=m.index.last_block.hash)
    got = m.index.task(task_id)
    assert stored is not None and got is not None, task_id
    spec, req = stored.spec, stored.spec.requirements
    status = stored.status
    assert (got.task_id, got.requester, got.status.value) == (task_id, stored.requester, status.name)
    assert (got.recipe, got.spec_uri, got.eval_metric) == (spec.recipe.text, spec.spec_uri.text, spec.eval_metric.text)
    assert (got.spec_hash, got.dataset_hash) == (bytes(spec.spec_hash), bytes(spec.dataset_hash))
    assert got.eval_target == spec.eval_target
    r = got.requirements
    assert (r.min_cpus, r.min_gpus, r.min_memory_mb) == (req.min_cpus, req.min_gpus, req.min_memory_mb)
    assert (got.bounty, got.min_stake) == (stored.bounty, stored.min_stake)
    assert (got.deadline, got.validators_required, got.created_at) == (
        stored.deadline, stored.validators_required, stored.created_at)
    assert (got.worker, got.lease_until) == (getattr(status, "worker", None), getattr(status, "lease_until", None))
    progress = stored.progress
    assert got.progress_step == (progress.step if progress else 0)
    assert got.checkpoint_root == (bytes(progress.checkpoint_root) if progress else b"")
    return got


def assert_worker_agrees(m: Market, who: Keypair) -> WorkerView:
    stored = m.chain.workers.workers(who.ss58_address, at=m.index.last_block.hash)
    got = m.index.worker(who.ss58_address)
    assert stored is not None and got is not None, who.ss58_address
    c = stored.capabilities
    assert got.capabilities == Capabilities(c.cpus, c.gpus, c.gpu_model.text, c.memory_mb)
    assert (got.role, got.stake, got.active) == (stored.role.name, stored.stake, stored.status == "Active")
    assert got.active_claims == stored.active_claims
    return got


def _text(raw: bytes) -> str:
    """What the bindings (and so the index) show for a byte string: UTF-8 text, else 0x-hex."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return "0x" + raw.hex()


# Tasks -------------------------------------------------------------------------------------------

SCALE = 1 << 64  # a drawn fraction of a range that depends on the chain's state, so replays draw the same


def within(low: int, high: int, fraction: int) -> int:
    return low + (high - low) * fraction // SCALE


@st.composite
def task_args(draw: st.DrawFn, b: dict[str, int], best: int, bob_stake: int, alice_free: int) -> dict[str, Any]:
    """create_task's arguments, then heartbeat's. Ranges that move with the chain (the block, balances) are
    drawn as fractions of them, so that hypothesis replays an example with the same draws."""
    largest_bounty = alice_free - b["TaskDeposit"] - FEES  # the most //Alice can reserve with the deposit
    min_stake = draw(st.one_of(st.sampled_from(["bob", "bob+1"]), edged(0, U128, U64)))
    spec = t.TaskSpec(
        recipe=draw(blobs(b["MaxRecipeLen"])), spec_hash=draw(hashes), spec_uri=draw(blobs(b["MaxUriLen"])),
        dataset_hash=draw(hashes), eval_metric=draw(blobs(b["MaxMetricNameLen"])),
        eval_target=draw(edged(I64_MIN, I64_MAX, -1, 0)), higher_is_better=draw(st.booleans()),
        requirements=t.Requirements(draw(edged(0, U32)), draw(edged(0, U32)), draw(edged(0, U64, 1 << 63))),
        parent_model=None)
    return {"spec": spec, "bounty": within(b["MinBounty"], largest_bounty, draw(edged(0, SCALE))),
            "min_stake": {"bob": bob_stake, "bob+1": bob_stake + 1}.get(min_stake, min_stake),
            "deadline": within(best + 50, farthest_deadline(b, best), draw(edged(0, SCALE))),
            "validators_required": draw(edged(1, b["MaxValidatorsRequired"])),
            "holdout_commitment": draw(st.none() | hashes), "step": draw(edged(0, U64, 1 << 63)),
            "root": draw(hashes)}


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_task_calls_at_their_extremes_are_indexed_as_stored(market: Market, data: st.DataObject) -> None:
    m, chain = market, market.chain
    bob_stake = m.index.worker(BOB.ss58_address).stake
    a = data.draw(task_args(m.bounds, chain.best_number(), bob_stake, m.free(ALICE)))
    receipt = chain.task_bounties.create_task(ALICE, a["spec"], a["bounty"], a["min_stake"], a["deadline"],
                                              a["validators_required"], a["holdout_commitment"])
    task_id = next(e.task_id for e in receipt.events if e.name == "TaskCreated")
    m.synced()
    got = assert_task_agrees(m, task_id)
    spec = a["spec"]
    assert (got.recipe, got.spec_uri, got.eval_metric) == tuple(map(_text, (spec.recipe, spec.spec_uri,
                                                                            spec.eval_metric)))
    assert (got.requirements.min_memory_mb, got.bounty, got.min_stake) == (
        spec.requirements.min_memory_mb, a["bounty"], a["min_stake"])
    event("claimed by Bob" if got.min_stake <= bob_stake else "min_stake above Bob's stake")
    if got.min_stake <= bob_stake:  # Bob meets every requirement: claim, commit progress, release
        chain.task_bounties.claim_task(BOB, task_id)
        chain.task_bounties.heartbeat(BOB, task_id, t.Progress(a["step"], a["root"]))
        m.synced()
        assert assert_task_agrees(m, task_id).progress_step == a["step"]
        assert m.index.claims_of(BOB.ss58_address) == [task_id]
        assert_worker_agrees(m, BOB)
        chain.task_bounties.release_claim(BOB, task_id)
        m.synced()
        assert assert_task_agrees(m, task_id).progress_step == 0
        assert_worker_agrees(m, BOB)
    chain.task_bounties.cancel_task(ALICE, task_id)  # the bounty goes back for the next example
    m.synced()
    assert assert_task_agrees(m, task_id).status.value == "Cancelled"
    assert task_id not in m.index.open_tasks


def spec(**changes: Any) -> t.TaskSpec:
    fields = {"recipe": b"r", "spec_hash": "0x" + "11" * 32, "spec_uri": b"u", "dataset_hash": "0x" + "22" * 32,
              "eval_metric": b"m", "eval_target": 0, "higher_is_better": True,
              "requirements": t.Requirements(U32, U32, U64), "parent_model": None}
    return t.TaskSpec(**(fields | changes))


def farthest_deadline(b: dict[str, int], best: int) -> int:
    return min(U32, best + b["MaxDeadlineBlocks"])


def legal_task(b: dict[str, int], best: int) -> dict[str, Any]:
    return {"spec": spec(), "bounty": b["MinBounty"], "min_stake": U128, "deadline": farthest_deadline(b, best),
            "validators_required": 1, "holdout_commitment": None}


def refused_task_calls(b: dict[str, int], best: int) -> dict[str, dict[str, Any]]:
    ok = legal_task(b, best)
    too_far = {"deadline u32::MAX, past MaxDeadlineBlocks": ok | {"deadline": U32}} if ok["deadline"] < U32 - 100 else {}
    return too_far | {
        "bounty u128::MAX (more than any dev account holds)": ok | {"bounty": U128},
        "bounty 2^60 (a dev account's whole balance, plus the deposit)": ok | {"bounty": 1 << 60},
        "bounty below MinBounty": ok | {"bounty": b["MinBounty"] - 1},
        "recipe one byte over MaxRecipeLen": ok | {"spec": spec(recipe=b"r" * (b["MaxRecipeLen"] + 1))},
        "spec_uri one byte over MaxUriLen": ok | {"spec": spec(spec_uri=b"u" * (b["MaxUriLen"] + 1))},
        "eval_metric one byte over MaxMetricNameLen": ok | {"spec": spec(eval_metric=b"m" * (b["MaxMetricNameLen"] + 1))},
        "no validators": ok | {"validators_required": 0},
        "more validators than MaxValidatorsRequired": ok | {"validators_required": b["MaxValidatorsRequired"] + 1},
        "validators u32::MAX": ok | {"validators_required": U32},
        "deadline in the past": ok | {"deadline": best},
        "an unknown parent model": ok | {"spec": spec(parent_model="0x" + "33" * 32)},
    }


def refused(submit: Callable[[], Any], name: str) -> None:
    try:
        submit()
    except DispatchError:
        return
    pytest.fail(f"the chain accepted {name}")


def test_refused_calls_index_nothing_and_indexing_goes_on(market: Market) -> None:
    m, chain = market, market.chain
    m.synced()
    before = (m.index.count_tasks(), chain.task_bounties.next_task_id())
    for name, args in refused_task_calls(m.bounds, chain.best_number()).items():
        refused(lambda: chain.task_bounties.create_task(ALICE, **args), name)
        m.synced()
        assert (m.index.count_tasks(), chain.task_bounties.next_task_id()) == before, name
    refused_workers = {"stake u128::MAX": (U128, t.Capabilities(U32, U32, b"", U64)),
                       "gpu_model one byte over MaxGpuModelLen": (
                           m.bounds["MinTrainerStake"], t.Capabilities(1, 1, b"g" * (m.bounds["MaxGpuModelLen"] + 1), 1))}
    for name, (stake, caps) in refused_workers.items():
        refused(lambda: chain.workers.register(EVE, "Trainer", stake, caps), name)
        m.synced()
        assert m.index.worker(EVE.ss58_address) is None, name
    # a plain call afterwards is indexed: nothing above held the indexer up
    receipt = chain.task_bounties.create_task(ALICE, **legal_task(m.bounds, chain.best_number()))
    task_id = next(e.task_id for e in receipt.events if e.name == "TaskCreated")
    m.synced()
    assert assert_task_agrees(m, task_id).min_stake == U128
    chain.task_bounties.cancel_task(ALICE, task_id)


# Workers -----------------------------------------------------------------------------------------

def test_registrations_at_their_extremes_are_indexed_as_stored(market: Market) -> None:
    m = market
    m.chain.workers.register(DAVE, "Validator", m.bounds["MinValidatorStake"], t.Capabilities(U32, 0, b"0x41", U64))
    m.synced()
    bob, charlie, dave = (assert_worker_agrees(m, w) for w in (BOB, CHARLIE, DAVE))
    assert bob.capabilities == Capabilities(U32, U32, "0x" + "ff" * m.bounds["MaxGpuModelLen"], U64)
    assert charlie.capabilities == Capabilities(0, 0, "", 0) and charlie.stake == m.bounds["MinTrainerStake"]
    assert (dave.role, dave.capabilities.gpu_model) == ("Validator", "0x41")
    m.chain.workers.unregister(DAVE)
    m.synced()
    assert assert_worker_agrees(m, DAVE).active is False


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_worker_calls_at_their_extremes_are_indexed_as_stored(market: Market, data: st.DataObject) -> None:
    m = market
    caps = t.Capabilities(data.draw(edged(0, U32)), data.draw(edged(0, U32)),
                          data.draw(blobs(m.bounds["MaxGpuModelLen"])), data.draw(edged(0, U64, 1 << 63)))
    m.chain.workers.update_capabilities(CHARLIE, caps)
    # at most a sixty-fourth of what is left, so 25 examples never run //Charlie dry
    m.chain.workers.bond_extra(CHARLIE, within(1, (m.free(CHARLIE) - FEES) // 64, data.draw(edged(0, SCALE))))
    m.synced()
    got = assert_worker_agrees(m, CHARLIE)
    assert got.capabilities == Capabilities(caps.cpus, caps.gpus, _text(caps.gpu_model), caps.memory_mb)
