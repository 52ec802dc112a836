"""`paratrain demo --market`: DeCAI's prediction market on an embedded devnet, in seconds (docs/collab.md).

Alice offers a bounty for improving a weak NearestCentroid of scikit-learn's breast_cancer: she commits three
test-set pieces, chain randomness names the one she reveals, Bob (good data) and Charlie (labels flipped) stake
on their contributions, she reveals the rest, and two validators (Dave and Eve) replay the contributions off
chain and submit the scores; their quorum settles the market on chain (workers/collab/market_run.py). The report:
each contributor's stake, payout and change, the validators' scores, a picture. Exit status 0 only when the bad
contributor lost and the good one gained.
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
UNIT = 10**12
PICTURE = "market-payouts.png"


@dataclass(frozen=True)
class MarketDemoOptions:
    port: int = 0
    out: str = "."
    samples: int | None = None


def run_market_demo(options: MarketDemoOptions, console: Console | None = None) -> int:
    """Run the market and report; the exit status (module docstring). Devnet stops on the way out."""
    from paratrain.local import VALIDATOR_STAKE, DevnetThread, dev_keypair, register_account
    from runtime_bindings import Chain
    from workers.collab.market_run import MarketConfig, MarketRun
    from workers.collab.plots import plot_market

    console = console or Console()
    config = MarketConfig(contributions=options.samples or MarketConfig.contributions)
    try:
        with ExitStack() as stack:
            devnet = stack.enter_context(DevnetThread(options.port, 0))
            chain = stack.enter_context(Chain.connect(devnet.url, timeout=30))
            console.print(f"devnet at [bold]{devnet.url}[/bold]; the market, its stakes and its bounty live on it")
            validators = [dev_keypair(name) for name in ("Dave", "Eve")]
            for validator in validators:
                register_account(chain, validator, "Validator", VALIDATOR_STAKE)
            run = MarketRun(chain, dev_keypair("Alice"), {"Good": dev_keypair("Bob"), "Bad": dev_keypair("Charlie")},
                            validators, config)
            result = _with_progress(console, config.contributions, run)
    except KeyboardInterrupt:
        console.print("interrupted: devnet stopped")
        return EXIT_INTERRUPTED
    picture = plot_market(result, Path(options.out).expanduser().resolve() / PICTURE)
    console.print(_report(result))
    console.print(f"picture: {picture}")
    if not (result.change("Good") > 0 > result.change("Bad")):
        console.print("[red]✗ the market did not pay the good contributor from the bad one[/red]")
        return EXIT_FAILED
    console.print(f"[green]✓[/green] settled by the validators' quorum: the good contributor gained "
                  f"{result.change('Good') / UNIT:+,.2f} PARA, the bad one {result.change('Bad') / UNIT:+,.2f}; "
                  f"{result.returned / UNIT:,.2f} PARA went back to the bounty provider")
    return EXIT_OK


def _with_progress(console: Console, samples: int, run: Any) -> Any:
    with Progress(TextColumn("prediction market    "), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("market", total=samples, note="opening")
        notes = {"opened": "participation open", "ended": "test set revealed", "scored": "a validator scored"}

        def observe(event: str, detail: dict[str, Any]) -> None:
            if event == "contributed":
                progress.update(task, completed=detail["sample"], note=f"{detail['agent']} staked")
            elif event in notes:
                progress.update(task, note=notes[event])

        run.observers = (*run.observers, observe)
        return run.run()


def _report(result: Any) -> Table:
    scores = "; ".join(", ".join(f"{name} {score:+d}" for name, score in passed) for passed in result.scored())
    table = Table(title=f"DeCAI's prediction market on devnet, settled on chain (PARA); scores per pass, in test "
                        f"samples of {result.test_samples}: {scores}")
    for column in ("contributor", "stake", "payout", "change", "fees"):
        table.add_column(column, justify="right" if column != "contributor" else "left")
    for name, row in result.agents.items():
        table.add_row(name, f"{row['stake'] / UNIT:,.2f}", f"{row['payout'] / UNIT:,.2f}",
                      f"{result.change(name) / UNIT:+,.2f}", f"{row['fees'] / UNIT:.3f}")
    return table


__all__ = ["MarketDemoOptions", "run_market_demo"]
