"""The devnet node's JSON-RPC transport (WebSocket and HTTP on one port)."""

from devnet.rpc.errors import RpcError
from devnet.rpc.server import Handler, RpcLimits, RpcServer, Sink, Subscription

__all__ = ["Handler", "RpcError", "RpcLimits", "RpcServer", "Sink", "Subscription"]
