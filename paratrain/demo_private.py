"""`paratrain demo --federated --secagg --dp-epsilon E`: the SecAgg+ demo with every client training under local
DP-SGD, each spending its own privacy budget on chain.

Everything of `paratrain demo --federated --secagg` (paratrain/demo_secagg.py), and (docs/dp-sgd.md, "Federated
clients"):

- each data owner first sets a privacy budget of epsilon BUDGET_EPSILON for its shard (PrivacyBudgets.set_budget),
  a public promise to the people in it; joining the task reserves the task's cap E of it;
- //Alice posts the task with create_private_task: Opacus DP-SGD on every client (PRV accountant, clipping
  MAX_GRAD_NORM, delta DELTA) under SecAgg+, with the smallest noise multiplier that keeps the smallest shard (the
  largest sample rate) within E over all the rounds, so no client has to stop early;
- every client's masked update carries its cumulative DP claim, signed with its commitment; each accepted round
  spends the claim's increment of the client's budget; the validators recompute the claims of the audited
  clients;
- at the end every client takes its stake back (withdraw_stake), which closes its reservation: the table shows
  the epsilon each spent and what its budget has left, and the PNG the accuracy against the epsilon claimed.

It exits 0 when the SecAgg demo's conditions hold and every client spent more than nothing, at most E, of its
budget.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from paratrain.demo_federated import CLIENTS
from paratrain.demo_secagg import SecAggDemo

if TYPE_CHECKING:
    from workers.fl.dp_task import FlDp

BUDGET_EPSILON = 8.0     # each owner's budget for its shard, of which the task reserves its cap
DELTA = 1e-5
BUDGET_DELTA = 1e-4
MAX_GRAD_NORM = 1.0
ACCOUNTANT = "prv"
BATCH_SIZE, LOCAL_EPOCHS = 32, 3
HYPERPARAMETERS = {"local_epochs": LOCAL_EPOCHS, "lr": 0.1, "batch_size": BATCH_SIZE}   # a larger step than SGD's


def noise_for(epsilon: float, rounds: int, sizes: list[int]) -> float:
    """The smallest noise multiplier on the chain's grid keeping every client within `epsilon` over `rounds`
    rounds: the smallest shard has the largest sample rate (batch / n) and, at the engine's step count, the
    largest loss, so it decides."""
    from runtime_bindings.privacy import rate_from_chain
    from workers.fl.dp_claims import round_steps
    from workers.privacy.accounting import noise_multiplier_for, sample_rate_of

    smallest = min(sizes)
    return noise_multiplier_for(epsilon, DELTA, rate_from_chain(sample_rate_of(smallest, BATCH_SIZE)),
                                rounds * round_steps(smallest, BATCH_SIZE, LOCAL_EPOCHS), ACCOUNTANT)


class PrivateSecAggDemo(SecAggDemo):
    checks = "holdout, the audited clients' reveals and DP claims"
    extra_columns = ("ε spent", "ε left")

    min_clients_per_round = CLIENTS   # every client every round: the same rounds on every run (demo_federated)
    hyperparameters: ClassVar[dict[str, float]] = HYPERPARAMETERS

    @property
    def cap(self) -> float:
        """The task's epsilon cap per client (--dp-epsilon)."""
        if self.options.dp_epsilon is None:
            raise ValueError("the private demo runs with a dp_epsilon")
        return self.options.dp_epsilon

    def _dp_terms(self) -> FlDp:
        """Every owner's budget for its shard first (joining reserves the cap of it), then the terms."""
        from runtime_bindings.privacy import delta_to_chain, epsilon_to_chain
        from workers.fl.dp_task import FlDp

        for keypair, shard in zip(self.clients, self.split.shards, strict=True):
            self.chain.privacy_budgets.set_budget(keypair, "0x" + shard.hash, epsilon_to_chain(BUDGET_EPSILON),
                                                  delta_to_chain(BUDGET_DELTA))
        self.say(f"each data owner set a privacy budget of epsilon {BUDGET_EPSILON:g} (delta {BUDGET_DELTA:g}) for "
                 "its shard")
        sizes = [s.num_examples for s in self.split.shards]
        sigma = noise_for(self.cap, self.options.rounds, sizes)
        self.say(f"DP-SGD on every client: noise multiplier {sigma:g} (the smallest keeping the {min(sizes)}-example "
                 f"shard within epsilon {self.cap:g} over {self.options.rounds} rounds), clipping "
                 f"{MAX_GRAD_NORM:g}, delta {DELTA:g}")
        return FlDp(ACCOUNTANT, self.cap, DELTA, MAX_GRAD_NORM, sigma)

    def _settle(self) -> int:
        seen = self.tasks[0]
        self._observe(seen)
        for keypair in self.clients:   # closes each reservation: what no accepted round spent goes back
            self.chain.federated_tasks.withdraw_stake(keypair, seen.task_id)
        self.say(f"every data owner took its stake back, closing its reservation of epsilon {self.cap:g}")
        return super()._settle()

    def _extra_cells(self, index: int) -> tuple[list[str], bool]:
        from runtime_bindings.privacy import epsilon_from_chain

        budget = self.chain.privacy_budgets.budgets("0x" + self.split.shards[index].hash)
        spent = epsilon_from_chain(int(budget.spent_epsilon))
        left = epsilon_from_chain(int(budget.epsilon) - int(budget.spent_epsilon) - int(budget.reserved_epsilon))
        return [f"{spent:.3f}", f"{left:.3f}"], 0 < spent <= self.cap

    def _plot(self, png: Path) -> None:
        """Accuracy against the median cumulative epsilon claimed in each round (rounds marked)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from runtime_bindings.privacy import epsilon_from_chain

        seen = self.tasks[0]
        privacy = self.chain.privacy_budgets
        points = []
        for number in sorted(seen.accuracy):
            claims = sorted(epsilon_from_chain(int(c.epsilon)) for _, c in privacy.federated_claims.entries(
                seen.task_id, number))
            if claims:
                points.append((claims[(len(claims) - 1) // 2], seen.accuracy[number], number))
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label="fedavg + SecAgg+ + DP-SGD")
        for x, y, number in points:
            ax.annotate(f"round {number}", (x, y), textcoords="offset points", xytext=(4, -12))
        ax.set_xlabel("epsilon spent so far (median claim)")
        ax.set_ylabel("accuracy on the holdout (validators)")
        ax.set_ylim(0, 1)
        ax.set_xlim(left=0)
        ax.set_title(f"digits, {CLIENTS} clients, local DP-SGD, cap epsilon {self.cap:g}")
        ax.legend()
        png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png, dpi=100, bbox_inches="tight")
        plt.close(fig)


__all__ = ["PrivateSecAggDemo", "noise_for"]
