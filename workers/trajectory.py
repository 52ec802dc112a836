"""trajectory_root: a binary Merkle tree over a training run's checkpoint hashes.

The tree is RFC 6962 / RFC 9162's Merkle Tree Hash with blake2-256 as the hash and the same
domain separation, so a leaf can never be confused with an inner node:

    MTH([])        = blake2_256(b"")
    MTH([d0])      = blake2_256(0x00 || d0)                       (leaf: d0 is a 32-byte checkpoint hash)
    MTH(D[0:n])    = blake2_256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
                     where k is the largest power of two smaller than n (n > 1)

The leaves are the checkpoint hashes in training order (checkpoint 0 first). An unbalanced
tree is split as above (no duplicated last node, so no two lists share a root). An inclusion
proof of leaf i is the RFC 9162 audit path (sibling hashes, bottom-up); `verify_inclusion`
recomputes the root from the leaf, its index, the tree size and the path. Because the root of
the first m checkpoints is well defined, a worker's heartbeats can commit the root of the
trajectory so far, and the final root commits to the whole run.
"""
from __future__ import annotations

from collections.abc import Sequence

from workers.hashing import blake2_256, normalize_hash

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def _leaf_bytes(leaf: str | bytes) -> bytes:
    return bytes.fromhex(normalize_hash(leaf))


def leaf_hash(leaf: str | bytes) -> bytes:
    return blake2_256(LEAF_PREFIX + _leaf_bytes(leaf))


def node_hash(left: bytes, right: bytes) -> bytes:
    return blake2_256(NODE_PREFIX + left + right)


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _mth(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return blake2_256(b"")
    if n == 1:
        return blake2_256(LEAF_PREFIX + leaves[0])
    k = _split(n)
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def merkle_root(checkpoint_hashes: Sequence[str | bytes]) -> bytes:
    """The 32-byte trajectory root of the checkpoint hashes (hex strings or bytes), in order."""
    return _mth([_leaf_bytes(h) for h in checkpoint_hashes])


def merkle_root_hex(checkpoint_hashes: Sequence[str | bytes]) -> str:
    return merkle_root(checkpoint_hashes).hex()


def inclusion_proof(checkpoint_hashes: Sequence[str | bytes], index: int) -> list[bytes]:
    """The audit path of leaf `index`: sibling subtree hashes from the leaf up to the root."""
    leaves = [_leaf_bytes(h) for h in checkpoint_hashes]
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} is not in a tree of {len(leaves)}")

    def path(m: int, d: Sequence[bytes]) -> list[bytes]:
        n = len(d)
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return path(m, d[:k]) + [_mth(d[k:])]
        return path(m - k, d[k:]) + [_mth(d[:k])]

    return path(index, leaves)


def verify_inclusion(leaf: str | bytes, index: int, tree_size: int, proof: Sequence[bytes],
                     root: str | bytes) -> bool:
    """True if `proof` shows `leaf` is the `index`-th of `tree_size` leaves under `root` (RFC 9162 2.1.3.2)."""
    try:
        expected_root = bytes.fromhex(normalize_hash(root))
        node = leaf_hash(leaf)
    except ValueError:
        return False
    if not 0 <= index < tree_size:
        return False
    fn, sn = index, tree_size - 1
    for sibling in proof:
        sibling = bytes(sibling)
        if len(sibling) != 32 or sn == 0:
            return False
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            node = node_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and node == expected_root
