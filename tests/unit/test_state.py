"""StateStore history and Overlay layering against a plain-dict model.

The model keeps a full copy of the state after every block (and of every
overlay layer); the store keeps one sorted map plus undo records. Hypothesis
drives random sequences of blocks, writes, deletions, child overlays, commits
and discards, and every view must agree with the model on `get` and on
`iter_prefix` (content, order, `start`).
"""
from __future__ import annotations

from itertools import product

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from devnet.state import Overlay, StateDiscarded, StateStore, StateView

# A small key space over three byte values, so prefixes, neighbours and deletions collide often.
KEYS = [bytes(p) for n in (1, 2, 3) for p in product((0x00, 0x01, 0xFF), repeat=n)]
PREFIXES = [b""] + [k for k in KEYS if len(k) <= 2]
keys = st.sampled_from(KEYS)
values = st.binary(min_size=0, max_size=3)
changes_st = st.dictionaries(keys, st.one_of(st.none(), values), max_size=6)


def model_iter(model: dict[bytes, bytes], prefix: bytes, start: bytes = b"") -> list[tuple[bytes, bytes]]:
    return sorted((k, v) for k, v in model.items() if k.startswith(prefix) and k >= start)


def assert_view_matches(view: StateView, model: dict[bytes, bytes]) -> None:
    for key in KEYS:
        assert view.get(key) == model.get(key), key
    for prefix in PREFIXES:
        assert list(view.iter_prefix(prefix)) == model_iter(model, prefix), prefix
    for prefix, start in ((b"", b"\x01"), (b"\x00", b"\x00\x01"), (b"\x01", b"\x00"), (b"\x01", b"\x02"),
                          (b"\xff", b"\xff\xff"), (b"\x00\xff", b"\x00\xff\x00")):
        assert list(view.iter_prefix(prefix, start)) == model_iter(model, prefix, start), (prefix, start)


def block_hash(n: int) -> bytes:
    return n.to_bytes(32, "big")


# Deterministic scenarios -------------------------------------------------------------------------

@pytest.fixture
def store() -> StateStore:
    return StateStore({b"\x00a": b"genesis-a", b"\x00b": b"genesis-b", b"\x01z": b"z"}, block_hash(0))


def test_values_at_older_blocks(store: StateStore) -> None:
    store.apply_block(block_hash(1), {b"\x00a": b"a1", b"\x00c": b"c1"})
    store.apply_block(block_hash(2), {b"\x00a": b"a2"})
    store.apply_block(block_hash(3), {b"\x00c": b"c3", b"\x01y": b"y3"})
    store.apply_block(block_hash(4), {})
    expected = {
        0: {b"\x00a": b"genesis-a", b"\x00b": b"genesis-b", b"\x01z": b"z"},
        1: {b"\x00a": b"a1", b"\x00b": b"genesis-b", b"\x00c": b"c1", b"\x01z": b"z"},
        2: {b"\x00a": b"a2", b"\x00b": b"genesis-b", b"\x00c": b"c1", b"\x01z": b"z"},
        3: {b"\x00a": b"a2", b"\x00b": b"genesis-b", b"\x00c": b"c3", b"\x01y": b"y3", b"\x01z": b"z"},
    }
    expected[4] = expected[3]
    for number, state in expected.items():
        view = store.at(block_hash(number))
        for key in {k for s in expected.values() for k in s}:
            assert view.get(key) == state.get(key), (number, key)
        assert list(view.iter_prefix(b"")) == sorted(state.items()), number
    assert store.at(block_hash(4)) is store.head
    assert store.snapshot() == expected[4]


def test_deleted_keys(store: StateStore) -> None:
    store.apply_block(block_hash(1), {b"\x00x": b"x1"})
    store.apply_block(block_hash(2), {b"\x00x": None, b"\x00a": None})
    store.apply_block(block_hash(3), {b"\x00x": b"x3", b"\x00nothing": None})  # deleting an absent key is a no-op
    assert store.at(block_hash(1)).get(b"\x00x") == b"x1"
    assert store.at(block_hash(2)).get(b"\x00x") is None
    assert store.at(block_hash(2)).get(b"\x00a") is None
    assert store.at(block_hash(1)).get(b"\x00a") == b"genesis-a"
    assert [k for k, _ in store.at(block_hash(2)).iter_prefix(b"\x00")] == [b"\x00b"]
    assert [k for k, _ in store.at(block_hash(1)).iter_prefix(b"\x00")] == [b"\x00a", b"\x00b", b"\x00x"]
    assert [k for k, _ in store.head.iter_prefix(b"\x00")] == [b"\x00b", b"\x00x"]
    assert store.at(block_hash(2)).get(b"\x00nothing") is None


