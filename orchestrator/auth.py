"""Request authentication for the worker API: signer (client side), verifier, replay cache, rate limiter, sessions.

The scheme (docs/orchestrator.md, "Authentication"). Every WorkerService call that is
not a session call (see "Sessions" below) carries the gRPC metadata

    x-paratrain-account    SS58 address of the caller
    x-paratrain-timestamp  milliseconds since the Unix epoch, decimal
    x-paratrain-nonce      16 random bytes, hex
    x-paratrain-signature  hex MultiSignature: 1 scheme byte (0 ed25519, 1 sr25519) ++ 64 bytes

and the signature covers

    b"paratrain/grpc/v1" ++ SCALE(method: str) ++ blake2_256(body) ++ u64_le(timestamp) ++ nonce

where `method` is the full gRPC method path ("/paratrain.v1.WorkerService/GetTaskSpec")
and `body` is the exact serialized request message as it travels on the wire (the
client serializes once with `SerializeToString(deterministic=True)`, signs those
bytes and sends the same bytes; the server hashes the raw bytes it received before
parsing them). For the client-streaming StreamProgress the body is b"" (the stream
is authenticated when it opens; its messages ride on it).

Signed streams (HeartbeatStream). The stream opens as above (body b""), and then
every message carries its own timestamp, nonce and signature (by the key that opened
the stream) over

    b"paratrain/grpc/v1/stream-message" ++ SCALE(method: str) ++ stream_nonce
        ++ u64_le(sequence) ++ blake2_256(body) ++ u64_le(timestamp) ++ nonce

where `stream_nonce` is the x-paratrain-nonce of the opening call (so a message
cannot be replayed into another stream) and `sequence` counts the stream's
messages from 1 (so none can be dropped, repeated or reordered unnoticed). Each
message then gets the same checks as a unary call: timestamp window, signature,
and (server.py) registration, rate limit, and the replay cache for its nonce.
The two payloads cannot collide: after the common "paratrain/grpc/v1" prefix a
unary payload has a SCALE compact length, which never starts with the byte "/".

The server refuses (Unauthenticated) missing or malformed metadata, a bad signature,
a timestamp more than `skew_s` (30 s) from its clock and an (account, nonce) pair
seen within the window.

Sessions (docs/security.md, "Worker API sessions"). An sr25519 sign and verify per
call is most of an authenticated unary call's CPU, so a worker may trade one signed
call for a session key. It calls OpenAuthSession, signed as above, whose body holds a
fresh X25519 public key `worker_key`; the server answers with a fresh X25519 public key
`server_key`, a random 16-byte `session_id` and the session's lifetime. Both sides
compute the X25519 shared secret and the session key

    key = blake2b-256(key=shared, b"paratrain/grpc/v1/session-key" ++ account public key
                      ++ worker_key ++ server_key ++ session_id)

and every later unary call may carry the one binary header

    x-paratrain-session-bin  session_id ++ u64_le(counter) ++ u64_le(timestamp) ++ mac

    mac = blake2b-256(key=key, b"paratrain/grpc/v1/session-call" ++ session_id ++ u64_le(counter)
                      ++ u64_le(timestamp) ++ SCALE(method: str) ++ body)

in place of the four signature headers. The server refuses (Unauthenticated) a token
of the wrong size, an unknown or expired session (details start with SESSION_UNKNOWN,
the client's cue to open a new one), a timestamp outside the window, a bad MAC, and a
counter it has accepted before or that lies REPLAY_WINDOW or more below the highest
accepted (counters may arrive out of order by that much: calls run concurrently). The
MAC is checked before the counter, so a forged call changes nothing.

Everything here is pure (clock injected) and transport-free.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, NamedTuple, Protocol

import nacl.bindings
import nacl.exceptions

from orchestrator.errors import InvalidArgument, ResourceExhausted, Unauthenticated
from runtime_bindings.primitives import ss58_decode, ss58_encode, verify_signature
from runtime_bindings.scale import encode_compact

DOMAIN = b"paratrain/grpc/v1"
STREAM_DOMAIN = b"paratrain/grpc/v1/stream-message"
HEADER_ACCOUNT = "x-paratrain-account"
HEADER_TIMESTAMP = "x-paratrain-timestamp"
HEADER_NONCE = "x-paratrain-nonce"
HEADER_SIGNATURE = "x-paratrain-signature"
HEADERS = (HEADER_ACCOUNT, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
NONCE_LEN = 16
SKEW_S = 30.0
SCHEME_ED25519 = 0
SCHEME_SR25519 = 1
_SCHEMES = {SCHEME_ED25519: "Ed25519", SCHEME_SR25519: "Sr25519"}
_MAX_HEADER_LEN = 256
_NEVER = 1 << 64  # a sweep time no clock reaches

HEADER_SESSION = "x-paratrain-session-bin"  # "-bin": gRPC carries the raw bytes (base64 on the wire)
SESSION_KEY_DOMAIN = b"paratrain/grpc/v1/session-key"
SESSION_CALL_DOMAIN = b"paratrain/grpc/v1/session-call"
SESSION_ID_LEN = 16
SESSION_MAC_LEN = 32
SESSION_TOKEN_LEN = SESSION_ID_LEN + 8 + 8 + SESSION_MAC_LEN
X25519_KEY_LEN = 32
SESSION_TTL_S = 600.0
REPLAY_WINDOW = 1024  # counters accepted below the highest one seen: concurrent calls arrive out of order
_WINDOW_MASK = (1 << REPLAY_WINDOW) - 1
SESSION_UNKNOWN = "unknown or expired session"  # refusal details prefix: the client opens a new session


class SigningKey(Protocol):
    """What signing needs of a key (substrateinterface.Keypair has it): the secret never leaves it."""

    @property
    def ss58_address(self) -> str: ...

    @property
    def public_key(self) -> bytes: ...

    def sign(self, data: bytes) -> bytes | str: ...


def blake2_256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def scale_str(text: str) -> bytes:
    data = text.encode("utf-8")
    return encode_compact(len(data)) + data


_METHOD_PREFIXES: dict[str, bytes] = {}  # method -> SCALE(method), for the few methods a server has


def _scale_method(method: str) -> bytes:
    encoded = _METHOD_PREFIXES.get(method)
    if encoded is None:
        encoded = scale_str(method)
        if len(_METHOD_PREFIXES) < 1024:  # bounded: unknown method names (fuzz) are not kept
            _METHOD_PREFIXES[method] = encoded
    return encoded


def body_hash(body: bytes) -> bytes:
    return blake2_256(body)


def signing_payload(method: str, body: bytes, timestamp_ms: int, nonce: bytes) -> bytes:
    """The exact bytes a worker signs for one call (built on every call by both sides: kept to one expression)."""
    return (DOMAIN + (_METHOD_PREFIXES.get(method) or _scale_method(method))
            + hashlib.blake2b(body, digest_size=32).digest() + timestamp_ms.to_bytes(8, "little") + nonce)


def message_signing_payload(method: str, stream_nonce: bytes, sequence: int, body: bytes,
                            timestamp_ms: int, nonce: bytes) -> bytes:
    """The exact bytes a worker signs for one message of a signed stream."""
    return (STREAM_DOMAIN + _scale_method(method) + stream_nonce + sequence.to_bytes(8, "little") + body_hash(body)
            + timestamp_ms.to_bytes(8, "little") + nonce)


# ---------------------------------------------------------------- client side


def sign_request(keypair: SigningKey, method: str, body: bytes, *, timestamp_ms: int | None = None,
                 nonce: bytes | None = None, clock: Callable[[], float] = time.time) -> list[tuple[str, str]]:
    """gRPC metadata authenticating one call, signed by `keypair` (substrateinterface.Keypair,
    sr25519 or ed25519; the secret key never leaves the caller)."""
    scheme = _scheme_of(keypair)
    ts = int(clock() * 1000) if timestamp_ms is None else timestamp_ms
    nonce = os.urandom(NONCE_LEN) if nonce is None else nonce
    signature = keypair.sign(signing_payload(method, body, ts, nonce))
    if isinstance(signature, str):
        signature = bytes.fromhex(signature.removeprefix("0x"))
    return [
        (HEADER_ACCOUNT, keypair.ss58_address),
        (HEADER_TIMESTAMP, str(ts)),
        (HEADER_NONCE, nonce.hex()),
        (HEADER_SIGNATURE, bytes([scheme]).hex() + bytes(signature).hex()),
    ]


@dataclass(frozen=True)
class SignedMessage:
    """The authentication fields of one signed-stream message (HeartbeatStreamRequest's)."""

    sequence: int
    timestamp_ms: int
    nonce: bytes
    signature: bytes  # MultiSignature: scheme byte ++ 64 bytes


def sign_message(keypair: SigningKey, method: str, stream_nonce: bytes, sequence: int, body: bytes, *,
                 timestamp_ms: int | None = None, nonce: bytes | None = None,
                 clock: Callable[[], float] = time.time) -> SignedMessage:
    """Sign one message of the stream opened with `stream_nonce` (see the module docstring)."""
    scheme = _scheme_of(keypair)
    ts = int(clock() * 1000) if timestamp_ms is None else timestamp_ms
    nonce = os.urandom(NONCE_LEN) if nonce is None else nonce
    signature = keypair.sign(message_signing_payload(method, stream_nonce, sequence, body, ts, nonce))
    if isinstance(signature, str):
        signature = bytes.fromhex(signature.removeprefix("0x"))
    return SignedMessage(sequence, ts, nonce, bytes([scheme]) + bytes(signature))


def _scheme_of(keypair: SigningKey) -> int:
    crypto_type = int(getattr(keypair, "crypto_type", SCHEME_SR25519))
    if crypto_type not in _SCHEMES:  # KeypairType: ED25519 = 0, SR25519 = 1, ECDSA = 2
        raise ValueError("only sr25519 and ed25519 keys can sign worker API calls")
    return crypto_type


# ---------------------------------------------------------------- replay cache


class ReplayCache:
    """(account, nonce) pairs seen within the acceptance window, with bounded memory.

    Every call of every worker passes here, so a check is one set lookup and an insert is O(1):
    `_seen` holds every live pair, and `_buckets` groups the same pairs by their timestamp (bucket
    width = `window_s`) only so that they can be dropped together. A bucket is dropped once every
    timestamp in it is older than `now - window_s`, i.e. when a replay of it would be refused as
    stale anyway; the sweep runs only when the oldest bucket is due, not on every call. At most
    `max_entries` pairs are kept: when full the cache refuses new pairs (fail closed:
    ResourceExhausted) rather than forget live ones, which would let replays through.
    """

    def __init__(self, window_s: float = SKEW_S, max_entries: int = 1_000_000,
                 clock: Callable[[], float] = time.time) -> None:
        if window_s <= 0 or max_entries <= 0:
            raise ValueError("window_s and max_entries must be positive")
        self.window_ms = int(window_s * 1000)
        self.max_entries = max_entries
        self.clock = clock
        self._seen: set[bytes] = set()
        self._buckets: dict[int, list[bytes]] = {}
        self._next_sweep_ms = _NEVER  # when the oldest bucket falls out of the window
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def _sweep(self, now_ms: int) -> None:
        horizon = now_ms - self.window_ms
        for b in [b for b in self._buckets if (b + 1) * self.window_ms <= horizon]:
            self._seen.difference_update(self._buckets.pop(b))
        self._next_sweep_ms = (min(self._buckets) + 2) * self.window_ms if self._buckets else _NEVER

    def check_and_add(self, account_id: bytes, nonce: bytes, timestamp_ms: int) -> bool:
        """True (and remembered) the first time a pair is seen in the window; False for a replay."""
        key = account_id + nonce
        now_ms = int(self.clock() * 1000)
        with self._lock:
            if now_ms >= self._next_sweep_ms:
                self._sweep(now_ms)
            if key in self._seen:
                return False
            if len(self._seen) >= self.max_entries:
                raise ResourceExhausted("too many requests in flight; retry shortly")
            bucket = timestamp_ms // self.window_ms
            keys = self._buckets.get(bucket)
            if keys is None:
                keys = self._buckets[bucket] = []
                self._next_sweep_ms = min(self._next_sweep_ms, (bucket + 2) * self.window_ms)
            keys.append(key)
            self._seen.add(key)
            return True


# ---------------------------------------------------------------- rate limiter


class RateLimiter:
    """A token bucket per account: `rate` tokens a second, up to `burst`.

    Memory is bounded by `max_accounts` (least recently seen accounts are forgotten;
    a forgotten account starts again with a full bucket)."""

    def __init__(self, rate: float, burst: float, *, max_accounts: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1 or max_accounts <= 0:
            raise ValueError("rate must be > 0, burst >= 1, max_accounts > 0")
        self.rate, self.burst, self.max_accounts, self.clock = float(rate), float(burst), max_accounts, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, account: str, cost: float = 1.0) -> bool:
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(account, (self.burst, now))
            tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
            ok = tokens >= cost
            if ok:
                tokens -= cost
            self._buckets[account] = (tokens, now)
            while len(self._buckets) > self.max_accounts:
                self._buckets.popitem(last=False)
            return ok

    def check(self, account: str, cost: float = 1.0) -> None:
        if not self.allow(account, cost):
            raise ResourceExhausted("rate limit exceeded for this account")


# ---------------------------------------------------------------- server side


class Caller(NamedTuple):
    """An authenticated call (or stream message). A NamedTuple rather than a frozen dataclass: one is
    built per call, and a tuple is the cheapest immutable record to build."""

    account: str  # canonical SS58 (the verifier's ss58_format)
    public_key: bytes
    timestamp_ms: int
    nonce: bytes


Metadata = Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]]
Headers = Mapping[str, str | bytes]


