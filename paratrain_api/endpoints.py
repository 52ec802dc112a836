"""Where every component finds the chain when it is not told: one default and one environment variable.

Here, at the bottom of the layers, because the orchestrator's configuration and every command of the
CLI (the daemons' included) need the same answer, and this package is the one they all may import.
"""
from __future__ import annotations

DEFAULT_CHAIN_URL = "ws://127.0.0.1:9944"  # `paratrain devnet`'s default address
CHAIN_ENV = "PARATRAIN_CHAIN"

__all__ = ["CHAIN_ENV", "DEFAULT_CHAIN_URL"]
