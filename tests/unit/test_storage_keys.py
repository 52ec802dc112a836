"""Storage keys: devnet's `StorageItem.key` against py-substrate-interface's `StorageKey`.

substrate-interface 1.8.1 builds keys from the metadata alone (prefix,
storage name, hashers, key types), so equality here means that every client
query of devnet storage lands on the key devnet writes.
"""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scalecodec.base import ScaleBytes
from substrateinterface.storage import StorageKey
from substrateinterface.utils.ss58 import ss58_encode
from xt_builder import (
    default_reference,
    default_runtime,
    dev_keypair,
    load_reference,
    value_strategy,
)

from devnet.crypto import CONCAT_PREFIX_LEN, twox_128
from devnet.runtime.framework import StorageItem
from devnet.runtime.pallets.balances import Balances
from devnet.runtime.pallets.system import System
from devnet.scale.codec import codec_for
from devnet.state import Overlay, StateStore

RUNTIME = default_runtime()
# substrate-interface sets the chain's SS58 prefix from System.SS58Prefix after loading the metadata
REF = load_reference(default_reference().metadata_bytes, ss58_format=42)
ALICE = dev_keypair("Alice")
ACCOUNT_IDS = st.binary(min_size=32, max_size=32)


def client_key(pallet: str, name: str, params: list[Any]) -> bytes:
    return StorageKey.create_from_storage_function(pallet, name, params, runtime_config=REF.config,
                                                   metadata=REF.metadata).data


def all_items() -> list[StorageItem]:
    return [item for pallet in RUNTIME.pallets for item in RUNTIME.storage_items(pallet)]


# Well-known keys, the same on every FRAME chain -----------------------------------------------------

def test_known_key_vectors() -> None:
    assert System.Account.key(ALICE.public_key).hex() == (
        "26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9"
        "de1e86a9a8c739864cf3cc5ec2bea59f" "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d")
    assert System.Number.key().hex() == "26aa394eea5630e07c48ae0c9558cef702a5c1b19ab7a04f536c519aca4983ac"
    assert System.BlockHash.key(0).hex() == (
        "26aa394eea5630e07c48ae0c9558cef7a44704b568d21667356a5a050c118746" "b4def25cfda6ef3a" "00000000")
    assert Balances.TotalIssuance.key().hex() == "c2261276cc9d1f8598ea4b6a74b15c2f57c875e4cff74148e4628f264b974c80"
    assert RUNTIME.events_item.key().hex() == "26aa394eea5630e07c48ae0c9558cef780d41e5e16056765bc8461851072c9d7"


# The four the brief names, against StorageKey ---------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(ACCOUNT_IDS)
def test_system_account(account: bytes) -> None:
    ours = System.Account.key(account)
    assert ours == client_key("System", "Account", ["0x" + account.hex()])
    assert ours == client_key("System", "Account", [ss58_encode(account, 42)])  # how users pass addresses


def test_system_account_dev_accounts() -> None:
    for name in ("Alice", "Bob", "Charlie"):
        pair = dev_keypair(name)
        assert System.Account.key(pair.public_key) == client_key("System", "Account", [pair.ss58_address])


@settings(max_examples=25, deadline=None)
@given(st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 255, 256, 2**16, 2**32 - 1])))
def test_system_block_hash(number: int) -> None:
    assert System.BlockHash.key(number) == client_key("System", "BlockHash", [number])


def test_plain_values() -> None:
    assert System.Number.key() == client_key("System", "Number", [])
    assert Balances.TotalIssuance.key() == client_key("Balances", "TotalIssuance", [])
    assert RUNTIME.events_item.key() == client_key("System", "Events", [])


# Every item of every pallet ---------------------------------------------------------------------------

@pytest.mark.parametrize("item", all_items(), ids=lambda i: f"{i.pallet}.{i.name}")
def test_prefix_of_every_item(item: StorageItem) -> None:
    assert item.prefix == twox_128(item.pallet.encode()) + twox_128(item.name.encode())
    assert item.partial_key() == item.prefix == client_key(item.pallet, item.name, [])
    if not item.keys:
        assert item.key() == item.prefix


MAPS = [item for item in all_items() if item.keys]


