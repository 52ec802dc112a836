"""The request signing scheme, verifier, replay cache and rate limiter: pure, no gRPC."""
from __future__ import annotations

import hashlib

import pytest
from substrateinterface import Keypair, KeypairType

from orchestrator import auth
from orchestrator.errors import InvalidArgument, ResourceExhausted, Unauthenticated
from runtime_bindings.scale import encode_compact

METHOD = "/paratrain.v1.WorkerService/GetTaskSpec"
BODY = b"\x08\x07"


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["sr25519", "ed25519"])
def keypair(request) -> Keypair:
    if request.param == "sr25519":
        return Keypair.create_from_uri("//Alice")
    return Keypair.create_from_seed("0x" + "11" * 32, crypto_type=KeypairType.ED25519)


def test_signing_payload_layout() -> None:
    nonce = bytes(range(16))
    payload = auth.signing_payload("/a/B", b"xyz", 0x0102030405060708, nonce)
    assert payload == (b"paratrain/grpc/v1" + bytes([4 << 2]) + b"/a/B" + auth.blake2_256(b"xyz")
                       + bytes([8, 7, 6, 5, 4, 3, 2, 1]) + nonce)
    assert encode_compact(63) == b"\xfc" and encode_compact(64) == b"\x01\x01"
    assert encode_compact(1 << 14) == (1 << 16 | 2).to_bytes(4, "little")


def test_sign_and_verify_round_trip(keypair: Keypair) -> None:
    clock = Clock()
    md = auth.sign_request(keypair, METHOD, BODY, clock=clock)
    assert [k for k, _ in md] == list(auth.HEADERS)
    caller = auth.Verifier(clock=clock).authenticate(dict(md), METHOD, BODY)
    assert caller.account == keypair.ss58_address and caller.public_key == keypair.public_key


def test_account_is_canonicalized_to_the_verifier_format() -> None:
    kp = Keypair.create_from_uri("//Alice", ss58_format=2)  # Kusama form
    clock = Clock()
    caller = auth.Verifier(clock=clock).authenticate(auth.sign_request(kp, METHOD, BODY, clock=clock), METHOD, BODY)
    assert caller.account == Keypair.create_from_uri("//Alice").ss58_address


@pytest.mark.parametrize("tamper", ["body", "method", "account", "timestamp", "nonce", "signature", "scheme"])
def test_any_tampering_is_refused(keypair: Keypair, tamper: str) -> None:
    clock = Clock()
    md = dict(auth.sign_request(keypair, METHOD, BODY, clock=clock))
    method, body = METHOD, BODY
    if tamper == "body":
        body = b"\x08\x08"
    elif tamper == "method":
        method = "/paratrain.v1.WorkerService/ReportResult"
    elif tamper == "account":
        md[auth.HEADER_ACCOUNT] = Keypair.create_from_uri("//Bob").ss58_address
    elif tamper == "timestamp":
        md[auth.HEADER_TIMESTAMP] = str(int(md[auth.HEADER_TIMESTAMP]) + 1)
    elif tamper == "nonce":
        md[auth.HEADER_NONCE] = "00" * 16
    elif tamper == "signature":
        sig = bytearray.fromhex(md[auth.HEADER_SIGNATURE])
        sig[10] ^= 1
        md[auth.HEADER_SIGNATURE] = sig.hex()
    elif tamper == "scheme":
        sig = bytearray.fromhex(md[auth.HEADER_SIGNATURE])
        sig[0] ^= 1
        md[auth.HEADER_SIGNATURE] = sig.hex()
    with pytest.raises(Unauthenticated):
        auth.Verifier(clock=clock).authenticate(md, method, body)


