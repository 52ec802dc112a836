"""A content-addressed artifact store (data sets, checkpoints, models) behind fsspec URLs.

Every object is named by the blake2-256 of its bytes and lives at
``<root>/blake2b256/<hh>/<hash>`` where ``hh`` is the first two hex digits. The root is any
fsspec URL: a local directory (the default, ``~/.cache/paratrain/artifacts`` or
``$PARATRAIN_ARTIFACTS``), ``s3://bucket/prefix``, ``gs://...``, ``memory://...`` and so on, with
storage options passed through to fsspec. Writes are idempotent (same bytes, same name); every
read is verified: bytes whose hash differs from the name raise `ArtifactIntegrityError` and are
never returned.

`ArtifactStore.fetch` is the one path for bytes that someone else named (a spec document, a data set, a
holdout, a worker's checkpoints): an object this store already holds is served from here by its hash;
anything else is opened only if the store's `UriPolicy` lets the URI through (`workers.uri_policy`), read
only up to the limit of its kind (`FetchLimits`, checked against the size the backend reports before
reading and again while reading), hashed as it streams, and returned only once it matches. A refusal or a
mismatch names the URI and the reason, never a local file's size or hash.
"""
from __future__ import annotations

import enum
import hashlib
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from workers.hashing import blake2_256_hex, normalize_hash
from workers.uri_policy import REMOTE_SCHEMES, UriPolicy, UriRefused, normalize_root

HASH_DIR = "blake2b256"
DEFAULT_ROOT_ENV = "PARATRAIN_ARTIFACTS"
MIB = 1 << 20
_CHUNK = MIB
_SPOOL = 8 * MIB  # what a fetch keeps in memory before it spills to a temporary file


class ArtifactError(Exception):
    """Base of the artifact store's errors."""


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """No object with that hash (or at that URI)."""


class ArtifactIntegrityError(ArtifactError):
    """The bytes fetched do not hash to the expected value (tampered, truncated or a wrong reference).
    `actual` is kept for the local log; the message does not carry it (it would tell a remote party the
    hash of whatever lies at a path it chose)."""

    def __init__(self, expected: str, actual: str, where: str) -> None:
        super().__init__(f"the bytes at {where} do not hash to {expected}")
        self.expected, self.actual, self.where = expected, actual, where


