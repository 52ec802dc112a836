"""The content-addressed artifact store, data set packaging and the byte-stable tensor format."""
from __future__ import annotations

import hashlib

import pytest

torch = pytest.importorskip("torch")

from workers import tensorio  # noqa: E402
from workers.artifacts import (  # noqa: E402
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactStore,
    FetchRefused,
)
from workers.datasets import BUILTIN_DATASETS, DatasetError, add_dataset, decode_dataset, package  # noqa: E402
from workers.uri_policy import UriPolicy  # noqa: E402

pytestmark = pytest.mark.slow  # trains models with torch to round-trip their state


def blake(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=32).hexdigest()


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(tmp_path / "store")


def test_put_get_is_content_addressed_and_idempotent(store):
    digest = store.put(b"hello")
    assert digest == blake(b"hello")
    assert store.put(b"hello") == digest
    assert store.get(digest) == b"hello"
    assert store.get("0x" + digest.upper()) == b"hello"
    assert store.exists(digest)
    assert store.uri(digest).startswith("file://") and store.uri(digest).endswith(digest)
    assert store.fetch(store.uri(digest), digest) == b"hello"


def test_missing_artifact(store):
    with pytest.raises(ArtifactNotFoundError):
        store.get(blake(b"nothing"))
    with pytest.raises(ArtifactNotFoundError):
        store.fetch(store.root + "/nowhere", blake(b"x"))


def test_tampered_bytes_are_refused(store):
    digest = store.put(b"the real checkpoint")
    path = store.uri(digest).removeprefix("file://")
    with open(path, "wb") as f:
        f.write(b"a forged checkpoint")
    with pytest.raises(ArtifactIntegrityError) as info:
        store.get(digest)
    assert info.value.expected == digest and info.value.actual == blake(b"a forged checkpoint")
    with pytest.raises(ArtifactIntegrityError):
        store.fetch(store.uri(digest), digest)


def test_fetch_verifies_against_the_expected_hash(tmp_path):
    other = tmp_path / "elsewhere" / "data.bin"
    other.parent.mkdir()
    other.write_bytes(b"data set bytes")
    uri = "file://" + str(other)
    with pytest.raises(FetchRefused):  # not a store this one trusts
        ArtifactStore(tmp_path / "store").fetch(uri, blake(b"data set bytes"))
    store = ArtifactStore(tmp_path / "store", policy=UriPolicy((str(other.parent),)))
    assert store.fetch(uri, blake(b"data set bytes")) == b"data set bytes"
    with pytest.raises(ArtifactIntegrityError):
        store.fetch(uri, blake(b"what the spec promised"))
    copied = store.fetch_into_store(uri, blake(b"data set bytes"))
    assert store.get(copied) == b"data set bytes"


def test_copy_from_another_store_verifies_once_and_refuses_tampered_objects(tmp_path):
    source = ArtifactStore(tmp_path / "worker-store")
    store = ArtifactStore(tmp_path / "store", policy=UriPolicy((source.root,)))
    good, bad = source.put(b"checkpoint 1"), source.put(b"checkpoint 2")
    assert store.fetch(source.uri(good), "0x" + good, keep=True) == b"checkpoint 1"
    assert store.get(good) == b"checkpoint 1"
    with open(source.uri(bad).removeprefix("file://"), "wb") as f:
        f.write(b"a forged checkpoint")
    with pytest.raises(ArtifactIntegrityError):
        store.fetch(source.uri(bad), bad, keep=True)
    assert not store.exists(bad)  # nothing written under a name its bytes do not hash to
    with pytest.raises(ArtifactNotFoundError):
        store.fetch(source.uri(blake(b"never stored")), blake(b"never stored"), keep=True)


def test_other_fsspec_backends_and_pickling():
    import pickle

    mem = ArtifactStore("memory://paratrain-test")
    digest = mem.put(b"in memory")
    assert mem.uri(digest).startswith("memory://")
    assert pickle.loads(pickle.dumps(mem)).get(digest) == b"in memory"
    mem.fs.pipe_file(mem.uri(digest).removeprefix("memory://"), b"tampered")
    with pytest.raises(ArtifactIntegrityError):
        mem.get(digest)


def test_tensor_format_is_byte_stable_and_round_trips():
    state = {"b": torch.arange(6, dtype=torch.float32).reshape(2, 3), "a": torch.tensor(3, dtype=torch.int64),
             "c": torch.zeros(0), "d": torch.ones(2, dtype=torch.bfloat16)}
    blob = tensorio.dumps(state, {"step": 3})
    assert tensorio.dumps(dict(reversed(state.items())), {"step": 3}) == blob
    tensors, meta = tensorio.loads(blob)
    assert meta == {"step": 3}
    for k, v in state.items():
        assert tensors[k].dtype == v.dtype and torch.equal(tensors[k], v)
    with pytest.raises(tensorio.TensorFormatError):
        tensorio.loads(b"not tensors")


def test_optimizer_state_round_trip():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1, foreach=False)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    blob = tensorio.pack_state(model.state_dict(), opt.state_dict(), {"step": 1})
    model_state, optim_state, meta = tensorio.unpack_state(blob)
    model2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.5, foreach=False)
    model2.load_state_dict(model_state)
    opt2.load_state_dict(optim_state)
    assert meta == {"step": 1}
    assert tensorio.pack_state(model2.state_dict(), opt2.state_dict(), {"step": 1}) == blob


@pytest.mark.parametrize("name", sorted(BUILTIN_DATASETS))
def test_builtin_datasets_are_deterministic(store, name):
    digest, uri = add_dataset(name, store)
    assert digest == blake(package(name))
    assert uri == store.uri(digest)
    data = decode_dataset(store.fetch(uri, digest))
    if name == "tiny_shakespeare":
        assert data.text and len(data.text) > 10_000
    else:
        assert len(data.arrays["X"]) == len(data.arrays["y"]) > 100


def test_dataset_files(store, tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("to be or not to be\n")
    digest, _ = add_dataset(text, store)
    assert store.get(digest) == text.read_bytes()
    csv = tmp_path / "table.csv"
    csv.write_text("a,b,label\n1,2,0\n3,4,1\n5,6,1\n")
    digest, _ = add_dataset(csv, store)
    data = decode_dataset(store.get(digest))
    assert data.arrays["X"].shape == (3, 2) and data.arrays["y"].tolist() == [0, 1, 1]
    with pytest.raises(DatasetError):
        add_dataset("no_such_dataset", store)
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"\x00\x01")
    with pytest.raises(DatasetError):
        add_dataset(bad, store)
