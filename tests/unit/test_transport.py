"""runtime_bindings over MemoryTransport: the bindings against devnet's runtime with no node process and
no socket (every test forbids sockets): submissions and their events, storage, typed dispatch and pool
errors, subscriptions through substrate-interface, the one metadata download, and the transport seam's
own contract (wire failures become ConnectionLost, one reconnect-and-retry)."""
from __future__ import annotations

import socket
from collections.abc import Iterable

import pytest
from memory_chain import URL, SocketUsed, forbid_sockets

from devnet.rpc.inprocess import InProcessNode
from runtime_bindings import Chain, ConnectionLost, InvalidTransaction, Keypair, balances
from runtime_bindings.generated.balances import BalancesError
from runtime_bindings.metadata_cache import SHARED
from runtime_bindings.transport import JsonObject, MemoryTransport, WebSocketTransport

UNIT = 10**12
ALICE, BOB = Keypair.create_from_uri("//Alice"), Keypair.create_from_uri("//Bob")



def test_sockets_are_forbidden(node: InProcessNode) -> None:
    """The guard every test here relies on: a real connection attempt fails the test."""
    with pytest.raises(SocketUsed):
        socket.create_connection(("127.0.0.1", 9))


def test_a_signed_extrinsic_is_submitted_and_its_events_read(chain: Chain) -> None:
    assert chain.best_number() == 0 and repr(chain) == f"<Chain {URL}>"
    receipt = chain.balances.transfer_keep_alive(ALICE, BOB.ss58_address, 3 * UNIT, wait="finality")
    assert receipt.finalized and receipt.block_number == 1 and receipt.extrinsic_index == 1
    [transfer] = receipt.find(balances.TransferEvent)
    assert (transfer.from_, transfer.to, transfer.amount) == (ALICE.ss58_address, BOB.ss58_address, 3 * UNIT)
    assert receipt.fee is not None and receipt.fee > 0
    records = [r for r in chain.events_at(receipt.block_hash) if r.extrinsic_index == 1]
    assert [r.event for r in records] == receipt.events
    assert all(r.phase == {"ApplyExtrinsic": 1} for r in records)
    assert {r.phase for r in chain.events_at(receipt.block_hash) if r.extrinsic_index is None} <= {
        "Initialization", "Finalization"}


def test_storage_reads(chain: Chain, node: InProcessNode) -> None:
    before = chain.system.account(BOB.ss58_address).data.free
    receipt = chain.balances.transfer_keep_alive(ALICE, BOB.ss58_address, UNIT)
    assert chain.system.account(BOB.ss58_address).data.free == before + UNIT
    assert chain.system.account(BOB.ss58_address, at=chain.block_hash(0)).data.free == before
    assert chain.finalized_hash() == receipt.block_hash == "0x" + node.chain.best.hash.hex()
    accounts = dict(chain.system.account.entries(page_size=2))
    assert accounts[BOB.ss58_address].data.free == before + UNIT and len(accounts) >= 6  # dev accounts


def test_errors_are_typed(chain: Chain) -> None:
    poor = Keypair.create_from_uri("//PoorMemory")
    chain.balances.transfer_keep_alive(ALICE, poor.ss58_address, UNIT)
    with pytest.raises(BalancesError.InsufficientBalance) as dispatch:
        chain.balances.transfer_allow_death(poor, BOB.ss58_address, 10 * UNIT)
    assert dispatch.value.receipt is not None and dispatch.value.receipt.fee  # included, and paid for
    with pytest.raises(InvalidTransaction) as refused:
        chain.balances.transfer_keep_alive(ALICE, BOB.ss58_address, UNIT, nonce=0)  # nonce 0 was used
    assert refused.value.kind == "Stale"


