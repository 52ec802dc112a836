"""PrivacyBudgets and TaskBounties' private tasks driven in process, as the executive drives them: one set-up for
the pallet and the invariant tests.

A DispatchContext over an Overlay of the genesis state; each call runs in a child layer that a DispatchError
discards (so a refused call changes nothing, as on a node); hooks run at every block and the simulated
timestamp moves after them. Workers sign their DP attestations with runtime_bindings.privacy (an encoder
independent of the pallet's codec), so every accepted submission checks the two agree.
"""
from __future__ import annotations

import hashlib
from typing import Any

from sortedcontainers import SortedDict
from substrateinterface import Keypair

from devnet.chain import genesis_state
from devnet.crypto import blake2_256
from devnet.metadata import encode_metadata
from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import DispatchError, ModuleError
from devnet.runtime.pallets.privacy import PrivacyBudgets
from devnet.runtime.pallets.system import System
from devnet.runtime.pallets.task_bounties import TaskBounties
from devnet.runtime.pallets.timestamp import Timestamp
from devnet.runtime.runtime import Runtime
from devnet.state import Overlay, SortedView
from runtime_bindings import privacy as units
from runtime_bindings.attestation import AttestationCodec
from runtime_bindings.generated import types as t

UNIT = 10**12
BLOCK_MS = 1_000
GRACE_MS = 10_000
CAPS = {"cpus": 4, "gpus": 0, "gpu_model": b"", "memory_mb": 8192}
OWNERS = [Keypair.create_from_uri(f"//DpOwner{i}") for i in range(3)]
TRAINERS = [Keypair.create_from_uri(f"//DpTrainer{i}") for i in range(2)]
VALIDATORS = [Keypair.create_from_uri(f"//DpValidator{i}") for i in range(2)]
OUTSIDER = Keypair.create_from_uri("//DpOutsider")
EVERYONE = [*OWNERS, *TRAINERS, *VALIDATORS, OUTSIDER]
DELTA = 10_000_000_000  # 1e-5
NOISE_KEY_HASH = units.noise_key_hash(bytes(range(32)))


def data_hash(label: str) -> bytes:
    return blake2_256(f"data-{label}".encode())


def dp_spec(**overrides: Any) -> dict[str, Any]:
    """A task's DP terms in chain units, as the pallet's dispatch takes them."""
    spec = {"accountant": ("Prv", None), "epsilon_cap": 3_000_000, "delta": DELTA, "max_grad_norm": 1_000_000,
            "noise_multiplier": 1_100_000, "noise_key_hash": NOISE_KEY_HASH}
    spec.update(overrides)
    return spec


