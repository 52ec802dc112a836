"""The aggregator's strategy on a central-DP task, without Ray: Flower's fixed-clipping wrapper inside ChainStrategy
releases the round with a fresh seed the round document records, the commit carries the aggregator's claim for one
release, and under client-side clipping an update over the norm is refused instead of aggregated."""
from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ConfigRecord
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from tests.unit.test_fl_strategy_unit import (
    BASE,
    KEYS,
    AnsweringGrid,
    RecordingCommitter,
    base_record,
    flower_run,  # noqa: F401 - the autouse fixture: the run Flower's runtime sets
    identity_reply,
    train_reply,
    view,
)
from workers.artifacts import ArtifactStore
from workers.fl.arrays import loads
from workers.fl.central_dp import released_model, update_norm
from workers.fl.central_noise import CentralDpError
from workers.fl.central_task import CentralTask
from workers.fl.spec import decode_round_document, parse_rule
from workers.fl.strategy import ChainStrategy, IdentityBook, make_rule
from workers.observers import Recorder
from workers.privacy.accounting import DpTerms

NORM = 0.5



def central(clipped_by: str, cap: int = 50_000_000) -> CentralTask:
    return CentralTask(clipped_by, DpTerms(accountant="rdp", epsilon_cap=cap, delta=10_000_000_000,
                                           max_grad_norm=int(NORM * 1e6), noise_multiplier=1_000_000))


def moved(by: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: (v + by * rng.normal(size=v.shape)).astype(v.dtype) for k, v in BASE.items()}


def configured(tmp_path, clipped_by: str, updates: dict[int, dict[str, np.ndarray]], cap: int = 50_000_000):
    """A central-DP strategy whose round is configured and answered: the messages it sent, the replies, and what
    it commits to."""
    from dataclasses import replace

    task = replace(view(KEYS[:len(updates)], min_clients=2), central=central(clipped_by, cap))
    store, committer, recorder = ArtifactStore(tmp_path), RecordingCommitter(), Recorder()
    identities = IdentityBook(task, query_timeout=0.5)
    inner = task.central.wrap(make_rule(parse_rule("fedavg"), min_clients=2, fraction=1.0), 2)
    s = ChainStrategy(inner, task=task, committer=committer, store=store, identities=identities, first_round=1,
                      node_wait_s=0.0)
    s.subscribe(recorder)
    keys = {node: KEYS[node - 1] for node in updates}

    def answer(node: int, msg):
        if msg.metadata.message_type == "query.identity":
            return identity_reply(msg, keys[node], node)
        return train_reply(msg, keys[node], updates[node])

    grid = AnsweringGrid(list(keys), answer)
    messages = list(s.configure_train(1, base_record(), ConfigRecord({}), grid))
    return s, messages, grid.send_and_receive(messages), committer, store, recorder


def release(tmp_path, clipped_by: str, updates: dict[int, dict[str, np.ndarray]]):
    s, messages, replies, committer, store, recorder = configured(tmp_path, clipped_by, updates)
    arrays, _ = s.aggregate_train(1, replies)
    return messages, arrays, committer, store, recorder


def test_the_release_is_recorded_with_its_seed_and_claimed_as_one_release(tmp_path) -> None:
    updates = {1: moved(0.01, 1), 2: moved(2.0, 2), 3: moved(3.0, 3)}
    _, arrays, committer, store, _ = release(tmp_path, "server", updates)
    [commit] = committer.commits
    claim = commit.central_claim
    assert claim is not None and (claim.steps, claim.sample_rate, claim.max_grad_norm) == (1, 10**9, 500_000)
    assert claim.epsilon == central("server").claim(1).epsilon > 0
    doc = decode_round_document(store.get(commit.round_doc_hash))
    assert doc.central_dp is not None and doc.central_dp.std == pytest.approx(1.0 * NORM / 3)
    stored = [loads(store.get(h))[0] for h in doc.update_hashes]
    ours = released_model(BASE, stored, doc.central_dp, NORM)
    committed, _ = loads(store.get(commit.global_model_hash))
    assert all(ours[k].tobytes() == committed[k].tobytes() for k in BASE)   # what validators recompute
    assert arrays is not None


def test_two_rounds_get_different_seeds(tmp_path) -> None:
    updates = {1: moved(1.0, 1), 2: moved(1.0, 2)}
    _, _, first, store1, _ = release(tmp_path / "a", "server", updates)
    _, _, second, store2, _ = release(tmp_path / "b", "server", updates)
    seeds = [decode_round_document(s.get(c.commits[0].round_doc_hash)).central_dp.seed
             for s, c in ((store1, first), (store2, second))]
    assert seeds[0] != seeds[1]


def test_client_clipping_sends_the_norm_and_refuses_an_update_over_it(tmp_path) -> None:
    far = moved(1.0, 4)
    scale = NORM / update_norm(BASE, far, sorted(BASE)) * 0.99
    within = {k: (BASE[k] + (v - BASE[k]) * scale).astype(v.dtype) for k, v in far.items()}
    updates = {1: within, 2: {k: (v + 1e-4).astype(v.dtype) if k == "b" else v for k, v in within.items()},
               3: moved(3.0, 5)}
    messages, _, committer, _, recorder = release(tmp_path, "client", updates)
    assert all(m.content["config"][KEY_CLIPPING_NORM] == NORM for m in messages)
    [refusal] = recorder.of("refused")
    assert refusal["client"] == KEYS[2].ss58_address and "over the task's clipping norm" in refusal["reason"]
    [commit] = committer.commits
    assert sorted(e.account for e in commit.updates) == sorted(k.ss58_address for k in KEYS[:2])


def test_a_round_beyond_the_cap_is_not_released(tmp_path) -> None:
    s, _, replies, committer, _, recorder = configured(tmp_path, "server", {1: moved(1.0, 1), 2: moved(1.0, 2)},
                                                           cap=1_000_000)   # round 1 alone spends 4.7
    with pytest.raises(CentralDpError, match="above each client's cap"):
        s.aggregate_train(1, replies)
    assert committer.commits == [] and recorder.of("round-committed") == []
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 3   # the base and the two updates: no noised model and no round document were stored
