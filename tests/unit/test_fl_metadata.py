"""FederatedTasks in the metadata: every constant, error, call, event and storage item the design names is
declared with its doc line, under pallet index 23 (since spec_version 4), and a client reads the constants'
values (through the generated typed layer, over the in-process node)."""
from __future__ import annotations

import functools
from typing import Any

from devnet.metadata import encode_metadata, metadata_value
from devnet.runtime.pallets.federated import FederatedSettings
from devnet.runtime.runtime import Runtime
from runtime_bindings import Chain
from runtime_bindings.generated import federated_tasks
from runtime_bindings.metadata import MetadataIndex, decode_metadata, docs_of, snake_case

PALLET = "FederatedTasks"
CONSTANTS = ("TaskDeposit", "MinBounty", "MinClientStake", "MaxRounds", "MaxClientsPerTask", "MaxClientsPerRound",
             "MaxRoundsAhead", "RoundLease", "VerificationGrace", "MaxValidatorsRequired", "ValidatorRewardShare",
             "SlashFraction", "AggregatorSlashFraction", "LeaseSlashFraction", "MaxExpiriesPerBlock",
             "MaxExpirySpill", "MaxDeadlineBlocks", "MaxRecipeLen", "MaxUriLen", "MaxMetricNameLen", "MaxEndpointLen",
             "AuditRevealShare")  # spec_version 6: SecAgg tasks
ERRORS = [
    "TaskNotFound", "NotRequester", "BountyTooLow", "DeadlineInPast", "DeadlineTooFar", "DeadlinePassed",
    "JoinDeadlineInvalid", "InvalidRounds", "InvalidClientCounts", "InvalidRule", "InvalidShare",
    "InvalidValidatorsRequired", "RecipeTooLong", "UriTooLong", "MetricNameTooLong", "EndpointTooLong",
    "NotCancellable", "JoinClosed", "AlreadyJoined", "RequesterCannotJoin", "TooManyClients", "ClientStakeTooLow",
    "ZeroExamples", "NotClient", "NotJoinable", "NotTrainer", "NotValidator", "InsufficientStake",
    "RequirementsNotMet", "TooManyClaims", "RequesterCannotWork", "ClientCannotAggregate", "NotRunning",
    "NotAggregator", "RoundOutOfOrder", "TooManyRoundsAhead", "BaseModelMismatch", "TooFewParticipants",
    "TooManyParticipants", "ParticipantsNotSorted", "UnknownParticipant", "ExamplesExceedCommitment",
    "BadUpdateSignature", "RoundNotPending", "CannotJudgeOwnWork", "AlreadyVoted", "VerdictMismatch",
    "NoHoldoutCommitment", "HoldoutAlreadyRevealed", "HoldoutNotRevealable", "HoldoutMismatch", "StakeLocked",
    "AlreadyWithdrawn", "ExpiryQueueFull",
    # spec_version 6: SecAgg tasks
    "InvalidSecAggParams", "SecAggNeedsFedAvg", "SecAggRoundSize", "ExamplesAboveMaxWeight", "NotSecAgg",
    "AuditNotDue", "AuditAlreadyDrawn", "NotAudited", "AlreadyRevealed", "RevealClosed", "AuditOpen",
    "RejectedNotAudited",
    # spec_version 7: private tasks
    "NotPrivate", "PrivateNeedsClaims",
    # spec_version 8: central DP
    "NotCentralDp", "CentralDpNeedsClaim", "CentralDpNeedsFedAvg",
    # spec_version 9: signed SecAgg refusals
    "RefusalsClosed", "BadRefusal",
]
CALLS = {  # index -> (name, argument names), design section 2
    0: ("create_task", ["spec", "bounty", "join_deadline", "deadline", "validators_required", "holdout_commitment"]),
    1: ("cancel_task", ["task"]),
    2: ("join", ["task", "data_hash", "num_examples", "stake"]),
    3: ("leave", ["task"]),
    4: ("claim_aggregator", ["task", "endpoint"]),
    5: ("commit_round", ["task", "round", "base_model_hash", "global_model_hash", "round_doc_hash", "artifact_uri",
                         "updates"]),
    6: ("heartbeat", ["task"]),
    7: ("release", ["task"]),
    8: ("reveal_holdout", ["task", "salt", "holdout_hash", "holdout_size", "holdout_uri"]),
    9: ("submit_round_verdict", ["task", "round", "verdict"]),
    10: ("withdraw_stake", ["task"]),
    11: ("create_secagg_task", ["spec", "secagg", "bounty", "join_deadline", "deadline", "validators_required",
                                "holdout_commitment"]),
    12: ("draw_audit", ["task", "round"]),
    13: ("reveal_update", ["task", "round", "reveal_hash", "reveal_uri"]),
    14: ("create_private_task", ["spec", "dp", "secagg", "bounty", "join_deadline", "deadline", "validators_required",
                                 "holdout_commitment"]),
    15: ("commit_private_round", ["task", "round", "base_model_hash", "global_model_hash", "round_doc_hash",
                                  "artifact_uri", "updates"]),
    16: ("create_central_dp_task", ["spec", "dp", "bounty", "join_deadline", "deadline", "validators_required",
                                    "holdout_commitment"]),
    17: ("commit_central_round", ["task", "round", "base_model_hash", "global_model_hash", "round_doc_hash",
                                  "artifact_uri", "updates", "claim"]),
    18: ("register_seal_key", ["key"]),
    19: ("report_refused", ["task", "round", "refused"]),
}
EVENTS = [
    "TaskCreated", "TaskCancelled", "ClientJoined", "ClientLeft", "TaskOpened", "AggregatorClaimed", "Heartbeat",
    "RoundCommitted", "HoldoutRevealed", "RoundVerdictSubmitted", "RoundAccepted", "ClientPaid", "ClientSlashed",
    "RoundRejected", "AggregatorSlashed", "RoundTimedOut", "LeaseExpired", "AggregatorReleased", "TaskReopened",
    "TaskCompleted", "TaskExpired", "StakeWithdrawn", "SecAggRequired", "AuditDrawn", "UpdateRevealed",
    "DpRequired", "CentralDpRequired", "SealKeyRegistered", "RefusalsReported"
]
STORAGE = [
    "NextTaskId", "Tasks", "Clients", "Rounds", "RoundVerdicts", "Holdouts", "AggregatorTasks", "LeaseExpiries",
    "DeadlineExpiries", "RoundDeadlines", "SecAggSpecs", "Audits", "AuditReveals", "SealKeys", "SecAggRefused"
]


