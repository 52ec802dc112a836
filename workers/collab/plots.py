"""Pictures of a DeCAI experiment (workers/collab/experiment.py): accuracy over simulated time, against the
honest-only run, and each agent's balance over time."""
from __future__ import annotations

from pathlib import Path

from workers.collab.experiment import ExperimentResult

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


def _save(fig: object, png: Path) -> Path:
    import matplotlib.pyplot as plt

    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100, bbox_inches="tight")   # type: ignore[attr-defined]
    plt.close(fig)   # type: ignore[arg-type]
    return png


__all__ = ["plot_accuracy", "plot_balances"]