class FetchRefused(ArtifactError):
    """The URI is not one this node opens (`UriPolicy`), or what lies there is not a plain object."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(str(UriRefused(uri, reason)))
        self.uri, self.reason = uri, reason


class ArtifactTooLarge(FetchRefused):
    """The object is larger than the limit of its kind: refused before (or while) reading it."""


class Kind(enum.Enum):
    """What is fetched: each kind has its own size limit."""

    SPEC = "spec document"
    DATASET = "data set"
    HOLDOUT = "holdout"
    ARTIFACT = "artifact"  # model weights and checkpoints


@dataclass(frozen=True)
class FetchLimits:
    """The most bytes a fetch of each kind reads (the operator's choice; see docs/security.md)."""

    spec_bytes: int = 1 * MIB
    dataset_bytes: int = 1024 * MIB
    artifact_bytes: int = 1024 * MIB

    def of(self, kind: Kind) -> int:
        if kind is Kind.SPEC:
            return self.spec_bytes
        return self.artifact_bytes if kind is Kind.ARTIFACT else self.dataset_bytes


def default_root() -> str:
    return os.environ.get(DEFAULT_ROOT_ENV) or str(Path.home() / ".cache" / "paratrain" / "artifacts")


class ArtifactStore:
    """Content-addressed blobs under an fsspec root URL. `policy` says which other URIs `fetch` opens (by
    default none but this store's own); `limits` bound every fetch."""

    def __init__(self, root: str | os.PathLike[str] | None = None, *, policy: UriPolicy | None = None,
                 limits: FetchLimits | None = None, **storage_options: Any) -> None:
        root = str(root) if root is not None else default_root()
        if "://" not in root:
            root = "file://" + str(Path(root).expanduser().resolve())
        self.root = normalize_root(root)
        self.storage_options = storage_options
        self.fs, self._root_path = url_to_fs(self.root, **storage_options)
        self._local = isinstance(self.fs, LocalFileSystem)
        self.policy = (policy or UriPolicy()).with_roots([self.root])
        self.limits = limits or FetchLimits()

    def __repr__(self) -> str:
        return f"ArtifactStore({self.root!r})"

    def __reduce__(self) -> tuple[Any, ...]:  # picklable for Ray workers: re-opened from the URL there
        return (_reopen, (self.root, self.storage_options, self.policy, self.limits))

    # Naming -------------------------------------------------------------------------------------
    def _path(self, digest: str) -> str:
        return f"{self._root_path}/{HASH_DIR}/{digest[:2]}/{digest}"

    def uri(self, digest: str | bytes) -> str:
        return object_uri(self.root, digest)

    # Writing ------------------------------------------------------------------------------------
    def put(self, data: bytes) -> str:
        """Store `data`; its hash (64 hex). Idempotent."""
        data = bytes(data)
        digest = blake2_256_hex(data)
        self._write(digest, data)
        return digest

    def _write(self, digest: str, data: bytes) -> None:
        """Write `data`, whose blake2-256 the caller has just computed or checked, under `digest`."""
        path = self._path(digest)
        if self.fs.exists(path):
            return
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        if self._local:  # atomic on a local disk: concurrent writers and crashes leave no partial object
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, data)

    def put_file(self, path: str | os.PathLike[str]) -> str:
        return self.put(Path(path).read_bytes())

    # Reading ------------------------------------------------------------------------------------
    def exists(self, digest: str | bytes) -> bool:
        return self.fs.exists(self._path(normalize_hash(digest)))

    def get(self, digest: str | bytes) -> bytes:
        """The bytes named `digest`, verified (ArtifactNotFoundError, ArtifactIntegrityError)."""
        digest = normalize_hash(digest)
        path = self._path(digest)
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"no artifact {digest} in {self.root}") from None
        return verify(data, digest, self.uri(digest))

    def fetch(self, uri: str, expected_hash: str | bytes, *, kind: Kind = Kind.ARTIFACT, keep: bool = False,
              prefer_local: bool = True, size: int | None = None) -> bytes:
        """The bytes `uri` names, verified against `expected_hash`. With `prefer_local`, an object this store
        holds is served from here (same hash, same bytes) and the URI is not opened; otherwise the URI must
        pass the policy (FetchRefused), the object must be within the kind's limit (ArtifactTooLarge), of
        `size` bytes where the caller knows it (a commitment's), and hash as expected
        (ArtifactIntegrityError). `keep` writes what was fetched into this store."""
        expected = normalize_hash(expected_hash)
        limit = self.limits.of(kind)
        if size is not None and not 0 <= size <= limit:
            raise ArtifactTooLarge(uri, f"its committed size is not within the {limit:,}-byte limit for a "
                                        f"{kind.value}")
        if prefer_local and self.exists(expected):
            data = self.get(expected)
            if size is not None and len(data) != size:
                raise FetchRefused(uri, f"the object is not of its committed size ({size:,} bytes)")
            return data
        try:
            target = self.policy.check(uri)
        except UriRefused as exc:
            raise FetchRefused(uri, exc.reason) from None
        data = self._read_bounded(target, uri, expected, limit if size is None else size, kind)
        if keep:
            self._write(expected, data)
        return data

    def fetch_into_store(self, uri: str, expected_hash: str | bytes, *, kind: Kind = Kind.ARTIFACT) -> str:
        """Copy a remote, verified object into this store; its hash."""
        expected = normalize_hash(expected_hash)
        if not self.exists(expected):
            self.fetch(uri, expected, kind=kind, keep=True)
        return expected

    def _read_bounded(self, target: str, uri: str, expected: str, limit: int, kind: Kind) -> bytes:
        """Stream the object at `target` (an URI the policy returned) into a spooled buffer, hashing as it goes;
        at most `limit` bytes are read, and only a regular file (or a remote object) is opened at all."""
        options = self.storage_options if target.startswith(self.root + "/") else {}
        if target.split("://", 1)[0].lower() in REMOTE_SCHEMES:
            options = {**options, "allow_redirects": False}  # a redirect would leave the policy behind
        try:
            fs, path = url_to_fs(target, **options)
            info = fs.info(path)
            if info.get("type") not in ("file", None):
                raise FetchRefused(uri, "not a regular file")
            size = info.get("size")
            if isinstance(size, int) and size > limit:
                raise ArtifactTooLarge(uri, f"larger than the {limit:,}-byte limit for a {kind.value}")
            digest = hashlib.blake2b(digest_size=32)
            read = 0
            with fs.open(path, "rb") as source, tempfile.SpooledTemporaryFile(max_size=_SPOOL) as buffer:
                while chunk := source.read(min(_CHUNK, limit + 1 - read)):
                    read += len(chunk)
                    if read > limit:
                        raise ArtifactTooLarge(uri, f"larger than the {limit:,}-byte limit for a {kind.value}")
                    digest.update(chunk)
                    buffer.write(chunk)
                actual = digest.hexdigest()
                if actual != expected:
                    raise ArtifactIntegrityError(expected, actual, uri)
                buffer.seek(0)
                return buffer.read()
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"nothing at {uri}") from None
        except ArtifactError:
            raise
        except (OSError, ValueError) as exc:  # the backend's own errors (a refused connection, a bad URL)
            raise ArtifactError(f"cannot read {uri}: {type(exc).__name__}") from None


class FetchSettings(Protocol):
    """What a daemon's configuration says about its store and the URIs it opens (DaemonConfig and
    ValidatorConfig both carry these fields)."""

    store: str | None
    trusted_stores: tuple[str, ...]
    allow_remote_uris: bool
    allow_private_addresses: bool
    limits: FetchLimits


def open_store(settings: FetchSettings) -> ArtifactStore:
    """The daemon's own artifact store, opening other URIs by the operator's policy and limits."""
    policy = UriPolicy(tuple(settings.trusted_stores), allow_remote=settings.allow_remote_uris,
                       allow_private=settings.allow_private_addresses)
    return ArtifactStore(settings.store, policy=policy, limits=settings.limits)


def object_uri(root: str, digest: str | bytes) -> str:
    """Where a store rooted at `root` keeps the object `digest`."""
    digest = normalize_hash(digest)
    return f"{normalize_root(root)}/{HASH_DIR}/{digest[:2]}/{digest}"


def store_root_of(uri: str) -> str | None:
    """The store root of a content-addressed URI ``<root>/blake2b256/<hh>/<hash>`` (None for other URIs)."""
    parts = uri.rstrip("/").rsplit("/", 3)
    if len(parts) == 4 and parts[1] == HASH_DIR and len(parts[3]) == 64 and parts[2] == parts[3][:2]:
        return parts[0]
    return None


def verify(data: bytes, expected: str, where: str) -> bytes:
    actual = blake2_256_hex(data)
    if actual != expected:
        raise ArtifactIntegrityError(expected, actual, where)
    return data


def _reopen(root: str, storage_options: dict[str, Any], policy: UriPolicy | None = None,
            limits: FetchLimits | None = None) -> ArtifactStore:
    return ArtifactStore(root, policy=policy, limits=limits, **storage_options)
