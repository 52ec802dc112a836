"""The data owner's side of a SecAgg+ audit: when the chain draws it, it reveals what it masked.

After a round is committed, FederatedTasks draws the audited participants from the hash of the block that
included the commit (devnet/runtime/pallets/federated_secagg.py). A drawn client stores the reveal document of
what its clip/commit mod kept for that round (workers/fl/secagg_audit.py: the clipped model and the salt of the
commitment it signed) and records the document's hash and place with `reveal_update`, before the round's
reveal window closes. An undrawn client reveals nothing: its update stays private.

The document is revealed to the validators only: it is sealed (workers/sealing.py) to the X25519 keys validators
registered on chain (FederatedTasks.SealKeys, at most MAX_RECIPIENTS of them, by account order), and the envelope
is what the store holds and the chain names. A client that finds no registered key waits: it reveals to nobody
rather than to everyone.

`settle_reveal` is one look at one kept document, a pure question to the chain and at most two extrinsics, so
the client daemon can ask it every poll until the answer is final (`RevealState.final`).
"""
from __future__ import annotations

from enum import Enum
from typing import Any

from runtime_bindings.fl import account_public_key
from runtime_bindings.generated.federated_tasks import AuditAlreadyDrawn, AuditNotDue, RoundNotPending
from workers.artifacts import ArtifactStore
from workers.sealing import MAX_RECIPIENTS, seal


class RevealState(Enum):
    REVEALED = "revealed"      # drawn: the document is stored and its hash on chain
    NOT_DRAWN = "not-drawn"    # the draw passed this client by: the update stays private
    WAITING = "waiting"        # the round is not committed yet, or its audit is not due: ask again
    OVER = "over"              # the round is not pending any more (or never was committed by now): nothing to do

    @property
    def final(self) -> bool:
        return self is not RevealState.WAITING


def settle_reveal(chain: Any, keypair: Any, store: ArtifactStore, task_id: int, round_: int,
                  document: bytes) -> RevealState:
    """Reveal `document` if the chain drew `keypair`'s account for the round's audit (drawing the audit first
    when nobody has)."""
    fl = chain.federated_tasks
    audit = fl.audits(task_id, round_)
    if audit is None:
        record = fl.rounds(task_id, round_)
        if record is None:
            return RevealState.WAITING
        try:
            fl.draw_audit(keypair, task_id, round_)
        except AuditNotDue:
            return RevealState.WAITING
        except RoundNotPending:
            return RevealState.OVER
        except AuditAlreadyDrawn:
            pass   # another party drew it since we looked
        audit = fl.audits(task_id, round_)
        if audit is None:
            return RevealState.WAITING
    if keypair.ss58_address not in {str(account) for account in audit.drawn}:
        return RevealState.NOT_DRAWN
    if fl.audit_reveals(task_id, round_, keypair.ss58_address) is not None:
        return RevealState.REVEALED
    recipients = seal_recipients(chain)
    if not recipients:
        return RevealState.WAITING   # no validator can read it yet: reveal to nobody rather than to anyone
    digest = store.put(seal(document, recipients))
    fl.reveal_update(keypair, task_id, round_, "0x" + digest, store.uri(digest).encode())
    return RevealState.REVEALED


def seal_recipients(chain: Any) -> dict[bytes, bytes]:
    """The validators' registered seal keys (account public key -> X25519 key), the first MAX_RECIPIENTS by
    account."""
    keys = {account_public_key(str(account)): bytes(key) for account, key in chain.federated_tasks.seal_keys.entries()
            if key is not None}
    return dict(sorted(keys.items())[:MAX_RECIPIENTS])


def reveal_if_drawn(chain: Any, keypair: Any, store: ArtifactStore, reveal: Any,
                    masking: bytes | None = None) -> RevealState:
    """`settle_reveal` of what a client's clip/commit mod kept (a workers.fl.secagg_client.Reveal), with the
    masking record its signing mod kept (workers/fl/secagg_masks.py) when there is one."""
    from workers.fl.secagg_audit import bundle, reveal_document

    document = reveal_document(reveal, keypair.public_key)
    return settle_reveal(chain, keypair, store, reveal.task_id, reveal.round,
                         document if masking is None else bundle(document, masking))


__all__ = ["RevealState", "reveal_if_drawn", "seal_recipients", "settle_reveal"]