@pytest.mark.parametrize("item", MAPS, ids=lambda i: f"{i.pallet}.{i.name}")
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_map_keys_match_storage_key(item: StorageItem, data: st.DataObject) -> None:
    keys = [data.draw(value_strategy(ty), label=f"key {i}") for i, (_, ty) in enumerate(item.keys)]
    # params handed over already SCALE-encoded: substrate-interface then only prefixes and hashes them
    encoded = [ScaleBytes(codec_for(ty).encode(k)) for (_, ty), k in zip(item.keys, keys)]
    assert item.key(*keys) == client_key(item.pallet, item.name, encoded)
    for n in range(1, len(keys)):  # a prefix over the leading keys, as query_map iterates a double map
        assert item.partial_key(*keys[:n]) == client_key(item.pallet, item.name, encoded[:n])
    assert item.key(*keys).startswith(item.partial_key(*keys[:1]))


def test_map_hashers_are_iterable() -> None:
    """Every map uses a hasher that keeps the key, so StorageItem.iter and query_map can decode it."""
    for item in MAPS:
        for hasher, _ in item.keys:
            assert hasher in CONCAT_PREFIX_LEN, f"{item.pallet}.{item.name}: {hasher}"


# StorageItem.iter decodes keys back ---------------------------------------------------------------

def _empty() -> Overlay:
    return Overlay(StateStore({}, bytes(32)).head)


@settings(max_examples=20, deadline=None)
@given(st.dictionaries(ACCOUNT_IDS, st.integers(0, 2**32 - 1), max_size=8),
       st.dictionaries(st.integers(0, 2**32 - 1), st.binary(min_size=32, max_size=32), max_size=8))
def test_iter_single_maps(accounts: dict[bytes, int], hashes: dict[int, bytes]) -> None:
    state = _empty()
    for who, nonce in accounts.items():
        info = System.Account.get(state, who)
        info["nonce"] = nonce
        System.Account.set(state, who, info)
    for number, block_hash in hashes.items():
        System.BlockHash.set(state, number, block_hash)
    got = {keys: value["nonce"] for keys, value in System.Account.iter(state)}
    assert got == {(who,): nonce for who, nonce in accounts.items()}
    got_hashes = list(System.BlockHash.iter(state))
    assert dict(got_hashes) == {(n,): h for n, h in hashes.items()}
    # in key order, as state_getKeysPaged returns them
    raw_keys = [System.BlockHash.key(*k) for k, _ in got_hashes]
    assert raw_keys == sorted(raw_keys)


DOUBLE_MAPS = [item for item in MAPS if len(item.keys) == 2]


@pytest.mark.parametrize("item", DOUBLE_MAPS, ids=lambda i: f"{i.pallet}.{i.name}")
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_iter_double_maps_with_leading_key(item: StorageItem, data: st.DataObject) -> None:
    (_, first_ty), (_, second_ty) = item.keys
    firsts = data.draw(st.lists(value_strategy(first_ty), min_size=1, max_size=3, unique_by=repr))
    entries: dict[tuple[Any, Any], Any] = {}
    for first in firsts:
        for second in data.draw(st.lists(value_strategy(second_ty), max_size=3, unique_by=repr)):
            entries[(first, second)] = data.draw(value_strategy(item.value))
    state = _empty()
    for (first, second), value in entries.items():
        item.set(state, first, second, value)
    assert {k: v for k, v in item.iter(state)} == entries
    for first in firsts:
        assert {k: v for k, v in item.iter(state, first)} == {k: v for k, v in entries.items() if k[0] == first}


def test_keys_decode_in_scalecodec_as_query_map_does() -> None:
    """query_map strips the prefix and decodes `([u8; hash_len], KeyType)` for each hasher."""
    state = _empty()
    accounts = [dev_keypair(n).public_key for n in ("Alice", "Bob", "Dave")]
    for who in accounts:
        System.Account.set(state, who, System.Account.get(state, who))
    System.BlockHash.set(state, 77, b"\x01" * 32)
    storage = REF.metadata.get_metadata_pallet("System").get_storage_function("Account")
    (key_type,) = storage.get_params_type_string()
    found = []
    for raw_key, _ in state.iter_prefix(System.Account.prefix):
        decoded = REF.decode(f"([u8; 16], {key_type})", raw_key[len(System.Account.prefix):])
        found.append(decoded[1])
    assert sorted(found) == sorted(ss58_encode(who, 42) for who in accounts)  # SS58, as query_map shows them
    storage = REF.metadata.get_metadata_pallet("System").get_storage_function("BlockHash")
    (key_type,) = storage.get_params_type_string()
    ((raw_key, _),) = list(state.iter_prefix(System.BlockHash.prefix))
    assert REF.decode(f"([u8; 8], {key_type})", raw_key[len(System.BlockHash.prefix):])[1] == 77


def test_key_arity_is_checked() -> None:
    with pytest.raises(TypeError):
        System.Account.key()
    with pytest.raises(TypeError):
        System.Number.key(1)
