"""`OrchestratorConfig`: from CLI arguments, PARATRAIN_ORCHESTRATOR_* environment variables and a TOML or
JSON file. Precedence: CLI > environment > file > defaults.

File (TOML; JSON has the same keys):

    chain_url = "ws://127.0.0.1:9944"
    listen = "0.0.0.0:50051"
    db_path = "/var/lib/paratrain/orchestrator.db"
    metrics_port = 9615
    [tls]                      # or flat: tls_cert, tls_key, tls_client_ca
    cert = "server.pem"
    key = "server.key"
    client_ca = "ca.pem"       # set: mTLS (client certificates required)

Environment: PARATRAIN_ORCHESTRATOR_CHAIN_URL, _LISTEN, _DB_PATH, _METRICS_PORT, _TLS_CERT ... (the field
name upper-cased), and PARATRAIN_ORCHESTRATOR_CONFIG for the file. $PARATRAIN_CHAIN, which every paratrain
command reads, is the chain URL when PARATRAIN_ORCHESTRATOR_CHAIN_URL is not set.
"""
from __future__ import annotations

import argparse
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from paratrain_api.endpoints import CHAIN_ENV, DEFAULT_CHAIN_URL

ENV_PREFIX = "PARATRAIN_ORCHESTRATOR_"


class ConfigError(ValueError):
    """A bad configuration value (the message names the key and where it came from)."""


@dataclass(frozen=True)
class OrchestratorConfig:
    chain_url: str = DEFAULT_CHAIN_URL
    listen: str = "127.0.0.1:50051"
    db_path: str = "orchestrator.db"
    metrics_port: int = 9615  # 0: no metrics endpoint
    metrics_host: str = "127.0.0.1"
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None  # mTLS when set
    reservation_ttl_s: float = 30.0
    max_wait_s: float = 60.0
    heartbeat_interval_blocks: int = 0  # 0: ClaimLease // 4 (at least 1)
    chain_timeout_s: float = 10.0
    log_level: str = "INFO"

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None

    @property
    def mtls(self) -> bool:
        return self.tls_client_ca is not None

    def validate(self) -> OrchestratorConfig:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"listen must be HOST:PORT, not {self.listen!r}")
        if not self.chain_url.startswith(("ws://", "wss://", "http://", "https://")):
            raise ConfigError(f"chain_url must be a ws:// or wss:// URL, not {self.chain_url!r}")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port out of range: {self.metrics_port}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("tls_client_ca (mTLS) needs tls_cert and tls_key")
        if self.reservation_ttl_s <= 0 or self.max_wait_s < 0 or self.heartbeat_interval_blocks < 0:
            raise ConfigError("reservation_ttl_s must be positive; max_wait_s and heartbeat_interval_blocks >= 0")
        return self


_FIELDS = {f.name: f for f in fields(OrchestratorConfig)}
_ALIASES = {"chain": "chain_url", "db": "db_path", "config": None}


def _convert(name: str, value: Any, source: str) -> Any:
    default = _FIELDS[name].default
    kind = _FIELDS[name].type
    if value is None:
        return None
    try:
        if isinstance(default, bool):
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if "str" in str(kind):
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} from {source}: cannot use {value!r}") from None
    return value


def _normalise(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        key = key.replace("-", "_").lower()
        if key == "tls" and isinstance(value, Mapping):
            for sub, v in value.items():
                out.update(_normalise({f"tls_{sub}": v}, source))
            continue
        key = _ALIASES.get(key, key) or ""
        if not key:
            continue
        if key not in _FIELDS:
            raise ConfigError(f"unknown setting {key!r} in {source}")
        out[key] = _convert(key, value, source)
    return out


def read_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text.decode())
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a table of settings")
    section = data.get("orchestrator", data)  # a shared file may hold an [orchestrator] table
    return _normalise(section, str(path))


def from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The PARATRAIN_ORCHESTRATOR_* settings, over $PARATRAIN_CHAIN: the orchestrator follows the chain the
    other commands of the same shell or pod use unless it is told otherwise."""
    raw: dict[str, Any] = {"chain_url": env[CHAIN_ENV]} if env.get(CHAIN_ENV) else {}
    raw.update({k[len(ENV_PREFIX):]: v for k, v in env.items()
                if k.startswith(ENV_PREFIX) and k != ENV_PREFIX + "CONFIG"})
    return _normalise(raw, "the environment")


def load_config(cli: Mapping[str, object] | argparse.Namespace | None = None, *, env: Mapping[str, str] | None = None,
                config_file: str | Path | None = None) -> OrchestratorConfig:
    """Merge defaults < file < environment < CLI. `cli` is a dict or an argparse Namespace; its None values
    mean "not given". The file is `config_file`, else the CLI's `config`, else $PARATRAIN_ORCHESTRATOR_CONFIG."""
    env = os.environ if env is None else env
    cli_map: dict[str, object] = dict(vars(cli)) if isinstance(cli, argparse.Namespace) else dict(cli or {})
    cli_map = {k: v for k, v in cli_map.items() if v is not None and k not in ("command", "verbose", "func")}
    cli_path = cli_map.pop("config", None)
    if cli_path is not None and not isinstance(cli_path, (str, Path)):
        raise ConfigError(f"config must be a file path, not {cli_path!r}")
    path = config_file or cli_path or env.get(ENV_PREFIX + "CONFIG")
    merged: dict[str, Any] = {}
    if path:
        merged.update(read_file(path))
    merged.update(from_env(env))
    merged.update(_normalise(cli_map, "the command line"))
    return OrchestratorConfig(**merged).validate()


__all__ = ["ENV_PREFIX", "ConfigError", "OrchestratorConfig", "load_config"]
