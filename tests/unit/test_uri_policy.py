"""The URI policy and the bounded fetch path: what a node opens of the URIs others wrote (issue 10)."""
from __future__ import annotations

import hashlib
import os
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.artifacts import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactStore,
    ArtifactTooLarge,
    FetchLimits,
    FetchRefused,
    Kind,
)
from workers.uri_policy import UriPolicy, UriRefused, roots_from_env


def blake(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=32).hexdigest()


PUBLIC = {"example.org": ["93.184.215.14"], "cdn.example.org": ["2606:4700::6810:84e5"]}
PRIVATE = {"metadata.internal": ["169.254.169.254"], "intranet": ["10.0.0.7"], "localhost": ["127.0.0.1", "::1"],
           "rebind.example.org": ["93.184.215.14", "127.0.0.1"], "mapped": ["::ffff:127.0.0.1"],
           "ula": ["fd00:ec2::254"], "zero": ["0.0.0.0"]}


def fake_dns(host: str) -> list[str]:
    return {**PUBLIC, **PRIVATE}.get(host, [])


@pytest.fixture
def roots(tmp_path):
    own, other = tmp_path / "own", tmp_path / "trusted"
    own.mkdir()
    other.mkdir()
    return own, other


def test_only_uris_under_trusted_roots_pass(roots, tmp_path):
    own, other = roots
    policy = UriPolicy((str(own), "s3://market/artifacts", "http://10.1.2.3:9000/store"))
    (own / "x").write_bytes(b"x")
    assert policy.check(f"file://{own}/x") == f"file://{os.path.realpath(own)}/x"
    assert policy.check("s3://market/artifacts/blake2b256/ab/ab12") == "s3://market/artifacts/blake2b256/ab/ab12"
    # the operator named this private host: it is allowed, and only under its path
    assert policy.check("http://10.1.2.3:9000/store/o") == "http://10.1.2.3:9000/store/o"
    for uri in (f"file://{other}/x", "s3://market/artifactsX/o", "s3://other/artifacts/o",
                "http://10.1.2.3:9000/elsewhere", "http://10.1.2.3:9001/store/o", "ftp://market/artifacts/o",
                "file:///etc/passwd", "file:///etc/shadow", "file:///dev/zero"):
        with pytest.raises(UriRefused):
            policy.check(uri)


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1:8080/spec.json", "https://localhost/spec.json", "http://[::1]/x", "http://169.254.169.254/",
    "zip://x::file:///tmp/a.zip", "simplecache::file:///etc/passwd", "smb://host/share/x", "sftp://host/x",
    "relative/path", "/etc/passwd", "", "file://evil.host/etc/passwd", "file:relative",
])
def test_hostile_uris_are_refused_by_default(roots, uri):
    with pytest.raises(UriRefused) as info:
        UriPolicy((str(roots[0]),), resolve=fake_dns).check(uri)
    assert "\n" not in str(info.value)


def test_traversal_symlinks_and_encoded_dots_stay_inside_the_root(roots, tmp_path):
    own, _ = roots
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (own / "link").symlink_to(secret)
    policy = UriPolicy((str(own),))
    for uri in (f"file://{own}/../secret.txt", f"file://{own}/%2e%2e/secret.txt", f"file://{own}/./x",
                f"file://{own}/link", f"file://{own}/a?x=1", f"file://{own}/a#frag",
                f"file://{own}/a\\..\\b", f"file://{own}/a\x00b", "http://user:pw@example.org/x"):
        with pytest.raises(UriRefused):
            policy.check(uri)


def test_remote_uris_only_when_allowed_and_only_to_public_addresses():
    closed = UriPolicy(resolve=fake_dns)
    with pytest.raises(UriRefused):
        closed.check("https://example.org/spec.json")
    remote = UriPolicy(allow_remote=True, resolve=fake_dns)
    assert remote.check("https://example.org/spec.json") == "https://example.org/spec.json"
    assert remote.check("http://cdn.example.org/x")
    for host in PRIVATE:
        with pytest.raises(UriRefused, match="loopback, private"):
            remote.check(f"http://{host}/x")
    with pytest.raises(UriRefused, match="does not resolve"):
        remote.check("http://nowhere.invalid/x")
    with pytest.raises(UriRefused):
        remote.check("ftp://example.org/x")  # remote means http(s) only
    private = UriPolicy(allow_remote=True, allow_private=True, resolve=fake_dns)
    assert private.check("http://intranet/x") == "http://intranet/x"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_either_refused_with_one_line_or_inside_a_root(tmp_path_factory, text):
    root = tmp_path_factory.getbasetemp() / "policy-root"
    policy = UriPolicy((str(root),), allow_remote=True, resolve=fake_dns)
    real_root = os.path.realpath(root)
    try:
        opened = policy.check(text)
    except UriRefused as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400
        return
    if opened.startswith("file://"):
        assert opened[len("file://"):].startswith(real_root + "/") or opened[len("file://"):] == real_root
    else:
        assert opened.split("://", 1)[0] in ("http", "https")


