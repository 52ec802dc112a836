"""Committed federated rounds judged by validator daemons on a real devnet process, paid at quorum.

The market is tests/fl_judged_round.py's (a FedMedian task over four clients' real local updates, committed
by //Bob as ChainStrategy commits a round, no Flower), with two validators required: //Charlie and //Dave run
as ValidatorDaemon threads over the devnet's WebSocket, each with its own store trusting the requester's and
the aggregator's and its own state directory. Round 1 has three honest updates and one scaled x1000: both
daemons vote, the second vote is the quorum, and the pallet pays the honest clients by their factors, slashes
the x1000 client, pays the aggregator and the validators. A validator restarted from its state file votes on
nothing twice.
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from fl_judged_round import BOB, CHARLIE, CLIENTS, DAVE, Market, World, build_world, open_market, scaled

from paratrain.local import DevnetProcess
from runtime_bindings import Chain, Keypair
from workers.fl.judge import vote_key
from workers.observers import Recorder
from workers.validator import ValidatorConfig, ValidatorDaemon, ValidatorState

pytestmark = pytest.mark.slow  # a devnet process and two validator daemons that train reference updates


@pytest.fixture(scope="module")
def chain(devnet: DevnetProcess) -> Iterator[Chain]:
    with Chain.connect(devnet.ws_url, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def world() -> World:
    return build_world()


@contextlib.contextmanager
def validators(chain: Chain, market: Market, root: Path, names: tuple[str, ...],
               from_block: int) -> Iterator[dict[str, Any]]:
    """ValidatorDaemon threads following `chain` from `from_block`, each recording its round votes."""
    daemons, threads, recorders = {}, {}, {}
    for name in names:
        config = ValidatorConfig(chain_url=chain.url, key=f"//{name}", store=str(root / f"{name}-store"),
                                 trusted_stores=(market.requester.root, market.aggregator.root),
                                 state_dir=str(root / f"{name}-state"), from_block=from_block,
                                 poll_interval_s=0.2, holdout_margin_ms=1_000)
        daemons[name] = ValidatorDaemon(config)
        recorders[name] = Recorder(maxlen=100, only={"round-vote", "round-abstained"})
        daemons[name].subscribe(recorders[name])
        threads[name] = threading.Thread(target=daemons[name].run, name=f"validator-{name}", daemon=True)
        threads[name].start()
    try:
        yield {"daemons": daemons, "recorders": recorders}
    finally:
        for name, daemon in daemons.items():
            daemon.stop()
            threads[name].join(60)


def events_since(chain: Chain, first: int) -> list[Any]:
    head = chain.finalized_number()
    return [record.event for block in chain.events.finalized(from_block=first, to_block=head, own_connection=False)
            for record in block.records if record.event.pallet == "FederatedTasks"]


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def balance(chain: Chain, who: Keypair) -> int:
    return int(chain.system.account(who.ss58_address).data.free)


def test_two_validators_judge_a_round_and_the_pallet_pays_at_quorum(chain: Chain, world: World,
                                                                    tmp_path: Path) -> None:
    market = open_market(chain, world, tmp_path, validators=(CHARLIE, DAVE), validators_required=2)
    first = chain.finalized_number()
    updates = [*world.honest[:3], scaled(world.base, world.honest[3], 1000.0)]
    before = {who.ss58_address: balance(chain, who) for who in (BOB, *CLIENTS[:3])}
    with validators(chain, market, tmp_path, ("Charlie", "Dave"), first) as running:
        market.commit(updates)
        market.reveal()
        wait_for(lambda: chain.federated_tasks.rounds(market.task, 1).status.name != "Pending", 240,
                 "the round's quorum")
        record = chain.federated_tasks.rounds(market.task, 1)
        assert record.status.name == "Accepted"
        for name in ("Charlie", "Dave"):
            [(what, vote)] = running["recorders"][name].events
            assert what == "round-vote" and vote["accept"]
            assert vote["rejected_clients"] == [CLIENTS[3].ss58_address] and vote["contributions"][3] == 0
    events = events_since(chain, first)
    accepted = [e for e in events if e.name == "RoundAccepted"]
    assert len(accepted) == 1 and int(accepted[0].round) == 1
    paid = {str(e.client): int(e.amount) for e in events if e.name == "ClientPaid"}
    slashed = {str(e.client) for e in events if e.name == "ClientSlashed"}
    assert slashed == {CLIENTS[3].ss58_address} and CLIENTS[3].ss58_address not in paid
    assert paid and set(paid) <= {c.ss58_address for c in CLIENTS[:3]}
    for client, amount in paid.items():
        assert amount > 0 and balance(chain, next(c for c in CLIENTS if c.ss58_address == client)) \
            == before[client] + amount
    assert int(accepted[0].aggregator_reward) > 0 and int(accepted[0].validator_reward) > 0
    assert balance(chain, BOB) > before[BOB.ss58_address]
    for name in ("Charlie", "Dave"):
        state = ValidatorState.load(tmp_path / f"{name}-state" / "state.json")
        assert state.voted[vote_key(market.task, 1)]["accept"] and state.rounds == {}

    # a validator restarted from its state file resumes after the round and votes on nothing twice
    with validators(chain, market, tmp_path, ("Charlie",), first) as again:
        daemon = again["daemons"]["Charlie"]
        wait_for(lambda: daemon.state.last_block is not None and daemon.state.last_block >= chain.finalized_number(),
                 60, "the restarted validator to catch up")
        assert daemon.votes_cast == 0 and again["recorders"]["Charlie"].events == []

