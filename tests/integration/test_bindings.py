"""runtime_bindings against a real devnet process: typed calls, storage, events, errors,
pool rejections, submit timeouts, the resuming finalized-event stream, threads."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from paratrain.local import DevnetProcess
from runtime_bindings import (
    BlockEvents,
    Chain,
    InvalidTransaction,
    Keypair,
    ModuleError,
    SubmitTimeout,
    balances,
    system,
    types,
)
from runtime_bindings.generated import task_bounties
from runtime_bindings.generated.balances import BalancesError, TransferKeepAliveCall

UNIT = 10**12


@pytest.fixture(scope="module")
def chain(devnet) -> Chain:
    with Chain.connect(devnet.ws_url, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def alice() -> Keypair:
    return Keypair.create_from_uri("//Alice")


@pytest.fixture(scope="module")
def bob() -> Keypair:
    return Keypair.create_from_uri("//Bob")


def test_typed_transfer_receipt_events_fee(chain: Chain, alice: Keypair, bob: Keypair) -> None:
    before = chain.system.account(bob.ss58_address)
    assert isinstance(before, types.AccountInfo) and isinstance(before.data, types.AccountData)
    receipt = chain.balances.transfer_keep_alive(alice, bob.ss58_address, 3 * UNIT, wait="inclusion")
    assert receipt.included and receipt.block_number >= 1 and receipt.extrinsic_index is not None
    [transfer] = receipt.find(balances.TransferEvent)
    assert (transfer.from_, transfer.to, transfer.amount) == (alice.ss58_address, bob.ss58_address, 3 * UNIT)
    assert receipt.find(system.ExtrinsicSuccessEvent)
    assert isinstance(receipt.find(system.ExtrinsicSuccessEvent)[0].dispatch_info, types.DispatchInfo)
    assert receipt.fee and receipt.fee > 0
    after = chain.system.account(bob.ss58_address, at=receipt.block_hash)
    assert after.data.free == before.data.free + 3 * UNIT
    # the quoted fee of the same call is what an inclusion charges (same length, no tip)
    assert chain.estimate_fee(TransferKeepAliveCall(dest=bob.ss58_address, value=3 * UNIT), alice) == receipt.fee


def test_wait_none_and_finality(chain: Chain, alice: Keypair, bob: Keypair) -> None:
    quick = chain.balances.transfer_keep_alive(alice, bob, UNIT, wait="none")
    assert quick.extrinsic_hash.startswith("0x") and not quick.included
    final = chain.balances.transfer_keep_alive(alice, bob, UNIT, wait="finality", timeout=20)
    assert final.finalized and final.block_number <= chain.finalized_number()


def test_storage_single_value_and_paged(chain: Chain, alice: Keypair) -> None:
    assert chain.balances.total_issuance() > 0
    assert chain.system.number() >= 0
    everyone = list(chain.system.account.entries(page_size=2))
    addresses = [who for who, _ in everyone]
    assert alice.ss58_address in addresses and len(addresses) == len(set(addresses)) >= 3
    assert all(isinstance(info, types.AccountInfo) for _, info in everyone)
    first = chain.system.account.page(page_size=2)
    assert len(first.items) == 2 and first.next_key
    second = chain.system.account.page(page_size=2, start_key=first.next_key)
    assert {k for k, _ in first.items}.isdisjoint(k for k, _ in second.items)
    assert len(list(chain.system.account.entries(page_size=1, max_results=2))) == 2
    # a map whose entries are absent reads as the metadata says (ValueQuery default here)
    nobody = Keypair.create_from_uri("//NobodyAtAll")
    assert chain.system.account(nobody.ss58_address).data.free == 0


def test_dynamic_access_matches_typed(chain: Chain, alice: Keypair) -> None:
    raw = chain.pallet("System").storage("Account")(alice.ss58_address)
    assert raw["data"]["free"] == chain.system.account(alice.ss58_address).data.free
    assert chain.constant("Balances", "ExistentialDeposit") == 10**9


def test_typed_module_error(chain: Chain, alice: Keypair, bob: Keypair) -> None:
    poor = Keypair.create_from_uri("//BindingsPoor")
    chain.balances.transfer_keep_alive(alice, poor.ss58_address, UNIT)
    with pytest.raises(BalancesError.InsufficientBalance) as caught:
        chain.balances.transfer_keep_alive(poor, bob.ss58_address, 10 * UNIT)
    error = caught.value
    assert isinstance(error, BalancesError) and isinstance(error, ModuleError)
    assert (error.pallet, error.name) == ("Balances", "InsufficientBalance")
    assert error.docs == "Balance too low to send value."
    assert error.receipt is not None and error.receipt.fee > 0  # included and paid for
    assert ModuleError.class_for("Balances", "InsufficientBalance") is BalancesError.InsufficientBalance


def test_pool_rejection_stale_nonce(chain: Chain, alice: Keypair, bob: Keypair) -> None:
    chain.balances.transfer_keep_alive(alice, bob, UNIT)
    with pytest.raises(InvalidTransaction) as caught:
        chain.balances.transfer_keep_alive(alice, bob, UNIT, nonce=0)
    assert caught.value.kind == "Stale" and caught.value.code == 1010


def test_pool_rejection_payment(chain: Chain, bob: Keypair) -> None:
    empty = Keypair.create_from_uri("//BindingsEmpty")
    with pytest.raises(InvalidTransaction) as caught:
        chain.balances.transfer_keep_alive(empty, bob, UNIT)
    assert caught.value.kind == "Payment"


def test_threads_share_one_chain(chain: Chain, bob: Keypair) -> None:
    senders = [Keypair.create_from_uri(f"//{name}") for name in ("Charlie", "Dave", "Eve")]
    errors: list[BaseException] = []
    receipts = []

    def work(sender: Keypair) -> None:
        try:
            for _ in range(2):
                receipts.append(chain.balances.transfer_keep_alive(sender, bob, UNIT, timeout=20))
                chain.system.account(sender.ss58_address)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(receipts) == 6 and len({r.extrinsic_hash for r in receipts}) == 6


def test_submit_timeout_on_slow_node(alice: Keypair, bob: Keypair) -> None:
    with DevnetProcess("--block-time", "60000") as slow, Chain.connect(slow.ws_url, timeout=10) as chain:
        started = time.monotonic()
        with pytest.raises(SubmitTimeout) as caught:
            chain.balances.transfer_keep_alive(alice, bob, UNIT, wait="inclusion", timeout=1)
        assert time.monotonic() - started < 5
        assert caught.value.extrinsic_hash.startswith("0x")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_finalized_stream_resumes_after_restart(tmp_path, alice: Keypair, bob: Keypair) -> None:
    port = _free_port()
    args = ("--port", str(port), "--base-path", str(tmp_path / "chain"))
    node = DevnetProcess(*args).start()
    try:
        with Chain.connect(node.ws_url, timeout=5) as chain:
            for _ in range(2):
                chain.balances.transfer_keep_alive(alice, bob, UNIT)
            stream = chain.events.finalized(from_block=1, poll_interval=0.05, reconnect_timeout=30)
            seen: list[BlockEvents] = [next(stream), next(stream)]
            node.stop()  # the connection drops mid-stream
            node = DevnetProcess(*args).start()
            with Chain.connect(node.ws_url, timeout=5) as again:
                for _ in range(2):
                    again.balances.transfer_keep_alive(alice, bob, UNIT)
                target = again.finalized_number()
            while seen[-1].number < target:
                seen.append(next(stream))
            stream.close()
    finally:
        node.stop()
    numbers = [b.number for b in seen]
    assert numbers == list(range(1, target + 1)), numbers  # no gap, no duplicate
    assert stream.reconnects >= 1
    transfers = [e for b in seen for e in b.events if isinstance(e, balances.TransferEvent)]
    assert len(transfers) == 4


def test_pipelined_submissions_take_the_pool_into_the_nonce(chain: Chain, alice: Keypair, bob: Keypair) -> None:
    """Two submissions without waiting: the second is signed with the nonce after the pooled first one."""
    before = chain.system.account(bob.ss58_address).data.free
    receipts = [chain.balances.transfer_keep_alive(alice, bob.ss58_address, UNIT, wait="none") for _ in range(2)]
    assert receipts[0].extrinsic_hash != receipts[1].extrinsic_hash
    deadline = time.monotonic() + 10
    while chain.system.account(bob.ss58_address).data.free != before + 2 * UNIT:
        assert time.monotonic() < deadline, "both transfers were not included"
        time.sleep(0.05)


def test_double_map_entries_with_and_without_a_prefix(chain: Chain, alice: Keypair) -> None:
    """A double map's entries: the full key tuples when no key is given, the second key under a prefix."""
    trainer = Keypair.create_from_uri("//BindingsTrainer")
    chain.balances.transfer_keep_alive(alice, trainer.ss58_address, 2_000 * UNIT)
    chain.workers.register(trainer, "Trainer", 1_000 * UNIT, types.Capabilities(2, 0, "", 8_000))
    spec = {"recipe": "digits_mlp", "spec_hash": "0x" + "11" * 32, "spec_uri": "file:///spec.json",
            "dataset_hash": "0x" + "22" * 32, "eval_metric": "accuracy", "eval_target": 900_000,
            "higher_is_better": True, "requirements": {"min_cpus": 1, "min_gpus": 0, "min_memory_mb": 1},
            "parent_model": None}
    ids = []
    for _ in range(2):
        receipt = chain.task_bounties.create_task(alice, spec, 10 * UNIT, 0, chain.best_number() + 500, 1, None)
        ids.append(receipt.find(task_bounties.TaskCreatedEvent)[0].task_id)
        chain.task_bounties.claim_task(trainer, ids[-1])
    everything = dict(chain.task_bounties.claims_by_worker.entries())
    assert {(trainer.ss58_address, i) for i in ids} <= set(everything)
    assert sorted(k for k, _ in chain.task_bounties.claims_by_worker.entries(trainer.ss58_address)) == sorted(ids)


