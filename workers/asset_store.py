"""The data owner's side of data-set assets: an artifact store (any fsspec store, as everywhere) served over
gRPC (paratrain.v1.AssetService) to signed requests only, by the access rule the chain holds (pallet Datasets).

A request names the data set and the account, with the time it was signed and the account's signature over
both (runtime_bindings.assets). It is served when the signature is the account's and the time within
`window_ms` of the server's clock (UNAUTHENTICATED otherwise), the data set is registered and in this store
(NOT_FOUND) and the rule admits the account (PERMISSION_DENIED): Public anyone; Paid its owner or a grant
holder; ComputeOnly its owner or a designated worker only. A grant on a ComputeOnly data set lets its holder
post tasks on it, never download it: the data leaves the owner only for the workers it designated.
`access_problem` is that rule as a pure function; the servicer only translates.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from paratrain_api.v1 import asset_pb2, asset_pb2_grpc
from runtime_bindings.assets import public_key_of, sign_fetch, verify_fetch

CHUNK = 1 << 20


@dataclass(frozen=True)
class DatasetView:
    owner: str
    access: str                  # Public, Paid, ComputeOnly
    workers: tuple[str, ...]     # ComputeOnly's designated workers (SS58)
    retired: bool


def access_problem(view: DatasetView | None, account: str, has_grant: Callable[[], bool]) -> tuple[str, str] | None:
    """(status name, reason) when `account` may not fetch the data set, None when it may."""
    if view is None:
        return "NOT_FOUND", "the data set is not registered on chain"
    if account == view.owner or view.access == "Public":
        return None
    if view.access == "Paid":
        return None if has_grant() else ("PERMISSION_DENIED", "this account holds no grant: `paratrain dataset "
                                                              "buy` it first")
    if account in view.workers:
        return None
    return "PERMISSION_DENIED", "the data set is compute-only: only its owner's designated workers fetch it"


class AssetServicer(asset_pb2_grpc.AssetServiceServicer):
    """`read_dataset(hash)` -> DatasetView | None and `has_grant(hash, account)` read the chain; `store` is
    the owner's ArtifactStore."""

    def __init__(self, store: Any, read_dataset: Callable[[str], DatasetView | None],
                 has_grant: Callable[[str, str], bool], *, window_ms: int = 60_000,
                 now_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.store, self.read_dataset, self.has_grant = store, read_dataset, has_grant
        self.window_ms, self.now_ms = window_ms, now_ms

    def FetchDataset(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        try:
            public_key = public_key_of(request.account)
        except ValueError:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "account is not an SS58 address")
        digest = bytes(request.dataset_hash)
        if len(digest) != 32:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "dataset_hash is 32 bytes")
        if not verify_fetch(public_key, digest, request.timestamp_ms, bytes(request.signature)):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "the signature is not this account's")
        if abs(self.now_ms() - request.timestamp_ms) > self.window_ms:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, f"the request was signed more than {self.window_ms} ms "
                                                           "from now: sign it again")
        hex_hash = "0x" + digest.hex()
        problem = access_problem(self.read_dataset(hex_hash), request.account,
                                 lambda: self.has_grant(hex_hash, request.account))
        if problem is not None:
            context.abort(grpc.StatusCode[problem[0]], problem[1])
        from workers.artifacts import ArtifactNotFoundError

        try:
            data = self.store.get(digest.hex())
        except ArtifactNotFoundError:
            context.abort(grpc.StatusCode.NOT_FOUND, "the data set is registered but not in this store")
        for start in range(0, len(data), CHUNK):
            yield asset_pb2.FetchDatasetResponse(chunk=data[start:start + CHUNK])


def dataset_view(record: Any) -> DatasetView | None:
    """A Datasets.Datasets record as the servicer reads it."""
    if record is None:
        return None
    workers = tuple(str(w) for w in record.access.workers) if record.access.VARIANT == "ComputeOnly" else ()
    return DatasetView(str(record.owner), record.access.VARIANT, workers, bool(record.retired))


def fetch_dataset(target: str, dataset_hash: str, signer: Any, *, timeout: float = 60.0,
                  max_bytes: int = 1 << 30) -> bytes:
    """The data set's bytes from an owner's AssetService, signed by `signer`, checked against its hash
    (ValueError when they do not match); grpc.RpcError carries the server's refusal."""
    import hashlib

    digest = bytes.fromhex(dataset_hash.removeprefix("0x"))
    now = int(time.time() * 1000)
    request = asset_pb2.FetchDatasetRequest(dataset_hash=digest, account=signer.ss58_address, timestamp_ms=now,
                                            signature=sign_fetch(signer, digest, now))
    parts, size = [], 0
    with grpc.insecure_channel(target) as channel:
        for reply in asset_pb2_grpc.AssetServiceStub(channel).FetchDataset(request, timeout=timeout):
            size += len(reply.chunk)
            if size > max_bytes:
                raise ValueError(f"the data set is larger than {max_bytes} bytes")
            parts.append(reply.chunk)
    data = b"".join(parts)
    if hashlib.blake2b(data, digest_size=32).digest() != digest:
        raise ValueError(f"the bytes served do not hash to {dataset_hash}")
    return data


__all__ = ["AssetServicer", "DatasetView", "access_problem", "dataset_view", "fetch_dataset"]
