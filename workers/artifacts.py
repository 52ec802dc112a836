"""A content-addressed artifact store (data sets, checkpoints, models) behind fsspec URLs.

Every object is named by the blake2-256 of its bytes and lives at
``<root>/blake2b256/<hh>/<hash>`` where ``hh`` is the first two hex digits. The root is any
fsspec URL: a local directory (the default, ``~/.cache/paratrain/artifacts`` or
``$PARATRAIN_ARTIFACTS``), ``s3://bucket/prefix``, ``gs://...``, ``memory://...`` and so on, with
storage options passed through to fsspec. Writes are idempotent (same bytes, same name); every
read is verified: bytes whose hash differs from the name raise `ArtifactIntegrityError` and are
never returned.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from workers.hashing import blake2_256_hex, normalize_hash

HASH_DIR = "blake2b256"
DEFAULT_ROOT_ENV = "PARATRAIN_ARTIFACTS"


class ArtifactError(Exception):
    """Base of the artifact store's errors."""


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """No object with that hash (or at that URI)."""


class ArtifactIntegrityError(ArtifactError):
    """The bytes fetched do not hash to the expected value (tampered, truncated or a wrong reference)."""

    def __init__(self, expected: str, actual: str, where: str) -> None:
        super().__init__(f"hash mismatch for {where}: expected {expected}, got {actual}")
        self.expected, self.actual, self.where = expected, actual, where


def default_root() -> str:
    return os.environ.get(DEFAULT_ROOT_ENV) or str(Path.home() / ".cache" / "paratrain" / "artifacts")


class ArtifactStore:
    """Content-addressed blobs under an fsspec root URL."""

    def __init__(self, root: str | os.PathLike[str] | None = None, **storage_options: Any) -> None:
        root = str(root) if root is not None else default_root()
        if "://" not in root:
            root = "file://" + str(Path(root).expanduser().resolve())
        self.root = root.rstrip("/")
        self.storage_options = storage_options
        self.fs, self._root_path = url_to_fs(self.root, **storage_options)
        self._local = isinstance(self.fs, LocalFileSystem)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.root!r})"

    def __reduce__(self):  # picklable for Ray workers: re-opened from the URL there
        return (_reopen, (self.root, self.storage_options))

    # Naming -------------------------------------------------------------------------------------
    def _path(self, digest: str) -> str:
        return f"{self._root_path}/{HASH_DIR}/{digest[:2]}/{digest}"

    def uri(self, digest: str | bytes) -> str:
        digest = normalize_hash(digest)
        return f"{self.root}/{HASH_DIR}/{digest[:2]}/{digest}"

    # Writing ------------------------------------------------------------------------------------
    def put(self, data: bytes) -> str:
        """Store `data`; its hash (64 hex). Idempotent."""
        data = bytes(data)
        digest = blake2_256_hex(data)
        self._write(digest, data)
        return digest

    def copy_from(self, source: ArtifactStore, digest: str | bytes) -> bytes:
        """Copy one object from another store into this one; its bytes, verified (once: the hash checked on
        reading is the name it is written under)."""
        digest = normalize_hash(digest)
        data = source.get(digest)
        self._write(digest, data)
        return data

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

    def fetch(self, uri: str, expected_hash: str | bytes, **storage_options: Any) -> bytes:
        """Bytes from any fsspec URI (in this store or elsewhere), verified against `expected_hash`."""
        expected = normalize_hash(expected_hash)
        if uri.startswith(self.root + "/"):
            return self.get(expected) if uri == self.uri(expected) else verify(self._cat(uri), expected, uri)
        return verify(self._cat(uri, **storage_options), expected, uri)

    def fetch_into_store(self, uri: str, expected_hash: str | bytes, **storage_options: Any) -> str:
        """Copy a remote, verified object into this store; its hash."""
        expected = normalize_hash(expected_hash)
        if self.exists(expected):
            self.get(expected)
            return expected
        self._write(expected, self.fetch(uri, expected, **storage_options))
        return expected

    def _cat(self, uri: str, **storage_options: Any) -> bytes:
        try:
            with fsspec.open(uri, "rb", **(storage_options or self.storage_options)) as f:
                return f.read()
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"nothing at {uri}") from None


def verify(data: bytes, expected: str, where: str) -> bytes:
    actual = blake2_256_hex(data)
    if actual != expected:
        raise ArtifactIntegrityError(expected, actual, where)
    return data


def _reopen(root: str, storage_options: dict[str, Any]) -> ArtifactStore:
    return ArtifactStore(root, **storage_options)