def test_connections_share_decoded_metadata_per_runtime(chain: Chain, devnet) -> None:
    """A second connection to the same runtime reuses the decoded metadata (no 0.5 s decode); a node
    whose runtime differs only in a constant (same genesis, same spec_version) gets its own."""
    with Chain.connect(devnet.ws_url) as other:
        assert other.substrate.metadata is chain.substrate.metadata
    with DevnetProcess("--challenge-period-ms", "1234") as node, Chain.connect(node.ws_url) as different:
        assert different.block_hash(0) == chain.block_hash(0)
        assert different.substrate.metadata is not chain.substrate.metadata
        assert different.constant("TaskBounties", "ChallengePeriod") == 1234
        assert chain.constant("TaskBounties", "ChallengePeriod") == 0


def test_a_first_connection_downloads_the_metadata_once(devnet, monkeypatch) -> None:
    """The metadata that keys the process-wide cache is the one decoded (not downloaded again), and the
    attestation codec is built from the connection's decoded copy."""
    from substrateinterface import SubstrateInterface

    from runtime_bindings import AttestationCodec
    from runtime_bindings.metadata_cache import SHARED

    methods: list[str] = []
    request = SubstrateInterface.rpc_request

    def counted(self, method, params, *args, **kwargs):
        methods.append(method)
        return request(self, method, params, *args, **kwargs)

    monkeypatch.setattr(SubstrateInterface, "rpc_request", counted)
    SHARED.clear()  # as in a fresh process
    with Chain.connect(devnet.ws_url) as chain:
        codec = AttestationCodec.from_chain(chain)
        raw = bytes.fromhex(chain.rpc("state_getMetadata")[2:])
    assert methods.count("state_getMetadata") == 2  # the connection's one download, and the test's own
    assert codec.type_string == AttestationCodec.from_metadata(raw).type_string
    assert len(SHARED) == 1


