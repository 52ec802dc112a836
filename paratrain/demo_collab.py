"""`paratrain demo --collab`: DeCAI's experiment on an embedded devnet, in about a minute (docs/collab.md).

A NearestCentroid model of scikit-learn's breast_cancer lives on chain (pallet CollaborativeModels). A good agent
and a bad agent (labels flipped, twice the deposit budget, contributing a sixth as often) feed it one example
per turn over simulated days, every contribution, refund and take a real extrinsic, Deposit-Refund-Take deciding
who pays (workers/collab/experiment.py). The same stream is run again with the good agent alone, for the
accuracy to compare with. The report: accuracy (deployed, honest-only, with the bad agent), each agent's balance
before and after, two pictures. Exit status 0 only when the bad agent lost and the good agent gained.
"""
from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

log = logging.getLogger(__name__)
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
UNIT = 10**12


@dataclass(frozen=True)
class CollabDemoOptions:
    port: int = 0
    out: str = "."
    samples: int | None = None


def run_collab_demo(options: CollabDemoOptions, console: Console | None = None) -> int:
    """Run both streams and report; the exit status (module docstring). Devnet stops on the way out."""
    from paratrain.local import DevnetThread, dev_keypair
    from runtime_bindings import Chain
    from workers.collab.experiment import Experiment, ExperimentConfig, decai_agents
    from workers.collab.plots import plot_accuracy, plot_balances

    console = console or Console()
    out = Path(options.out).expanduser().resolve()
    try:
        with ExitStack() as stack:
            devnet = stack.enter_context(DevnetThread(options.port, 0))
            chain = stack.enter_context(Chain.connect(devnet.url, timeout=30))
            console.print(f"devnet at [bold]{devnet.url}[/bold]; the model and both agents' money live on it")
            runs = {}
            for label, agents in (("good and bad agents", decai_agents()), ("good agent alone", decai_agents()[:1])):
                config = ExperimentConfig(agents=agents, samples=options.samples)
                runs[label] = _with_progress(console, label, lambda obs, c=config: Experiment(
                    chain, dev_keypair("Alice"), c, observers=[obs]).run())
    except KeyboardInterrupt:
        console.print("interrupted: devnet stopped")
        return EXIT_INTERRUPTED
    both, honest = runs["good and bad agents"], runs["good agent alone"]
    accuracy_png = plot_accuracy(runs, out / "collab-accuracy.png")
    balances_png = plot_balances(both, out / "collab-balances.png")
    console.print(_report(both, honest))
    console.print(f"pictures: {accuracy_png}, {balances_png}")
    gained, lost = both.change("Good") > 0, both.change("Bad") < 0
    if not (gained and lost):
        console.print("[red]✗ the mechanism did not make the bad agent pay the good one[/red]")
        return EXIT_FAILED
    console.print("[green]✓[/green] the bad agent lost what the good agent gained; accuracy "
                  f"{both.final_accuracy:.1%} against {honest.final_accuracy:.1%} without it")
    return EXIT_OK


def _with_progress(console: Console, label: str, run: Any) -> Any:
    with Progress(TextColumn(f"{label:<20}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        task = progress.add_task(label, total=None, note="")

        def observe(event: str, detail: dict[str, Any]) -> None:
            if event == "started":
                progress.update(task, total=detail["samples"])
            elif event == "turn":
                progress.update(task, completed=detail["sample"], note=f"day {detail['t_s'] / 86_400:.1f}")
            elif event == "evaluated":
                progress.update(task, note=f"accuracy {detail['accuracy']:.1%}")

        return run(observe)


def _report(both: Any, honest: Any) -> Table:
    table = Table(title=f"DeCAI on devnet: accuracy deployed {both.baseline_accuracy:.1%}, good agent alone "
                        f"{honest.final_accuracy:.1%}, with the bad agent {both.final_accuracy:.1%} (PARA)")
    for column in ("agent", "start", "end", "change", "added", "refunds", "takes", "fees"):
        table.add_column(column, justify="right" if column != "agent" else "left")
    for name, row in both.agents.items():   # PARA; "end" adds the fees back (docs/collab.md)
        table.add_row(name, *(f"{row[k] / UNIT:,.0f}" for k in ("start", "end")), f"{both.change(name) / UNIT:+,.1f}",
                      str(row["contributed"]), f"{row['refunded'] / UNIT:,.1f}", f"{row['taken'] / UNIT:,.1f}",
                      f"{row['fees'] / UNIT:.3f}")
    return table


__all__ = ["CollabDemoOptions", "run_collab_demo"]
