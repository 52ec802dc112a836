"""A local Ray cluster owned by one `with` block: started with ray.init, and every one of its processes
gone when the block ends (a Ctrl-C that reached the raylet first included)."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger("paratrain.local")
MARKER_ENV = "PARATRAIN_LOCAL_RAY"  # set in the environment of every process of the cluster
# Ray's unix sockets live under <temp dir>/session_<date>_<pid>/sockets/ and a socket path has at most 107
# bytes: a session directory longer than this goes to a short directory of its own (removed too)
_MAX_TEMP_DIR = 40


class RayCluster:
    """`ray.init` of a local cluster with `cpus` CPUs, its session under `temp_dir` (None: Ray's default).

    Its worker processes run at normal priority (worker_niceness 0, as workers.runner.ensure_ray starts
    them: at Ray's default nice 15 training loses every core to any other process of the host) unless
    RAY_worker_niceness is set. Daemons in this process join it (workers.runner.ensure_ray sees it
    initialized); daemons in other processes join it at `address`."""

    def __init__(self, temp_dir: Path | None = None, cpus: int = 2) -> None:
        self.temp_dir, self.cpus, self.own_dir = temp_dir, cpus, False
        self.marker = f"{os.getpid()}-{uuid.uuid4().hex}"
        self.address = ""

    def __enter__(self) -> RayCluster:
        import ray

        options: dict[str, Any] = {}
        if self.temp_dir is not None:
            if len(str(self.temp_dir)) > _MAX_TEMP_DIR:
                self.temp_dir = Path(tempfile.mkdtemp(prefix="paratrain-ray-", dir="/tmp"))
                self.own_dir = True
            options["_temp_dir"] = str(self.temp_dir)
        if "RAY_worker_niceness" not in os.environ:
            options["_system_config"] = {"worker_niceness": 0}
        os.environ[MARKER_ENV] = self.marker  # inherited by the raylet, its agents and every Ray worker
        try:
            ray.init(num_cpus=self.cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                     **options)
            self.address = ray.get_runtime_context().gcs_address
        except BaseException:  # Ctrl-C in the middle of ray.init: what it started goes too
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        import ray

        try:
            ray.shutdown()  # also after a ray.init that did not finish
        except Exception as exc:  # noqa: BLE001 - the processes are ended below in any case
            log.debug("ray.shutdown: %s", exc)
        finally:
            # a Ctrl-C in a terminal reaches Ray's processes too: the raylet may be gone before ray.shutdown()
            # and leave its agents behind. Every process of this cluster inherited the marker: end the rest.
            end_processes_marked(self.marker)
            os.environ.pop(MARKER_ENV, None)
            if self.own_dir and self.temp_dir is not None:
                shutil.rmtree(self.temp_dir, ignore_errors=True)


def _marked(needle: bytes) -> list[int]:
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:  # not Linux: ray.shutdown() is all there is
        return []
    for name in names:
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            continue
    return found


def end_processes_marked(marker: str, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` s, every process (but this one) started with MARKER_ENV=`marker`
    in its environment (Ray rewrites its processes' command lines, not their environments)."""
    needle = f"{MARKER_ENV}={marker}".encode()
    pids = _marked(needle)
    _signal_each(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        time.sleep(0.1)
        pids = _marked(needle)
    _signal_each(pids, signal.SIGKILL)


def _signal_each(pids: list[int], sig: signal.Signals) -> None:
    """Send `sig` to each pid; one that has exited meanwhile is passed over."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)
