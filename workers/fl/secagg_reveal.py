"""The data owner's side of a SecAgg+ audit: when the chain draws it, it reveals what it masked.

After a round is committed, FederatedTasks draws the audited participants from the hash of the block that
included the commit (devnet/runtime/pallets/federated_secagg.py). A drawn client stores the reveal document of
what its clip/commit mod kept for that round (workers/fl/secagg_audit.py: the clipped model and the salt of the
commitment it signed) and records the document's hash and place with `reveal_update`, before the round's
reveal window closes. An undrawn client reveals nothing: its update stays private.

Not yet here: sealing the document to the validators' keys (docs/design/private.md 2.6). Whoever can read the
store the client writes to can read a revealed update; the audited share of clients is what they consented to
reveal, and to whom is for the store's access rules to say.
"""
from __future__ import annotations

from typing import Any

from runtime_bindings.generated.federated_tasks import AuditAlreadyDrawn, AuditNotDue
from workers.artifacts import ArtifactStore
from workers.fl.secagg_audit import reveal_document
from workers.fl.secagg_client import Reveal


class AuditNotReady(Exception):
    """The round's audit cannot be drawn yet (its commit block has no successor): ask again after a block."""


def reveal_if_drawn(chain: Any, keypair: Any, store: ArtifactStore, reveal: Reveal) -> str | None:
    """Reveal `reveal` if the chain drew `keypair`'s account for its round's audit (drawing the audit first when
    nobody has); the stored document's digest, or None when the account was not drawn."""
    fl = chain.federated_tasks
    audit = fl.audits(reveal.task_id, reveal.round)
    if audit is None:
        try:
            fl.draw_audit(keypair, reveal.task_id, reveal.round)
        except AuditNotDue:
            raise AuditNotReady(f"round {reveal.round} of task {reveal.task_id}: the audit is not due") from None
        except AuditAlreadyDrawn:
            pass   # another party drew it since we looked
        audit = fl.audits(reveal.task_id, reveal.round)
    if keypair.ss58_address not in {str(account) for account in audit.drawn}:
        return None
    digest = store.put(reveal_document(reveal, keypair.public_key))
    fl.reveal_update(keypair, reveal.task_id, reveal.round, "0x" + digest, store.uri(digest).encode())
    return digest


__all__ = ["AuditNotReady", "reveal_if_drawn"]
