"""FederatedTasks driven in process, as the executive drives it: one shared set-up for the pallet and invariant tests.

A DispatchContext over an Overlay of the genesis state; each call runs in a child layer that a DispatchError
discards (so a refused call changes nothing, as on a node); hooks run at every block and the simulated
timestamp moves after them. Clients sign their update commitments with runtime_bindings.fl (engineer G's
independent encoder), so the pallet's own SCALE of UpdateCommitment is checked against it on every commit.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sortedcontainers import SortedDict
from substrateinterface import Keypair, KeypairType

from devnet.chain import genesis_state
from devnet.crypto import blake2_256
from devnet.runtime.context import DispatchContext
from devnet.runtime.framework import DispatchError, ModuleError
from devnet.runtime.pallets.balances import Balances
from devnet.runtime.pallets.federated import FederatedSettings, FederatedTasks
from devnet.runtime.pallets.system import System
from devnet.runtime.pallets.task_bounties_types import PERBILL
from devnet.runtime.pallets.timestamp import Timestamp
from devnet.runtime.runtime import Runtime
from devnet.state import Overlay, SortedView
from runtime_bindings import fl

UNIT = 10**12
BLOCK_MS = 1_000
GRACE_MS = 10_000
INITIAL_MODEL = blake2_256(b"initial model")
CAPS = {"cpus": 4, "gpus": 0, "gpu_model": b"", "memory_mb": 8192}

REQUESTER = Keypair.create_from_uri("//FlRequester")
AGGREGATORS = [Keypair.create_from_uri(f"//FlAggregator{i}") for i in range(2)]
VALIDATORS = [Keypair.create_from_uri(f"//FlValidator{i}") for i in range(4)]
# one ed25519 client: the pallet verifies both MultiSignature schemes
CLIENTS = [Keypair.create_from_uri(f"//FlClient{i}") for i in range(4)] + [
    Keypair.create_from_seed("0x" + blake2_256(b"FlClientEd").hex(), crypto_type=KeypairType.ED25519)]
PARTICIPANTS = CLIENTS[:3] + CLIENTS[4:]  # the default joined set, the ed25519 client among them
OUTSIDER = Keypair.create_from_uri("//FlOutsider")
EVERYONE = [REQUESTER, *AGGREGATORS, *VALIDATORS, *CLIENTS, OUTSIDER]


def acct(who: Keypair | bytes) -> bytes:
    return who.public_key if isinstance(who, Keypair) else who


def sorted_clients(clients: Iterable[Keypair]) -> list[Keypair]:
    return sorted(clients, key=lambda k: k.public_key)


def model_hash(label: str) -> bytes:
    return blake2_256(label.encode())


def data_of(client: Keypair) -> bytes:
    """The data hash a client of the private-task tests commits to (and holds a privacy budget for)."""
    return model_hash(f"data-{client.ss58_address}")


def budgeted(epsilon: int, delta: int) -> FlHarness:
    """A harness with the workers registered and every participant owning a budget of (epsilon, delta)."""
    harness = FlHarness()
    harness.register_workers()
    for client in PARTICIPANTS:
        harness.ok(client, "set_budget", "PrivacyBudgets", data_hash=data_of(client), epsilon=epsilon, delta=delta)
    return harness


class FlHarness:
    def __init__(self, **settings: Any) -> None:
        self.runtime = Runtime(federated=FederatedSettings(**{"verification_grace_ms": GRACE_MS, **settings}))
        self.pallet: FederatedTasks = self.runtime.federated
        changes = genesis_state(self.runtime, [k.public_key for k in EVERYONE], balance=10_000 * UNIT)
        base = SortedView(SortedDict({k: v for k, v in changes.items() if v is not None}))
        self.ctx = DispatchContext(Overlay(base), 1, BLOCK_MS)
        Timestamp.Now.set(self.ctx.state, BLOCK_MS)

    # Driving ------------------------------------------------------------------------------------
    def dispatch(self, who: Keypair | bytes, call: str, pallet: str = "FederatedTasks", **args: Any) -> str | None:
        """None when the call succeeds, else FederatedTasks' error name, `Pallet.Name` of another pallet's, or the
        DispatchError's text."""
        instance, call_def = self.runtime.calls[(pallet, call)]
        outer, mark = self.ctx.state, len(self.ctx.events)
        self.ctx.state = outer.child()
        try:
            call_def.handler(instance, self.ctx, acct(who), **args)
            self.ctx.state.commit()
            return None
        except DispatchError as error:
            del self.ctx.events[mark:]
            if isinstance(error, ModuleError):
                return error.name if error.pallet == "FederatedTasks" else f"{error.pallet}.{error.name}"
            return str(error)
        finally:
            self.ctx.state = outer

    def ok(self, who: Keypair | bytes, call: str, pallet: str = "FederatedTasks", **args: Any) -> None:
        refused = self.dispatch(who, call, pallet, **args)
        assert refused is None, f"{pallet}.{call} refused: {refused}"

    def advance(self, blocks: int = 1, ms_per_block: int = BLOCK_MS) -> None:
        for _ in range(blocks):
            for pallet in self.runtime.pallets:
                pallet.on_finalize(self.ctx)
            self.ctx.block_number += 1
            # as the executive does: the parent's hash is known from its child's initialisation on
            System.BlockHash.set(self.ctx.state, self.ctx.block_number - 1,
                                 blake2_256(b"block" + self.ctx.block_number.to_bytes(4, "little")))
            for pallet in self.runtime.pallets:
                pallet.on_initialize(self.ctx)
            self.ctx.timestamp_ms += ms_per_block
            Timestamp.Now.set(self.ctx.state, self.ctx.timestamp_ms)

    def advance_to(self, block: int) -> None:
        self.advance(max(block - self.ctx.block_number, 0))

    def advance_past_grace(self) -> None:
        """Enough blocks that every round committed so far is past verify_until and its hook has run."""
        self.advance(GRACE_MS // BLOCK_MS + 2)

    # Reading ------------------------------------------------------------------------------------
    @property
    def state(self) -> Overlay:
        return self.ctx.state

    @property
    def now(self) -> int:
        return self.ctx.block_number

    def snapshot(self) -> dict[bytes, bytes]:
        return dict(self.state.iter_prefix(b""))

    def task(self, task: int) -> dict[str, Any]:
        return FederatedTasks.Tasks.get(self.state, task)

    def status(self, task: int) -> str:
        return str(self.task(task)["status"][0])

    def round(self, task: int, number: int) -> dict[str, Any]:
        return FederatedTasks.Rounds.get(self.state, task, number)

    def client(self, task: int, who: Keypair) -> dict[str, Any]:
        return FederatedTasks.Clients.get(self.state, task, who.public_key)

    def account(self, who: Keypair | bytes) -> dict[str, int]:
        from devnet.runtime.pallets.system import System
        data = System.Account.get(self.state, acct(who))["data"]
        return {"free": data["free"], "reserved": data["reserved"]}

    def issuance(self) -> int:
        return int(Balances.TotalIssuance.get(self.state))

    def events(self, name: str | None = None, pallet: str = "FederatedTasks") -> list[dict[str, Any]]:
        out = []
        for record in self.ctx.events:
            event_pallet, (event_name, payload) = record["event"]
            if event_pallet == pallet and (name is None or event_name == name):
                out.append({"name": event_name, **(payload or {})})
        return out

    # Set-up -------------------------------------------------------------------------------------
    def register(self, who: Keypair, role: str, stake: int | None = None) -> None:
        stake = stake if stake is not None else (200 if role == "Trainer" else 100) * UNIT
        self.ok(who, "register", "Workers", role=(role, None), stake=stake, capabilities=CAPS)

    def register_workers(self) -> None:
        for aggregator in AGGREGATORS:
            self.register(aggregator, "Trainer")
        for validator in VALIDATORS:
            self.register(validator, "Validator")

    @staticmethod
    def spec(**overrides: Any) -> dict[str, Any]:
        spec = {
            "recipe": b"digits_mlp", "spec_hash": model_hash("spec"), "spec_uri": b"file:///store/spec.json",
            "initial_model_hash": INITIAL_MODEL, "eval_metric": b"accuracy", "eval_target": 800_000,
            "higher_is_better": True, "rounds": 3, "min_clients_per_round": 3, "fraction_per_round": PERBILL,
            "max_clients": 5, "rule": ("FedMedian", None), "client_share": 700_000_000,
            "min_client_stake": 10 * UNIT, "aggregate_tolerance": 0,
            "requirements": {"min_cpus": 1, "min_gpus": 0, "min_memory_mb": 0}}
        spec.update(overrides)
        return spec

    def create(self, *, bounty: int = 300 * UNIT, join_blocks: int = 5, deadline_blocks: int = 500,
               validators_required: int = 2, holdout: bytes | None = None, **spec: Any) -> int:
        task = FederatedTasks.NextTaskId.get(self.state)
        self.ok(REQUESTER, "create_task", spec=self.spec(**spec), bounty=bounty,
                join_deadline=self.now + join_blocks, deadline=self.now + deadline_blocks,
                validators_required=validators_required, holdout_commitment=holdout)
        return int(task)

    def join(self, task: int, clients: Sequence[Keypair], examples: int = 100, stake: int = 10 * UNIT) -> None:
        for i, client in enumerate(clients):
            self.ok(client, "join", task=task, data_hash=model_hash(f"data-{i}"), num_examples=examples + i,
                    stake=stake)

    def running(self, *, clients: Sequence[Keypair] = PARTICIPANTS, aggregator: Keypair = AGGREGATORS[0],
                **create: Any) -> int:
        """A task with `clients` joined, past its join deadline, claimed by `aggregator`."""
        task = self.create(**create)
        self.join(task, clients)
        self.advance_to(self.task(task)["join_deadline"])
        self.ok(aggregator, "claim_aggregator", task=task, endpoint=b"127.0.0.1:9092")
        return task

    def updates(self, task: int, number: int, base: bytes, clients: Sequence[Keypair],
                examples: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """Signed updates of `clients` in ascending account order, as commit_round takes them."""
        out = []
        for client in sorted_clients(clients):
            n = examples[len(out)] if examples is not None else self.client(task, client)["num_examples"]
            update_hash = model_hash(f"update-{task}-{number}-{client.ss58_address}")
            scheme, signature = fl.sign_update(client, task, number, base, update_hash, n)
            out.append({"client": client.public_key, "update_hash": update_hash, "num_examples": n,
                        "signature": (scheme, signature)})
        return out

    def commit_args(self, task: int, number: int, clients: Sequence[Keypair], *, base: bytes | None = None,
                    updates: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        base = base if base is not None else self.expected_base(task, number)
        return {"task": task, "round": number, "base_model_hash": base,
                "global_model_hash": model_hash(f"global-{task}-{number}-{self.task(task)['attempts']}"),
                "round_doc_hash": model_hash(f"doc-{task}-{number}"), "artifact_uri": b"file:///store/round",
                "updates": updates if updates is not None else self.updates(task, number, base, clients)}

    def expected_base(self, task: int, number: int) -> bytes:
        record = self.task(task)
        if number - 1 == record["last_accepted"]:
            return bytes(record["accepted_model_hash"])
        return bytes(self.round(task, number - 1)["global_model_hash"])

    def commit(self, task: int, number: int, clients: Sequence[Keypair] = PARTICIPANTS,
               aggregator: Keypair = AGGREGATORS[0]) -> None:
        self.ok(aggregator, "commit_round", **self.commit_args(task, number, clients))

    def verdict(self, validator: Keypair, task: int, number: int, accept: bool = True,
                rejected: Sequence[Keypair] = (), factors: Sequence[int] | None = None) -> str | None:
        participants = self.round(task, number)["participants"]
        return self.dispatch(validator, "submit_round_verdict", task=task, round=number, verdict={
            "accept": accept, "measured_metric": 900_000, "evidence_hash": model_hash("evidence"),
            "rejected_clients": sorted(k.public_key for k in rejected),
            "contributions": list(factors) if factors is not None else [PERBILL] * len(participants)})
