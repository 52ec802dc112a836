"""The aggregator's chain side (workers.fl.aggregator) on devnet's runtime in this process: it finds a
federated task once its join deadline passed, claims it with its endpoint, keeps the lease with heartbeats,
releases near the deadline, resumes what AggregatorTasks says after a restart, and never claims a task it
joined as a client or one someone else holds. Flower is replaced by a recording link here only (these tests
are about the chain); the real SuperLink is driven in tests/integration/test_fl_cli.py."""
from __future__ import annotations

import time
from typing import Any

import pytest

from runtime_bindings import Chain, Keypair
from runtime_bindings.generated import types as t
from workers.fl.aggregator import Aggregator, AggregatorConfig, available, task_view
from workers.fl.aggregator_policy import FlRunState
from workers.observers import Recorder

UNIT = 10**12
ALICE, BOB, EVE = (Keypair.create_from_uri(u) for u in ("//Alice", "//Bob", "//Eve"))
CLIENTS = [Keypair.create_from_uri(u) for u in ("//Charlie", "//Dave", "//Ferdie")]


class RecordingLink:
    """What the aggregator asks of Flower, recorded: the SuperLink is always up, runs never finish."""

    endpoint = "127.0.0.1:9092"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.finish: dict[int, str] = {}

    def ensure(self) -> bool:
        self.calls.append(("ensure", None))
        return False

    def prepare(self, task_id: int) -> None:
        self.calls.append(("prepare", task_id))

    def submit(self, task_id: int, run_config: dict[str, Any]) -> int:
        self.calls.append(("submit", (task_id, run_config)))
        return 100 + task_id

    def finished(self, run_id: int) -> str | None:
        return self.finish.get(run_id)

    def stop_run(self, run_id: int) -> None:
        self.calls.append(("stop_run", run_id))

    def close(self) -> None:
        self.calls.append(("close", None))


def spec(rounds: int = 3) -> dict[str, object]:
    return {"recipe": b"digits_mlp", "spec_hash": "0x" + "11" * 32, "spec_uri": b"file:///spec.json",
            "initial_model_hash": "0x" + "22" * 32, "eval_metric": b"accuracy", "eval_target": 800_000,
            "higher_is_better": True, "rounds": rounds, "min_clients_per_round": 2, "fraction_per_round": 10**9,
            "max_clients": 4, "rule": "FedAvg", "client_share": 600_000_000, "min_client_stake": UNIT,
            "aggregate_tolerance": 0, "requirements": {"min_cpus": 1, "min_gpus": 0, "min_memory_mb": 1_000}}


def tick(chain: Chain, until: int) -> None:
    while chain.best_number() < until:
        chain.system.remark(ALICE, b"tick")


def post(chain: Chain, *, join_in: int = 3, deadline_in: int = 300, clients: list[Keypair] = CLIENTS) -> int:
    join_deadline = chain.best_number() + 1 + join_in + len(clients)  # create and each join: a block each
    receipt = chain.federated_tasks.create_task(ALICE, spec(), 10 * UNIT, join_deadline,
                                                join_deadline + deadline_in, 1, None)
    task = next(e.task for e in receipt.events if e.name == "TaskCreated")
    for i, client in enumerate(clients):
        chain.federated_tasks.join(client, task, "0x" + f"{i + 1:02x}" * 32, 100 + i, UNIT)
    return int(task)


@pytest.fixture
def market(chain: Chain) -> Chain:
    chain.workers.register(BOB, "Trainer", chain.constant("Workers", "MinTrainerStake"),
                           t.Capabilities(8, 0, "", 16_000))
    return chain


def aggregator(chain: Chain, tmp_path: Any, link: RecordingLink, recorder: Recorder | None = None,
               **settings: Any) -> Aggregator:
    config = AggregatorConfig(chain_url="ws://unused", state_dir=str(tmp_path / "agg"), store=str(tmp_path / "s"),
                              run_check_s=0.0, **settings)
    notify = None if recorder is None else (lambda what, **detail: recorder(what, detail))
    return Aggregator(chain, BOB, config, notify=notify, link=link)


def test_the_role_is_available_on_a_chain_with_the_pallet(market: Chain):
    assert available(market) is None


def test_a_task_is_claimed_after_its_join_deadline_and_run(market: Chain, tmp_path: Any):
    task = post(market)
    link, recorder = RecordingLink(), Recorder()
    agg = aggregator(market, tmp_path, link, recorder)
    agg.step()
    assert agg.runs == {}, "claimed while clients could still join"
    tick(market, market.federated_tasks.tasks(task).join_deadline)
    agg.step()
    run = agg.runs[task]
    assert run.state is FlRunState.RUNNING and run.run_id == 100 + task and run.endpoint == link.endpoint
    status = market.federated_tasks.tasks(task).status
    assert status.VARIANT == "Running" and status.aggregator == BOB.ss58_address
    assert bytes(status.endpoint) == link.endpoint.encode()
    submitted = [arg for name, arg in link.calls if name == "submit"]
    assert submitted == [(task, {"task-id": task, "chain-url": "ws://unused", "store": str(tmp_path / "s"),
                                 "trusted-stores": "", "journal": str(tmp_path / "agg" / f"journal-{task}.json")})]
    assert [what for what, _ in recorder.events if what.startswith("fl-")] == ["fl-claimed", "fl-running"]
    assert (tmp_path / "agg" / f"fl-{task}.json").read_text().count('"running"') == 1


