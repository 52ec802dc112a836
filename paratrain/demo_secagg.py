"""`paratrain demo --federated --secagg`: the federated demo with one FedAvg task aggregated under SecAgg+.

The same parties and processes as `paratrain demo --federated` (paratrain/demo_federated.py): devnet, //Alice
the requester, eight data owners' SuperNodes, //Bob's aggregator, //Charlie's and //Dave's validator daemons.
What changes (docs/secagg.md):

- //Alice posts one task with create_secagg_task: FedAvg under Flower's SecAgg+ (all-to-all shares, threshold
  0.6), every update clipped to L2 10, half of each round's participants audited;
- the aggregator learns only each round's sum; the validators measure the global model on the holdout and check
  the audited clients' reveals against their signed commitments and the norm bound;
- client 6 poisons by sending its update four times as long, unclipped (``scale:4``): under SecAgg nobody sees
  it in the sum, and only the audit can catch it, in a round the chain draws it;
- each data owner, as its `paratrain client` daemon does, reveals its round's update to the validators only when
  the chain draws it, and deletes it otherwise.

It exits 0 when every honest client was paid and none was slashed, and the poisoner was rejected (slashed, unpaid)
in every round it was audited in; when the chain never drew it, the demo says so: a probabilistic audit is what
the clients consented to.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.table import Table

from paratrain.demo_federated import (
    CLIENT_STAKE,
    EXIT_FAILED,
    EXIT_OK,
    UNIT,
    FederatedDemo,
    TaskSeen,
)

if TYPE_CHECKING:
    from workers.fl.dp_task import FlDp

SECAGG_POISONERS = {6: "scale:4"}
NORM_BOUND = 10.0          # honest digits_mlp updates of these hyperparameters measure 3.4 to 6.7
AUDIT_RATE = 500_000_000   # half of each round's participants


@dataclass
class Audits:
    """Per round: the clients the chain drew, and which of them revealed."""

    drawn: dict[int, set[int]] = field(default_factory=dict)
    revealed: dict[int, set[int]] = field(default_factory=dict)


class SecAggDemo(FederatedDemo):
    poisoners = SECAGG_POISONERS
    checks = "holdout, and the audited clients' reveals against their commitments"
    extra_columns: tuple[str, ...] = ()   # a variant's own columns of the payout table (see _extra_cells)
    min_clients_per_round = 6
    hyperparameters: ClassVar[dict[str, float]] = {"local_epochs": 3, "lr": 0.01}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.audits = Audits()

    def _post_tasks(self) -> None:
        from workers.fl.secagg_params import SecAggParams
        from workers.fl.secagg_task import SecAggTask
        from workers.fl.spec import build_spec

        opts = self.options
        self._split()
        self.say(f"//Alice split digits: holdout of {self.split.holdout_examples}, eight non-IID shards "
                 f"(alpha {opts.alpha:g}) of {self._sizes()} examples; client 6 will send its update four times "
                 "as long, unclipped (scale:4)")
        secagg = SecAggTask(SecAggParams(), update_norm_bound=NORM_BOUND, audit_rate=AUDIT_RATE)
        self._post(build_spec(recipe="digits_mlp", rule="fedavg", rounds=opts.rounds,
                              min_clients_per_round=self.min_clients_per_round, seed=opts.seed,
                              round_timeout_s=opts.round_timeout_s, hyperparameters=dict(self.hyperparameters),
                              secagg=secagg, dp=self._dp_terms()))
        self.say(f"SecAgg+: the aggregator sees only each round's sum; updates clipped to L2 {NORM_BOUND:g}; "
                 f"{AUDIT_RATE // 10**7}% of each round audited, drawn by the chain")
        self._until_join_deadline()

    def _dp_terms(self) -> FlDp | None:
        """A variant's local DP-SGD terms for the task, decided once the shards are split (none here)."""
        return None

    def _observe(self, seen: TaskSeen) -> None:
        super()._observe(seen)
        self._settle_reveals(seen)

    def _settle_reveals(self, seen: TaskSeen) -> None:
        """What each data owner's daemon does every poll: reveal a kept round if drawn, else delete it."""
        from workers.fl.client_tasks import kept_reveals
        from workers.fl.secagg_reveal import RevealState, settle_reveal

        for i, keypair in enumerate(self.clients):
            for task_id, round_, path in kept_reveals(self.root / f"client-{i}"):
                if task_id != seen.task_id:
                    continue
                state = settle_reveal(self.chain, keypair, self.store, task_id, round_, path.read_bytes())
                if not state.final:
                    continue
                path.unlink(missing_ok=True)
                if state is RevealState.REVEALED:
                    self.audits.revealed.setdefault(round_, set()).add(i)
                audit = self.chain.federated_tasks.audits(task_id, round_)
                if audit is not None and round_ not in self.audits.drawn:
                    drawn = {str(a) for a in audit.drawn}
                    self.audits.drawn[round_] = {j for j, k in enumerate(self.clients) if k.ss58_address in drawn}
                    self.say(f"task #{task_id} round {round_}: the chain drew clients "
                             f"{', '.join(str(j) for j in sorted(self.audits.drawn[round_]))} for the audit; "
                             "they reveal their update to the validators, the others keep theirs",
                             "[cyan]i[/cyan]")

    def _settle(self) -> int:
        seen = self.tasks[0]
        self._observe(seen)
        png = Path(self.options.png).expanduser().resolve()
        self._plot(png)
        fl = self.chain.federated_tasks
        table = Table(title=f"what each data owner got in task #{seen.task_id} (PARA)")
        for column in ("client", "role", "paid", "slashed", "audited in", "rejected", *self.extra_columns):
            table.add_column(column)
        honest_ok, poisoner_ok, caught, unseen = True, True, [], []
        for i, keypair in enumerate(self.clients):
            info = fl.clients(seen.task_id, keypair.ss58_address)
            paid, slashed = int(info.paid), CLIENT_STAKE - int(info.stake)
            audited = sorted(r for r, who in self.audits.drawn.items() if i in who)
            role = self.poisoners.get(i, "honest")
            extra, extra_ok = self._extra_cells(i)
            table.add_row(f"client {i}", role, f"{paid / UNIT:,.4f}", f"{slashed / UNIT:,.4f}" if slashed else "-",
                          ", ".join(map(str, audited)) or "-", str(int(info.rounds_rejected)), *extra)
            if i not in self.poisoners:
                honest_ok &= paid > 0 and slashed == 0 and int(info.rounds_rejected) == 0 and extra_ok
            elif audited:
                poisoner_ok &= int(info.rounds_rejected) >= 1 and slashed > 0
                caught.append(i)
            else:
                unseen.append(i)
        self.console.print(table)
        self.say(f"accuracy per round of {seen.rule}: [bold]{png}[/bold]")
        if not (honest_ok and poisoner_ok):
            self.say("[red]an honest client was slashed or unpaid, or an audited poisoner got away[/red]",
                     "[red]✗[/red]")
            return EXIT_FAILED
        if caught:
            self.say(f"the audit caught client(s) {', '.join(map(str, caught))}: rejected and slashed; every honest "
                     "client was paid and none slashed")
        if unseen:
            self.say(f"the chain never drew client(s) {', '.join(map(str, unseen))} for the audit, so its unclipped "
                     "update went unseen in the sum: the audit is a sample; every honest client was paid",
                     "[yellow]![/yellow]")
        return EXIT_OK

    def _extra_cells(self, index: int) -> tuple[list[str], bool]:
        """A variant's cells of client `index`'s row (extra_columns) and whether they are what an honest
        client's should be."""
        return [], True


__all__ = ["SecAggDemo"]