def test_iter_prefix_is_ordered_and_bounded(store: StateStore) -> None:
    store.apply_block(block_hash(1), {b"\x00\xff": b"1", b"\x00\x00": b"2", b"\x00": b"3", b"\x01": b"4"})
    assert [k for k, _ in store.head.iter_prefix(b"\x00")] == [b"\x00", b"\x00\x00", b"\x00a", b"\x00b",
                                                              b"\x00\xff"]  # bytewise order
    # start is inclusive (state_getKeysPaged drops the start key itself)
    assert [k for k, _ in store.head.iter_prefix(b"\x00", b"\x00a")] == [b"\x00a", b"\x00b", b"\x00\xff"]
    assert [k for k, _ in store.head.iter_prefix(b"\x00", b"\x01")] == []
    assert [k for k, _ in store.head.iter_prefix(b"\x01", b"")] == [b"\x01", b"\x01z"]
    assert [k for k, _ in store.at(block_hash(0)).iter_prefix(b"\x00", b"\x00\x01")] == [b"\x00a", b"\x00b"]


def test_pruning_raises_state_discarded() -> None:
    store = StateStore({b"k": b"0"}, block_hash(0), keep_blocks=2)
    for n in range(1, 6):
        store.apply_block(block_hash(n), {b"k": str(n).encode()})
    for n in (0, 1, 2):
        with pytest.raises(StateDiscarded):
            store.at(block_hash(n))
    for n in (3, 4, 5):  # the oldest kept block is the base the remaining undo records lead back to
        assert store.at(block_hash(n)).get(b"k") == str(n).encode()
    with pytest.raises(StateDiscarded):
        store.at(b"\x99" * 32)  # never seen
    assert issubclass(StateDiscarded, LookupError)


def test_historical_view_under_an_overlay(store: StateStore) -> None:
    """Block building on an old block's state: an overlay over a historical view merges both layers."""
    store.apply_block(block_hash(1), {b"\x00a": None, b"\x00c": b"c1"})
    store.apply_block(block_hash(2), {b"\x00c": None})
    overlay = Overlay(store.at(block_hash(1)))
    overlay.set(b"\x00d", b"d")
    overlay.remove(b"\x00b")
    assert list(overlay.iter_prefix(b"\x00")) == [(b"\x00c", b"c1"), (b"\x00d", b"d")]
    assert overlay.get(b"\x00a") is None and overlay.get(b"\x00c") == b"c1"


# Range queries (state_queryStorage) ---------------------------------------------------------------

def per_block_query(states: list[dict[bytes, bytes]], wanted: list[bytes], first: int) -> list:
    """The reference answer, block by block from full states: the first block with every key, then each block
    with the keys whose value differs from the block before (devnet's former per-block algorithm)."""
    result, previous = [], {}
    for offset, state in enumerate(states):
        changes = []
        for key in wanted:
            value = state.get(key)
            if offset == 0 or previous.get(key) != value:
                changes.append((key, value))
            previous[key] = value
        if changes:
            result.append((block_hash(first + offset), changes))
    return result