@pytest.mark.parametrize("header,value", [
    (auth.HEADER_ACCOUNT, None), (auth.HEADER_ACCOUNT, "not-an-address"), (auth.HEADER_ACCOUNT, "x" * 1000),
    (auth.HEADER_TIMESTAMP, None), (auth.HEADER_TIMESTAMP, "-5"), (auth.HEADER_TIMESTAMP, "1e3"),
    (auth.HEADER_TIMESTAMP, "9" * 25), (auth.HEADER_NONCE, None), (auth.HEADER_NONCE, "zz"), (auth.HEADER_NONCE, "00" * 8),
    (auth.HEADER_SIGNATURE, None), (auth.HEADER_SIGNATURE, "01" * 64), (auth.HEADER_SIGNATURE, "02" + "00" * 64),
    (auth.HEADER_SIGNATURE, ""),
])
def test_malformed_metadata_is_unauthenticated(header: str, value: str | None) -> None:
    clock = Clock()
    md = dict(auth.sign_request(Keypair.create_from_uri("//Alice"), METHOD, BODY, clock=clock))
    if value is None:
        del md[header]
    else:
        md[header] = value
    with pytest.raises(Unauthenticated):
        auth.Verifier(clock=clock).authenticate(md, METHOD, BODY)


def test_clock_skew_window() -> None:
    kp = Keypair.create_from_uri("//Alice")
    clock = Clock()
    verifier = auth.Verifier(clock=clock)
    for offset, ok in [(-30.0, True), (30.0, True), (-30.5, False), (31.0, False)]:
        md = auth.sign_request(kp, METHOD, BODY, timestamp_ms=int((clock.t + offset) * 1000))
        if ok:
            verifier.authenticate(md, METHOD, BODY)
        else:
            with pytest.raises(Unauthenticated, match="window"):
                verifier.authenticate(md, METHOD, BODY)


def test_replay_refused_within_window_and_forgotten_after() -> None:
    kp = Keypair.create_from_uri("//Alice")
    clock = Clock()
    verifier = auth.Verifier(clock=clock)
    md = auth.sign_request(kp, METHOD, BODY, clock=clock)
    verifier.authenticate(md, METHOD, BODY)
    with pytest.raises(Unauthenticated, match="replay"):
        verifier.authenticate(md, METHOD, BODY)
    clock.t += 20
    with pytest.raises(Unauthenticated, match="replay"):
        verifier.authenticate(md, METHOD, BODY)
    clock.t += 45  # past the window (and its bucket): the replay is refused as stale, its entry evicted
    with pytest.raises(Unauthenticated, match="window"):
        verifier.authenticate(md, METHOD, BODY)
    verifier.authenticate(auth.sign_request(kp, METHOD, BODY, clock=clock), METHOD, BODY)
    assert len(verifier.replay) == 1


def test_forged_calls_do_not_fill_the_replay_cache() -> None:
    clock = Clock()
    verifier = auth.Verifier(clock=clock)
    md = dict(auth.sign_request(Keypair.create_from_uri("//Alice"), METHOD, BODY, clock=clock))
    with pytest.raises(Unauthenticated):
        verifier.authenticate(md, METHOD, b"other body")
    assert len(verifier.replay) == 0
    verifier.authenticate(md, METHOD, BODY)  # the genuine call still goes through


def test_replay_cache_is_bounded_by_entries_and_time() -> None:
    clock = Clock()
    cache = auth.ReplayCache(window_s=30, max_entries=100, clock=clock)
    now_ms = int(clock.t * 1000)
    for i in range(100):
        assert cache.check_and_add(b"a" * 32, i.to_bytes(16, "big"), now_ms)
    assert not cache.check_and_add(b"a" * 32, (5).to_bytes(16, "big"), now_ms)
    with pytest.raises(ResourceExhausted):  # full: fail closed rather than forget live nonces
        cache.check_and_add(b"c" * 32, b"\x00" * 16, now_ms)
    clock.t += 61  # every bucket is now older than the window
    assert cache.check_and_add(b"c" * 32, b"\x00" * 16, int(clock.t * 1000))
    assert len(cache) == 1


def test_replay_cache_many_windows_stay_small() -> None:
    clock = Clock()
    cache = auth.ReplayCache(window_s=30, max_entries=10_000, clock=clock)
    for second in range(0, 3600, 1):
        clock.t += 1
        assert cache.check_and_add(b"a" * 32, second.to_bytes(16, "big"), int(clock.t * 1000))
    assert len(cache) <= 90  # at most ~3 windows of one call a second
    assert len(cache._buckets) <= 3