def headers_of(metadata: Metadata) -> Headers:
    """The headers of a call's metadata as a mapping; of a repeated key the first counts.

    A call's metadata from gRPC is a tuple of pairs: `dict(reversed(...))` builds the mapping in C,
    where a loop over the pairs in Python costs several times more on every call."""
    if isinstance(metadata, tuple):  # checked first: a concrete type is cheaper to test than the Mapping ABC
        return dict(reversed(metadata))
    if isinstance(metadata, Mapping):
        return metadata
    return dict(reversed(tuple(metadata)))


def _get(metadata: Mapping[str, str | bytes], key: str) -> str:
    value = metadata.get(key)
    if value is None:
        raise Unauthenticated(f"missing {key}")
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not value or len(value) > _MAX_HEADER_LEN:
        raise Unauthenticated(f"malformed {key}")
    return value


class Verifier:
    """Checks the signature metadata of one call; returns the authenticated `Caller`.

    Order: metadata well-formed -> timestamp within `skew_s` -> signature -> replay. The
    replay cache only remembers verified calls, so forged ones cannot fill it."""

    def __init__(self, *, skew_s: float = SKEW_S, replay: ReplayCache | None = None,
                 clock: Callable[[], float] = time.time, ss58_format: int = 42) -> None:
        self.skew_ms = int(skew_s * 1000)
        self.clock = clock
        self.replay = replay if replay is not None else ReplayCache(window_s=skew_s, clock=clock)
        self.ss58_format = ss58_format
        # SS58 text -> (public key, canonical SS58): filled only after a signature by that key verified,
        # so forged calls cannot grow it; bounded (emptied when full).
        self._accounts: dict[str, tuple[bytes, str]] = {}
        self.max_cached_accounts = 100_000

    def authenticate(self, metadata: Metadata, method: str, body: bytes) -> Caller:
        caller = self.check_signature(metadata, method, body)
        self.check_replay(caller)
        return caller

    def check_signature(self, metadata: Metadata, method: str, body: bytes) -> Caller:
        headers = headers_of(metadata)
        account = _get(headers, HEADER_ACCOUNT)
        ts_text = _get(headers, HEADER_TIMESTAMP)
        nonce_hex = _get(headers, HEADER_NONCE)
        sig_hex = _get(headers, HEADER_SIGNATURE)
        known = self._accounts.get(account)
        if known is not None:
            public, canonical = known
        else:
            try:
                public = bytes.fromhex(ss58_decode(account))
            except Exception:
                raise Unauthenticated("x-paratrain-account is not an SS58 address") from None
            if len(public) != 32:
                raise Unauthenticated("x-paratrain-account is not a 32-byte account")
            canonical = None
        if not (ts_text.isascii() and ts_text.isdigit()) or len(ts_text) > 19:
            raise Unauthenticated("malformed x-paratrain-timestamp")
        ts = int(ts_text)
        if ts >= 1 << 64:
            raise Unauthenticated("malformed x-paratrain-timestamp")
        try:
            nonce = bytes.fromhex(nonce_hex)
            sig = bytes.fromhex(sig_hex.removeprefix("0x"))
        except ValueError:
            raise Unauthenticated("nonce and signature must be hex") from None
        if len(nonce) != NONCE_LEN:
            raise Unauthenticated(f"x-paratrain-nonce must be {NONCE_LEN} bytes")
        if len(sig) != 65 or sig[0] not in _SCHEMES:
            raise Unauthenticated("x-paratrain-signature must be a 65-byte sr25519/ed25519 MultiSignature")
        now_ms = int(self.clock() * 1000)
        if abs(now_ms - ts) > self.skew_ms:
            raise Unauthenticated("timestamp outside the accepted window (check the clock)")
        if not verify_signature(_SCHEMES[sig[0]], sig[1:], signing_payload(method, body, ts, nonce), public):
            raise Unauthenticated("bad signature")
        if canonical is None:
            canonical = ss58_encode(public, ss58_format=self.ss58_format)
            if len(self._accounts) >= self.max_cached_accounts:
                self._accounts.clear()
            self._accounts[account] = (public, canonical)
        return Caller(account=canonical, public_key=public, timestamp_ms=ts, nonce=nonce)

    def check_message(self, opener: Caller, method: str, expected_sequence: int, body: bytes,
                      sequence: int, timestamp_ms: int, nonce: bytes, signature: bytes) -> Caller:
        """One message of a signed stream opened by `opener` (already authenticated): returns the message's
        `Caller` (the opener's account, the message's timestamp and nonce) for the replay check."""
        if sequence != expected_sequence:
            raise Unauthenticated(f"message out of sequence: expected {expected_sequence}, got {sequence}")
        if len(nonce) != NONCE_LEN:
            raise Unauthenticated(f"message nonce must be {NONCE_LEN} bytes")
        if len(signature) != 65 or signature[0] not in _SCHEMES:
            raise Unauthenticated("message signature must be a 65-byte sr25519/ed25519 MultiSignature")
        if abs(int(self.clock() * 1000) - timestamp_ms) > self.skew_ms:
            raise Unauthenticated("message timestamp outside the accepted window (check the clock)")
        payload = message_signing_payload(method, opener.nonce, sequence, body, timestamp_ms, nonce)
        if not verify_signature(_SCHEMES[signature[0]], signature[1:], payload, opener.public_key):
            raise Unauthenticated("bad message signature")
        return Caller(account=opener.account, public_key=opener.public_key, timestamp_ms=timestamp_ms, nonce=nonce)

    def check_replay(self, caller: Caller) -> None:
        if not self.replay.check_and_add(caller.public_key, caller.nonce, caller.timestamp_ms):
            raise Unauthenticated("replayed request (nonce already used)")


