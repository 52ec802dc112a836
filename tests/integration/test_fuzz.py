"""Fuzzing a running devnet: over 10,000 random and mutated extrinsics and frames.

One node, four persistent WebSocket connections, every frame pipelined (and a
few hundred more as HTTP POST bodies). The inputs come from a seeded generator
(PARATRAIN_FUZZ_SEED overrides the seed) so a failure replays exactly. What must
hold:

- every request is answered exactly once (responses matched by id; frames with
  no usable id are counted, since their errors carry ``"id": null``);
- no mutated or random extrinsic is accepted, no block is authored and the
  state is unchanged (Alice's and Bob's accounts, System.Number, the best and
  finalized blocks, the pool);
- no handler fails with an internal error, nothing is logged as an error, and the
  node still answers afterwards.

The mutations start from transactions that are valid at that moment (a transfer,
a mortal remark, a tipped transfer from Bob), so the node's decoder, signature
check and validity checks all see near misses. A mutation equal to one of those
originals is never sent; anything else the node accepted would be a forged or
malleated signature and fails the test by name.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import string
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import patch

import pytest
import xxhash
from substrateinterface import Keypair, SubstrateInterface
from websockets.asyncio.client import connect

from devnet.scale.codec import encode_compact
from paratrain.local import DevnetProcess

pytestmark = pytest.mark.slow  # sends over 10,000 fuzzed extrinsics and frames to a devnet

SEED = int(os.environ.get("PARATRAIN_FUZZ_SEED", "424242"))
CONNECTIONS = 4
SIGNED_INPUTS = 600  # well-formed, correctly signed, invalid: stale, future, unpayable, wrong era
EXTRINSIC_INPUTS = 6_000  # mutated and random bytes
METHOD_INPUTS = 4_000
FRAME_INPUTS = 2_500  # frames and batch elements
HTTP_INPUTS = 300
TIMEOUT_S = 50

ALICE, BOB = Keypair.create_from_uri("//Alice"), Keypair.create_from_uri("//Bob")
SUBMIT_CODES = {1001, 1010, 1011, 1012, 1013, 1014, -32602}  # author errors, or params that are not bytes
INTERNAL_ERROR = -32603


def twox128(data: bytes) -> bytes:
    return b"".join(xxhash.xxh64_intdigest(data, seed=s).to_bytes(8, "little") for s in (0, 1))


def account_key(public_key: bytes) -> str:
    return "0x" + (twox128(b"System") + twox128(b"Account") + hashlib.blake2b(public_key, digest_size=16).digest()
                   + public_key).hex()


NUMBER_KEY = "0x" + (twox128(b"System") + twox128(b"Number")).hex()
EVENTS_KEY = "0x" + (twox128(b"System") + twox128(b"Events")).hex()


@pytest.fixture(scope="module")
def node() -> Iterator[tuple[DevnetProcess, list[str]]]:
    """A devnet whose output is drained continuously (a full pipe would stall it), kept for inspection."""
    with DevnetProcess() as process:
        yield process, process.output


# Input generation -----------------------------------------------------------------------------------
@dataclass
class Frame:
    payload: str | bytes
    expect: list[Any]  # the ids of the responses due: ours (ints) or None for errors that cannot name one
    kind: str
    submits: bool = False  # a transaction submission: must be refused


class Inputs:
    def __init__(self, rng: random.Random, originals: list[bytes], signed: list[bytes], methods: list[str],
                 facts: dict[str, Any]):
        self.rng = rng
        self.originals = originals + signed  # the bases of mutations
        self.signed = signed
        self.forbidden = set(originals)
        self.methods = methods
        self.facts = facts
        self.next_id = 1
        self.count = 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _request(self, method: str, params: Any, **extra: Any) -> tuple[dict[str, Any], int]:
        request_id = self._id()
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, **extra}
        if params is not ...:
            request["params"] = params
        return request, request_id

    # Extrinsic bytes ---------------------------------------------------------------------------------
    def mutate(self, raw: bytes) -> bytes:
        rng, data = self.rng, bytearray(raw)
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            op = rng.randrange(9)
            if op == 0 and data:  # flip bits
                for _ in range(rng.randint(1, 8)):
                    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            elif op == 1 and data:  # replace bytes with interesting values
                for _ in range(rng.randint(1, 4)):
                    data[rng.randrange(len(data))] = rng.choice((0, 1, 2, 3, 4, 0x7F, 0x80, 0x84, 0xFF,
                                                                 rng.randrange(256)))
            elif op == 2 and data:  # truncate
                del data[rng.randrange(len(data)):]
            elif op == 3:  # extend
                data += rng.randbytes(rng.choice((1, 2, 4, 32, rng.randrange(200))))
            elif op == 4 and len(data) > 1:  # swap two bytes
                i, j = rng.randrange(len(data)), rng.randrange(len(data))
                data[i], data[j] = data[j], data[i]
            elif op == 5 and data:  # delete a range
                i = rng.randrange(len(data))
                del data[i:i + rng.randint(1, 16)]
            elif op == 6:  # insert random bytes
                i = rng.randrange(len(data) + 1)
                data[i:i] = rng.randbytes(rng.randint(1, 16))
            elif op == 7 and data:  # splice with another original
                other = rng.choice(self.originals)
                cut = rng.randrange(len(data))
                data = data[:cut] + bytearray(other[rng.randrange(len(other)):])
            else:  # rewrite the length prefix (keeps the body: exercises the prefix check)
                body = data[1:] if data and data[0] & 3 == 0 else data[2:]
                data = bytearray(encode_compact(max(0, len(body) + rng.choice((-2, -1, 1, 2, 0))))) + body
        return bytes(data)

    def extrinsic_bytes(self) -> bytes:
        rng = self.rng
        while True:
            roll = rng.random()
            if roll < 0.72:
                raw = self.mutate(rng.choice(self.originals))
            elif roll < 0.9:
                raw = rng.randbytes(rng.choice((0, 1, 2, 3, 8, 32, 64, 100, 140, 200, 256, 1000)))
            elif roll < 0.97:  # random bytes behind a correct length prefix and a signed-extrinsic version
                body = bytes((0x84,)) + rng.randbytes(rng.randrange(1, 220))
                raw = encode_compact(len(body)) + body
            else:
                raw = rng.randbytes(rng.randrange(4096, 70_000))
            if raw not in self.forbidden:
                return raw

    def extrinsic_frame(self, raw: bytes | None = None) -> Frame:
        rng = self.rng
        raw = self.extrinsic_bytes() if raw is None else raw
        hex_raw = "0x" + raw.hex()
        roll = rng.random()
        submits = False
        if roll < 0.55:
            method, params, submits = "author_submitExtrinsic", [hex_raw], True
        elif roll < 0.70:
            method, params, submits = "author_submitAndWatchExtrinsic", [hex_raw], True
        elif roll < 0.80:
            method, params = "payment_queryInfo", [hex_raw]
        elif roll < 0.85:
            method, params = "payment_queryFeeDetails", [hex_raw]
        elif roll < 0.93:
            source = bytes((rng.randrange(3),))
            method = "state_call"
            params = ["TaggedTransactionQueue_validate_transaction",
                      "0x" + (source + raw + bytes.fromhex(self.facts["best"][2:])).hex()]
        else:
            method = "state_call"
            params = [rng.choice(("TransactionPaymentApi_query_info", "TransactionPaymentApi_query_fee_details")),
                      "0x" + (raw + len(raw).to_bytes(4, "little")).hex()]
        request, request_id = self._request(method, params)
        return Frame(json.dumps(request), [request_id], method, submits)

    # Random method calls -----------------------------------------------------------------------------
    def value(self, depth: int = 0) -> Any:
        rng, facts = self.rng, self.facts
        roll = rng.randrange(16 if depth < 3 else 12)
        if roll == 0:
            return rng.choice((0, 1, -1, 2**31, 2**32, 2**64, -(2**63), 10**30, rng.randrange(-1000, 100000)))
        if roll == 1:
            return rng.choice((0.5, -0.0, 1e300, -1e-300, 3.0))
        if roll == 2:
            return rng.choice((True, False, None))
        if roll == 3:
            return "".join(rng.choice(string.printable) for _ in range(rng.randrange(40)))
        if roll == 4:
            return "0x" + rng.randbytes(rng.randrange(70)).hex() + rng.choice(("", "", "0", "g"))
        if roll == 5:
            return rng.choice((facts["best"], facts["genesis"], facts["finalized"], "0x" + "00" * 32))
        if roll == 6:
            return rng.choice((ALICE.ss58_address, BOB.ss58_address, "0x" + ALICE.public_key.hex(),
                               ALICE.ss58_address[:-1] + "x", "5" * 48, "", "54", "5G", "\u00e9"))
        if roll == 7:
            key = rng.choice(facts["keys"])
            return key if rng.random() < 0.7 else key[:rng.randrange(2, len(key))]
        if roll == 8:
            return rng.choice(("0x", "0x00", "0x1234", hex(rng.randrange(2**40)), str(rng.randrange(100))))
        if roll == 9:
            return rng.choice(self.methods) if rng.random() < 0.5 else rng.choice(
                ("Core_version", "Metadata_metadata_at_version", "AccountNonceApi_account_nonce", "Nope_nope"))
        if roll == 10:
            return "\u0000\ud7ff\ue000\U0001f600"[: rng.randrange(5)]
        if roll == 11:  # shaped like a subscription id
            return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(16))
        if roll in (12, 13):
            return [self.value(depth + 1) for _ in range(rng.randrange(5))]
        return {rng.choice(("hash", "key", "keys", "n", "count", "at", "bytes", "name", "x")): self.value(depth + 1)
                for _ in range(rng.randrange(4))}

    def method_frame(self) -> Frame:
        rng = self.rng
        if rng.random() < 0.85:
            method = rng.choice(self.methods)
        else:
            method = rng.choice((
                "".join(rng.choice(string.ascii_letters + "_") for _ in range(rng.randrange(1, 30))),
                rng.choice(self.methods) + "x", "author_insertKey", "author_rotateKeys", "system_addReservedPeer",
                "sudo", "rpc.discover", "", " ", "state_getStorage\u0000"))
        roll = rng.random()
        if roll < 0.45:
            params: Any = [self.value() for _ in range(rng.randrange(5))]
        elif roll < 0.65:
            params = {rng.choice(("hash", "key", "keys", "n", "count", "at", "prefix", "start_key", "account",
                                  "extrinsic", "name", "bytes")): self.value() for _ in range(rng.randrange(4))}
        elif roll < 0.75:
            params = ...
        elif roll < 0.8:
            params = None
        else:
            params = [self.value(2)]
        request, request_id = self._request(method, params)
        return Frame(json.dumps(request), [request_id], "method:" + method)

    # Garbage frames ----------------------------------------------------------------------------------
    def garbage_frame(self) -> tuple[Frame, int]:
        """A frame and how many inputs it carries (batch elements count one each)."""
        rng = self.rng
        roll = rng.randrange(10)
        if roll == 0:  # random bytes in a binary frame (made unparseable should they happen to parse)
            data = rng.randbytes(rng.randrange(1, 300))
            try:
                if isinstance(json.loads(data.decode()), (dict, list)):
                    data = b"[" + data
            except (ValueError, RecursionError):
                pass
            return Frame(data, [None], "binary"), 1
        if roll == 1:  # random text
            text = "".join(rng.choice(string.printable) for _ in range(rng.randrange(1, 200)))
            return self._textual(text, "text"), 1
        if roll in (2, 3):  # a mutated request
            request, _ = self._request(rng.choice(self.methods), [self.value()])
            text = json.dumps(request)
            chars = list(text)
            for _ in range(rng.randint(1, 4)):
                op = rng.randrange(3)
                if op == 0 and chars:
                    del chars[rng.randrange(len(chars)):]
                elif op == 1 and chars:
                    chars[rng.randrange(len(chars))] = rng.choice('{}[]":,\\ 0aZ\u00e9')
                else:
                    chars.insert(rng.randrange(len(chars) + 1), rng.choice('{}[]":,\\'))
            return self._textual("".join(chars), "mutated-json"), 1
        if roll == 4:  # a JSON value that is not a request
            value = rng.choice((1, -5, 3.5, "x", True, False, None, "", "\u00ff"))
            return Frame(json.dumps(value), [None], "scalar"), 1
        if roll == 5:  # a request object that breaks the protocol
            request, request_id = self._request(rng.choice(self.methods), [])
            broken = rng.randrange(5)
            if broken == 0:
                request["jsonrpc"] = rng.choice(("1.0", "2", 2.0, None, ""))
                expect = [request_id]
            elif broken == 1:
                del request["jsonrpc"]
                expect = [request_id]
            elif broken == 2:
                request["method"] = rng.choice((1, None, [], {}, True))
                expect = [request_id]
            elif broken == 3:
                request["params"] = rng.choice(("x", 1, True, 2.5))
                expect = [request_id]
            else:
                request["id"] = rng.choice(({}, [], [1], {"a": 1}, True, False))
                expect = [None]
            return Frame(json.dumps(request), expect, "invalid-request"), 1
        if roll in (6, 7):  # a batch of requests
            frames = [self.method_frame() for _ in range(rng.randint(1, 12))]
            batch = "[" + ",".join(f.payload for f in frames) + "]"  # type: ignore[misc]
            return Frame(batch, [i for f in frames for i in f.expect], "batch"), len(frames)
        if roll == 8:  # a batch of things that are not requests
            items = [rng.choice((1, "a", None, [], [1], True)) for _ in range(rng.randint(1, 20))]
            return Frame(json.dumps(items), [None] * len(items), "junk-batch"), len(items)
        # deep nesting, long strings, huge numbers
        text = rng.choice(("[" * rng.randrange(1, 3000) + "]" * rng.randrange(1, 3000),
                           '{"a":' * rng.randrange(1, 2000),
                           '"' + "x" * rng.randrange(100_000) + '"',
                           "9" * rng.randrange(1, 5000),
                           "[]", "{}", "NaN", "-Infinity", "\ufeff{}"))
        return self._textual(text, "pathological"), 1

    def http_frames(self, count: int) -> tuple[list[Frame], int]:
        frames, inputs = [], 0
        while inputs < count:
            roll = self.rng.random()
            if roll < 0.4:
                frame, n = self.method_frame(), 1
            elif roll < 0.7:
                frame, n = self.extrinsic_frame(), 1
            else:
                frame, n = self.garbage_frame()
            frames.append(frame)
            inputs += n
        return frames, inputs

    def _textual(self, text: str, kind: str) -> Frame:
        """A text frame whose reply we can predict with the same parser as the node's: else a fresh one."""
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return Frame(text, [None], kind)
        if isinstance(value, (dict, list)):  # parsed into a structure: replace with a predictable frame
            if value == []:
                return Frame(text, [None], kind)
            return Frame("[" + text, [None], kind)  # still certain not to parse
        return Frame(text, [None], kind)  # a scalar: "Invalid request" with a null id

    def generate(self) -> tuple[list[Frame], int]:
        frames: list[Frame] = [self.extrinsic_frame(raw) for raw in self.signed]
        frames += [self.extrinsic_frame() for _ in range(EXTRINSIC_INPUTS)]
        frames += [self.method_frame() for _ in range(METHOD_INPUTS)]
        total = len(self.signed) + EXTRINSIC_INPUTS + METHOD_INPUTS
        garbage = 0
        while garbage < FRAME_INPUTS:
            frame, inputs = self.garbage_frame()
            frames.append(frame)
            garbage += inputs
        self.rng.shuffle(frames)
        return frames, total + garbage


