"""Private federated tasks of pallet_federated_tasks: every client trains with local DP-SGD, and pays for it from
its own privacy budget (docs/dp-sgd.md, docs/privacy-budgets.md).

A mixin of the pallet class (federated.py), as FederatedRounds and FederatedSecAgg are. `create_private_task`
stores the task's DP terms in PrivacyBudgets' FederatedPrivacy (its epsilon cap is each client's, for the whole
task); a join then holds that cap and the delta of the client's own budget for the data it commits to
(PrivacyBudgets.reserve_federated: NoBudget, NotBudgetOwner, BudgetExceeded refuse the join). Each round is
committed with `commit_private_round`, whose signed updates carry the client's *cumulative* DP claim (noise
multiplier, sampling rate, steps so far, clipping norm, delta, epsilon), signed with the update
(b"paratrain/fl-update/v2"); the pallet checks each claim against the task's terms (ClaimMismatch,
EpsilonAboveReservation) and keeps it (FederatedClaims). An accepted round spends each participant's claim
beyond what earlier rounds spent (spend_increment); the reservation closes when the client leaves or takes its
stake back, and what no round spent goes back to its budget.

A task may instead ask for central DP (`create_central_dp_task`, docs/central-dp.md): clients send plain signed
updates, and the aggregator clips each one (or, with ClientFixed, each client clips its own), averages them with
equal weights and adds Gaussian noise of std noise_multiplier * clipping_norm / participants, as Flower's
fixed-clipping wrappers do. `commit_central_round` carries the aggregator's one cumulative claim for the rounds
released so far (sample rate 100 %, steps = the round: no amplification), checked here against the task's terms
(ClaimMismatch, EpsilonAboveReservation) and kept (CentralClaims); an accepted round spends it on every
participant's budget. It cannot be combined with SecAgg+ (there is no SecAgg argument): the aggregator would
noise a sum only it sees, and nobody could check the noise.

What the chain cannot check, validators do off chain: the claimed epsilon recomputed from the claim's parameters
with the task's accountant (no more than EpsilonTolerance below), the update's size against the clipping, and for
central DP the committed model against their own clip, mean and noise from the round's recorded seed.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from devnet.crypto import verify_signature
from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import BAD_ORIGIN, ModuleError, StorageItem, call
from devnet.runtime.pallets.federated_types import (
    ROUND,
    TASK,
    FlTaskSpec,
    SecAggSpec,
    SignedPrivateUpdate,
    SignedUpdate,
    private_update_leaf,
    private_update_message,
)
from devnet.runtime.pallets.models import BoundedBytes
from devnet.runtime.pallets.privacy_types import CentralDp, DpClaim, DpSpec
from devnet.scale.types import H256, U32, U128, Option, Sequence


class FederatedPrivate:
    """The private-task calls and hooks of FederatedTasks (see the module docstring)."""

    # provided by the pallet class
    Clients: StorageItem
    SecAggSpecs: StorageItem
    NextTaskId: StorageItem
    privacy: Any
    error: Callable[[str], ModuleError]
    create_task: Callable[..., None]
    _check_secagg: Callable[..., None]
    _commit: Callable[..., None]

    @call(14, ("spec", FlTaskSpec, "FlTaskSpec<T>"), ("dp", DpSpec, "DpSpec"),
          ("secagg", Option(SecAggSpec), "Option<SecAggSpec>"), ("bounty", U128, "BalanceOf<T>"),
          ("join_deadline", U32, "BlockNumberFor<T>"), ("deadline", U32, "BlockNumberFor<T>"),
          ("validators_required", U32, "u32"), ("holdout_commitment", Option(H256), "Option<H256>"),
          weight=600_000_000)
    def create_private_task(self, ctx: DispatchContext, origin: bytes | None, spec: dict[str, Any],
                            dp: dict[str, Any], secagg: dict[str, Any] | None, bounty: int, join_deadline: int,
                            deadline: int, validators_required: int, holdout_commitment: bytes | None) -> None:
        """create_task for a task whose clients train with local DP-SGD under `dp` (and, with `secagg`, whose
        rounds are aggregated under SecAgg+ as create_secagg_task's)."""
        self.privacy.check_spec(dp)
        if secagg is not None:
            self._check_secagg(spec, secagg)
        task = self.NextTaskId.get(ctx.state)
        self.create_task(ctx, origin, spec, bounty, join_deadline, deadline, validators_required,
                         holdout_commitment)
        self.privacy.FederatedPrivacy.set(ctx.state, task, dp)
        ctx.deposit_event(self, "DpRequired", {"task": task, "epsilon_cap": dp["epsilon_cap"], "delta": dp["delta"]})
        if secagg is not None:
            self.SecAggSpecs.set(ctx.state, task, secagg)
            ctx.deposit_event(self, "SecAggRequired", {"task": task, "audit_rate": secagg["audit_rate"]})

    @call(15, TASK, ROUND, ("base_model_hash", H256, "H256"), ("global_model_hash", H256, "H256"),
          ("round_doc_hash", H256, "H256"), ("artifact_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>"),
          ("updates", Sequence(SignedPrivateUpdate), "BoundedVec<SignedPrivateUpdate<T>, T::MaxClientsPerRound>"),
          weight=22_000_000_000)  # commit_round's, and a claim check per update
    def commit_private_round(self, ctx: DispatchContext, origin: bytes | None, task: int, round: int,
                             base_model_hash: bytes, global_model_hash: bytes, round_doc_hash: bytes,
                             artifact_uri: bytes, updates: list[dict[str, Any]]) -> None:
        """commit_round for a private task: each signed update carries its client's cumulative DP claim."""
        if origin is None:
            raise BAD_ORIGIN
        self._commit(ctx, origin, task, round, base_model_hash, global_model_hash, round_doc_hash, artifact_uri,
                     updates, private=True)
        for update in updates:
            self.privacy.FederatedClaims.set(ctx.state, task, round, update["client"], update["claim"])

    @call(16, ("spec", FlTaskSpec, "FlTaskSpec<T>"), ("dp", CentralDp, "CentralDp"),
          ("bounty", U128, "BalanceOf<T>"), ("join_deadline", U32, "BlockNumberFor<T>"),
          ("deadline", U32, "BlockNumberFor<T>"), ("validators_required", U32, "u32"),
          ("holdout_commitment", Option(H256), "Option<H256>"), weight=600_000_000)
    def create_central_dp_task(self, ctx: DispatchContext, origin: bytes | None, spec: dict[str, Any],
                               dp: dict[str, Any], bounty: int, join_deadline: int, deadline: int,
                               validators_required: int, holdout_commitment: bytes | None) -> None:
        """create_task for a task whose aggregator releases each round's mean under central DP `dp`: FedAvg
        only (the noise is calibrated to an unweighted mean), each joining client reserving the epsilon cap."""
        self.privacy.check_central(dp)
        if spec["rule"][0] != "FedAvg":
            raise self.error("CentralDpNeedsFedAvg")
        task = self.NextTaskId.get(ctx.state)
        self.create_task(ctx, origin, spec, bounty, join_deadline, deadline, validators_required,
                         holdout_commitment)
        self.privacy.FederatedCentralDp.set(ctx.state, task, dp)
        ctx.deposit_event(self, "CentralDpRequired", {"task": task, "clipping": dp["clipping"],
                                                      "epsilon_cap": dp["epsilon_cap"], "delta": dp["delta"]})

    @call(17, TASK, ROUND, ("base_model_hash", H256, "H256"), ("global_model_hash", H256, "H256"),
          ("round_doc_hash", H256, "H256"), ("artifact_uri", BoundedBytes, "BoundedVec<u8, T::MaxUriLen>"),
          ("updates", Sequence(SignedUpdate), "BoundedVec<SignedUpdate<T>, T::MaxClientsPerRound>"),
          ("claim", DpClaim, "DpClaim"), weight=21_000_000_000)  # commit_round's, and one claim check
    def commit_central_round(self, ctx: DispatchContext, origin: bytes | None, task: int, round: int,
                             base_model_hash: bytes, global_model_hash: bytes, round_doc_hash: bytes,
                             artifact_uri: bytes, updates: list[dict[str, Any]], claim: dict[str, Any]) -> None:
        """commit_round for a central-DP task, with the aggregator's cumulative claim for rounds 1..round."""
        if origin is None:
            raise BAD_ORIGIN
        spec = self.privacy.FederatedCentralDp.get(ctx.state, task)
        if spec is None:
            raise self.error("NotCentralDp")
        self.privacy.check_central_claim(spec, claim, round)
        self._commit(ctx, origin, task, round, base_model_hash, global_model_hash, round_doc_hash, artifact_uri,
                     updates, private=False, central=True)
        self.privacy.CentralClaims.set(ctx.state, task, round, claim)

    # Used by the pallet's own calls -------------------------------------------------------------
    def _checked_private_update(self, ctx: DispatchContext, task: int, round_number: int, base: bytes, index: int,
                                update: dict[str, Any]) -> bytes:
        """A participant's leaf, once it is a joined client within its commitment whose claim describes a run
        under the task's terms and whose signature covers the claim."""
        client = update["client"]
        info = self.Clients.get(ctx.state, task, client)
        if info is None:
            raise self.error("UnknownParticipant")
        if update["num_examples"] > info["num_examples"]:
            raise self.error("ExamplesExceedCommitment")
        self.privacy.check_claim(self.privacy.FederatedPrivacy.get(ctx.state, task), update["claim"])
        commitment = {"task_id": task, "round": round_number, "base_model_hash": base,
                      "update_hash": update["update_hash"], "num_examples": update["num_examples"],
                      "claim": update["claim"]}
        scheme, signature = update["signature"]
        if not verify_signature(scheme, signature, private_update_message(commitment), client):
            raise self.error("BadUpdateSignature")
        return private_update_leaf(client, commitment)

    def _spend_private_round(self, ctx: DispatchContext, task: int, round_number: int,
                             participants: list[tuple[bytes, int]]) -> None:
        """An accepted round of a private task: each participant's claim spends what earlier rounds did not (a
        central-DP round's one claim covers every participant: client-level DP protects a client's whole data)."""
        central = self.privacy.CentralClaims.get(ctx.state, task, round_number)
        if central is not None:
            for client, _ in participants:
                self.privacy.spend_increment(ctx, task, client, central["epsilon"])
            return
        if not self.privacy.FederatedPrivacy.contains(ctx.state, task):
            return
        for client, _ in participants:
            claim = self.privacy.FederatedClaims.get(ctx.state, task, round_number, client)
            if claim is not None:
                self.privacy.spend_increment(ctx, task, client, claim["epsilon"])


__all__ = ["FederatedPrivate"]
