"""trajectory_root: the RFC 6962-style Merkle tree over checkpoint hashes, and its inclusion proofs."""
from __future__ import annotations

import hashlib

import pytest

from workers.trajectory import inclusion_proof, leaf_hash, merkle_root, merkle_root_hex, node_hash, verify_inclusion


def h(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


LEAVES = [h(bytes([i])).hex() for i in range(13)]


def test_small_trees_by_hand():
    a, b, c = (bytes.fromhex(x) for x in LEAVES[:3])
    assert merkle_root([]) == h(b"")
    assert merkle_root([a]) == h(b"\x00" + a)
    assert merkle_root([a, b]) == h(b"\x01" + h(b"\x00" + a) + h(b"\x00" + b))
    # three leaves split 2 + 1, the odd leaf is not duplicated
    left = node_hash(leaf_hash(a), leaf_hash(b))
    assert merkle_root([a, b, c]) == node_hash(left, leaf_hash(c))
    assert merkle_root([a, b, c]) != merkle_root([a, b, c, c])


def test_domain_separation_a_node_is_not_a_leaf():
    a, b = (bytes.fromhex(x) for x in LEAVES[:2])
    inner = node_hash(leaf_hash(a), leaf_hash(b))
    assert merkle_root([a, b]) != merkle_root([inner])


def test_root_accepts_hex_0x_and_bytes_and_depends_on_order():
    assert merkle_root(LEAVES) == merkle_root(["0x" + x for x in LEAVES]) == merkle_root(
        [bytes.fromhex(x) for x in LEAVES])
    assert merkle_root_hex(LEAVES) == merkle_root(LEAVES).hex()
    assert merkle_root(LEAVES) != merkle_root(LEAVES[::-1])
    with pytest.raises(ValueError):
        merkle_root(["abc"])


@pytest.mark.parametrize("n", range(1, 14))
def test_every_inclusion_proof_verifies(n):
    leaves = LEAVES[:n]
    root = merkle_root(leaves)
    for i in range(n):
        proof = inclusion_proof(leaves, i)
        assert verify_inclusion(leaves[i], i, n, proof, root)
        assert verify_inclusion(leaves[i], i, n, proof, "0x" + root.hex())


def test_wrong_proofs_fail():
    n = 11
    leaves = LEAVES[:n]
    root = merkle_root(leaves)
    proof = inclusion_proof(leaves, 5)
    assert not verify_inclusion(leaves[6], 5, n, proof, root)       # another leaf
    assert not verify_inclusion(leaves[5], 4, n, proof, root)       # another index
    last = inclusion_proof(leaves, n - 1)
    assert not verify_inclusion(leaves[n - 1], n - 1, n + 1, last, root)  # another size (changes the shape)
    assert not verify_inclusion(leaves[5], 5, n, proof[:-1], root)  # truncated
    assert not verify_inclusion(leaves[5], 5, n, proof + [proof[0]], root)
    tampered = [bytes(32)] + proof[1:]
    assert not verify_inclusion(leaves[5], 5, n, tampered, root)
    assert not verify_inclusion(leaves[5], 5, n, proof, bytes(32))
    assert not verify_inclusion(leaves[5], 20, n, proof, root)
    with pytest.raises(IndexError):
        inclusion_proof(leaves, n)


def test_prefix_roots_are_the_heartbeat_commitments():
    roots = [merkle_root(LEAVES[:m]) for m in range(1, len(LEAVES) + 1)]
    assert len(set(roots)) == len(roots)