def test_subscriptions_work_through_substrate_interface(chain: Chain) -> None:
    """author_submitAndWatchExtrinsic and chain_subscribe*: notifications come back on the memory wire."""
    si = chain.substrate
    call = si.compose_call("Balances", "transfer_keep_alive", {"dest": BOB.ss58_address, "value": UNIT})
    result = si.submit_extrinsic(si.create_signed_extrinsic(call, ALICE), wait_for_finalization=True)
    assert result.is_success and result.block_hash == chain.finalized_hash()
    head = si.subscribe_block_headers(lambda header, update, sub: header, finalized_only=True)
    assert head["header"]["number"] == chain.finalized_number() == 1


def test_a_first_connection_downloads_the_metadata_once(node: InProcessNode) -> None:
    methods: list[str] = []
    app = node.connection()

    def counted(request: dict[str, object]) -> Iterable[JsonObject]:
        methods.append(str(request["method"]))
        return app(request)

    SHARED.clear()  # as in a fresh process
    with Chain(transport=MemoryTransport(counted)) as chain:
        assert chain.metadata().pallet_names_by_attr()["task_bounties"] == "TaskBounties"
    assert methods.count("state_getMetadata") == 1 and len(SHARED) == 1


def test_a_broken_wire_is_reconnected_once_for_reads(node: InProcessNode) -> None:
    app = node.connection()
    failures: dict[str, int] = {}

    def flaky(request: dict[str, object]) -> Iterable[JsonObject]:
        method = str(request["method"])
        if failures.get(method):
            failures[method] -= 1
            raise ConnectionResetError("wire cut")
        return app(request)

    with Chain(transport=MemoryTransport(flaky)) as chain:
        failures["chain_getHeader"] = 1
        assert chain.best_number() == 0 and chain.reconnects == 1  # retried on a new connection
        failures["chain_getHeader"] = 2
        with pytest.raises(ConnectionLost, match="ConnectionResetError: wire cut"):
            chain.best_number()  # one retry only
        failures["author_submitExtrinsic"] = 1
        with pytest.raises(ConnectionLost):  # a submission is never sent twice
            chain.balances.transfer_keep_alive(ALICE, BOB.ss58_address, UNIT, wait="none")
        assert node.chain.best.number == 0


def test_memory_transport_contract() -> None:
    answers: list[JsonObject] = []
    transport = MemoryTransport(lambda request: [{"jsonrpc": "2.0", "id": request["id"], "result": 7}, *answers])
    with pytest.raises(ConnectionLost, match="not connected"):
        transport.send('{"jsonrpc": "2.0", "id": 1, "method": "m"}')
    transport.connect()
    answers.append({"jsonrpc": "2.0", "method": "n", "params": {"subscription": "s", "result": 1}})
    transport.send('{"jsonrpc": "2.0", "id": 1, "method": "m"}')
    assert transport.recv() == '{"jsonrpc": "2.0", "id": 1, "result": 7}'
    assert '"subscription": "s"' in transport.recv()
    with pytest.raises(ConnectionLost, match="nothing to receive"):
        transport.recv()
    transport.send('{"jsonrpc": "2.0", "id": 2, "method": "m"}')
    transport.connect()  # a new connection starts with nothing unread
    with pytest.raises(ConnectionLost):
        transport.recv()
    assert isinstance(transport.clone(), MemoryTransport) and transport.clone().url == transport.url


def test_chain_takes_a_url_or_a_transport() -> None:
    transport = MemoryTransport(lambda request: [])
    with pytest.raises(ValueError, match="url or a transport"):
        Chain()
    with pytest.raises(ValueError, match="url or a transport"):
        Chain("ws://127.0.0.1:9944", transport=transport)


def test_websocket_transport_maps_wire_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_sockets(monkeypatch)
    transport = WebSocketTransport("ws://127.0.0.1:9", timeout=1)
    with pytest.raises(ConnectionLost, match="not connected"):
        transport.recv()
    with pytest.raises(SocketUsed):  # the default transport does open a socket, and only in connect()
        transport.connect()


def test_websocket_transport_refused_is_connection_lost() -> None:
    with pytest.raises(ConnectionLost, match=r"cannot connect to ws://127\.0\.0\.1:1"):
        WebSocketTransport("ws://127.0.0.1:1", timeout=1).connect()