# ---------------------------------------------------------------- sessions


def x25519_keypair() -> tuple[bytes, bytes]:
    """A fresh ephemeral X25519 (secret, public) pair: one per session and side, never reused."""
    secret = os.urandom(X25519_KEY_LEN)
    return secret, nacl.bindings.crypto_scalarmult_base(secret)


def session_key(secret: bytes, peer_key: bytes, account_public: bytes, worker_key: bytes, server_key: bytes,
                session_id: bytes) -> bytes:
    """The session's MAC key, the same on both sides: the X25519 shared secret of `secret` (this side's) and
    `peer_key`, hashed with everything the session is bound to (the account, both keys, the id).

    A peer key of small order (the shared secret would be all zeros, known to anyone) is InvalidArgument."""
    if len(peer_key) != X25519_KEY_LEN:
        raise InvalidArgument(f"an X25519 key is {X25519_KEY_LEN} bytes")
    try:
        shared = nacl.bindings.crypto_scalarmult(secret, peer_key)
    except nacl.exceptions.RuntimeError:  # libsodium refuses an all-zero result
        raise InvalidArgument("X25519 key of small order") from None
    return hashlib.blake2b(SESSION_KEY_DOMAIN + account_public + worker_key + server_key + session_id,
                           key=shared, digest_size=32).digest()


