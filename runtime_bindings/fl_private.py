"""The signed update of a private federated task, encoded here independently of the pallet (as
runtime_bindings.fl encodes the plain one): a client of a task created with `create_private_task` signs

    b"paratrain/fl-update/v2" ++ SCALE(UpdateCommitment) ++ SCALE(DpClaim)

(the pallet's `PrivateUpdateCommitment`: the plain commitment's fields, then the client's cumulative DP claim),
so nobody can change the epsilon a client claims, and the round's `update_root` is the Merkle tree hash over
`blake2_256(client ++ SCALE(PrivateUpdateCommitment))` in participant order.
"""
from __future__ import annotations

import hashlib

from substrateinterface import Keypair

from runtime_bindings.fl import AccountLike, HashLike, Signed, UpdateCommitment, _sign, _verify, account_public_key
from runtime_bindings.fl import signed_update as _signed_update
from runtime_bindings.generated.types import DpClaim
from runtime_bindings.privacy import dp_claim_bytes

PRIVATE_UPDATE_CONTEXT = b"paratrain/fl-update/v2"


def private_update_bytes(commitment: UpdateCommitment, claim: DpClaim) -> bytes:
    """The exact message a client of a private task signs for its update in a round."""
    return PRIVATE_UPDATE_CONTEXT + commitment.scale() + dp_claim_bytes(claim)


def sign_private_update(keypair: Keypair, commitment: UpdateCommitment, claim: DpClaim) -> Signed:
    return _sign(keypair, private_update_bytes(commitment, claim))


def verify_private_update(signer: AccountLike, scheme: str, signature: bytes | str, commitment: UpdateCommitment,
                          claim: DpClaim) -> bool:
    """True only if `signature` is `signer`'s over exactly this commitment and claim."""
    try:
        message = private_update_bytes(commitment, claim)
    except (ValueError, TypeError, AttributeError):
        return False
    return _verify(signer, scheme, signature, message)


def private_update_leaf(account: AccountLike, commitment: UpdateCommitment, claim: DpClaim) -> bytes:
    """One participant's leaf of a private round: its account bound to what it signed, claim included."""
    return hashlib.blake2b(account_public_key(account) + commitment.scale() + dp_claim_bytes(claim),
                           digest_size=32).digest()


def signed_private_update(client: AccountLike, update_hash: HashLike, num_examples: int, claim: DpClaim,
                          scheme: str, signature: bytes | str) -> dict[str, object]:
    """One entry of `commit_private_round`'s `updates: Vec<SignedPrivateUpdate>` as the call encodes it."""
    entry = _signed_update(client, update_hash, num_examples, scheme, signature)
    value = {"accountant": claim.accountant.name, "noise_multiplier": claim.noise_multiplier,
             "sample_rate": claim.sample_rate, "steps": claim.steps, "max_grad_norm": claim.max_grad_norm,
             "delta": claim.delta, "epsilon": claim.epsilon}
    return {**{k: v for k, v in entry.items() if k != "signature"}, "claim": value, "signature": entry["signature"]}


__all__ = ["PRIVATE_UPDATE_CONTEXT", "private_update_bytes", "private_update_leaf", "sign_private_update",
           "signed_private_update", "verify_private_update"]
