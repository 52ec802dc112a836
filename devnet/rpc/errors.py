"""JSON-RPC error objects with the codes and messages Substrate's server (jsonrpsee) uses.

Clients such as Polkadot.js and py-substrate-interface match on these numbers, so
they are copied from jsonrpsee's ``types/src/error.rs`` rather than invented.
"""

from __future__ import annotations

from typing import Any

# JSON-RPC 2.0 standard codes (jsonrpsee uses the same messages).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# jsonrpsee's server-defined codes.
TOO_MANY_SUBSCRIPTIONS = -32006
OVERSIZED_REQUEST = -32007
OVERSIZED_RESPONSE = -32008
TOO_BIG_BATCH_REQUEST = -32010
TOO_BIG_BATCH_RESPONSE = -32011

_MESSAGES = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    TOO_MANY_SUBSCRIPTIONS: "Too many subscriptions on the connection",
    OVERSIZED_REQUEST: "Request is too big",
    OVERSIZED_RESPONSE: "Response is too big",
    TOO_BIG_BATCH_REQUEST: "The batch request was too large",
    TOO_BIG_BATCH_RESPONSE: "The batch response was too large",
}


class RpcError(Exception):
    """An error a handler raises to answer a call with a JSON-RPC error object.

    Handlers raise it for expected failures (bad params, invalid transaction); the
    transport turns it into ``{"code", "message", "data"}`` unchanged.
    """

    def __init__(self, code: int, message: str, data: Any | None = None) -> None:
        super().__init__(code, message, data)
        self.code = code
        self.message = message
        self.data = data

    @classmethod
    def standard(cls, code: int, data: Any | None = None) -> RpcError:
        """Build an error for one of the codes above with jsonrpsee's message for it."""
        return cls(code, _MESSAGES[code], data)

    def to_json(self) -> dict[str, Any]:
        """The JSON-RPC error object; ``data`` is omitted when absent, as jsonrpsee does."""
        obj: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            obj["data"] = self.data
        return obj

    def __repr__(self) -> str:
        return f"RpcError({self.code!r}, {self.message!r}, {self.data!r})"


def invalid_params(detail: str | None = None) -> RpcError:
    """-32602, for handlers that reject their params; ``detail`` says which and why."""
    return RpcError.standard(INVALID_PARAMS, detail)


def exceeded_limit(code: int, limit: int) -> RpcError:
    """An error for one of jsonrpsee's limits, with its ``"Exceeded max limit of N"`` data."""
    return RpcError.standard(code, f"Exceeded max limit of {limit}")
