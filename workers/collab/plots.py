"""Pictures of a DeCAI experiment (workers/collab/experiment.py): accuracy over simulated time, against the
honest-only run, and each agent's balance over time; of a prediction market (market_run.py): each contributor's
stake against its payout, and the scores of every pass."""
from __future__ import annotations

from pathlib import Path

from workers.collab.experiment import ExperimentResult
from workers.collab.market_run import MarketResult

UNIT = 10**12
DAY_S = 86_400


def plot_accuracy(runs: dict[str, ExperimentResult], png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, result in runs.items():
        ax.plot([h["t_s"] / DAY_S for h in result.history], [h["accuracy"] for h in result.history], label=label)
    first = next(iter(runs.values()))
    ax.axhline(first.baseline_accuracy, color="grey", linestyle=":", label="the deployed model")
    ax.set_xlabel("simulated days")
    ax.set_ylabel("test accuracy of the on-chain model")
    ax.set_title("DeCAI on devnet: breast_cancer, NearestCentroid, Deposit-Refund-Take")
    ax.legend(loc="lower right")
    return _save(fig, png)


def plot_balances(result: ExperimentResult, png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name in result.agents:
        ax.plot([h["t_s"] / DAY_S for h in result.history],
                [h["balances"][name] / UNIT for h in result.history], label=f"{name} agent")
    ax.set_xlabel("simulated days")
    ax.set_ylabel("balance (PARA, fees added back)")
    ax.set_title("who pays: deposits held, refunded and taken")
    ax.legend()
    return _save(fig, png)


def plot_market(result: MarketResult, png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (money, scores) = plt.subplots(1, 2, figsize=(10, 4))
    names = list(result.agents)
    for offset, key in ((-0.2, "stake"), (0.2, "payout")):
        money.bar([i + offset for i in range(len(names))], [result.agents[n][key] / UNIT for n in names],
                  width=0.4, label=key)
    money.set_xticks(range(len(names)), [f"{n} contributor" for n in names])
    money.set_ylabel("PARA")
    money.set_title("settled on chain: stake against payout")
    money.legend()
    for number, passed in enumerate(result.scored()):
        scores.bar([f"pass {number + 1}: {name}" for name, _ in passed], [score for _, score in passed])
    scores.axhline(0, color="grey", linewidth=0.8)
    scores.set_ylabel(f"score (test samples of {result.test_samples})")
    scores.set_title("the validators' scores")
    scores.tick_params(axis="x", labelrotation=20)
    return _save(fig, png)


def _save(fig: object, png: Path) -> Path:
    import matplotlib.pyplot as plt

    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100, bbox_inches="tight")   # type: ignore[attr-defined]
    plt.close(fig)   # type: ignore[arg-type]
    return png


__all__ = ["plot_accuracy", "plot_balances", "plot_market"]