@functools.cache
def index() -> MetadataIndex:
    return MetadataIndex(decode_metadata(encode_metadata(Runtime())))


def names(items: list[Any]) -> list[str]:
    return [item["name"] for item in items]


def test_the_pallet_sits_at_index_23_since_spec_version_4() -> None:
    assert index().pallets[PALLET]["index"] == 23
    assert Runtime.spec_version >= 4  # 5 added PrivacyBudgets


def test_every_constant_is_declared_with_its_doc_line() -> None:
    constants = index().constants(PALLET)
    assert names(constants) == list(CONSTANTS)
    assert all(docs_of(c) for c in constants), [c["name"] for c in constants if not docs_of(c)]


def test_every_error_is_declared_in_order_with_its_doc_line_and_a_typed_class() -> None:
    errors = index().pallet_errors(PALLET)
    assert names(errors) == ERRORS
    assert [e["index"] for e in errors] == list(range(len(ERRORS)))
    for error in errors:
        assert docs_of(error), error["name"]
        cls = getattr(federated_tasks, error["name"])
        assert issubclass(cls, federated_tasks.FederatedTasksError) and cls.error_index == error["index"]


def test_every_call_has_its_index_and_arguments_and_a_doc_line() -> None:
    calls = {c["index"]: c for c in index().calls(PALLET)}
    assert {i: (c["name"], [f["name"] for f in c["fields"]]) for i, c in calls.items()} == CALLS
    assert all(docs_of(c) for c in calls.values())


def test_every_event_and_storage_item_is_declared_with_docs() -> None:
    events = index().events(PALLET)
    assert names(events) == EVENTS and all(docs_of(e) for e in events)
    storage = index().storage(PALLET)
    assert names(storage) == STORAGE and all(docs_of(s) for s in storage)


def test_a_client_reads_every_constant_as_the_runtime_declares_it(chain: Chain) -> None:
    defaults = FederatedSettings()
    api = chain.federated_tasks
    read = {name: getattr(api, snake_case(name)) for name in CONSTANTS}
    assert read["MaxRounds"] == defaults.max_rounds == 100
    assert read["MaxClientsPerRound"] == 128 and read["MaxClientsPerTask"] == 256
    assert read["RoundLease"] == 20 and read["MaxRoundsAhead"] == 2
    assert read["ValidatorRewardShare"] == 100_000_000 and read["LeaseSlashFraction"] == 50_000_000
    assert read["MaxEndpointLen"] == 128 and read["MaxDeadlineBlocks"] == 100_000_000
    # the node's --verification-grace-ms sets both markets' windows
    assert read["VerificationGrace"] == chain.task_bounties.verification_grace
    assert all(isinstance(value, int) for value in read.values())


def test_another_runtime_declares_its_own_settings() -> None:
    runtime = Runtime(federated=FederatedSettings(max_rounds=7, verification_grace_ms=1_500))
    _, value = metadata_value(runtime)
    [entry] = [p for p in value["V14"]["pallets"] if p["name"] == PALLET]
    declared = {c["name"]: int.from_bytes(bytes.fromhex(c["value"][2:]), "little") for c in entry["constants"]}
    assert (declared["MaxRounds"], declared["VerificationGrace"]) == (7, 1_500)
    assert runtime.federated.constant("MaxRounds") == 7
