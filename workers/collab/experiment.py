"""DeCAI's experiment on devnet: a perceptron that lives on chain, a good and a bad contributor, Deposit-Refund-Take
deciding who pays (Harris and Waggoner 2019, section 5; their simulation's `simulate.py`).

The data ship with scikit-learn (breast_cancer, 569 examples, 30 features, two classes): shuffled with the seed,
a fifth held out as the test set, and of the rest a share (8 %, as DeCAI's IMDB run) trains the model before it is
deployed, standardised with that share's statistics: a NearestCentroid of its class means by default, or a
Perceptron fitted with scikit-learn (its weights and intercept go on chain in fixed point). The default is the
centroid because a perceptron with a fixed learning rate, as DeCAI keeps it on chain, follows each flipped label
the bad agent sends (docs/collab.md has the figures); DeCAI's own IMDB run trained off chain with SGD's decaying
rate. The remaining examples arrive one per turn, in order, to whichever agent's turn is next
(workers/collab/agents.py). Every contribution, refund and take is a real extrinsic on the chain the caller
connects to; the chain's clock is moved to each turn's simulated time with `dev_timeTravel`, so a run covers
days of waits in a minute. Accuracy is the on-chain model's, asked through the runtime API for every test example.

Money: each agent starts with its balance; what is reported is its free balance plus the transaction fees it paid
(fees are the chain's, not the mechanism's: DeCAI's simulation has none), so what moves it is deposits held,
refunded and taken. Observers (`observers`: callables of (event, detail)) see every turn, claim and evaluation,
which is how the demo shows progress and the tests follow the run.
"""
from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from workers.collab.agents import AgentSpec, Pending, claims, contributes, label_for, next_wait, willing_deposit

UNIT = 10**12
Observer = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class ExperimentConfig:
    agents: tuple[AgentSpec, ...]
    seed: int = 0xDECA10B
    init_fraction: float = 0.08
    test_fraction: float = 0.2
    samples: int | None = None          # stream at most this many examples (a short run); None: all
    cost_weight: int = UNIT // 60       # DeCAI's simulation charges 60 / sqrt(dt); the pallet's rule is 3600 / ..
    refund_wait_s: int = 86_400
    owner_claim_wait_s: int = 9 * 86_400
    any_claim_wait_s: int = 9 * 86_400
    eval_every_s: int = 6 * 3600
    learning_rate: float = 1.0          # the perceptron's (DeCAI's deploy script's default)
    kind: str = "centroid"              # NearestCentroid (the init share's class means) or "perceptron"


@dataclass
class AgentState:
    spec: AgentSpec
    keypair: Any
    fees: int = 0
    contributed: int = 0
    refunded: int = 0       # planck back by refunds
    taken: int = 0          # planck gained by takes
    skipped: int = 0        # turns the deposit asked was above what it would pay


@dataclass
class ExperimentResult:
    model: int
    baseline_accuracy: float           # the deployed model's, before any contribution
    history: list[dict[str, Any]] = field(default_factory=list)   # {t_s, accuracy, balances: {name: planck}}
    agents: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def final_accuracy(self) -> float:
        return float(self.history[-1]["accuracy"])

    def change(self, name: str) -> int:
        return self.agents[name]["end"] - self.agents[name]["start"]


