"""The aggregator's Flower side: one SuperLink child for all its tasks and one app directory and run per task
(workers.fl.flower_procs, workers.fl.fab). Kept apart from workers.fl.aggregator so that the chain side can be
driven in tests without starting Flower, and so that what the daemon starts is in one place."""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("paratrain.aggregator")


class FlowerLink:
    """A SuperLink on `host:port` (a free port chosen once, kept across restarts: the chain publishes it), its
    environment carrying the aggregator's loaded key for the ServerApp's committer (workers.fl.child_key)."""

    def __init__(self, state_dir: Path, *, host: str, port: int, keypair: Any, env: Mapping[str, str],
                 notify: Callable[..., None]) -> None:
        self.state_dir, self.host, self._port = state_dir, host, port
        self.keypair, self.env, self.notify = keypair, dict(env), notify
        self._link: Any = None

    @property
    def endpoint(self) -> str:
        from workers.fl.flower_procs import free_port

        if not self._port:
            self._port = free_port(self.host)
        return f"{self.host}:{self._port}"

    def ensure(self) -> bool:
        """The SuperLink is up; True when it was (re)started just now, so every run it held is gone."""
        from workers.fl.child_key import child_env
        from workers.fl.flower_procs import SuperLinkProcess

        if self._link is not None and self._link.alive:
            return False
        if self._link is not None:
            log.warning("the SuperLink exited; starting it again:\n%s", self._link.tail(20))
            self.close()
        endpoint = self.endpoint
        home = self.state_dir / "superlink"
        home.mkdir(parents=True, exist_ok=True)
        link = SuperLinkProcess(home, host=self.host, port=self._port, log_path=self.state_dir / "superlink.log",
                                env={**child_env(self.keypair, {}), **self.env})
        self._link = link.start()
        self.notify("fl-link-up", endpoint=endpoint)
        return True

    def prepare(self, task_id: int) -> Path:
        """The task's app directory (the paratrain app: it names installed modules, ships no code)."""
        from workers.fl.fab import write_app_dir

        return write_app_dir(self.state_dir / f"app-{task_id}")

    def submit(self, task_id: int, run_config: Mapping[str, Any]) -> int:
        """A new run of the task's app; its run id (FlowerProcessError when `flwr run` refuses)."""
        self.ensure()
        return int(self._link.submit_run(self.state_dir / f"app-{task_id}", dict(run_config)))

    def finished(self, run_id: int) -> str | None:
        """The run's final status once it finished, else None (also None when the SuperLink cannot say)."""
        from workers.fl.flower_procs import FlowerProcessError

        try:
            status = str(self._link.run_status(run_id))
        except FlowerProcessError as exc:
            log.info("run %s: status unknown (asked again later): %s", run_id, exc)
            return None
        return status if status.startswith("finished") else None

    def stop_run(self, run_id: int) -> None:
        from workers.fl.flower_procs import FlowerProcessError

        if self._link is None or not self._link.alive:
            return
        try:
            self._link.stop_run(run_id)
        except FlowerProcessError as exc:
            log.debug("run %s not stopped (it may have finished): %s", run_id, exc)

    def close(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            try:
                link.stop()
            except Exception as exc:  # noqa: BLE001 - stopping must not fail the daemon's exit
                log.warning("stopping the SuperLink: %s", exc)
