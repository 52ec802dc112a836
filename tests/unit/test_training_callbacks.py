"""The worker daemon's training callbacks (workers.worker_config.TrainingCallback, DaemonConfig's
training_callbacks): the hook a callback gives for a task reaches training composed with the daemon's own
CancelHook, pickled as it is into Ray Train's workers, and a hook that raises is the task's failure, as a
cancellation is. No Ray: workers.runner.train is replaced by a stand-in that runs the hook as the training
workers do and, as the runner does, turns an exception in them into a TrainingError."""
from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import workers.runner
from workers import DatasetRef, Evaluation, Limits, TaskSpec
from workers.daemon import CancelHook, DaemonConfig, StepHook, TaskCancelled, TaskRefused
from workers.engine import TrainingError
from workers.task_run import RunState, TaskRun
from workers.training_session import StepHooks, TrainingSession

SPEC = TaskSpec(recipe="digits_mlp", dataset=DatasetRef("cd" * 32, "file:///data/digits"),
                evaluation=Evaluation("accuracy", 0.9), hyperparameters={"epochs": 1}, seed=3, checkpoint_every=5,
                limits=Limits(timeout_s=60, memory_mb=512))


class FileProbe:
    """A step hook that appends `step:rank` to a file: what it saw survives the pickling into a worker."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, step: int, rank: int) -> None:
        with open(self.path, "a") as f:
            f.write(f"{step}:{rank}\n")

    def seen(self) -> list[str]:
        return self.path.read_text().split() if self.path.exists() else []


class Failing:
    def __call__(self, step: int, rank: int) -> None:
        if step == 2:
            raise RuntimeError("the probe broke")


class Callback:
    def __init__(self, hook: StepHook | None) -> None:
        self.hook = hook
        self.asked: list[tuple[int, str]] = []

    def step_hook(self, task_id: int, spec: TaskSpec) -> StepHook | None:
        self.asked.append((task_id, spec.spec_hash_hex()))
        return self.hook


class Stream:
    def send(self, update: Any, heartbeat: Any) -> None:
        pass

    def close(self) -> None:
        pass


def session(tmp_path: Path, *callbacks: Callback) -> TrainingSession:
    config = DaemonConfig(orchestrator="127.0.0.1:1", chain_url="ws://127.0.0.1:1", key="//Bob",
                          guard_interval_s=60, training_callbacks=callbacks)  # the guard never ticks
    daemon = SimpleNamespace(config=config, state_dir=tmp_path, store=None, journal=None, stopping=False,
                             client=SimpleNamespace(heartbeats=Stream), _notify=lambda *a, **k: None,
                             _set=lambda **k: None, _warm_trainer=lambda: None)
    return TrainingSession(daemon, TaskRun(7, RunState.CLAIMED), SPEC, SimpleNamespace(progress=None))  # type: ignore[arg-type]


def fake_train(monkeypatch: pytest.MonkeyPatch, steps: int = 3,
               between: Any = None) -> dict[str, Any]:
    """Replace workers.runner.train: run the step hook it is given, unpickled from a copy as in a training
    worker, for `steps` steps (calling `between(step)` after each); an exception there is a TrainingError."""
    given: dict[str, Any] = {}

    def train(spec: TaskSpec, store: Any, **kw: Any) -> str:
        given.update(kw)
        hook = pickle.loads(pickle.dumps(kw["step_hook"]))
        try:
            for step in range(1, steps + 1):
                hook(step, 0)
                if between is not None:
                    between(step)
        except Exception as exc:
            raise TrainingError(f"training failed: {type(exc).__name__}: {exc}") from exc
        return "the result"

    monkeypatch.setattr(workers.runner, "train", train)
    return given


def test_the_callbacks_hook_and_the_cancel_hook_reach_training_as_one(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    probe = FileProbe(tmp_path / "steps")
    callback = Callback(probe)
    given = fake_train(monkeypatch)
    assert session(tmp_path, callback).train() == "the result"
    assert callback.asked == [(7, SPEC.spec_hash_hex())]
    hook = given["step_hook"]
    assert isinstance(hook, StepHooks) and hook.hooks[0] is probe and isinstance(hook.hooks[1], CancelHook)
    assert probe.seen() == ["1:0", "2:0", "3:0"]


def test_without_a_callbacks_hook_training_gets_the_cancel_hook_alone(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    callback = Callback(None)
    given = fake_train(monkeypatch)
    session(tmp_path, callback).train()
    assert callback.asked == [(7, SPEC.spec_hash_hex())]
    assert isinstance(given["step_hook"], CancelHook)


def test_a_hook_that_raises_refuses_the_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_train(monkeypatch)
    with pytest.raises(TaskRefused, match="the probe broke"):
        session(tmp_path, Callback(Failing())).train()


def test_a_cancelled_run_stops_after_the_callbacks_hook_saw_the_step(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    probe = FileProbe(tmp_path / "steps")
    run = session(tmp_path, Callback(probe))

    def cancel_after_step_2(step: int) -> None:
        if step == 2:
            run.cancel("the claim is gone")

    fake_train(monkeypatch, steps=5, between=cancel_after_step_2)
    with pytest.raises(TaskCancelled, match="the claim is gone"):
        run.train()
    assert probe.seen() == ["1:0", "2:0", "3:0"]  # step 3: the probe ran, then the CancelHook raised
