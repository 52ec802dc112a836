"""The data owner's store served to signed requests only (workers/asset_store.py) against a devnet process: a
Paid data set to its grant holders, a ComputeOnly one to its designated workers only, and every other request
refused with its gRPC status (unsigned, forged, stale, ungranted, unregistered); `paratrain dataset fetch` is
the client."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from paratrain.cli import main
from paratrain_api.v1 import asset_pb2, asset_pb2_grpc
from runtime_bindings import Chain, Keypair
from runtime_bindings.assets import sign_fetch
from runtime_bindings.generated import types as t
from runtime_bindings.values import Bytes
from workers.artifacts import ArtifactStore
from workers.asset_store import AssetServicer, dataset_view, fetch_dataset
from workers.datasets import add_dataset

pytestmark = pytest.mark.slow  # a devnet process, a gRPC server

ALICE, BOB, CHARLIE, DAVE, EVE = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Dave",
                                                                                "Eve"))


@pytest.fixture(scope="module")
def world(devnet, tmp_path_factory) -> Iterator[dict[str, Any]]:
    store = ArtifactStore(tmp_path_factory.mktemp("owner-store"))
    paid, _ = add_dataset("breast_cancer", store)
    compute, _ = add_dataset("digits", store)
    with Chain.connect(devnet.ws_url, timeout=20) as chain:
        chain.datasets.register(ALICE, "0x" + paid, 1000, Bytes(b"npz"), Bytes(b"CC-BY-4.0"), 10**12, t.Access.Paid)
        chain.datasets.register(ALICE, "0x" + compute, 1000, Bytes(b"npz"), Bytes(b"CC-BY-4.0"), 10**12,
                                t.Access.ComputeOnly(recipes=["0x" + "11" * 32], workers=[DAVE.ss58_address]))
        chain.datasets.buy_access(EVE, "0x" + compute)       # a compute grant: tasks, never downloads
        lock = threading.Lock()

        def read(dataset: str) -> Any:
            with lock:
                return dataset_view(chain.datasets.datasets(dataset))

        def granted(dataset: str, account: str) -> bool:
            with lock:
                return chain.datasets.grants(dataset, account) is not None

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        asset_pb2_grpc.add_AssetServiceServicer_to_server(AssetServicer(store, read, granted), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            yield {"chain": chain, "lock": lock, "paid": "0x" + paid, "compute": "0x" + compute,
                   "target": f"127.0.0.1:{port}", "store": store}
        finally:
            server.stop(0)


def refusal(world: dict[str, Any], dataset: str, signer: Keypair, **overrides: Any) -> grpc.StatusCode:
    digest = bytes.fromhex(dataset.removeprefix("0x"))
    now = int(time.time() * 1000)
    fields = {"dataset_hash": digest, "account": signer.ss58_address, "timestamp_ms": now,
              "signature": sign_fetch(signer, digest, now), **overrides}
    with grpc.insecure_channel(world["target"]) as channel:
        try:
            list(asset_pb2_grpc.AssetServiceStub(channel).FetchDataset(asset_pb2.FetchDatasetRequest(**fields),
                                                                       timeout=10))
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def test_a_paid_data_set_is_served_to_its_owner_and_grant_holders_only(world: dict[str, Any]) -> None:
    assert refusal(world, world["paid"], BOB) == grpc.StatusCode.PERMISSION_DENIED
    with world["lock"]:
        world["chain"].datasets.buy_access(BOB, world["paid"])
    data = fetch_dataset(world["target"], world["paid"], BOB)
    assert data == world["store"].get(world["paid"])
    assert fetch_dataset(world["target"], world["paid"], ALICE) == data


def test_a_compute_only_data_set_leaves_only_for_its_designated_workers(world: dict[str, Any]) -> None:
    assert fetch_dataset(world["target"], world["compute"], DAVE) == world["store"].get(world["compute"])
    assert refusal(world, world["compute"], EVE) == grpc.StatusCode.PERMISSION_DENIED   # a grant, not a worker
    assert refusal(world, world["compute"], CHARLIE) == grpc.StatusCode.PERMISSION_DENIED


def test_unsigned_forged_stale_and_unregistered_requests_are_refused(world: dict[str, Any]) -> None:
    digest = bytes.fromhex(world["paid"][2:])
    now = int(time.time() * 1000)
    assert refusal(world, world["paid"], ALICE, signature=b"") == grpc.StatusCode.UNAUTHENTICATED
    assert refusal(world, world["paid"], ALICE, signature=sign_fetch(CHARLIE, digest, now)) \
        == grpc.StatusCode.UNAUTHENTICATED                                   # someone else's signature
    stale = now - 10 * 60_000
    assert refusal(world, world["paid"], ALICE, timestamp_ms=stale, signature=sign_fetch(ALICE, digest, stale)) \
        == grpc.StatusCode.UNAUTHENTICATED
    assert refusal(world, "0x" + "77" * 32, ALICE) == grpc.StatusCode.NOT_FOUND
    assert refusal(world, world["paid"], ALICE, account="not an address") == grpc.StatusCode.INVALID_ARGUMENT


def test_paratrain_dataset_fetch(world: dict[str, Any], tmp_path, capsys, monkeypatch, devnet) -> None:
    monkeypatch.setenv("PARATRAIN_CHAIN", devnet.ws_url)
    out = tmp_path / "data.npz"
    assert main(["dataset", "fetch", world["compute"], "--from", world["target"], "--out", str(out),
                 "--key", "//Dave"]) == 0
    assert out.read_bytes() == world["store"].get(world["compute"])
    assert main(["dataset", "fetch", world["compute"], "--from", world["target"], "--out", str(tmp_path / "x"),
                 "--key", "//Charlie"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "PERMISSION_DENIED" in err[-1] and "designated workers" in err[-1]