def signed_variants(client: SubstrateInterface, rng: random.Random, count: int) -> list[bytes]:
    """Correctly signed transactions that no node may accept: each breaks one validity rule."""
    nonce = client.get_account_nonce(ALICE.ss58_address)
    assert nonce >= 1
    genesis = client.get_block_hash(0)
    paupers = [Keypair.create_from_uri(f"//ParatrainFuzzPauper{i}") for i in range(4)]
    calls = [
        client.compose_call("Balances", "transfer_keep_alive", {"dest": BOB.ss58_address, "value": 10**12}),
        client.compose_call("Balances", "transfer_allow_death", {"dest": paupers[0].ss58_address, "value": 2**100}),
        client.compose_call("Balances", "transfer_all", {"dest": BOB.ss58_address, "keep_alive": False}),
        client.compose_call("System", "remark", {"remark": "0x" + rng.randbytes(40).hex()}),
        client.compose_call("System", "remark_with_event", {"remark": "0x"}),
    ]
    out = []

    def block_hash(block_id: int | None = None) -> str:  # no round trip per signature; births made up
        return genesis if block_id == 0 else "0x" + rng.randbytes(32).hex()

    with patch.object(client, "get_block_hash", block_hash):
        for _ in range(count):
            call, rule = rng.choice(calls), rng.randrange(4)
            if rule == 0:  # stale nonce
                ext = client.create_signed_extrinsic(call, ALICE, nonce=rng.randrange(nonce))
            elif rule == 1:  # future nonce
                gap = rng.choice((1, 2, 10, 10**6, 2**32 - 1 - nonce))
                ext = client.create_signed_extrinsic(call, ALICE, nonce=nonce + gap)
            elif rule == 2:  # nothing to pay the fee with
                ext = client.create_signed_extrinsic(call, rng.choice(paupers), nonce=rng.randrange(3),
                                                     tip=rng.choice((0, 1, 10**20)))
            else:  # a mortal era born at a block whose hash the signer made up (or which does not exist yet)
                period = 2 ** rng.randint(2, 16)
                ext = client.create_signed_extrinsic(call, ALICE, nonce=nonce,
                                                     era={"period": period, "current": rng.randrange(10**6)})
            out.append(bytes(ext.data.data))
    return out


