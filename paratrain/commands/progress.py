"""Training progress from the orchestrator: the WatchTask stream, a local history of it, the curve PNG.

The orchestrator keeps only a task's latest progress and streams live updates (WatchTask: a
"State" event, then chain events and "Progress" events), so the history of a run is whatever
was seen on that stream. `task watch` (and `task show --curve`, while it listens) appends every
progress point to a local JSON-lines file per task ($PARATRAIN_HOME/progress or
~/.cache/paratrain/progress), which `task show --curve` draws together with what it hears live.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TERMINAL = ("Accepted", "Expired", "Cancelled")
# the pallet events that change a task's status, and the status each leads to
STATUS_OF_EVENT = {"TaskClaimed": "Claimed", "ResultSubmitted": "Submitted", "TaskAccepted": "Accepted",
                   "TaskExpired": "Expired", "TaskCancelled": "Cancelled", "TaskReopened": "Open",
                   "ClaimReleased": "Open", "LeaseExpired": "Open", "VerificationTimedOut": "Expired",
                   "ResultApproved": "Approved", "ResultChallenged": "Challenged"}


@dataclass
class Point:
    step: int
    epoch: int
    loss: float
    metrics: dict[str, float] = field(default_factory=dict)
    worker: str = ""
    time: float = 0.0

    def to_json(self) -> str:
        return json.dumps({"step": self.step, "epoch": self.epoch, "loss": self.loss, "metrics": self.metrics,
                           "worker": self.worker, "time": self.time}, sort_keys=True)

    @classmethod
    def from_detail(cls, detail: dict[str, Any]) -> Point:
        metrics = detail.get("metrics") or {}
        return cls(step=int(detail.get("step") or 0), epoch=int(detail.get("epoch") or 0),
                   loss=float(detail.get("loss") or 0.0),
                   metrics={str(k): float(v) for k, v in dict(metrics).items() if isinstance(v, (int, float))},
                   worker=str(detail.get("worker") or ""), time=time.time())


def history_dir() -> Path:
    home = os.environ.get("PARATRAIN_HOME")
    return Path(home) / "progress" if home else Path.home() / ".cache" / "paratrain" / "progress"


def history_path(genesis: str, task_id: int, created_at: int) -> Path:
    """One file per (chain, task id, creation block): a new chain reusing task ids gets new files."""
    return history_dir() / f"{genesis[2:14]}-task{task_id}-b{created_at}.jsonl"


def load_history(path: Path) -> list[Point]:
    points: list[Point] = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return points
    for line in lines:
        try:
            doc = json.loads(line)
            points.append(Point(int(doc["step"]), int(doc.get("epoch", 0)), float(doc["loss"]),
                                {str(k): float(v) for k, v in (doc.get("metrics") or {}).items()},
                                str(doc.get("worker", "")), float(doc.get("time", 0.0))))
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line or a foreign line: skip it
    return points


def append_history(path: Path | None, point: Point) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(point.to_json() + "\n")
    except OSError:
        pass  # the history is a convenience; never fail a watch over it


def merge(points: list[Point]) -> list[Point]:
    """The current run's curve: the points of the latest worker (a reopened task starts a new run),
    one per step (the last one seen wins), ordered by step."""
    if not points:
        return []
    worker = points[-1].worker
    by_step = {p.step: p for p in points if p.worker == worker}
    return [by_step[s] for s in sorted(by_step)]


@dataclass
class Backoff:
    """The wait before each reconnect: doubling from `first` to `most`, and back to `first` once a stream
    has stayed up for `most` seconds (a healthy one). A stream that ends or fails at once therefore costs
    one connection per `most` seconds at worst, never a busy loop."""

    first: float = 0.5
    most: float = 15.0
    _next: float = field(init=False, default=0.0)

    def after(self, lived_s: float) -> float:
        """The delay before the next attempt, given how long the last stream lasted."""
        if lived_s >= self.most or not self._next:
            self._next = self.first
        delay = self._next
        self._next = min(self.most, delay * 2)
        return delay


OnRetry = Callable[[float, str], None]


@dataclass
class _Heard:
    points: list[Point] = field(default_factory=list)
    status: str | None = None
    events: int = 0


async def collect(target: str, task_id: int, *, wait_s: float | None,
                  on_point: Callable[[Point], None] | None = None, on_event: Callable[[Any], None] | None = None,
                  on_retry: OnRetry | None = None, backoff: Backoff | None = None) -> tuple[list[Point], str | None]:
    """Follow WatchTask for up to `wait_s` seconds (None: until the task is terminal): the progress points
    heard and the last status known.

    A stream that ends, or fails after the orchestrator has answered once, is reopened after a `backoff`
    delay (`on_retry(delay, reason)` says so), since the orchestrator ends streams itself (max_watch_s) and
    restarts. A failure before anything was heard is raised: a wrong address or a stopped orchestrator is
    better said at once than retried in silence. Malformed progress is skipped, not fatal."""
    from orchestrator.client import TaskClient

    heard = _Heard()
    backoff = backoff or Backoff()
    retryable = _retryable()

    async def follow() -> None:
        loop = asyncio.get_running_loop()
        async with TaskClient(target, timeout_s=10) as client:
            while True:
                opened = loop.time()
                try:
                    if await _listen(client, task_id, heard, on_point, on_event):
                        return
                    reason = "the stream ended"
                except retryable as exc:
                    if not heard.events:
                        raise
                    reason = str(exc) or type(exc).__name__
                delay = backoff.after(loop.time() - opened)
                if on_retry is not None:
                    on_retry(delay, reason)
                await asyncio.sleep(delay)

    try:
        await asyncio.wait_for(follow(), timeout=wait_s)
    except TimeoutError:
        pass
    return heard.points, heard.status


def _retryable() -> tuple[type[BaseException], ...]:
    """Statuses worth another stream: unavailable, overloaded, or an error with no meaning for this request
    (INTERNAL, UNKNOWN, ...); a refusal (NOT_FOUND, INVALID_ARGUMENT, ...) would only be refused again."""
    from orchestrator import errors
    from orchestrator.client import RpcError

    return errors.Unavailable, errors.ResourceExhausted, RpcError


async def _listen(client: Any, task_id: int, heard: _Heard, on_point: Callable[[Point], None] | None,
                  on_event: Callable[[Any], None] | None) -> bool:
    """One WatchTask stream; True once the task is terminal, False when the stream ends."""
    async for event in client.watch_task(task_id):
        heard.events += 1
        if event.kind == "Progress":
            try:
                point = Point.from_detail(event.detail)
            except (TypeError, ValueError, OverflowError):
                continue  # progress the orchestrator could not have meant: skip it
            heard.points.append(point)
            if on_point is not None:
                on_point(point)
        elif event.kind == "State":
            heard.status = str(event.detail.get("status") or heard.status)
        elif event.kind in STATUS_OF_EVENT:
            heard.status = STATUS_OF_EVENT[event.kind]
        if on_event is not None:
            on_event(event)
        if heard.status in TERMINAL:
            return True
    return False


def write_curve(points: list[Point], path: Path, *, title: str) -> None:
    """The training curve (loss and every metric against the step) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    steps = [p.step for p in points]
    names = sorted({name for p in points for name in p.metrics})
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        ax.plot(steps, [p.loss for p in points], marker="o" if len(points) < 30 else None, color="tab:blue",
                label="loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if names:
            ax2 = ax.twinx()
            for name, color in zip(names, ("tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")):
                xs = [p.step for p in points if name in p.metrics]
                ax2.plot(xs, [p.metrics[name] for p in points if name in p.metrics], color=color, linestyle="--",
                         marker="s" if len(xs) < 30 else None, label=name)
            ax2.set_ylabel(", ".join(names))
            lines = ax.get_legend_handles_labels()
            lines2 = ax2.get_legend_handles_labels()
            ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="best")
        else:
            ax.legend(loc="best")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
