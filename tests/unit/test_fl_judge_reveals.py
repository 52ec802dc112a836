"""A validator's side of sealed SecAgg reveals (workers/fl/judge.py): it registers its seal key once, opens the
envelopes sealed to it, treats an envelope that does not open as the client's failure to reveal, and abstains from
one sealed before its key was on chain. The chain is a small stand-in holding what the pallet would (the pallet's
own call is tested in tests/unit/test_secagg_pallet.py); the store is a real one."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from substrateinterface import Keypair

from workers.artifacts import ArtifactStore
from workers.errors import Abstain
from workers.fl.judge import RoundJudge
from workers.sealing import seal, seal_public

CHARLIE, DAVE, CLIENT = (Keypair.create_from_uri(f"//{n}") for n in ("Charlie", "Dave", "RevealClient"))
DOCUMENT = b"the reveal document" * 20


class Reveals:
    """FederatedTasks as the judge reads it: one client's reveal, and the registered seal keys."""

    def __init__(self, store: ArtifactStore, envelope: bytes | None) -> None:
        self.keys: dict[str, bytes] = {}
        self.registered: list[tuple[str, str]] = []
        self.record = None
        if envelope is not None:
            digest = store.put(envelope)
            self.record = SimpleNamespace(reveal_hash="0x" + digest, reveal_uri=SimpleNamespace(text=store.uri(digest)))

    def audit_reveals(self, task: int, round_: int, account: str) -> Any:
        return self.record if account == CLIENT.ss58_address else None

    def seal_keys(self, account: str) -> bytes | None:
        return self.keys.get(account)

    def register_seal_key(self, keypair: Keypair, key: str) -> None:
        self.registered.append((keypair.ss58_address, key))
        self.keys[keypair.ss58_address] = bytes.fromhex(key[2:])


def judge(keypair: Keypair, store: ArtifactStore, envelope: bytes | None) -> tuple[RoundJudge, Reveals]:
    reveals = Reveals(store, envelope)
    chain = SimpleNamespace(federated_tasks=reveals)
    return RoundJudge(chain=chain, keypair=keypair, store=store, state=None, save=lambda: None,
                      notify=lambda *a, **k: None), reveals


def test_the_validator_opens_what_is_sealed_to_it(tmp_path) -> None:
    store = ArtifactStore(tmp_path)
    j, _ = judge(CHARLIE, store, seal(DOCUMENT, {CHARLIE.public_key: seal_public(CHARLIE)}))
    audited = j.fetch_reveal(1, 1, CLIENT.ss58_address, 1 << 20)
    assert audited.document == DOCUMENT and audited.missing == ""


def test_an_envelope_sealed_to_others_only_is_an_abstention_not_a_slash(tmp_path) -> None:
    j, _ = judge(DAVE, ArtifactStore(tmp_path), seal(DOCUMENT, {CHARLIE.public_key: seal_public(CHARLIE)}))
    with pytest.raises(Abstain, match="not sealed to this validator"):
        j.fetch_reveal(1, 1, CLIENT.ss58_address, 1 << 20)


@pytest.mark.parametrize("envelope", [DOCUMENT, b"garbled"])   # a plain document is a reveal to everyone
def test_what_does_not_open_is_the_clients_failure_to_reveal(tmp_path, envelope: bytes) -> None:
    j, _ = judge(CHARLIE, ArtifactStore(tmp_path), envelope)
    audited = j.fetch_reveal(1, 1, CLIENT.ss58_address, 1 << 20)
    assert audited.document is None and "cannot be opened" in audited.missing


def test_the_seal_key_is_registered_once(tmp_path) -> None:
    j, reveals = judge(CHARLIE, ArtifactStore(tmp_path), None)
    j.ensure_seal_key()
    j.ensure_seal_key()
    assert reveals.registered == [(CHARLIE.ss58_address, "0x" + seal_public(CHARLIE).hex())]
    assert j.fetch_reveal(1, 1, DAVE.ss58_address, 1 << 20).missing == "no reveal on chain"