# Driving the node --------------------------------------------------------------------------------------
@dataclass
class Outcome:
    frames_sent: int = 0
    frames_received: int = 0
    notifications: int = 0
    ids: Counter = field(default_factory=Counter)
    replies: dict[Any, dict[str, Any]] = field(default_factory=dict)
    null_errors: Counter = field(default_factory=Counter)
    extra: list[Any] = field(default_factory=list)


async def drive(url: str, frames: list[Frame]) -> Outcome:
    outcome = Outcome()
    expected_frames = len(frames)
    all_received = asyncio.Event()

    async def run(conn_frames: list[Frame]) -> None:
        async with connect(url, max_size=None, compression=None, ping_interval=None,
                           open_timeout=10, close_timeout=2, max_queue=None) as ws:
            async def reader() -> None:
                async for message in ws:
                    data = json.loads(message)
                    if isinstance(data, dict) and "method" in data and "id" not in data:
                        outcome.notifications += 1
                        continue
                    outcome.frames_received += 1
                    for reply in data if isinstance(data, list) else [data]:
                        if not isinstance(reply, dict) or "id" not in reply:
                            outcome.extra.append(reply)
                            continue
                        outcome.ids[reply["id"]] += 1
                        if reply["id"] is None:
                            outcome.null_errors[reply.get("error", {}).get("code")] += 1
                        else:
                            outcome.replies[reply["id"]] = reply
                    if outcome.frames_received >= expected_frames:
                        all_received.set()

            task = asyncio.create_task(reader())
            for frame in conn_frames:
                await ws.send(frame.payload)
                outcome.frames_sent += 1
            await all_received.wait()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    runs = [run(frames[i::CONNECTIONS]) for i in range(CONNECTIONS)]
    try:
        await asyncio.wait_for(asyncio.gather(*runs), TIMEOUT_S)
    except TimeoutError:
        pass  # reported by the caller's assertions with what did arrive
    return outcome