def session_mac(key: bytes, session_id: bytes, counter: int, timestamp_ms: int, method: str, body: bytes) -> bytes:
    """The MAC of one session call (the module docstring has the layout)."""
    return hashlib.blake2b(SESSION_CALL_DOMAIN + session_id + counter.to_bytes(8, "little")
                           + timestamp_ms.to_bytes(8, "little") + _scale_method(method) + body,
                           key=key, digest_size=SESSION_MAC_LEN).digest()


@dataclass
class ClientSession:
    """The client's half of an open session: its key and the next counter. One per client, used by its
    concurrent calls in turn (counters are handed out in order; the server tolerates reordering)."""

    session_id: bytes
    key: bytes
    renew_at: float  # on the client's monotonic clock: open a new session from then on
    counter: int = 0

    @classmethod
    def accept(cls, secret: bytes, worker_key: bytes, account_public: bytes, session_id: bytes,
               server_key: bytes, expires_in_ms: int, now: float) -> ClientSession:
        """The session an OpenAuthSession answer names. It is renewed halfway through its life, so a call
        never leaves with a session about to expire. Raises InvalidArgument for a malformed answer."""
        if len(session_id) != SESSION_ID_LEN or expires_in_ms <= 0:
            raise InvalidArgument("malformed OpenAuthSession answer")
        key = session_key(secret, server_key, account_public, worker_key, server_key, session_id)
        return cls(session_id, key, now + expires_in_ms / 2000)

    def token(self, method: str, body: bytes, timestamp_ms: int) -> bytes:
        """The x-paratrain-session-bin value of the next call (each call takes a new counter)."""
        self.counter += 1
        head = self.session_id + self.counter.to_bytes(8, "little") + timestamp_ms.to_bytes(8, "little")
        return head + hashlib.blake2b(SESSION_CALL_DOMAIN + head + _scale_method(method) + body,
                                      key=self.key, digest_size=SESSION_MAC_LEN).digest()


