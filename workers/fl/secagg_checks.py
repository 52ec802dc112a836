"""Pure checks of every SecAgg+ reply, so a malformed client is dropped and named instead of crashing the round.

Flower's `SecAggPlusWorkflow` trusts its replies: `zip(..., strict=True)` raises on a destination list longer
than its ciphertext list, a masked vector of the wrong shape fails in `parameters_addition`, a public key that
is not an EC point fails in the unmask stage's `bytes_to_public_key`, a duplicated key makes every honest
neighbour abort (`_share_keys`: "Some public keys are identical"). Each function here takes what the server
sent one node in a stage and what that node replied, and returns why the reply cannot be used (None: it
can). The aggregator's guard grid (workers/fl/secagg_app.py) runs them before the workflow sees a reply and
turns a bad one into an error reply, which the workflow counts as a dropout; validators can run the same
functions over the round's transcript to name the sender for slashing.

What no check here can see: a ciphertext in Fernet's format under the wrong key, or shares that do not
reconstruct. Only the recipient can decrypt, so such a sender makes honest recipients fail (their error
replies carry the reason), and a wrong share breaks the reconstruction; both need the signed transcript of
docs/design/private.md 2.5 to be attributed.
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from flwr.common import bytes_to_ndarray
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage

from workers.fl.secagg_params import SecAggParams, SecAggParamsError

MAX_KEY_BYTES = 1024
FERNET_VERSION = 0x80
FERNET_OVERHEAD = 1 + 8 + 16 + 32   # version, timestamp, IV, HMAC; the AES-CBC body is a multiple of 16
MAX_CIPHERTEXT_BYTES = 64 * 1024
MASKED_DTYPE = np.dtype(np.int64)
SHARE_INDEX_BYTES = 4   # Flower's Shamir share: a 4-byte index, then 16 bytes per 16-byte chunk of the secret
FITRES_NUM_EXAMPLES = "fitres.num_examples"


def stage_of(config: Mapping[str, Any] | None) -> str | None:
    """The SecAgg+ stage a server message's ``secaggplus_configs`` names (None: not a SecAgg message)."""
    stage = config.get(Key.STAGE) if config is not None else None
    return stage if stage in Stage.all() else None


def configs_of(content: Any) -> Mapping[str, Any] | None:
    """The ``secaggplus_configs`` record of a message's content, if any."""
    return content.config_records.get(RECORD_KEY_CONFIGS)


def examples_of(content: Any) -> Any:
    """The example count a masked-vector reply gives (None in the other stages), as sent."""
    return content.metric_records.get(FITRES_NUM_EXAMPLES, {}).get("num_examples")


def public_key_problem(value: Any) -> str | None:
    """Why `value` is not a PEM SubjectPublicKeyInfo of an EC point (Flower's `public_key_to_bytes` form)."""
    if not isinstance(value, bytes) or not 0 < len(value) <= MAX_KEY_BYTES:
        return f"not bytes of at most {MAX_KEY_BYTES}"
    try:
        key = load_pem_public_key(value)
    except (ValueError, TypeError):
        return "does not parse as a PEM public key"
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return f"is a {type(key).__name__}, not an EC point"
    return None


def check_setup(reply: Mapping[str, Any]) -> str | None:
    """A setup reply: two distinct public keys, each an EC point."""
    for name in (Key.PUBLIC_KEY_1, Key.PUBLIC_KEY_2):
        problem = public_key_problem(reply.get(name))
        if problem is not None:
            return f"setup: public key {name} {problem}"
    if reply[Key.PUBLIC_KEY_1] == reply[Key.PUBLIC_KEY_2]:
        return "setup: its two public keys are the same"
    return None


def duplicate_keys(keys: Mapping[int, Sequence[bytes]]) -> dict[int, str]:
    """The nodes whose setup key another node also sent, with why (a copied key would make every honest
    neighbour abort the round; who copied whom cannot be told, so both leave it)."""
    holders: dict[bytes, list[int]] = {}
    for node, pair in keys.items():
        for key in set(pair):
            holders.setdefault(key, []).append(node)
    out: dict[int, str] = {}
    for nodes in holders.values():
        if len(nodes) > 1:
            for node in nodes:
                others = ", ".join(str(n) for n in sorted(nodes) if n != node)
                out[node] = f"setup: a public key that node(s) {others} also sent"
    return out


def fernet_problem(token: Any) -> str | None:
    """Why `token` cannot be a Fernet token (base64url of version 0x80, timestamp, IV, AES-CBC blocks, HMAC)."""
    if not isinstance(token, bytes) or not 0 < len(token) <= MAX_CIPHERTEXT_BYTES:
        return f"not bytes of at most {MAX_CIPHERTEXT_BYTES}"
    try:
        raw = base64.urlsafe_b64decode(token)
    except (binascii.Error, ValueError):
        return "not base64url"
    if len(raw) < FERNET_OVERHEAD + 16 or (len(raw) - FERNET_OVERHEAD) % 16 or raw[0] != FERNET_VERSION:
        return "not a Fernet token (version, length)"
    return None