def test_decode_extrinsic(chain: Chain, alice: Keypair, bob: Keypair) -> None:
    raw = bytes.fromhex(chain.sign(TransferKeepAliveCall(dest=bob.ss58_address, value=7), alice)[2:])
    decoded = chain.decode_extrinsic(raw)
    assert (decoded.signer, decoded.pallet, decoded.call) == (alice.ss58_address, "Balances", "transfer_keep_alive")
    assert decoded.args["value"] == 7
    with pytest.raises(ValueError, match="not an extrinsic of this chain"):
        chain.decode_extrinsic(b"\x01\x02garbage")


def test_storage_changes_over_a_range(chain: Chain, alice: Keypair, bob: Keypair) -> None:
    """System.BlockHash (a u32-keyed map) over a range: each entry's writes, decoded, as block-by-block reads see."""
    for _ in range(3):
        chain.balances.transfer_keep_alive(alice, bob.ss58_address, 1)
    last = chain.best_number()
    numbers = [last - 2, last - 1]
    first_hash, last_hash = chain.block_hash(last - 2), chain.block_hash(last)
    changes = chain.storage_changes("System", "BlockHash", numbers, first_hash, last_hash)
    for n in numbers:
        [(written_in, value)] = [(h, v) for h, v in changes[n] if v is not None][-1:]
        assert chain.block_number(written_in) == n + 1  # a block writes its parent's hash
        assert str(chain.decode_storage("System", "BlockHash", value)) == chain.block_hash(n)
        assert str(chain.system.block_hash(n, at=written_in)) == chain.block_hash(n)