class _Session:
    """The server's record of one session. __slots__: one is looked up on every session call."""

    __slots__ = ("caller", "expires_at", "high", "key", "seen")

    def __init__(self, caller: Caller, key: bytes, expires_at: float) -> None:
        self.caller, self.key, self.expires_at = caller, key, expires_at
        self.high = 0  # the highest counter accepted
        self.seen = 1  # bit i: counter high - i accepted (bit 0 set: counter 0 is never valid)


class SessionTable:
    """The server's open sessions, bounded: at most `max_sessions` in all and `per_account` per account
    (an account's oldest session is closed when it opens one more), each for `ttl_s` seconds.

    Only a verified, admitted OpenAuthSession call opens one, so the bounds hold against anyone without a
    registered worker's key; with one, the per-account bound and the rate limit hold. When full of live
    sessions it refuses new ones (ResourceExhausted) rather than close another account's."""

    def __init__(self, *, ttl_s: float = SESSION_TTL_S, max_sessions: int = 100_000, per_account: int = 4,
                 skew_s: float = SKEW_S, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        if ttl_s <= 0 or max_sessions <= 0 or per_account <= 0:
            raise ValueError("ttl_s, max_sessions and per_account must be positive")
        self.ttl_s, self.max_sessions, self.per_account = ttl_s, max_sessions, per_account
        self.skew_ms = int(skew_s * 1000)
        self.clock, self.wall_clock = clock, wall_clock
        self._sessions: dict[bytes, _Session] = {}
        self._by_account: dict[bytes, list[bytes]] = {}  # public key -> its session ids, oldest first
        self._next_sweep = clock() + ttl_s
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, caller: Caller, worker_key: bytes) -> tuple[bytes, bytes, int]:
        """A new session for the authenticated `caller`: (session_id, server_key, expires_in_ms)."""
        secret, server_key = x25519_keypair()
        session_id = os.urandom(SESSION_ID_LEN)
        key = session_key(secret, worker_key, caller.public_key, worker_key, server_key, session_id)
        now = self.clock()
        with self._lock:
            if now >= self._next_sweep or len(self._sessions) >= self.max_sessions:
                self._sweep(now)
            own = [sid for sid in self._by_account.get(caller.public_key, ()) if sid in self._sessions]
            while len(own) >= self.per_account:
                del self._sessions[own.pop(0)]
            if len(self._sessions) >= self.max_sessions:
                raise ResourceExhausted("too many open sessions; retry shortly")
            self._sessions[session_id] = _Session(caller, key, now + self.ttl_s)
            own.append(session_id)
            self._by_account[caller.public_key] = own
        return session_id, server_key, int(self.ttl_s * 1000)

    def _sweep(self, now: float) -> None:
        for sid in [sid for sid, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[sid]
        self._by_account = {pk: live for pk, sids in self._by_account.items()
                            if (live := [sid for sid in sids if sid in self._sessions])}
        self._next_sweep = now + self.ttl_s

    def check(self, token: bytes | str, method: str, body: bytes) -> Caller:
        """The caller of a session call: its token well-formed -> session live -> timestamp window -> MAC ->
        counter fresh (then remembered). Raises Unauthenticated; nothing changes unless all pass."""
        if not isinstance(token, bytes) or len(token) != SESSION_TOKEN_LEN:
            raise Unauthenticated(f"{HEADER_SESSION} must be {SESSION_TOKEN_LEN} bytes")
        session = self._sessions.get(token[:SESSION_ID_LEN])
        if session is None or session.expires_at <= self.clock():
            raise Unauthenticated(SESSION_UNKNOWN + ": open a new one")
        if abs(int(self.wall_clock() * 1000) - int.from_bytes(token[24:32], "little")) > self.skew_ms:
            raise Unauthenticated("timestamp outside the accepted window (check the clock)")
        mac = hashlib.blake2b(SESSION_CALL_DOMAIN + token[:32] + (_METHOD_PREFIXES.get(method)
                                                                 or _scale_method(method)) + body,
                              key=session.key, digest_size=SESSION_MAC_LEN).digest()
        if not hmac.compare_digest(mac, token[32:]):
            raise Unauthenticated("bad session MAC")
        counter = int.from_bytes(token[16:24], "little")
        with self._lock:
            high = session.high
            if counter > high:
                shift = counter - high
                session.seen = ((session.seen << shift) | 1) & _WINDOW_MASK if shift < REPLAY_WINDOW else 1
                session.high = counter
            else:
                offset = high - counter
                if offset >= REPLAY_WINDOW or (session.seen >> offset) & 1:
                    raise Unauthenticated("replayed request (session counter already used or too old)")
                session.seen |= 1 << offset
        return session.caller