def test_query_walks_forward_over_the_range(store: StateStore) -> None:
    store.apply_block(block_hash(1), {b"\x00a": b"a1", b"\x00c": b"c1"})
    store.apply_block(block_hash(2), {b"\x00a": b"a1"})  # rewritten with the same value: no change reported
    store.apply_block(block_hash(3), {b"\x00c": None, b"\x01z": b"z3"})
    store.apply_block(block_hash(4), {b"\x00b": b"b4"})
    store.apply_block(block_hash(5), {b"\x00c": b"c5", b"\x00a": b"a5"})
    a, b, c, z = b"\x00a", b"\x00b", b"\x00c", b"\x01z"
    assert store.query([a, c, z], block_hash(0), block_hash(5)) == [
        (block_hash(0), [(a, b"genesis-a"), (c, None), (z, b"z")]),
        (block_hash(1), [(a, b"a1"), (c, b"c1")]),
        (block_hash(3), [(c, None), (z, b"z3")]),
        (block_hash(5), [(a, b"a5"), (c, b"c5")]),
    ]
    assert store.query([c, a], block_hash(2), block_hash(4)) == [(block_hash(2), [(c, b"c1"), (a, b"a1")]),
                                                                 (block_hash(3), [(c, None)])]
    assert store.query([b, b], block_hash(4), block_hash(4)) == [(block_hash(4), [(b, b"b4"), (b, b"b4")])]
    assert store.query([], block_hash(0), block_hash(5)) == []
    assert store.query([b"\x02never"], block_hash(1), block_hash(5)) == [(block_hash(1), [(b"\x02never", None)])]
    with pytest.raises(ValueError):
        store.query([a], block_hash(3), block_hash(2))
    with pytest.raises(StateDiscarded):
        store.query([a], b"\x99" * 32, block_hash(2))


def test_query_and_reads_across_pruning() -> None:
    store = StateStore({b"k": b"0", b"j": b"0"}, block_hash(0), keep_blocks=3)
    states = [{b"k": b"0", b"j": b"0"}]
    for n in range(1, 9):
        changes = {b"k": str(n).encode()} if n % 2 else {b"j": str(n).encode(), b"k": None}
        store.apply_block(block_hash(n), changes)
        state = dict(states[-1])
        for key, value in changes.items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
        states.append(state)
    for first in range(5, 9):  # kept: the base (5) and the three blocks after it
        for last in range(first, 9):
            assert store.query([b"k", b"j"], block_hash(first), block_hash(last)) == per_block_query(
                states[first:last + 1], [b"k", b"j"], first)
        assert store.at(block_hash(first)).get(b"k") == states[first].get(b"k")
    view = store.at(block_hash(6))
    with pytest.raises(StateDiscarded):
        store.query([b"k"], block_hash(4), block_hash(8))
    store.apply_block(block_hash(9), {b"k": b"9"})  # the view reads live: still right while its block is kept
    assert view.get(b"j") == states[6].get(b"j") and view.get(b"k") == states[6].get(b"k")
    assert list(view.iter_prefix(b"")) == sorted(states[6].items())
    store.apply_block(block_hash(10), {})  # block 6 is pruned now
    with pytest.raises(StateDiscarded):
        view.get(b"k")


# Overlay semantics --------------------------------------------------------------------------------

def test_overlay_child_commit_and_discard() -> None:
    base = StateStore({b"a": b"1", b"b": b"2"}, block_hash(0)).head
    top = Overlay(base)
    top.set(b"c", b"3")
    child = top.child()
    child.set(b"a", b"changed")
    child.remove(b"b")
    assert child.get(b"a") == b"changed" and child.get(b"b") is None and child.get(b"c") == b"3"
    assert top.get(b"a") == b"1" and top.get(b"b") == b"2"  # invisible until committed
    child.commit()
    assert top.get(b"a") == b"changed" and top.get(b"b") is None
    assert list(top.iter_prefix(b"")) == [(b"a", b"changed"), (b"c", b"3")]
    assert top.changes == {b"c": b"3", b"a": b"changed", b"b": None}  # a deletion is recorded, not dropped
    assert child.changes == {}

    discarded = top.child()
    discarded.set(b"z", b"zz")
    discarded.remove(b"c")
    del discarded  # dropping an overlay discards it
    assert top.get(b"z") is None and top.get(b"c") == b"3"
    assert base.get(b"a") == b"1" and base.get(b"c") is None  # the base never changes
    with pytest.raises(AssertionError):
        top.commit()  # the bottom overlay's writes go to a block, not to a view


def test_overlay_set_after_remove_and_remove_after_set() -> None:
    overlay = Overlay(StateStore({b"a": b"1"}, block_hash(0)).head)
    overlay.remove(b"a")
    overlay.set(b"a", b"again")
    overlay.set(b"n", b"new")
    overlay.remove(b"n")
    assert list(overlay.iter_prefix(b"")) == [(b"a", b"again")]
    nested = overlay.child().child()
    nested.remove(b"a")
    assert list(nested.iter_prefix(b"")) == []
    assert list(overlay.iter_prefix(b"")) == [(b"a", b"again")]