def _int_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def check_share_keys(node: int, neighbours: Iterable[int], reply: Mapping[str, Any]) -> str | None:
    """A share-keys reply: one Fernet ciphertext per destination, destinations unique and among the neighbours
    whose keys it was sent, never itself."""
    dsts, ctxts = reply.get(Key.DESTINATION_LIST), reply.get(Key.CIPHERTEXT_LIST)
    if not _int_list(dsts) or not isinstance(ctxts, list):
        return "share_keys: destinations must be a list of node ids, ciphertexts a list"
    if len(dsts) != len(ctxts):
        return f"share_keys: {len(dsts)} destinations but {len(ctxts)} ciphertexts"
    allowed = set(neighbours) - {node}
    if len(set(dsts)) != len(dsts):
        return "share_keys: a destination twice"
    strangers = sorted(set(dsts) - allowed)
    if strangers:
        return f"share_keys: destinations {strangers[:4]} are not its neighbours"
    for dst, token in zip(dsts, ctxts, strict=True):
        problem = fernet_problem(token)
        if problem is not None:
            return f"share_keys: the ciphertext for node {dst} is {problem}"
    return None


def check_masked_vector(reply: Mapping[str, Any], shapes: Sequence[tuple[int, ...]], modulus: int) -> str | None:
    """A masked-vector reply: the weight factor (shape (1,)) then one array per model array, of its shape,
    int64, every value in [0, modulus)."""
    vectors = reply.get(Key.MASKED_PARAMETERS)
    if not isinstance(vectors, list) or not all(isinstance(v, bytes) for v in vectors):
        return "collect_masked_vectors: the masked vector is not a list of arrays"
    expected = [(1,), *[tuple(s) for s in shapes]]
    if len(vectors) != len(expected):
        return f"collect_masked_vectors: {len(vectors)} arrays, the model implies {len(expected)}"
    for index, (raw, shape) in enumerate(zip(vectors, expected, strict=True)):
        try:
            array = bytes_to_ndarray(raw)
        except Exception:  # noqa: BLE001 - whatever np.load refuses is a malformed vector
            return f"collect_masked_vectors: array {index} does not decode"
        if array.dtype != MASKED_DTYPE or tuple(array.shape) != shape:
            return (f"collect_masked_vectors: array {index} is {array.dtype}{list(array.shape)}, "
                    f"expected {MASKED_DTYPE}{list(shape)}")
        if array.size and (int(array.min()) < 0 or int(array.max()) >= modulus):
            return f"collect_masked_vectors: array {index} has values outside [0, {modulus})"
    return None


def reply_problem(stage: str, node: int, asked: Mapping[str, Any], answer: Mapping[str, Any] | None,
                  num_examples: Any, params: SecAggParams, shapes: Sequence[tuple[int, ...]]) -> str | None:
    """Why node `node`'s reply `answer` in `stage` cannot be used, given what it was `asked` (the stage's
    ``secaggplus_configs`` it was sent) and the task's settings; None: it can. The one rule the aggregator's
    guard, an honest client before it signs, and the validators re-checking signed evidence all apply."""
    if answer is None:
        return f"{stage}: the reply has no SecAgg+ record"
    if stage == Stage.SETUP:
        return check_setup(answer)
    if stage == Stage.SHARE_KEYS:
        return check_share_keys(node, [int(k) for k in asked if k != Key.STAGE], answer)
    if stage == Stage.COLLECT_MASKED_VECTORS:
        try:
            params.check_examples(num_examples)
        except SecAggParamsError as exc:
            return f"{stage}: {exc}"
        return check_masked_vector(answer, shapes, params.modulus_range)
    if stage == Stage.UNMASK:
        return check_unmask([*asked.get(Key.ACTIVE_NODE_ID_LIST, []), *asked.get(Key.DEAD_NODE_ID_LIST, [])], answer)
    return None


def check_unmask(asked: Iterable[int], reply: Mapping[str, Any]) -> str | None:
    """An unmask reply: one share per node id, node ids unique and among those it was asked about."""
    nids, shares = reply.get(Key.NODE_ID_LIST), reply.get(Key.SHARE_LIST)
    if not _int_list(nids) or not isinstance(shares, list) or not all(isinstance(s, bytes) for s in shares):
        return "unmask: node ids must be a list of ids, shares a list of bytes"
    if len(nids) != len(shares):
        return f"unmask: {len(nids)} node ids but {len(shares)} shares"
    if len(set(nids)) != len(nids):
        return "unmask: a node id twice"
    strangers = sorted(set(nids) - set(asked))
    if strangers:
        return f"unmask: shares for nodes {strangers[:4]} it was not asked about"
    for nid, share in zip(nids, shares, strict=True):
        if len(share) < SHARE_INDEX_BYTES + 16 or (len(share) - SHARE_INDEX_BYTES) % 16:
            return f"unmask: the share for node {nid} is not an index and 16-byte chunks"
    return None


__all__ = ["FITRES_NUM_EXAMPLES", "check_masked_vector", "check_setup", "check_share_keys", "check_unmask",
           "configs_of", "duplicate_keys", "examples_of", "fernet_problem", "public_key_problem", "reply_problem",
           "stage_of"]
