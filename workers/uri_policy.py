"""Which URIs a node opens: every URI on chain or from a peer was written by someone who may be an attacker.

A requester writes ``spec_uri``, the data set and holdout URIs; a worker writes ``artifact_uri``. Opened as
given, those make a validator or a worker fetch from any host (SSRF: loopback services, cloud metadata),
read any local file (``file:///etc/shadow``, ``..`` paths, ``/dev/zero``) or chain fsspec protocols
(``zip::``, ``simplecache::``). So a URI is opened only when `UriPolicy.check` lets it through:

* under one of the store roots the operator trusts: the node's own artifact store and the stores named in
  its configuration (``--trust-store``, ``$PARATRAIN_TRUSTED_STORES``). A ``file:`` URI is resolved first
  (symlinks, ``..``) and must stay inside a trusted local root; other schemes match the root's scheme, host
  and path prefix, with no ``.`` or ``..`` segment anywhere;
* or, only where the operator allows remote URIs, an ``http``/``https`` URI whose host resolves to public
  addresses only (no loopback, private, link-local, metadata, multicast or reserved address, unless private
  addresses are allowed too).

No query, fragment, user info, backslash, control character or fsspec chaining (``::``) is accepted: a
content-addressed object needs none of them. `check` is pure but for the DNS lookup and ``realpath``, and
both are seams (`resolve` is a constructor argument) so the decisions are unit-tested without I/O.
"""
from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

MAX_URI_LEN = 2048
REMOTE_SCHEMES = ("http", "https")
TRUSTED_STORES_ENV = "PARATRAIN_TRUSTED_STORES"


class UriRefused(ValueError):
    """The policy does not let this URI be opened; `reason` says why, and names nothing local."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"{_shown(uri)} refused: {reason}")
        self.uri, self.reason = uri, reason


def _shown(uri: object) -> str:
    """The URI as an error message may show it: bounded and printable (it is attacker-written)."""
    text = repr(uri) if not isinstance(uri, str) else uri
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= 160 else text[:157] + "..."


def _resolve(host: str) -> list[str]:
    """The host's addresses (the DNS seam)."""
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, None)})
    except (socket.gaierror, UnicodeError):
        return []


def normalize_root(root: str) -> str:
    """A store root as `workers.artifacts.ArtifactStore` writes it: a URL without a trailing slash, a bare
    path turned into ``file://<absolute path>``."""
    root = str(root)
    if "://" not in root:
        root = "file://" + os.path.abspath(os.path.expanduser(root))
    return root.rstrip("/")


def roots_from_env(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """The trusted store roots named in ``$PARATRAIN_TRUSTED_STORES`` (separated by commas or spaces)."""
    value = (environ if environ is not None else os.environ).get(TRUSTED_STORES_ENV, "")
    return tuple(normalize_root(r) for r in value.replace(",", " ").split())


@dataclass(frozen=True)
class _Root:
    scheme: str
    netloc: str
    path: str   # for file: the resolved real path; else the URL path, without a trailing slash


@dataclass(frozen=True)
class UriPolicy:
    """The operator's rules for opening URIs. `roots` are trusted store roots (URLs or directories)."""

    roots: tuple[str, ...] = ()
    allow_remote: bool = False
    allow_private: bool = False
    resolve: Callable[[str], list[str]] = field(default=_resolve, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "roots", tuple(dict.fromkeys(normalize_root(r) for r in self.roots)))

    def with_roots(self, roots: Iterable[str]) -> UriPolicy:
        return UriPolicy((*self.roots, *roots), self.allow_remote, self.allow_private, self.resolve)

    def allows_root(self, root: str) -> bool:
        """Whether `root` is one of the trusted store roots (the validator copies from no other store)."""
        return normalize_root(root) in self.roots

    def check(self, uri: str) -> str:
        """The URI to open (``file://`` URIs with their real path), or `UriRefused` with the reason."""
        parts = _parse(uri)
        scheme, netloc, path = parts
        if scheme == "file":
            real = os.path.realpath(path)
            if not any(_inside(real, root.path) for root in self._parsed_roots() if root.scheme == "file"):
                raise UriRefused(uri, "a local path outside the trusted artifact stores (add the store with "
                                      "--trust-store)")
            return "file://" + real
        if any(root.scheme == scheme and root.netloc == netloc and _inside(path, root.path)
               for root in self._parsed_roots()):
            return uri
        if scheme in REMOTE_SCHEMES and self.allow_remote:
            self._check_host(uri, urlsplit(uri).hostname or "")
            return uri
        raise UriRefused(uri, "not under a trusted artifact store (add the store with --trust-store)")

    def _parsed_roots(self) -> list[_Root]:
        out = []
        for root in self.roots:
            scheme, netloc, path = _parse(root, is_root=True)
            out.append(_Root(scheme, netloc, os.path.realpath(path) if scheme == "file" else path.rstrip("/")))
        return out

    def _check_host(self, uri: str, host: str) -> None:
        if not host:
            raise UriRefused(uri, "no host")
        addresses = self.resolve(host)
        if not addresses:
            raise UriRefused(uri, "the host does not resolve")
        for address in addresses:
            if not self.allow_private and not _public(address):
                raise UriRefused(uri, "the host resolves to a loopback, private, link-local or reserved address")


def _parse(uri: object, *, is_root: bool = False) -> tuple[str, str, str]:
    """(scheme, host[:port] in lower case, decoded path) of a URI that has none of the refused parts."""
    if not isinstance(uri, str) or not uri:
        raise UriRefused(str(uri), "not a URI")
    if len(uri) > MAX_URI_LEN:
        raise UriRefused(uri, f"longer than {MAX_URI_LEN} characters")
    if any(not c.isprintable() or c.isspace() for c in uri) or "\\" in uri:
        raise UriRefused(uri, "control characters, spaces or backslashes")
    if "::" in uri:
        raise UriRefused(uri, "chained fsspec protocols")
    split = urlsplit(uri)
    scheme = split.scheme.lower()
    if not scheme or "://" not in uri:
        raise UriRefused(uri, "no scheme")
    if split.query or split.fragment or "?" in uri or "#" in uri:
        raise UriRefused(uri, "a query or fragment")
    if "@" in split.netloc:
        raise UriRefused(uri, "user information in the host part")
    path = unquote(split.path)
    if any(segment in (".", "..") for segment in path.split("/")) or "\x00" in path:
        raise UriRefused(uri, "'.' or '..' path segments")
    if scheme == "file":
        if split.netloc not in ("", "localhost"):
            raise UriRefused(uri, "a file URI with a host")
        if not path.startswith("/"):
            raise UriRefused(uri, "a relative local path")
    elif not split.netloc and not is_root and scheme in REMOTE_SCHEMES:
        raise UriRefused(uri, "no host")
    return scheme, split.netloc.lower(), path


def _inside(path: str, root: str) -> bool:
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root if root.endswith("/") else root + "/")


def _public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


__all__ = ["MAX_URI_LEN", "TRUSTED_STORES_ENV", "UriPolicy", "UriRefused", "normalize_root", "roots_from_env"]