def post_all(url: str, frames: list[Frame]) -> list[Any]:
    """Each frame as one HTTP POST body; the problems found (a wrong set of replies, an accepted submission)."""
    problems: list[Any] = []
    for frame in frames:
        body = frame.payload.encode() if isinstance(frame.payload, str) else frame.payload
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            data = json.loads(response.read())
        replies = data if isinstance(data, list) else [data]
        if Counter(r.get("id") for r in replies) != Counter(frame.expect):
            problems.append(("replies", frame.payload[:200], data))
        for reply in replies:
            error = reply.get("error") or {}
            if frame.submits and not error:
                problems.append(("accepted", frame.payload[:200], reply))
            if error.get("code") == INTERNAL_ERROR and "WebSocket" not in str(error.get("data")):
                problems.append(("internal", frame.payload[:200], reply))  # subscriptions need a WebSocket
    return problems


def snapshot(client: SubstrateInterface) -> dict[str, Any]:
    rpc = client.rpc_request
    return {
        "best": rpc("chain_getHeader", [])["result"],
        "finalized": rpc("chain_getFinalizedHead", [])["result"],
        "pending": rpc("author_pendingExtrinsics", [])["result"],
        "number": rpc("state_getStorage", [NUMBER_KEY])["result"],
        "events": rpc("state_getStorage", [EVENTS_KEY])["result"],
        "alice": rpc("state_getStorage", [account_key(ALICE.public_key)])["result"],
        "bob": rpc("state_getStorage", [account_key(BOB.public_key)])["result"],
    }


