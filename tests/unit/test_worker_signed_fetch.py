"""A designated worker pulls a compute-only data set from its owner's AssetService with a signed request
(workers/task_checks.py, paratrain-asset:// URIs); anyone else is refused before training, with the owner's
reason. The server is real (gRPC on loopback); the chain's access rule is given as the views it would read."""
from __future__ import annotations

from concurrent import futures
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from substrateinterface import Keypair

from paratrain_api.v1 import asset_pb2_grpc
from workers.artifacts import ArtifactStore
from workers.asset_store import AssetServicer, DatasetView
from workers.errors import TaskRefused
from workers.task_checks import ASSET_SCHEME, fetch_dataset

OWNER, WORKER, OTHER = (Keypair.create_from_uri(f"//Fetch{n}") for n in ("Owner", "Worker", "Other"))
DATA = b"compute-only bytes " * 1000


@pytest.fixture
def served(tmp_path) -> Any:
    store = ArtifactStore(tmp_path / "owner")
    digest = store.put(DATA)
    view = DatasetView(OWNER.ss58_address, "ComputeOnly", (WORKER.ss58_address,), False)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    asset_pb2_grpc.add_AssetServiceServicer_to_server(
        AssetServicer(store, lambda h: view if h == "0x" + digest else None, lambda h, a: False), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield SimpleNamespace(dataset=SimpleNamespace(hash=digest, uri=f"{ASSET_SCHEME}127.0.0.1:{port}/0x{digest}"))
    server.stop(0)


def test_the_designated_worker_gets_the_data_set_into_its_store(served: Any, tmp_path) -> None:
    store = ArtifactStore(tmp_path / "worker")
    fetch_dataset(store, served, WORKER)
    assert store.get(served.dataset.hash) == DATA
    fetch_dataset(store, served, None)          # already here: no request, no key needed


def test_anyone_else_is_refused_before_training(served: Any, tmp_path) -> None:
    store = ArtifactStore(tmp_path / "other")
    with pytest.raises(TaskRefused, match=r"PERMISSION_DENIED.*designated workers"):
        fetch_dataset(store, served, OTHER)
    with pytest.raises(TaskRefused, match="signed request"):
        fetch_dataset(store, served, None)
    assert not store.exists(served.dataset.hash)