def test_roots_from_the_environment(tmp_path):
    env = {"PARATRAIN_TRUSTED_STORES": f"{tmp_path}/a, s3://b/prefix/ file:///c"}
    assert roots_from_env(env) == (f"file://{tmp_path}/a", "s3://b/prefix", "file:///c")
    assert roots_from_env({}) == ()


# The fetch path ----------------------------------------------------------------------------------------
@pytest.fixture
def stores(tmp_path):
    requester = ArtifactStore(tmp_path / "requester")
    mine = ArtifactStore(tmp_path / "mine", policy=UriPolicy((requester.root,)),
                         limits=FetchLimits(spec_bytes=64, dataset_bytes=1 << 16, artifact_bytes=1 << 16))
    return requester, mine


def test_a_trusted_store_is_fetched_verified_and_kept(stores):
    requester, mine = stores
    digest = requester.put(b"spec bytes")
    assert mine.fetch(requester.uri(digest), digest, kind=Kind.SPEC, keep=True) == b"spec bytes"
    assert mine.get(digest) == b"spec bytes"
    assert mine.fetch("file:///anything/at/all", digest) == b"spec bytes"  # held here: served by its hash


def test_refusals_name_the_uri_and_reason_but_nothing_local(stores, tmp_path):
    requester, mine = stores
    secret = tmp_path / "secret"
    secret.write_bytes(b"root:x:0:0")
    with pytest.raises(FetchRefused) as info:
        mine.fetch(f"file://{secret}", blake(b"root:x:0:0"))
    assert blake(b"root:x:0:0") not in str(info.value) and "10" not in str(info.value).split("refused")[1]
    # a file inside a trusted root that does not hash as expected: the message carries no hash of it
    path = requester.uri(requester.put(b"honest")).removeprefix("file://")
    with open(path, "wb") as f:
        f.write(b"forged")
    with pytest.raises(ArtifactIntegrityError) as mismatch:
        mine.fetch(requester.uri(blake(b"honest")), blake(b"honest"))
    assert blake(b"forged") not in str(mismatch.value)
    assert not mine.exists(blake(b"honest"))
    with pytest.raises(ArtifactNotFoundError):
        mine.fetch(requester.uri(blake(b"never")), blake(b"never"))


def test_sizes_are_bounded_before_and_while_reading(stores, tmp_path):
    requester, mine = stores
    big = requester.put(b"x" * 100)
    with pytest.raises(ArtifactTooLarge, match="64-byte limit for a spec document"):
        mine.fetch(requester.uri(big), big, kind=Kind.SPEC)
    # a 2 GB sparse file inside the trusted root: refused from its size, nothing read
    sparse = requester.uri("ab" * 32).removeprefix("file://")
    os.makedirs(os.path.dirname(sparse), exist_ok=True)
    with open(sparse, "wb") as f:
        f.truncate(2 << 30)
    with pytest.raises(ArtifactTooLarge):
        mine.fetch(requester.uri("ab" * 32), "ab" * 32, kind=Kind.DATASET)
    # a device or a FIFO under a trusted root is not a regular file
    fifo = tmp_path / "requester" / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FetchRefused, match="not a regular file"):
        mine.fetch(f"file://{fifo}", "cd" * 32)


@pytest.fixture
def endless_http():
    """A loopback HTTP server whose every body is endless zeros without a Content-Length (chunked), and the
    requests it received."""
    import http.server
    import threading

    seen: list[str] = []

    class Endless(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_HEAD(self) -> None:  # noqa: N802 - the stdlib's name
            seen.append(f"HEAD {self.path}")
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            seen.append(f"GET {self.path}")
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"\0" * 65536
            try:
                while True:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_an_http_body_without_a_length_stops_at_the_limit(tmp_path, endless_http):
    url, seen = endless_http
    refused = ArtifactStore(tmp_path / "a", limits=FetchLimits(dataset_bytes=1 << 20))
    with pytest.raises(FetchRefused):  # loopback: nothing is sent unless the operator names the store
        refused.fetch(f"{url}/store/obj", "00" * 32, kind=Kind.DATASET)
    assert seen == []
    trusted = ArtifactStore(tmp_path / "b", policy=UriPolicy((f"{url}/store",)),
                            limits=FetchLimits(dataset_bytes=1 << 20))
    with pytest.raises(ArtifactTooLarge, match="1,048,576-byte limit"):
        trusted.fetch(f"{url}/store/obj", "00" * 32, kind=Kind.DATASET)
    assert seen and all(line.endswith("/store/obj") for line in seen)


def test_the_policy_travels_with_the_store_to_ray_workers(stores):
    _, mine = stores
    again = pickle.loads(pickle.dumps(mine))
    assert again.policy == mine.policy and again.limits == mine.limits
    with pytest.raises(FetchRefused):
        again.fetch("file:///etc/passwd", "00" * 32)