def test_rate_limiter_token_bucket() -> None:
    clock = Clock(0.0)
    limiter = auth.RateLimiter(rate=10, burst=5, clock=clock)
    assert all(limiter.allow("alice") for _ in range(5))
    assert not limiter.allow("alice")
    assert limiter.allow("bob")  # per account
    clock.t += 0.1  # one token back
    assert limiter.allow("alice") and not limiter.allow("alice")
    clock.t += 100  # capped at burst
    assert sum(limiter.allow("alice") for _ in range(20)) == 5
    with pytest.raises(ResourceExhausted):
        limiter.check("alice")


def test_rate_limiter_memory_is_bounded() -> None:
    clock = Clock(0.0)
    limiter = auth.RateLimiter(rate=1, burst=1, max_accounts=10, clock=clock)
    for i in range(1000):
        limiter.allow(f"acct{i}")
    assert len(limiter._buckets) == 10


def test_ecdsa_keys_cannot_sign() -> None:
    kp = Keypair.create_from_private_key("0x" + "22" * 32, crypto_type=KeypairType.ECDSA)
    with pytest.raises(ValueError):
        auth.sign_request(kp, METHOD, BODY)


# ---------------------------------------------------------------- signed stream messages

STREAM = "/paratrain.v1.WorkerService/HeartbeatStream"


def _open(keypair: Keypair, clock: Clock) -> tuple[auth.Verifier, auth.Caller]:
    verifier = auth.Verifier(clock=clock)
    opener = verifier.authenticate(auth.sign_request(keypair, STREAM, b"", clock=clock), STREAM, b"")
    return verifier, opener


def _check(verifier: auth.Verifier, opener: auth.Caller, expected: int, body: bytes,
           msg: auth.SignedMessage, method: str = STREAM) -> auth.Caller:
    caller = verifier.check_message(opener, method, expected, body, msg.sequence, msg.timestamp_ms, msg.nonce,
                                    msg.signature)
    verifier.check_replay(caller)
    return caller


def test_message_payload_layout_and_domain_separation() -> None:
    nonce, stream_nonce = bytes(range(16)), bytes(range(16, 32))
    payload = auth.message_signing_payload("/a/B", stream_nonce, 3, b"xyz", 0x0102030405060708, nonce)
    assert payload == (b"paratrain/grpc/v1/stream-message" + bytes([4 << 2]) + b"/a/B" + stream_nonce
                       + (3).to_bytes(8, "little") + auth.blake2_256(b"xyz") + bytes([8, 7, 6, 5, 4, 3, 2, 1]) + nonce)
    # after the shared "paratrain/grpc/v1" a unary payload has a compact length, never "/" (0b11: big-integer mode)
    assert all(not encode_compact(n).startswith(b"/") for n in (0, 1, 11, 63, 64, 200, 1 << 14, (1 << 30) - 1))


def test_stream_messages_round_trip(keypair: Keypair) -> None:
    clock = Clock()
    verifier, opener = _open(keypair, clock)
    for seq in (1, 2, 3):
        body = bytes([seq])
        msg = auth.sign_message(keypair, STREAM, opener.nonce, seq, body, clock=clock)
        caller = _check(verifier, opener, seq, body, msg)
        assert caller.account == keypair.ss58_address and caller.nonce == msg.nonce
    assert len(verifier.replay) == 4  # the opening call and three messages


@pytest.mark.parametrize("tamper", ["body", "sequence", "skipped", "stream", "method", "other key", "timestamp",
                                    "stale", "nonce", "short nonce", "signature", "scheme", "replay"])