def dp_claim(spec: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A claim that fits `spec`: same accountant and delta, its norm and noise, epsilon 2.5 (or the cap)."""
    claim = {"accountant": spec["accountant"], "noise_multiplier": spec["noise_multiplier"],
             "sample_rate": units.rate_to_chain(64 / 1437), "steps": 675, "max_grad_norm": spec["max_grad_norm"],
             "delta": spec["delta"], "epsilon": min(2_500_000, spec["epsilon_cap"])}
    claim.update(overrides)
    return claim


def task_spec(dataset: bytes) -> dict[str, Any]:
    return {"recipe": b"digits_mlp", "spec_hash": blake2_256(b"spec"), "spec_uri": b"file:///store/spec.json",
            "dataset_hash": dataset, "eval_metric": b"accuracy", "eval_target": 800_000, "higher_is_better": True,
            "requirements": {"min_cpus": 1, "min_gpus": 0, "min_memory_mb": 0}, "parent_model": None}


def typed_claim(claim: dict[str, Any]) -> t.DpClaim:
    return t.DpClaim.from_value({**claim, "accountant": claim["accountant"][0]})


class DpHarness:
    _codec: AttestationCodec | None = None

    def __init__(self, challenge_period_ms: int = 0) -> None:
        self.runtime = Runtime(challenge_period_ms=challenge_period_ms, verification_grace_ms=GRACE_MS)
        changes = genesis_state(self.runtime, [k.public_key for k in EVERYONE], balance=10_000 * UNIT)
        base = SortedView(SortedDict({k: v for k, v in changes.items() if v is not None}))
        self.ctx = DispatchContext(Overlay(base), 1, BLOCK_MS)
        Timestamp.Now.set(self.ctx.state, BLOCK_MS)
        self.models = 0

    @classmethod
    def codec(cls) -> AttestationCodec:
        """The attestation's SCALE from this runtime's metadata (the worker's path), decoded once per process."""
        if cls._codec is None:
            cls._codec = AttestationCodec.from_metadata(encode_metadata(Runtime()))
        return cls._codec

    # Driving ------------------------------------------------------------------------------------
    def dispatch(self, who: Keypair, call: str, pallet: str = "TaskBounties", **args: Any) -> str | None:
        """None when the call succeeds, else `Pallet.Error` or the DispatchError's text."""
        instance, call_def = self.runtime.calls[(pallet, call)]
        outer, mark = self.ctx.state, len(self.ctx.events)
        self.ctx.state = outer.child()
        try:
            call_def.handler(instance, self.ctx, who.public_key, **args)
            self.ctx.state.commit()
            return None
        except DispatchError as error:
            del self.ctx.events[mark:]
            return f"{error.pallet}.{error.name}" if isinstance(error, ModuleError) else str(error)
        finally:
            self.ctx.state = outer

    def ok(self, who: Keypair, call: str, pallet: str = "TaskBounties", **args: Any) -> None:
        refused = self.dispatch(who, call, pallet, **args)
        assert refused is None, f"{pallet}.{call} refused: {refused}"

    def advance(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            for pallet in self.runtime.pallets:
                pallet.on_finalize(self.ctx)
            self.ctx.block_number += 1
            for pallet in self.runtime.pallets:
                pallet.on_initialize(self.ctx)
            self.ctx.timestamp_ms += BLOCK_MS
            Timestamp.Now.set(self.ctx.state, self.ctx.timestamp_ms)

    # Reading ------------------------------------------------------------------------------------
    def snapshot(self) -> dict[bytes, bytes]:
        return dict(self.ctx.state.iter_prefix(b""))

    def budget(self, dataset: bytes) -> dict[str, Any] | None:
        return PrivacyBudgets.Budgets.get(self.ctx.state, dataset)

    def task(self, task_id: int) -> dict[str, Any]:
        return TaskBounties.Tasks.get(self.ctx.state, task_id)

    def status(self, task_id: int) -> str:
        return str(self.task(task_id)["status"][0])

    def reserved_balance(self, who: Keypair) -> int:
        return int(System.Account.get(self.ctx.state, who.public_key)["data"]["reserved"])

    def events(self, name: str, pallet: str = "PrivacyBudgets") -> list[dict[str, Any]]:
        out = []
        for record in self.ctx.events:
            event_pallet, (event_name, payload) = record["event"]
            if event_pallet == pallet and event_name == name:
                out.append(payload)
        return out

    # Set-up -------------------------------------------------------------------------------------
    def register_workers(self) -> None:
        for trainer in TRAINERS:
            self.ok(trainer, "register", "Workers", role=("Trainer", None), stake=200 * UNIT, capabilities=CAPS)
        for validator in VALIDATORS:
            self.ok(validator, "register", "Workers", role=("Validator", None), stake=100 * UNIT,
                    capabilities=CAPS)

    def set_budget(self, owner: Keypair, dataset: bytes, epsilon: int = 10_000_000, delta: int = 10 * DELTA) -> None:
        self.ok(owner, "set_budget", "PrivacyBudgets", data_hash=dataset, epsilon=epsilon, delta=delta)

    def create_args(self, dataset: bytes, privacy: dict[str, Any] | None = None, deadline_blocks: int = 200,
                    **overrides: Any) -> dict[str, Any]:
        args = {"spec": task_spec(dataset), "privacy": privacy or dp_spec(), "bounty": 10 * UNIT,
                "min_stake": 0, "deadline": self.ctx.block_number + deadline_blocks, "validators_required": 1,
                "holdout_commitment": None}
        args.update(overrides)
        return args

    def create_private(self, owner: Keypair, dataset: bytes, **args: Any) -> int:
        task_id = int(TaskBounties.NextTaskId.get(self.ctx.state))
        self.ok(owner, "create_private_task", **self.create_args(dataset, **args))
        return task_id

    def attestation(self, task_id: int, worker: Keypair) -> dict[str, Any]:
        self.models += 1
        return {"task_id": task_id, "worker": worker.public_key,
                "model_hash": hashlib.blake2b(b"model %d" % self.models, digest_size=32).digest(),
                "artifact_uri": b"file:///store/model", "metrics": [(b"accuracy", 900_000)],
                "trajectory_root": bytes(32), "checkpoints": [], "code_hash": bytes(32),
                "dataset_hash": self.task(task_id)["spec"]["dataset_hash"], "started_ms": 1, "finished_ms": 2}

    def private_submission(self, task_id: int, worker: Keypair, claim: dict[str, Any]) -> dict[str, Any]:
        """submit_private_result's arguments, signed as a worker signs them (runtime_bindings.privacy)."""
        attestation = self.attestation(task_id, worker)
        encoded = self.codec().encode(self.typed_attestation(attestation))
        signature = units.sign_dp_attestation(encoded, typed_claim(claim), worker)
        return {"task_id": task_id, "attestation": attestation, "claim": claim,
                "signature": (signature.name, bytes(signature.field_0))}

    @staticmethod
    def typed_attestation(attestation: dict[str, Any]) -> dict[str, Any]:
        """The attestation as scalecodec takes it (bytes as 0x-hex, accounts too)."""
        return {**attestation, "worker": "0x" + attestation["worker"].hex(),
                "model_hash": "0x" + attestation["model_hash"].hex(),
                "trajectory_root": "0x" + attestation["trajectory_root"].hex(),
                "code_hash": "0x" + attestation["code_hash"].hex(),
                "dataset_hash": "0x" + attestation["dataset_hash"].hex(),
                "metrics": [(name, value) for name, value in attestation["metrics"]]}

    def claim_and_submit(self, task_id: int, claim: dict[str, Any], worker: Keypair = TRAINERS[0]) -> None:
        self.ok(worker, "claim_task", task_id=task_id)
        self.ok(worker, "submit_private_result", **self.private_submission(task_id, worker, claim))

    def verdict(self, task_id: int, accept: bool, validator: Keypair = VALIDATORS[0]) -> None:
        self.ok(validator, "submit_verdict", task_id=task_id,
                verdict={"accept": accept, "measured_metric": 900_000, "evidence_hash": bytes(32)})
