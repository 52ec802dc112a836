"""The runtime: its pallets, the types derived from them, and its version.

Everything a client learns from metadata (call indices, event layouts,
storage keys, signed extensions) is derived here from the pallets'
declarations, and the executive uses the same derived codecs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devnet.runtime.framework import Pallet, StorageItem
from devnet.runtime.pallets.balances import Balances
from devnet.runtime.pallets.channels import PaymentChannels
from devnet.runtime.pallets.collab import CollaborativeModels
from devnet.runtime.pallets.datasets import Datasets
from devnet.runtime.pallets.federated import FederatedSettings, FederatedTasks
from devnet.runtime.pallets.market import PredictionMarkets
from devnet.runtime.pallets.models import Models
from devnet.runtime.pallets.privacy import PrivacyBudgets
from devnet.runtime.pallets.services import ModelServices
from devnet.runtime.pallets.system import System, event_record_type
from devnet.runtime.pallets.task_bounties import (
    DEFAULT_CHALLENGE_PERIOD_MS,
    DEFAULT_VERIFICATION_GRACE_MS,
    TaskBounties,
)
from devnet.runtime.pallets.timestamp import Timestamp
from devnet.runtime.pallets.transaction_payment import FeeSchedule, TransactionPayment
from devnet.runtime.pallets.workers import Workers
from devnet.runtime.primitives import Era, MultiAddress, MultiSignature
from devnet.scale.codec import Codec, codec_for
from devnet.scale.types import (
    H256,
    U32,
    U128,
    Bytes,
    Compact,
    Composite,
    Field,
    Param,
    Sequence,
    Tuple,
    TypeSpec,
    Variant,
    VariantType,
)

RUNTIME_PATH = "paratrain_devnet_runtime"
SPEC_NAME = "paratrain-devnet"
CHAIN_NAME = "Paratrain Devnet"  # not a scalecodec preset name, so clients rely on metadata alone
SS58_PREFIX = 42
TOKEN_SYMBOL = "PARA"
TOKEN_DECIMALS = 12
EXISTENTIAL_DEPOSIT = 10**9  # 0.001 PARA


@dataclass(frozen=True)
class SignedExtension:
    identifier: str
    ty: TypeSpec
    additional_signed: TypeSpec


def _extension(path_tail: tuple[str, ...], name: str, *flds: Field) -> Composite:
    return Composite(path_tail + (name,), tuple(flds), (Param("T", None),))


SIGNED_EXTENSIONS = (
    SignedExtension("CheckNonZeroSender",
                    _extension(("frame_system", "extensions", "check_non_zero_sender"), "CheckNonZeroSender"), Tuple()),
    SignedExtension("CheckSpecVersion",
                    _extension(("frame_system", "extensions", "check_spec_version"), "CheckSpecVersion"), U32),
    SignedExtension("CheckTxVersion",
                    _extension(("frame_system", "extensions", "check_tx_version"), "CheckTxVersion"), U32),
    SignedExtension("CheckGenesis", _extension(("frame_system", "extensions", "check_genesis"), "CheckGenesis"), H256),
    SignedExtension("CheckMortality", _extension(("frame_system", "extensions", "check_mortality"), "CheckMortality",
                                                 Field(None, Era, "Era")), H256),
    SignedExtension("CheckNonce", _extension(("frame_system", "extensions", "check_nonce"), "CheckNonce",
                                             Field(None, Compact(U32), "T::Nonce")), Tuple()),
    SignedExtension("CheckWeight", _extension(("frame_system", "extensions", "check_weight"), "CheckWeight"), Tuple()),
    SignedExtension("ChargeTransactionPayment",
                    _extension(("pallet_transaction_payment",), "ChargeTransactionPayment",
                               Field(None, Compact(U128), "BalanceOf<T>")), Tuple()),
)

API_VERSIONS = (  # (blake2_64 of the API's name, version); only APIs that state_call serves
    ("Core", bytes.fromhex("df6acb689907609b"), 4),
    ("Metadata", bytes.fromhex("37e397fc7c91f5e4"), 2),
    ("TaggedTransactionQueue", bytes.fromhex("d2bc9897eed08f15"), 3),
    ("AccountNonceApi", bytes.fromhex("bc9d89904f5b923f"), 1),
    ("TransactionPaymentApi", bytes.fromhex("37c8bb1350a9a2a8"), 4),
    ("CollaborativeModelsApi", bytes.fromhex("172f93cfdfc7aac8"), 1),   # predict (devnet/runtime/apis.py)
)


class Runtime:
    """The assembled runtime: pallets by index, derived types and codecs."""

    # Raised whenever storage or call encodings change, so that a node refuses a --base-path chain that it
    # would misread (devnet has no migrations). 2: the challenge period and verification windows in ms.
    # 3: the holdout commitment binds the holdout's hash and size (reveal_holdout, Holdouts, HoldoutRevealed).
    # 4: the FederatedTasks pallet (index 23). 5: the PrivacyBudgets pallet (index 24) and TaskBounties' private
    # tasks (create_private_task, submit_private_result). 10: the CollaborativeModels pallet (index 25).
    # 11: the PredictionMarkets pallet (index 26). 12: the Datasets pallet (27), checked by TaskBounties;
    # ModelServices (28) and PaymentChannels (29).
    spec_version = 12
    transaction_version = 1

    def __init__(self, *, block_hash_count: int = 4096, minimum_period_ms: int = 3000,
                 fees: FeeSchedule = FeeSchedule(), extra_pallets: tuple[Pallet, ...] = (),
                 challenge_period_ms: int = DEFAULT_CHALLENGE_PERIOD_MS,
                 verification_grace_ms: int = DEFAULT_VERIFICATION_GRACE_MS,
                 federated: FederatedSettings | None = None) -> None:
        self.version: dict[str, Any] = {
            "spec_name": SPEC_NAME, "impl_name": "paratrain-devnet-py", "authoring_version": 1,
            "spec_version": self.spec_version, "impl_version": 1,
            "apis": [(h, v) for _, h, v in API_VERSIONS], "transaction_version": self.transaction_version,
            "state_version": 1,
        }
        self.system = System(block_hash_count=block_hash_count, ss58_prefix=SS58_PREFIX, version=self.version)
        self.timestamp = Timestamp(minimum_period_ms=minimum_period_ms)
        self.balances = Balances(existential_deposit=EXISTENTIAL_DEPOSIT)
        self.payment = TransactionPayment(fees)
        self.workers = Workers(self.balances)
        self.models = Models()
        self.privacy = PrivacyBudgets()
        self.collab = CollaborativeModels(self.balances)
        self.markets = PredictionMarkets(self.balances, self.workers)
        self.datasets = Datasets(self.balances)
        self.services = ModelServices()
        self.channels = PaymentChannels(self.balances, self.services)
        self.task_bounties = TaskBounties(self.balances, self.workers, self.models,
                                          challenge_period_ms=challenge_period_ms,
                                          verification_grace_ms=verification_grace_ms, privacy=self.privacy,
                                          datasets=self.datasets)
        # one verification window for both markets unless a test asks otherwise (the node's --verification-grace-ms)
        self.federated = FederatedTasks(
            self.balances, self.workers, self.privacy, max_claims_per_worker=self.task_bounties.max_claims,
            settings=federated or FederatedSettings(verification_grace_ms=verification_grace_ms))
        self.pallets: list[Pallet] = sorted(
            [self.system, self.timestamp, self.balances, self.payment, self.workers, self.task_bounties,
             self.models, self.federated, self.privacy, self.collab, self.markets, self.datasets,
             self.services, self.channels, *extra_pallets],
            key=lambda p: p.index)
        self.by_index = {p.index: p for p in self.pallets}

        self.call_type = VariantType((RUNTIME_PATH, "RuntimeCall"), tuple(
            Variant(p.name, (Field(None, p.call_type(), f"self::sp_api_hidden_includes_construct_runtime::hidden_include::dispatch::CallableCallFor<{p.name}, Runtime>"),), p.index)
            for p in self.pallets if p.call_type()))
        self.event_type = VariantType((RUNTIME_PATH, "RuntimeEvent"), tuple(
            Variant(p.name, (Field(None, p.event_type(), f"{p.module}::Event<Runtime>"),), p.index)
            for p in self.pallets if p.event_type()))
        self.error_type = VariantType((RUNTIME_PATH, "RuntimeError"), tuple(
            Variant(p.name, (Field(None, p.error_type(), f"{p.module}::Error<Runtime>"),), p.index)
            for p in self.pallets if p.error_type()))
        self.events_item = StorageItem(Sequence(event_record_type(self.event_type)), default=[],
                                       docs="Events deposited for the current block.")
        self.events_item.name = "Events"
        self.events_item.bind(System.name)
        self.extra_storage: dict[str, list[StorageItem]] = {System.name: [self.events_item]}

        self.extra_type = Tuple(tuple(ext.ty for ext in SIGNED_EXTENSIONS))
        self.additional_type = Tuple(tuple(ext.additional_signed for ext in SIGNED_EXTENSIONS))
        self.extrinsic_type = Composite(
            ("sp_runtime", "generic", "unchecked_extrinsic", "UncheckedExtrinsic"),
            (Field(None, Bytes),),
            (Param("Address", MultiAddress), Param("Call", self.call_type), Param("Signature", MultiSignature),
             Param("Extra", self.extra_type)),
        )
        self.runtime_type = Composite((RUNTIME_PATH, "Runtime"))

        self.call_codec: Codec = codec_for(self.call_type)
        self.event_record_codec: Codec = codec_for(event_record_type(self.event_type))
        self.address_codec: Codec = codec_for(MultiAddress)
        self.signature_codec: Codec = codec_for(MultiSignature)
        self.calls = {(p.name, c.name): (p, c) for p in self.pallets for c in p.calls}

    def storage_items(self, pallet: Pallet) -> list[StorageItem]:
        items = list(pallet.storage_items)
        extra = self.extra_storage.get(pallet.name, [])
        if pallet.name == System.name:  # Events sits after Digest, as in frame_system
            at = next(i for i, item in enumerate(items) if item.name == "Digest") + 1
            return items[:at] + extra + items[at:]
        return items + extra

    def call_weight(self, call: tuple[str, tuple[str, Any]]) -> int:
        """The declared weight, or what the pallet's `weight_of` says a call of these arguments costs (a call whose
        work grows with its input: CollaborativeModels.add_data)."""
        pallet_name, (call_name, args) = call
        instance, call_def = self.calls[(pallet_name, call_name)]
        sized = getattr(instance, "weight_of", None)
        weight = sized(call_name, args) if sized is not None else None
        return call_def.weight if weight is None else weight
