"""The aggregator's strategy and committer without Ray or Flower processes.

Replies are hand-made flwr Messages signed with real keys (runtime_bindings.fl); the grid is a small
in-test Grid that answers identity queries as a signing client would (the network is what cannot be in a
unit test; the simulation test, tests/integration/test_fl_strategy.py, runs the real ClientApp). The
committer's chain is the real runtime behind the in-process node (tests/memory_chain.py).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from runtime_bindings import Chain, Keypair, fl
from tests.fl_running_task import AGGREGATOR, CLIENTS, running_task
from workers.artifacts import ArtifactStore
from workers.fl.arrays import loads, model_bytes, model_hash, update_bytes, update_hash
from workers.fl.committer import ChainCommitter, CommitReceipt, CommitRefused, RoundCommit, SignedEntry
from workers.fl.spec import decode_round_document, parse_rule
from workers.fl.strategy import ChainStrategy, DeadlineNear, FlTaskView, IdentityBook, JoinedGrid, make_rule
from workers.observers import Recorder

TASK, RUN_ID, MAX_BYTES = 7, 99, 4096
BASE = {"w": np.arange(12, dtype=np.float32).reshape(4, 3), "b": np.zeros(3, dtype=np.float32)}
KEYS = [Keypair.create_from_uri(f"//FlStrategyClient{i}") for i in range(20)]
OUTSIDER = Keypair.create_from_uri("//FlStrategyOutsider")
EXAMPLES = 50


@pytest.fixture(autouse=True)
def flower_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """What Flower's runtime sets in a ServerApp's process: the run messages are created in."""
    from flwr.supercore.task_identity import TaskIdentity
    monkeypatch.setattr(TaskIdentity, "_run_id", RUN_ID)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)


class RecordingCommitter:
    """The RoundCommitter protocol, keeping what it was given (the chain path is tested below)."""

    def __init__(self) -> None:
        self.commits: list[RoundCommit] = []

    def commit(self, commit: RoundCommit) -> CommitReceipt:
        self.commits.append(commit)
        return CommitReceipt("0x" + "00" * 32, len(self.commits), None)


class AnsweringGrid(Grid):
    """Nodes 1..n as a test double of the network: `answer(node, message)` makes each node's reply."""

    def __init__(self, nodes: list[int], answer: Callable[[int, Message], Message | None]) -> None:
        self.nodes, self.answer = nodes, answer
        self.sent: list[Message] = []
        self.replies: dict[str, Message] = {}
        self._run = Run.create_empty(RUN_ID)

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return Message(content, dst_node_id, message_type, group_id=group_id)

    def get_node_ids(self) -> list[int]:
        return list(self.nodes)

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = f"m{len(self.sent)}"
            self.sent.append(msg)
            ids.append(msg.metadata.message_id)
            reply = self.answer(msg.metadata.dst_node_id, msg)
            if reply is not None:
                self.replies[msg.metadata.message_id] = reply
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        return [self.replies.pop(i) for i in list(message_ids) if i in self.replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        return self.pull_messages(self.push_messages(messages))


def identity_reply(msg: Message, key: Keypair, node: int) -> Message:
    signed = fl.sign_identity(key, TASK, node, RUN_ID)
    return Message(RecordDict({"paratrain": ConfigRecord({
        "account": key.ss58_address, "signature": signed.signature, "scheme": signed.scheme})}), reply_to=msg)


def train_reply(msg: Message, key: Keypair, arrays: dict[str, np.ndarray], *, examples: int = EXAMPLES,
                round_: int = 1, record: dict[str, object] | None = None,
                metric_examples: int | None = None) -> Message:
    digest = update_hash(arrays)
    base_hash = msg.content["config"]["paratrain.base-hash"]
    signed = fl.sign_update(key, TASK, round_, base_hash, digest, examples)
    commitment = {"account": key.ss58_address, "update-hash": digest, "num-examples": examples,
                  "signature": signed.signature, "scheme": signed.scheme, **(record or {})}
    return Message(RecordDict({
        "arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
        "metrics": MetricRecord({"num-examples": examples if metric_examples is None else metric_examples,
                                 "train-loss": 0.5}),
        "paratrain": ConfigRecord(commitment)}), reply_to=msg)


def shifted(by: float) -> dict[str, np.ndarray]:
    return {k: (v + by).astype(v.dtype) for k, v in BASE.items()}


def view(keys: list[Keypair], *, min_clients: int = 2, examples: int = EXAMPLES) -> FlTaskView:
    return FlTaskView(task_id=TASK, rounds=3, min_clients=min_clients, max_update_bytes=MAX_BYTES, rule="fedavg",
                      clients={k.public_key: examples for k in keys})


def strategy(task: FlTaskView, store: ArtifactStore, committer: RecordingCommitter,
             recorder: Recorder, rule: str = "fedavg") -> ChainStrategy:
    identities = IdentityBook(task, query_timeout=0.5)
    identities.subscribe(recorder)
    s = ChainStrategy(make_rule(parse_rule(rule), min_clients=task.min_clients, fraction=1.0), task=task,
                      committer=committer, store=store, identities=identities, first_round=1, node_wait_s=0.0)
    s.subscribe(recorder)
    return s


def base_record() -> ArrayRecord:
    return ArrayRecord({k: Array(v) for k, v in BASE.items()})


TAMPERS: dict[str, Callable[[Message, Keypair], Message]] = {
    "error reply: out of memory": lambda m, k: Message(Error(code=1, reason="out of memory"), reply_to=m),
    "array 'w' has shape [3, 4]": lambda m, k: train_reply(m, k, {"w": np.zeros((3, 4), np.float32),
                                                                   "b": np.zeros(3, np.float32)}),
    "array 'b' has dtype float64": lambda m, k: train_reply(m, k, {"w": BASE["w"], "b": np.zeros(3)}),
    "NaN or infinite": lambda m, k: train_reply(m, k, {"w": np.full((4, 3), np.nan, np.float32), "b": BASE["b"]}),
    "larger than the 4096 bytes": lambda m, k: train_reply(m, k, {"w": np.zeros((4, 30000), np.float32),
                                                                   "b": BASE["b"]}),
    "array names differ": lambda m, k: train_reply(m, k, {"w": BASE["w"], "c": BASE["b"]}),
    "update hash is not the hash": lambda m, k: train_reply(m, k, shifted(1), record={
        "update-hash": update_hash(shifted(2))}),
    "signature is not the account's": lambda m, k: train_reply(m, k, shifted(1), round_=2),
    "the client committed 50": lambda m, k: train_reply(m, k, shifted(1), examples=51),
    "is not the reply's": lambda m, k: train_reply(m, k, shifted(1), metric_examples=10),
    "is not a joined client": lambda m, k: train_reply(m, OUTSIDER, shifted(1)),
    "the global model it was sent, unchanged": lambda m, k: train_reply(m, k, dict(BASE)),
    "no signed update commitment": lambda m, k: Message(RecordDict({
        "arrays": ArrayRecord({n: Array(v) for n, v in shifted(1).items()}),
        "metrics": MetricRecord({"num-examples": EXAMPLES})}), reply_to=m),
}


def test_each_malformed_reply_is_refused_with_its_reason_and_the_round_aggregates_only_the_rest(tmp_path) -> None:
    honest = {1: 1.0, 2: 3.0, 3: 2.0}
    tamper_nodes = {10 + i: reason for i, reason in enumerate(TAMPERS)}
    keys = {node: KEYS[i] for i, node in enumerate([*honest, *tamper_nodes])}
    stranger = 50  # connected, never proves an identity: not sampled, and a reply from it is refused

    def answer(node: int, msg: Message) -> Message | None:
        if msg.metadata.message_type == "query.identity":
            return None if node == stranger else identity_reply(msg, keys[node], node)
        if node in honest:
            return train_reply(msg, keys[node], shifted(honest[node]), examples=EXAMPLES - node)
        return TAMPERS[tamper_nodes[node]](msg, keys[node])

    store, committer, recorder = ArtifactStore(tmp_path), RecordingCommitter(), Recorder()
    s = strategy(view(list(keys.values())), store, committer, recorder)
    grid = AnsweringGrid([*keys, stranger], answer)
    messages = list(s.configure_train(1, base_record(), ConfigRecord({"lr": 0.1}), grid))

    assert sorted(m.metadata.dst_node_id for m in messages) == sorted(keys)
    config = messages[0].content["config"]
    assert config["paratrain.task-id"] == TASK and config["paratrain.round"] == 1
    assert config["paratrain.base-hash"] == model_hash(BASE) and config["lr"] == 0.1
    assert store.get(model_hash(BASE)) == model_bytes(BASE)  # the judge fetches the base from the store

    replies = grid.send_and_receive(messages)
    to_node_1 = next(m for m in messages if m.metadata.dst_node_id == 1)
    replies.append(train_reply(to_node_1, keys[1], shifted(1)))  # the same account twice
    replies.append(train_reply(Message(RecordDict({"config": config}), stranger, "train"), KEYS[19], shifted(1)))
    arrays, _ = s.aggregate_train(1, replies)

    refused = {r["node_id"]: r["reason"] for r in recorder.of("refused")}
    for node, expected in tamper_nodes.items():
        assert expected in refused[node], (expected, refused[node])
    assert "second update of the same account" in refused[1]
    assert "has not proven" in refused[stranger]
    [commit] = committer.commits
    assert [e.account for e in commit.updates] == sorted((keys[n].ss58_address for n in honest),
                                                         key=fl.account_public_key)
    weights = {n: EXAMPLES - n for n in honest}
    total = sum(weights.values())
    expected = {k: sum(shifted(honest[n])[k] * (weights[n] / total) for n in honest) for k in BASE}
    assert arrays is not None
    for name, value in expected.items():
        np.testing.assert_allclose(arrays[name].numpy(), value, rtol=1e-6)
    assert commit.global_model_hash == model_hash({k: v.numpy() for k, v in arrays.items()})
    assert commit.base_model_hash == model_hash(BASE) and commit.round == 1 and commit.task_id == TASK

    document = json.loads(store.get(commit.round_doc_hash))
    decode_round_document(store.get(commit.round_doc_hash))  # what validators read: canonical and valid
    assert commit.artifact_uri == store.uri(commit.round_doc_hash)
    assert document["kind"] == "fl-round" and document["round"] == 1 and document["rule"] == "fedavg"
    assert [p["client"] for p in document["participants"]] == [e.account for e in commit.updates]
    assert {r["node_id"] for r in document["refused"]} == {*tamper_nodes, 1, stranger}
    for entry in document["participants"]:  # every update is in the store under the hash the client signed
        stored, _ = loads(store.get(entry["update_hash"]))
        assert update_bytes(stored) == store.get(entry["update_hash"])
    [done] = recorder.of("round-committed")
    assert done["round"] == 1 and s.next_round == 2


def test_a_round_with_too_few_good_replies_is_not_committed(tmp_path) -> None:
    keys = {1: KEYS[0], 2: KEYS[1], 3: KEYS[2]}

    def answer(node: int, msg: Message) -> Message:
        if msg.metadata.message_type == "query.identity":
            return identity_reply(msg, keys[node], node)
        return train_reply(msg, keys[node], shifted(1) if node == 1 else shifted(np.nan))

    committer, recorder = RecordingCommitter(), Recorder()
    s = strategy(view(list(keys.values()), min_clients=2), ArtifactStore(tmp_path), committer, recorder)
    grid = AnsweringGrid(list(keys), answer)
    replies = grid.send_and_receive(s.configure_train(1, base_record(), ConfigRecord(), grid))
    assert s.aggregate_train(1, replies) == (None, None)
    assert committer.commits == [] and s.next_round == 1
    [skipped] = recorder.of("round-skipped")
    assert skipped["accepted"] == 1 and skipped["refused"] == 2


def test_updates_are_stored_before_a_rule_that_pops_them_and_the_median_is_flowers(tmp_path) -> None:
    keys = {1: KEYS[0], 2: KEYS[1], 3: KEYS[2]}
    shifts = {1: 1.0, 2: 5.0, 3: 2.0}

    def answer(node: int, msg: Message) -> Message:
        if msg.metadata.message_type == "query.identity":
            return identity_reply(msg, keys[node], node)
        return train_reply(msg, keys[node], shifted(shifts[node]))

    store, committer = ArtifactStore(tmp_path), RecordingCommitter()
    s = strategy(view(list(keys.values())), store, committer, Recorder(), rule="fedmedian")
    grid = AnsweringGrid(list(keys), answer)
    replies = grid.send_and_receive(s.configure_train(1, base_record(), ConfigRecord(), grid))
    arrays, _ = s.aggregate_train(1, replies)
    assert arrays is not None
    for name in BASE:
        np.testing.assert_array_equal(arrays[name].numpy(), shifted(2.0)[name])
    assert all(len(r.content["arrays"]) == 0 for r in replies)  # FedMedian took the arrays out of the replies
    [commit] = committer.commits
    stored = sorted(loads(store.get(e.update_hash))[0]["w"][0, 0] for e in commit.updates)
    assert stored == sorted(shifted(v)["w"][0, 0] for v in shifts.values())


def test_identities_are_taken_only_from_joined_accounts_with_a_valid_signature() -> None:
    joined, other = KEYS[0], KEYS[1]
    forged = {3: "forged"}

    def answer(node: int, msg: Message) -> Message:
        if node in forged:  # joined's account, but the signature is over another node id
            return identity_reply(msg, joined, node + 1)
        return identity_reply(msg, joined if node == 1 else other, node)

    recorder = Recorder()
    book = IdentityBook(view([joined]), retry_s=3600.0)
    book.subscribe(recorder)
    grid = AnsweringGrid([1, 2, 3], answer)
    assert JoinedGrid(grid, book).get_node_ids() == [1]
    assert book.account_of(1) == joined.ss58_address and book.account_of(2) is None
    reasons = {e["node_id"]: e["reason"] for e in recorder.of("identity-refused")}
    assert "not a joined client" in reasons[2] and "identity signature" in reasons[3]
    asked = len(grid.sent)
    JoinedGrid(grid, book).get_node_ids()
    assert len(grid.sent) == asked  # refused nodes are not asked again before retry_s

    grid.nodes.append(4)  # the same client on a new SuperNode: its account moves there
    forged.clear()
    grid.answer = lambda node, msg: identity_reply(msg, joined, node)
    assert JoinedGrid(grid, book).get_node_ids() == [4]
    assert book.account_of(1) is None


def test_the_grid_gives_up_instead_of_waiting_forever_for_clients() -> None:
    book = IdentityBook(view([KEYS[0]]))
    grid = AnsweringGrid([1], lambda node, msg: identity_reply(msg, KEYS[0], node))
    assert JoinedGrid(grid, book, min_nodes=2, give_up_at=None).get_node_ids() == [1]
    with pytest.raises(DeadlineNear, match="1 joined clients identified, the round needs 2"):
        JoinedGrid(grid, book, min_nodes=2, give_up_at=0.0).get_node_ids()


def test_make_rule_builds_flowers_strategies() -> None:
    from flwr.serverapp.strategy import FedAvg, FedMedian, FedTrimmedAvg, Krum, MultiKrum

    rules = {"fedavg": (parse_rule("fedavg"), FedAvg), "fedmedian": (parse_rule("fedmedian"), FedMedian),
             "fedtrimmedavg": (parse_rule("fedtrimmedavg:0.35"), FedTrimmedAvg),
             "krum": (parse_rule("krum:1"), Krum), "multikrum": (parse_rule("multikrum:1:3"), MultiKrum)}
    for rule, cls in rules.values():
        inner = make_rule(rule, min_clients=4, fraction=0.5)
        assert type(inner) is cls
        assert (inner.min_train_nodes, inner.min_available_nodes, inner.fraction_train) == (4, 4, 0.5)
        assert inner.fraction_evaluate == 0.0
    assert make_rule(rules["fedtrimmedavg"][0], min_clients=4, fraction=1.0).beta == 0.35
    multikrum = make_rule(rules["multikrum"][0], min_clients=4, fraction=1.0)
    assert (multikrum.num_malicious_nodes, multikrum.num_nodes_to_select) == (1, 3)


# The committer on the real runtime -----------------------------------------------------------------

def signed_entries(task_id: int, round_: int, base: bytes, clients: Iterable[Keypair],
                   examples: dict[bytes, int]) -> tuple[SignedEntry, ...]:
    entries = []
    for key in sorted(clients, key=lambda k: k.public_key):
        digest = update_hash(shifted(float(round_)))
        signed = fl.sign_update(key, task_id, round_, base, digest, examples[key.public_key])
        entries.append(SignedEntry(key.ss58_address, digest, examples[key.public_key], signed.scheme,
                                   signed.signature))
    return tuple(entries)


def test_the_committer_puts_a_round_on_chain_and_the_chain_refuses_others_with_named_errors(chain: Chain) -> None:
    initial = model_hash(BASE)
    task = running_task(chain, initial_model_hash=initial, examples=[40, 60, 80], min_clients=2)
    commit = RoundCommit(task.task_id, 1, initial, b"\x22" * 32, b"\x33" * 32, "file:///store/x",
                         signed_entries(task.task_id, 1, initial, task.clients, task.examples))
    receipt = ChainCommitter(chain, AGGREGATOR).commit(commit)
    assert receipt.block_number is not None

    record = chain.federated_tasks.rounds(task.task_id, 1)
    assert bytes(record.update_root) == commit.update_root()
    assert bytes(record.global_model_hash) == b"\x22" * 32 and bytes(record.round_doc_hash) == b"\x33" * 32
    assert [(fl.account_public_key(str(a)), int(n)) for a, n in record.participants] == \
        [(e.public_key, e.num_examples) for e in commit.updates]
    assert int(chain.federated_tasks.tasks(task.task_id).last_committed) == 1

    base2 = b"\x22" * 32
    by_client = ChainCommitter(chain, CLIENTS[3])
    round2 = RoundCommit(task.task_id, 2, base2, b"\x44" * 32, b"\x55" * 32, "file:///store/y",
                         signed_entries(task.task_id, 2, base2, task.clients, task.examples))
    with pytest.raises(CommitRefused) as refused:
        by_client.commit(round2)
    assert refused.value.error == "FederatedTasks.NotAggregator" and refused.value.round == 2
    skipping = RoundCommit(task.task_id, 3, base2, b"\x44" * 32, b"\x55" * 32, "file:///store/y",
                           signed_entries(task.task_id, 3, base2, task.clients, task.examples))
    with pytest.raises(CommitRefused, match="RoundOutOfOrder"):
        ChainCommitter(chain, AGGREGATOR).commit(skipping)
    wrong_base = RoundCommit(task.task_id, 2, b"\x66" * 32, b"\x44" * 32, b"\x55" * 32, "file:///store/y",
                             signed_entries(task.task_id, 2, b"\x66" * 32, task.clients, task.examples))
    with pytest.raises(CommitRefused, match="BaseModelMismatch"):
        ChainCommitter(chain, AGGREGATOR).commit(wrong_base)
    assert int(chain.federated_tasks.tasks(task.task_id).last_committed) == 1
    ChainCommitter(chain, AGGREGATOR).commit(round2)
    assert int(chain.federated_tasks.tasks(task.task_id).last_committed) == 2


def test_a_round_commit_keeps_the_pallets_participant_order() -> None:
    entries = signed_entries(TASK, 1, b"\x01" * 32, KEYS[:3], {k.public_key: 5 for k in KEYS[:3]})
    with pytest.raises(ValueError, match="sorted by account"):
        RoundCommit(TASK, 1, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, "", tuple(reversed(entries)))
    with pytest.raises(ValueError, match="sorted by account"):
        RoundCommit(TASK, 1, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, "", (entries[0], entries[0]))



# The ServerApp's configuration and the app directory -------------------------------------------------

def test_the_run_config_is_read_with_its_declared_keys_and_bad_values_are_refused() -> None:
    from workers.fl.server_app import RunConfig, ServerAppError

    config = RunConfig.from_run_config({"task-id": 7, "chain-url": "ws://127.0.0.1:9944", "store": "/s",
                                        "trusted-stores": "/a,/b", "journal": "/j.json"})
    assert config == RunConfig(7, "ws://127.0.0.1:9944", "/s", ("/a", "/b"), "/j.json")
    for bad, message in (({"task-id": -1, "chain-url": "ws://x"}, "task-id"), ({"task-id": True, "chain-url": "x"},
                         "task-id"), ({"task-id": 1, "chain-url": ""}, "chain-url"),
                         ({"task-id": 1, "chain-url": "ws://x", "store": 3}, "strings")):
        with pytest.raises(ServerAppError, match=message):
            RunConfig.from_run_config(bad)


def test_the_journal_keeps_the_last_committed_round(tmp_path) -> None:
    from workers.fl.server_app import journal_observer

    path = tmp_path / "journal.json"
    observe = journal_observer(str(path))
    detail = {"task_id": 7, "round": 2, "global_model_hash": "ab", "round_doc_hash": "cd", "block_number": 9,
              "round_s": 1.0}
    observe("refused", {"round": 2})
    assert not path.exists()
    observe("round-committed", detail)
    observe("round-committed", {**detail, "round": 3})
    assert json.loads(path.read_text()) == {"task_id": 7, "round": 3, "global_model_hash": "ab",
                                            "round_doc_hash": "cd", "block_number": 9}


def test_the_app_directory_is_a_valid_flower_app_that_ships_no_code(tmp_path) -> None:
    import tomllib

    from flwr.common.config import validate_fields_in_config

    from workers.fl.fab import RUN_CONFIG_KEYS, paratrain_version, write_app_dir

    (tmp_path / "stale.py").write_text("print('not shipped')")
    app_dir = write_app_dir(tmp_path)
    assert [p.name for p in app_dir.iterdir()] == ["pyproject.toml"]
    config = tomllib.loads((app_dir / "pyproject.toml").read_text())
    ok, errors, warnings = validate_fields_in_config(config)
    assert ok and errors == [] and warnings == []
    components = config["tool"]["flwr"]["app"]["components"]
    assert components == {"serverapp": "workers.fl.server_app:app", "clientapp": "workers.fl.client_app:app"}
    assert config["project"]["version"] == paratrain_version() and config["project"]["dependencies"] == []
    assert tuple(config["tool"]["flwr"]["app"]["config"]) == RUN_CONFIG_KEYS
    from workers.fl.server_app import RunConfig
    RunConfig.from_run_config({**config["tool"]["flwr"]["app"]["config"], "chain-url": "ws://x"})