def test_the_lease_is_renewed_by_heartbeats(market: Chain, tmp_path: Any):
    task = post(market, join_in=1)
    tick(market, market.federated_tasks.tasks(task).join_deadline)
    recorder = Recorder()
    agg = aggregator(market, tmp_path, RecordingLink(), recorder)
    agg.step()
    first = market.federated_tasks.tasks(task).status.lease_until
    lease = market.constant("FederatedTasks", "RoundLease")
    tick(market, first - lease + lease // 3)  # a third of the lease ran
    agg.step()
    assert market.federated_tasks.tasks(task).status.lease_until > first
    assert any(what == "fl-heartbeat" for what, _ in recorder.events)


def test_the_task_is_released_near_the_deadline(market: Chain, tmp_path: Any):
    task = post(market, join_in=1, deadline_in=14)
    tick(market, market.federated_tasks.tasks(task).join_deadline)
    link = RecordingLink()
    agg = aggregator(market, tmp_path, link, deadline_margin_blocks=3, min_blocks_to_claim=6)
    agg.step()
    assert agg.runs[task].state is FlRunState.RUNNING
    tick(market, market.federated_tasks.tasks(task).deadline - 3)
    agg.step()
    assert task not in agg.runs and agg.finished[task].state is FlRunState.LOST
    assert "released" in (agg.finished[task].reason or "")
    assert market.federated_tasks.tasks(task).status.VARIANT == "Open"
    assert ("stop_run", 100 + task) in link.calls
    agg.step()
    assert task not in agg.runs, "a released task was claimed again"


def test_a_restarted_aggregator_resumes_what_the_chain_says_it_holds(market: Chain, tmp_path: Any):
    task = post(market, join_in=1)
    tick(market, market.federated_tasks.tasks(task).join_deadline)
    aggregator(market, tmp_path, RecordingLink()).step()
    link, recorder = RecordingLink(), Recorder()
    again = aggregator(market, tmp_path, link, recorder)
    again._resume()
    assert again.runs[task].resumed and again.runs[task].state is FlRunState.CLAIMED
    again.step()
    assert again.runs[task].state is FlRunState.RUNNING
    assert [what for what, _ in recorder.events if what.startswith("fl-")] == ["fl-resumed", "fl-running"]


def test_a_run_that_ends_with_rounds_left_is_started_again_then_released(market: Chain, tmp_path: Any):
    task = post(market, join_in=1)
    tick(market, market.federated_tasks.tasks(task).join_deadline)
    link = RecordingLink()
    agg = aggregator(market, tmp_path, link, max_relaunches=1)
    agg.step()
    link.finish[100 + task] = "finished:failed"
    agg.step()  # ended: back to CLAIMED, one relaunch counted
    agg.step()  # linked and submitted again
    assert agg.runs[task].state is FlRunState.RUNNING and agg.runs[task].relaunches == 1
    agg.step()  # ended again: no relaunch left, released
    assert agg.finished[task].state is FlRunState.LOST
    assert market.federated_tasks.tasks(task).status.VARIANT == "Open"


def test_no_claim_of_a_task_it_joined_or_with_too_few_clients(market: Chain, tmp_path: Any):
    market.workers.register(EVE, "Trainer", market.constant("Workers", "MinTrainerStake"),
                            t.Capabilities(8, 0, "", 16_000))
    joined = post(market, join_in=2, clients=[*CLIENTS[:2], BOB])
    few = post(market, join_in=2, clients=CLIENTS[:1])
    tick(market, market.best_number() + 3)
    agg = aggregator(market, tmp_path, RecordingLink())
    agg.step()
    assert joined not in agg.runs and few not in agg.runs
    assert task_view(joined, market.federated_tasks.tasks(joined)).status == "Open"  # claimable, not by a client
    assert task_view(few, market.federated_tasks.tasks(few)).status != "Running"


def test_a_task_another_aggregator_holds_is_left_alone(market: Chain, tmp_path: Any):
    market.workers.register(EVE, "Trainer", market.constant("Workers", "MinTrainerStake"),
                            t.Capabilities(8, 0, "", 16_000))
    task = post(market, join_in=1)
    tick(market, market.federated_tasks.tasks(task).join_deadline)
    market.federated_tasks.claim_aggregator(EVE, task, b"127.0.0.1:1")
    agg = aggregator(market, tmp_path, RecordingLink())
    agg.step()
    assert agg.runs == {} and task in agg.watch


def test_the_worker_daemon_starts_the_role_only_where_it_can_run(market: Chain, tmp_path: Any):
    from types import SimpleNamespace

    from workers.daemon import DaemonConfig
    from workers.fl.aggregator import start_role

    recorder = Recorder()
    config = DaemonConfig(orchestrator="127.0.0.1:1", chain_url="ws://unused", key="//Bob", fl_port=9093)
    daemon = SimpleNamespace(chain=market, config=config, state_dir=tmp_path, keypair=BOB,
                             _notify=lambda what, **detail: recorder(what, detail))
    role = start_role(daemon)  # no federated task on this chain: its loop only looks
    assert role is not None and role.link.endpoint == "127.0.0.1:9093" and role.account == BOB.ss58_address
    time.sleep(0.5)
    assert role._thread is not None and role._thread.is_alive()
    role.stop()
    assert not role._thread.is_alive()
    assert (tmp_path / "federated").is_dir()


def test_no_role_on_a_chain_without_the_pallet(monkeypatch: pytest.MonkeyPatch, market: Chain):
    from workers.fl import aggregator as module

    monkeypatch.setattr(module, "PALLET", "NoSuchPallet")
    assert available(market) == "the chain has no NoSuchPallet pallet"


def commit_rounds(chain: Chain, task: int, rounds: int) -> None:
    """Commit `rounds` rounds as the aggregator's ServerApp would: the clients' signed updates on each base."""
    from runtime_bindings.fl import sign_update, signed_update

    base = bytes.fromhex("22" * 32)
    ordered = sorted(CLIENTS, key=lambda k: k.public_key)
    for number in range(1, rounds + 1):
        entries = []
        for i, client in enumerate(ordered):
            update = bytes([0x40 + number, i]) * 16
            entries.append(signed_update(client, update, 50, *sign_update(client, task, number, base, update, 50)))
        chain.federated_tasks.commit_round(BOB, task, number, "0x" + base.hex(), "0x" + f"{number:02x}" * 32,
                                           "0x" + "d0" * 32, b"file:///rounds", entries)
        base = bytes([number]) * 32


def test_a_run_that_ends_with_every_round_committed_is_not_started_again(market: Chain, tmp_path: Any):
    join_deadline = market.best_number() + 1 + 1 + len(CLIENTS)
    spec2 = {**spec(), "rounds": 2}
    receipt = market.federated_tasks.create_task(ALICE, spec2, 10 * UNIT, join_deadline, join_deadline + 300, 1,
                                                 None)
    task = int(next(e.task for e in receipt.events if e.name == "TaskCreated"))
    for i, client in enumerate(CLIENTS):
        market.federated_tasks.join(client, task, "0x" + f"{i + 1:02x}" * 32, 100, UNIT)
    tick(market, join_deadline)
    link = RecordingLink()
    agg = aggregator(market, tmp_path, link)
    agg.step()
    assert agg.runs[task].state is FlRunState.RUNNING
    commit_rounds(market, task, 2)
    link.finish[100 + task] = "finished:completed"
    for _ in range(3):
        agg.step()
    run = agg.runs[task]
    assert run.state is FlRunState.RUNNING and run.relaunches == 0 and run.run_id is None
    assert [name for name, _ in link.calls].count("submit") == 1
    assert market.federated_tasks.tasks(task).status.VARIANT == "Running"  # nothing released: verdicts decide


def test_a_last_commit_landing_while_the_run_is_checked_does_not_start_it_again(market: Chain, tmp_path: Any):
    """The ServerApp commits its last round and returns between the aggregator's read of the task and its
    look at the run: the run ended with every round committed, not with rounds left."""
    join_deadline = market.best_number() + 1 + 1 + len(CLIENTS)
    receipt = market.federated_tasks.create_task(ALICE, {**spec(), "rounds": 2}, 10 * UNIT, join_deadline,
                                                 join_deadline + 300, 1, None)
    task = int(next(e.task for e in receipt.events if e.name == "TaskCreated"))
    for i, client in enumerate(CLIENTS):
        market.federated_tasks.join(client, task, "0x" + f"{i + 1:02x}" * 32, 100, UNIT)
    tick(market, join_deadline)

    class CommittingLink(RecordingLink):
        def finished(self, run_id: int) -> str | None:
            if run_id not in self.finish:
                return None
            if int(market.federated_tasks.tasks(task).last_committed) < 2:
                commit_rounds(market, task, 2)
            return self.finish[run_id]

    link = CommittingLink()
    agg = aggregator(market, tmp_path, link)
    agg.step()
    assert agg.runs[task].state is FlRunState.RUNNING
    link.finish[100 + task] = "finished:completed"
    agg.step()
    run = agg.runs[task]
    assert run.state is FlRunState.RUNNING and run.relaunches == 0 and run.run_id is None
    assert [name for name, _ in link.calls].count("submit") == 1