# Random sequences against the model -------------------------------------------------------------

class StoreMachine(RuleBasedStateMachine):
    """Blocks applied to a StateStore that keeps 3 blocks of history."""

    KEEP = 3

    @initialize(initial=st.dictionaries(keys, values, max_size=8))
    def start(self, initial: dict[bytes, bytes]) -> None:
        self.store = StateStore(dict(initial), block_hash(0), keep_blocks=self.KEEP)
        self.history: list[dict[bytes, bytes]] = [dict(initial)]

    @rule(changes=changes_st)
    def apply_block(self, changes: dict[bytes, bytes | None]) -> None:
        state = dict(self.history[-1])
        for key, value in changes.items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
        self.store.apply_block(block_hash(len(self.history)), dict(changes))
        self.history.append(state)

    @rule(data=st.data())
    def read_a_kept_block(self, data: st.DataObject) -> None:
        oldest = max(0, len(self.history) - 1 - self.KEEP)
        number = data.draw(st.integers(oldest, len(self.history) - 1))
        assert_view_matches(self.store.at(block_hash(number)), self.history[number])

    @precondition(lambda self: len(self.history) - 1 > self.KEEP)
    @rule(data=st.data())
    def read_a_pruned_block(self, data: st.DataObject) -> None:
        number = data.draw(st.integers(0, len(self.history) - 2 - self.KEEP))
        with pytest.raises(StateDiscarded):
            self.store.at(block_hash(number))

    @rule(data=st.data())
    def query_a_kept_range(self, data: st.DataObject) -> None:
        oldest = max(0, len(self.history) - 1 - self.KEEP)
        first = data.draw(st.integers(oldest, len(self.history) - 1))
        last = data.draw(st.integers(first, len(self.history) - 1))
        wanted = data.draw(st.lists(keys, max_size=6))  # duplicates included
        got = self.store.query(wanted, block_hash(first), block_hash(last))
        assert got == per_block_query([self.history[n] for n in range(first, last + 1)], wanted, first)

    @invariant()
    def head_is_the_latest_state(self) -> None:
        assert_view_matches(self.store.head, self.history[-1])
        assert self.store.snapshot() == self.history[-1]


class OverlayMachine(RuleBasedStateMachine):
    """A stack of overlays (as the executive nests them per dispatch) over a block's state."""

    @initialize(initial=st.dictionaries(keys, values, max_size=8), block=changes_st)
    def start(self, initial: dict[bytes, bytes], block: dict[bytes, bytes | None]) -> None:
        store = StateStore(dict(initial), block_hash(0))
        store.apply_block(block_hash(1), dict(block))
        base_model = dict(initial)  # the overlays sit on the state *before* that block: a historical view
        self.layers: list[Overlay] = [Overlay(store.at(block_hash(0)))]
        self.models: list[dict[bytes, bytes]] = [base_model]

    @rule(key=keys, value=values)
    def set(self, key: bytes, value: bytes) -> None:
        self.layers[-1].set(key, value)
        self.models[-1][key] = value

    @rule(key=keys)
    def remove(self, key: bytes) -> None:
        self.layers[-1].remove(key)
        self.models[-1].pop(key, None)

    @precondition(lambda self: len(self.layers) < 4)
    @rule()
    def push_child(self) -> None:
        self.layers.append(self.layers[-1].child())
        self.models.append(dict(self.models[-1]))

    @precondition(lambda self: len(self.layers) > 1)
    @rule()
    def commit(self) -> None:
        self.layers.pop().commit()
        committed = self.models.pop()
        self.models[-1] = committed

    @precondition(lambda self: len(self.layers) > 1)
    @rule()
    def discard(self) -> None:
        self.layers.pop()
        self.models.pop()

    @invariant()
    def every_layer_matches_its_model(self) -> None:
        for layer, model in zip(self.layers, self.models):
            assert_view_matches(layer, model)


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(max_examples=30, stateful_step_count=12, deadline=None)
TestOverlayMachine = OverlayMachine.TestCase
TestOverlayMachine.settings = settings(max_examples=30, stateful_step_count=15, deadline=None)