def split_data(seed: int, init_fraction: float, test_fraction: float) -> dict[str, np.ndarray]:
    """breast_cancer shuffled, split into init / stream / test, standardised with the init share's statistics."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order].astype(int)
    n_test = int(len(y) * test_fraction)
    n_init = int((len(y) - n_test) * init_fraction)
    test, init, stream = slice(0, n_test), slice(n_test, n_test + n_init), slice(n_test + n_init, None)
    mean, std = x[init].mean(axis=0), x[init].std(axis=0) + 1e-9
    scaled = np.clip((x - mean) / std, -50, 50)
    return {"x_init": scaled[init], "y_init": y[init], "x_stream": scaled[stream], "y_stream": y[stream],
            "x_test": scaled[test], "y_test": y[test]}


def initial_perceptron(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[list[float], float]:
    from sklearn.linear_model import Perceptron

    fitted = Perceptron(random_state=seed % 2**32).fit(x, y)
    return [float(w) for w in fitted.coef_[0]], float(fitted.intercept_[0])


class Experiment:
    """One run against `chain` (a runtime_bindings.Chain of a devnet): `funder` pays the agents' start balances
    and deploys the model."""

    def __init__(self, chain: Any, funder: Any, config: ExperimentConfig, *,
                 observers: Sequence[Observer] = ()) -> None:
        self.chain, self.funder, self.config, self.observers = chain, funder, config, tuple(observers)
        self.rng = random.Random(config.seed)
        self.data = split_data(config.seed, config.init_fraction, config.test_fraction)
        self.inputs: dict[int, Any] = {}

    def notify(self, event: str, **detail: Any) -> None:
        for observer in self.observers:
            observer(event, detail)

    # The chain ----------------------------------------------------------------------------------
    def _deploy(self) -> int:
        from runtime_bindings import collab as bc
        from runtime_bindings.generated import types as t

        c, x, y = self.config, self.data["x_init"], self.data["y_init"]
        if c.kind == "centroid":
            initial = t.ModelParams.NearestCentroid(
                centroids=[[bc.to_fixed(v) for v in x[y == k].mean(axis=0)] for k in (0, 1)],
                counts=[int((y == k).sum()) for k in (0, 1)])
        else:
            weights, intercept = initial_perceptron(x, y, c.seed)
            initial = t.ModelParams.Perceptron(weights=[bc.to_fixed(w) for w in weights],
                                               intercept=bc.to_fixed(intercept),
                                               learning_rate=bc.to_fixed(c.learning_rate))
        receipt = self.chain.collaborative_models.deploy(
            self.funder, x.shape[1], 2, initial,
            t.Mechanism.DepositRefundTake(
                waits=t.Waits(refund_wait_s=c.refund_wait_s, owner_claim_wait_s=c.owner_claim_wait_s,
                              any_claim_wait_s=c.any_claim_wait_s), cost_weight=c.cost_weight))
        return int(next(e.model for e in receipt.events if e.name == "ModelDeployed"))

    def _predict(self, model: int, values: Any) -> int:
        from runtime_bindings import collab as bc

        return bc.predict(self.chain, model, values)

    def accuracy(self, model: int) -> float:
        from runtime_bindings import collab as bc

        hits = [self._predict(model, bc.dense(x)) == y for x, y in zip(self.data["x_test"], self.data["y_test"])]
        return float(np.mean(hits))

    def _free(self, who: Any) -> int:
        return int(self.chain.system.account(who.ss58_address).data.free)

    def _deposit_now(self, model: int, now_s: int) -> int:
        from runtime_bindings import collab as bc

        record = self.chain.collaborative_models.models(model)
        return bc.next_deposit(record.mechanism, record.last_update_s, now_s)

    def _travel(self, t_s: int) -> None:
        target = self.start_ms + t_s * 1000
        if target > int(self.chain.timestamp.now() or 0):
            self.chain.rpc("dev_timeTravel", [target])

    def _submit(self, agent: AgentState, call: str, *args: Any) -> Any:
        """One extrinsic as `agent`; its fee counted, a refusal (the chain's rule, raced) returned as None."""
        from runtime_bindings import DispatchError

        try:
            receipt = getattr(self.chain.collaborative_models, call)(agent.keypair, *args)
        except DispatchError as exc:
            agent.fees += int(getattr(exc.receipt, "fee", 0) or 0)
            self.notify("refused", agent=agent.spec.name, call=call, error=str(exc))
            return None
        agent.fees += int(receipt.fee or 0)
        return receipt

    # The run ------------------------------------------------------------------------------------
    def run(self) -> ExperimentResult:
        from runtime_bindings import Keypair
        from runtime_bindings import collab as bc

        c = self.config
        model = self._deploy()
        agents = {a.name: AgentState(a, Keypair.create_from_uri(f"//DeCAI{a.name}/{model}")) for a in c.agents}
        for agent in agents.values():   # fresh accounts per model: runs on one chain do not share balances
            self.chain.balances.transfer_keep_alive(self.funder, agent.keypair.ss58_address, agent.spec.start_balance)
        start = {name: self._free(a.keypair) for name, a in agents.items()}
        self.start_ms = int(self.chain.timestamp.now() or 0) + 1_000
        result = ExperimentResult(model=model, baseline_accuracy=self.accuracy(model))
        xs, ys = self.data["x_stream"], self.data["y_stream"]
        total = len(ys) if c.samples is None else min(c.samples, len(ys))
        self.notify("started", model=model, samples=total, accuracy=result.baseline_accuracy)
        turns = [(next_wait(self.rng, a.spec), i, name) for i, (name, a) in enumerate(agents.items())]
        heapq.heapify(turns)
        pending: list[Pending] = []
        tried: dict[str, set[int]] = {name: set() for name in agents}
        accuracy, next_eval, sample = result.baseline_accuracy, 0, 0
        last_add = 0
        while sample < total or pending:
            t_s, order, name = heapq.heappop(turns)
            if sample >= total and t_s > last_add + c.any_claim_wait_s + c.refund_wait_s:
                break   # everything left is past every wait: the last walk below takes it
            agent = agents[name]
            self._travel(t_s)
            now_s = (self.start_ms // 1000) + t_s
            while t_s >= next_eval:
                accuracy = self.accuracy(model)
                result.history.append({"t_s": next_eval, "accuracy": accuracy, "balances": {
                    n: self._free(a.keypair) + a.fees for n, a in agents.items()}})
                self.notify("evaluated", t_s=next_eval, accuracy=accuracy)
                next_eval += c.eval_every_s
            if sample < total:
                truth, x = int(ys[sample]), xs[sample]
                sample += 1
                if contributes(self.rng, agent.spec, accuracy):
                    label = label_for(self.rng, agent.spec, truth)
                    budget = willing_deposit(self.rng, agent.spec, self._free(agent.keypair))
                    if self._deposit_now(model, now_s) <= budget:
                        receipt = self._submit(agent, "add_data", model, bc.dense(x), label)
                        if receipt is not None:
                            added = next(e for e in receipt.events if e.name == "DataAdded")
                            self.inputs[int(added.contribution)] = bc.dense(x)
                            pending.append(Pending(int(added.contribution), agent.keypair.ss58_address,
                                                   now_s, label))
                            agent.contributed += 1
                            last_add = t_s
                    else:
                        agent.skipped += 1
                self.notify("turn", agent=name, sample=sample, total=total, t_s=t_s)
            self._walk(agent, model, pending, tried[name], now_s)
            heapq.heappush(turns, (t_s + next_wait(self.rng, agent.spec), order, name))
        self._travel(last_add + c.any_claim_wait_s + c.refund_wait_s + 1)
        for agent in agents.values():   # the end: whatever is left is past every wait, each agent takes in turn
            self._walk(agent, model, pending, tried[agent.spec.name],
                       (self.start_ms // 1000) + last_add + c.any_claim_wait_s + c.refund_wait_s + 1)
        final_t = max(last_add + c.any_claim_wait_s + c.refund_wait_s + 1, next_eval)
        result.history.append({"t_s": final_t, "accuracy": self.accuracy(model), "balances": {
            n: self._free(a.keypair) + a.fees for n, a in agents.items()}})
        result.agents = {name: {"start": start[name], "end": self._free(a.keypair) + a.fees, "fees": a.fees,
                                "contributed": a.contributed, "refunded": a.refunded, "taken": a.taken,
                                "skipped": a.skipped} for name, a in agents.items()}
        self.notify("finished", accuracy=result.final_accuracy, agents=result.agents)
        return result

    def _walk(self, agent: AgentState, model: int, pending: list[Pending], tried: set[int], now_s: int) -> None:
        c = self.config

        def agrees(p: Pending) -> bool:
            return self._predict(model, self.inputs[p.contribution]) == p.label

        for claim in claims(agent.keypair.ss58_address, pending, now_s, refund_wait_s=c.refund_wait_s,
                            any_claim_wait_s=c.any_claim_wait_s, agrees=agrees, tried=tried):
            if claim.action == "report":
                tried.add(claim.contribution)
            receipt = self._submit(agent, claim.action, model, claim.contribution)
            if receipt is None:
                continue
            event = next(e for e in receipt.events if e.name in ("Refunded", "Taken"))
            if claim.action == "refund":
                agent.refunded += int(event.amount)
            else:
                agent.taken += int(event.amount)
            self.notify("claimed", agent=agent.spec.name, action=claim.action, contribution=claim.contribution,
                        amount=int(event.amount))
            entry = self.chain.collaborative_models.contributions(model, claim.contribution)
            if int(entry.claimable) == 0:
                pending[:] = [p for p in pending if p.contribution != claim.contribution]
            else:
                pending[:] = [replace(p, taken_from=True) if p.contribution == claim.contribution else p
                              for p in pending]


def decai_agents(scale: int = UNIT, balance: int = 10_000) -> tuple[AgentSpec, AgentSpec]:
    """DeCAI's IMDB agents: the bad one has twice the deposit budget and contributes a sixth as often."""
    good = AgentSpec("Good", True, balance * scale, 50 * scale, 10 * scale, 600, prob_mistake=0.0001)
    bad = AgentSpec("Bad", False, balance * scale, 100 * scale, 3 * scale, 3600)
    return good, bad


__all__ = ["AgentSpec", "Experiment", "ExperimentConfig", "ExperimentResult", "decai_agents", "initial_perceptron",
           "split_data"]