def test_stream_message_tampering_is_refused(keypair: Keypair, tamper: str) -> None:
    clock = Clock()
    verifier, opener = _open(keypair, clock)
    first = auth.sign_message(keypair, STREAM, opener.nonce, 1, b"a", clock=clock)
    _check(verifier, opener, 1, b"a", first)
    body, expected, method = b"b", 2, STREAM
    msg = auth.sign_message(keypair, STREAM, opener.nonce, 2, body, clock=clock)
    if tamper == "body":
        body = b"c"
    elif tamper == "sequence":  # a genuine message 2 presented as another position
        expected = 3
    elif tamper == "skipped":
        msg = auth.sign_message(keypair, STREAM, opener.nonce, 3, body, clock=clock)
    elif tamper == "stream":  # signed for another stream of the same account
        msg = auth.sign_message(keypair, STREAM, b"\x00" * 16, 2, body, clock=clock)
    elif tamper == "method":
        method = "/paratrain.v1.WorkerService/Other"
    elif tamper == "other key":
        msg = auth.sign_message(Keypair.create_from_uri("//Bob"), STREAM, opener.nonce, 2, body, clock=clock)
    elif tamper == "timestamp":
        msg = auth.SignedMessage(2, msg.timestamp_ms + 1, msg.nonce, msg.signature)
    elif tamper == "stale":
        msg = auth.sign_message(keypair, STREAM, opener.nonce, 2, body, timestamp_ms=int((clock.t - 31) * 1000))
    elif tamper == "nonce":
        msg = auth.SignedMessage(2, msg.timestamp_ms, b"\x01" * 16, msg.signature)
    elif tamper == "short nonce":
        msg = auth.SignedMessage(2, msg.timestamp_ms, msg.nonce[:8], msg.signature)
    elif tamper == "signature":
        msg = auth.SignedMessage(2, msg.timestamp_ms, msg.nonce, msg.signature[:-1] + bytes([msg.signature[-1] ^ 1]))
    elif tamper == "scheme":
        msg = auth.SignedMessage(2, msg.timestamp_ms, msg.nonce, bytes([2]) + msg.signature[1:])
    elif tamper == "replay":  # message 1's nonce again, validly signed at position 2 (the cache refuses it)
        msg = auth.sign_message(keypair, STREAM, opener.nonce, 2, body, nonce=first.nonce, clock=clock)
    with pytest.raises(Unauthenticated):
        _check(verifier, opener, expected, body, msg, method)


def test_of_a_repeated_header_the_first_counts() -> None:
    clock = Clock()
    md = auth.sign_request(Keypair.create_from_uri("//Alice"), METHOD, BODY, clock=clock)
    bogus = (auth.HEADER_SIGNATURE, "01" + "00" * 64)
    auth.Verifier(clock=clock).authenticate(tuple(md) + (bogus,), METHOD, BODY)
    with pytest.raises(Unauthenticated, match="bad signature"):
        auth.Verifier(clock=clock).authenticate((bogus,) + tuple(md), METHOD, BODY)


# ---------------------------------------------------------------- sessions

HEARTBEAT = "/paratrain.v1.WorkerService/Heartbeat"
ALICE_ADDRESS = Keypair.create_from_uri("//Alice").ss58_address
BOB_ADDRESS = Keypair.create_from_uri("//Bob").ss58_address


class Monotonic(Clock):
    def __init__(self) -> None:
        super().__init__(1000.0)


def _caller(keypair: Keypair) -> auth.Caller:
    return auth.Caller(keypair.ss58_address, keypair.public_key, 0, b"\x00" * 16)


def _session(table: auth.SessionTable, keypair: Keypair, now: float = 0.0) -> auth.ClientSession:
    """Both halves of a handshake: the table's record and the client's session, as the RPC would make them."""
    secret, worker_key = auth.x25519_keypair()
    session_id, server_key, expires_in_ms = table.open(_caller(keypair), worker_key)
    return auth.ClientSession.accept(secret, worker_key, keypair.public_key, session_id, server_key, expires_in_ms,
                                     now)


def _table(**kw) -> tuple[auth.SessionTable, Monotonic, Clock]:
    mono, wall = Monotonic(), Clock()
    return auth.SessionTable(clock=mono, wall_clock=wall, **kw), mono, wall


def test_session_round_trip_both_sides_derive_one_key(keypair: Keypair) -> None:
    table, _, wall = _table()
    client = _session(table, keypair)
    for n in range(1, 4):
        token = client.token(HEARTBEAT, BODY, int(wall.t * 1000))
        assert len(token) == auth.SESSION_TOKEN_LEN and token[16:24] == n.to_bytes(8, "little")
        assert table.check(token, HEARTBEAT, BODY) == _caller(keypair)
    assert client.renew_at == auth.SESSION_TTL_S / 2  # renewed halfway through its life


