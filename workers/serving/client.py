"""The paying client of `paratrain infer`: each ModelInfer carries the next cumulative payment of its channel,
signed with the channel's signer key (runtime_bindings.channels); the key never leaves this process.

When the service has claimed (the channel's nonce moved on), the server refuses the next call with
FAILED_PRECONDITION and the expected nonce in its trailers: the client starts again from 0 under that nonce and
sends the call once more. `spent` is everything this client signed, which bounds what it can lose.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from paratrain_api.inference import grpc_predict_v2_pb2 as v2
from paratrain_api.inference import grpc_predict_v2_pb2_grpc as v2_grpc
from runtime_bindings.channels import sign_payment
from workers.serving.payments import EXPECTED_NONCE_KEY, PAYMENT_KEY, Payment, encode_payment
from workers.serving.serde import decode_outputs, encode_input


class PaymentError(RuntimeError):
    """The server refused the payment: `code` is the gRPC status, the message the server's reason."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code


@dataclass
class PaidClient:
    target: str
    model: str
    signer: Any
    channel: int
    price: int
    nonce: int = 0
    owed: int = 0          # signed under the current nonce
    spent_before: int = 0  # signed under earlier nonces

    def __post_init__(self) -> None:
        self._grpc = grpc.insecure_channel(self.target)
        self.stub = v2_grpc.GRPCInferenceServiceStub(self._grpc)

    @property
    def spent(self) -> int:
        return self.spent_before + self.owed

    def payment(self, amount: int) -> tuple[tuple[str, bytes], ...]:
        """The call metadata paying `amount` in all under the current nonce."""
        signature = sign_payment(self.signer, self.channel, self.nonce, amount)
        return ((PAYMENT_KEY, encode_payment(Payment(self.channel, self.nonce, amount, signature))),)

    def infer(self, x: np.ndarray, *, timeout: float = 30.0) -> dict[str, np.ndarray]:
        tensor, raw = encode_input("input", np.atleast_2d(x))
        request = v2.ModelInferRequest(model_name=self.model, inputs=[tensor], raw_input_contents=[raw])
        for attempt in range(2):
            amount = self.owed + self.price
            try:
                response = self.stub.ModelInfer(request, metadata=self.payment(amount), timeout=timeout)
            except grpc.RpcError as exc:
                expected = dict(exc.trailing_metadata() or ()).get(EXPECTED_NONCE_KEY)
                if attempt == 0 and exc.code() == grpc.StatusCode.FAILED_PRECONDITION and expected is not None:
                    self.spent_before, self.owed, self.nonce = self.spent, 0, int(expected)
                    continue
                raise PaymentError(exc.code(), exc.details() or "") from None
            self.owed = amount
            return decode_outputs(response)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def close(self) -> None:
        self._grpc.close()


__all__ = ["PaidClient", "PaymentError"]