def test_ten_thousand_random_and_mutated_inputs(node: tuple[DevnetProcess, list[str]]) -> None:
    process, log = node
    client = SubstrateInterface(url=process.ws_url)
    # Give the chain a few blocks and a non-zero nonce, so eras and nonces have history to miss.
    for value in (1, 2):
        call = client.compose_call("Balances", "transfer_keep_alive", {"dest": BOB.ss58_address, "value": value})
        assert client.submit_extrinsic(client.create_signed_extrinsic(call, ALICE), wait_for_inclusion=True).is_success
    transfer = client.compose_call("Balances", "transfer_keep_alive", {"dest": BOB.ss58_address, "value": 10**12})
    remark = client.compose_call("System", "remark_with_event", {"remark": "0x" + "42" * 300})
    back = client.compose_call("Balances", "transfer_allow_death", {"dest": ALICE.ss58_address, "value": 5})
    originals = [  # each valid right now, and never sent as is
        bytes(client.create_signed_extrinsic(transfer, ALICE).data.data),
        bytes(client.create_signed_extrinsic(remark, ALICE, era={"period": 64}).data.data),
        bytes(client.create_signed_extrinsic(back, BOB, tip=7).data.data),
        bytes(client.create_signed_extrinsic(transfer, ALICE, nonce=0).data.data),  # stale already
    ]
    methods = client.rpc_request("rpc_methods", [])["result"]["methods"]
    facts = {
        "best": client.rpc_request("chain_getBlockHash", [])["result"],
        "genesis": client.rpc_request("chain_getBlockHash", [0])["result"],
        "finalized": client.rpc_request("chain_getFinalizedHead", [])["result"],
        "keys": [account_key(ALICE.public_key), account_key(BOB.public_key), NUMBER_KEY, EVENTS_KEY, "0x3a636f6465"],
    }
    rng = random.Random(SEED)
    signed = signed_variants(client, rng, SIGNED_INPUTS)
    generator = Inputs(rng, originals, signed, methods, facts)
    frames, inputs = generator.generate()
    assert inputs >= 10_000
    before = snapshot(client)

    started = time.monotonic()
    outcome = asyncio.run(drive(process.ws_url, frames))
    elapsed = time.monotonic() - started

    context = f"seed {SEED}, {inputs} inputs over WebSocket in {len(frames)} frames, {elapsed:.1f}s"
    assert process.proc is not None and process.proc.poll() is None, f"devnet died ({context})"
    assert outcome.frames_sent == len(frames), context
    # Exactly one reply per request: our ids once each, and as many id-less errors as frames without a usable id.
    expected = Counter(i for frame in frames for i in frame.expect)
    missing = expected - outcome.ids
    surplus = outcome.ids - expected
    assert not missing and not surplus, (context, dict(list(missing.items())[:10]), dict(list(surplus.items())[:10]))
    assert outcome.frames_received == len(frames) and not outcome.extra, (context, outcome.extra[:5])
    assert set(outcome.null_errors) <= {-32700, -32600}, (context, outcome.null_errors)
    # No transaction was accepted, and no handler failed.
    by_id = {i: frame for frame in frames for i in frame.expect if i is not None}
    accepted = [(by_id[i].kind, by_id[i].payload[:200]) for i, reply in outcome.replies.items()
                if by_id[i].submits and "error" not in reply]
    assert not accepted, (context, accepted)
    refusals = Counter(reply["error"]["code"] for i, reply in outcome.replies.items() if by_id[i].submits)
    assert set(refusals) <= SUBMIT_CODES, (context, refusals)
    internal = [(by_id[i].payload[:300], reply) for i, reply in outcome.replies.items()
                if reply.get("error", {}).get("code") == INTERNAL_ERROR]
    assert not internal, (context, internal[:5])
    # The same kinds of input as HTTP POST bodies.
    http_frames, http_inputs = generator.http_frames(HTTP_INPUTS)
    problems = post_all(process.http_url, http_frames)
    assert not problems, (context, problems[:5])
    # Nothing changed, and the node still serves.
    assert snapshot(client) == before, context
    assert client.rpc_request("system_health", [])["result"]["isSyncing"] is False
    text = "".join(log)
    assert "Traceback" not in text and "ERROR" not in text, text[-4000:]
    # The first original was valid all along, and still is: it goes through now.
    nonce = client.get_account_nonce(ALICE.ss58_address)
    assert client.rpc_request("author_submitExtrinsic", ["0x" + originals[0].hex()])["result"]
    deadline = time.monotonic() + 10
    while client.get_account_nonce(ALICE.ss58_address) == nonce:
        assert time.monotonic() < deadline, "the untouched original was not included"
        time.sleep(0.05)
    client.close()
    kinds = Counter(str(r["error"].get("data"))[:40] for i, r in outcome.replies.items() if by_id[i].submits)
    print(f"fuzz: {context}, {http_inputs} over HTTP; refusals {dict(refusals)}; "
          f"id-less errors {dict(outcome.null_errors)}; payloads {dict(kinds.most_common(8))}")