def test_session_token_layout() -> None:
    table, _, wall = _table()
    client = _session(table, Keypair.create_from_uri("//Alice"))
    ts = int(wall.t * 1000)
    token = client.token("/a/B", b"xyz", ts)
    head = client.session_id + (1).to_bytes(8, "little") + ts.to_bytes(8, "little")
    assert token[:32] == head
    assert token[32:] == auth.session_mac(client.key, client.session_id, 1, ts, "/a/B", b"xyz")
    assert token[32:] == hashlib.blake2b(b"paratrain/grpc/v1/session-call" + head + bytes([4 << 2]) + b"/a/B" + b"xyz",
                                         key=client.key, digest_size=32).digest()


@pytest.mark.parametrize("tamper", ["mac", "body", "method", "session id", "counter", "timestamp", "length",
                                    "text"])
def test_forged_session_calls_are_refused_and_change_nothing(tamper: str) -> None:
    table, _, wall = _table()
    client = _session(table, Keypair.create_from_uri("//Alice"))
    ts = int(wall.t * 1000)
    token, method, body = bytearray(client.token(HEARTBEAT, BODY, ts)), HEARTBEAT, BODY
    if tamper == "mac":
        token[-1] ^= 1
    elif tamper == "body":
        body = b"\x08\x08"
    elif tamper == "method":
        method = "/paratrain.v1.WorkerService/RelayExtrinsic"
    elif tamper == "session id":
        token[0] ^= 1
    elif tamper == "counter":  # a higher counter the MAC did not cover: must not advance the window
        token[16:24] = (500).to_bytes(8, "little")
    elif tamper == "timestamp":
        token[24:32] = (ts + 1).to_bytes(8, "little")
    forged: bytes | str = bytes(token)
    if tamper == "length":
        forged = forged[:-1]
    elif tamper == "text":
        forged = forged.hex()
    with pytest.raises(Unauthenticated):
        table.check(forged, method, body)
    client.counter = 0  # the genuine call with the same counter still goes through: nothing was remembered
    assert table.check(client.token(HEARTBEAT, BODY, ts), HEARTBEAT, BODY).account == ALICE_ADDRESS


def test_session_counters_are_used_once_within_a_window() -> None:
    table, _, wall = _table()
    client = _session(table, Keypair.create_from_uri("//Alice"))
    ts = int(wall.t * 1000)
    tokens = [client.token(HEARTBEAT, BODY, ts) for _ in range(auth.REPLAY_WINDOW + 2)]
    table.check(tokens[2], HEARTBEAT, BODY)
    table.check(tokens[0], HEARTBEAT, BODY)  # out of order (concurrent calls): accepted once
    for replay in (tokens[0], tokens[2]):
        with pytest.raises(Unauthenticated, match="replayed"):
            table.check(replay, HEARTBEAT, BODY)
    table.check(tokens[-1], HEARTBEAT, BODY)  # counter REPLAY_WINDOW + 2: counter 1 is now out of the window
    with pytest.raises(Unauthenticated, match="replayed"):
        table.check(tokens[1], HEARTBEAT, BODY)
    table.check(tokens[3], HEARTBEAT, BODY)  # counter 4: just inside the window


def test_counter_zero_is_never_valid() -> None:
    table, _, wall = _table()
    client = _session(table, Keypair.create_from_uri("//Alice"))
    client.counter = -1
    with pytest.raises(Unauthenticated, match="replayed"):
        table.check(client.token(HEARTBEAT, BODY, int(wall.t * 1000)), HEARTBEAT, BODY)


def test_expired_and_unknown_sessions_are_refused_with_the_renewal_cue() -> None:
    table, mono, wall = _table(ttl_s=60)
    client = _session(table, Keypair.create_from_uri("//Alice"))
    ts = int(wall.t * 1000)
    table.check(client.token(HEARTBEAT, BODY, ts), HEARTBEAT, BODY)
    unknown = auth.ClientSession(b"\x01" * 16, client.key, 0.0)
    with pytest.raises(Unauthenticated, match=auth.SESSION_UNKNOWN):
        table.check(unknown.token(HEARTBEAT, BODY, ts), HEARTBEAT, BODY)
    mono.t += 60
    with pytest.raises(Unauthenticated, match=auth.SESSION_UNKNOWN):
        table.check(client.token(HEARTBEAT, BODY, ts), HEARTBEAT, BODY)


def test_session_calls_outside_the_clock_window_are_refused() -> None:
    table, _, wall = _table()
    client = _session(table, Keypair.create_from_uri("//Alice"))
    with pytest.raises(Unauthenticated, match="window"):
        table.check(client.token(HEARTBEAT, BODY, int((wall.t - 31) * 1000)), HEARTBEAT, BODY)
    table.check(client.token(HEARTBEAT, BODY, int((wall.t - 29) * 1000)), HEARTBEAT, BODY)


def test_a_session_of_another_account_cannot_be_used() -> None:
    """Bob, with a session of his own, presents Alice's session id: his key is not hers, so the MAC fails and
    Alice's session is untouched; a call on Bob's session is Bob's."""
    table, _, wall = _table()
    ts = int(wall.t * 1000)
    alice = _session(table, Keypair.create_from_uri("//Alice"))
    bob = _session(table, Keypair.create_from_uri("//Bob"))
    stolen = auth.ClientSession(alice.session_id, bob.key, 0.0)
    with pytest.raises(Unauthenticated, match="bad session MAC"):
        table.check(stolen.token(HEARTBEAT, BODY, ts), HEARTBEAT, BODY)
    assert table.check(alice.token(HEARTBEAT, BODY, ts), HEARTBEAT, BODY).account == ALICE_ADDRESS
    assert table.check(bob.token(HEARTBEAT, BODY, ts), HEARTBEAT, BODY).account == BOB_ADDRESS


@pytest.mark.parametrize("worker_key", [b"", b"\x09" * 31, b"\x00" * 32, (1).to_bytes(32, "little")])
def test_handshake_with_a_bad_worker_key_is_invalid_argument_and_opens_nothing(worker_key: bytes) -> None:
    table, _, _ = _table()
    with pytest.raises(InvalidArgument):
        table.open(_caller(Keypair.create_from_uri("//Alice")), worker_key)  # wrong size, or small order
    assert len(table) == 0


def test_malformed_handshake_answer_is_invalid_argument() -> None:
    secret, worker_key = auth.x25519_keypair()
    _, server_key = auth.x25519_keypair()
    pk = Keypair.create_from_uri("//Alice").public_key
    for sid, key, ms in ((b"\x01" * 15, server_key, 1000), (b"\x01" * 16, server_key[:31], 1000),
                         (b"\x01" * 16, server_key, 0)):
        with pytest.raises(InvalidArgument):
            auth.ClientSession.accept(secret, worker_key, pk, sid, key, ms, 0.0)


def test_sessions_are_bounded_per_account_and_in_all() -> None:
    table, mono, wall = _table(max_sessions=3, per_account=2, ttl_s=60)
    ts = int(wall.t * 1000)
    alice = Keypair.create_from_uri("//Alice")
    first, second, third = (_session(table, alice) for _ in range(3))  # the third closes the first
    assert len(table) == 2
    with pytest.raises(Unauthenticated, match=auth.SESSION_UNKNOWN):
        table.check(first.token(HEARTBEAT, BODY, ts), HEARTBEAT, BODY)
    table.check(second.token(HEARTBEAT, BODY, ts), HEARTBEAT, BODY)
    _session(table, Keypair.create_from_uri("//Bob"))
    with pytest.raises(ResourceExhausted):  # full of live sessions: no other account's is closed
        _session(table, Keypair.create_from_uri("//Charlie"))
    assert len(table) == 3
    mono.t += 60  # all expired: swept to make room
    _session(table, Keypair.create_from_uri("//Charlie"))
    assert len(table) == 1
    with pytest.raises(Unauthenticated, match=auth.SESSION_UNKNOWN):
        table.check(third.token(HEARTBEAT, BODY, ts), HEARTBEAT, BODY)
