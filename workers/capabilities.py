"""What this machine can offer a training task, and whether a worker's declared capabilities exceed it.

A Trainer declares its capabilities on chain (`Workers.register`, `Workers.update_capabilities`) and the
scheduler offers it only the tasks whose requirements those capabilities meet; a worker that declared more
than its machine has would claim tasks it cannot run and lose them (or its stake) later. So `paratrain stake`
declares what `detect()` finds unless told otherwise, and the worker daemon refuses to start when the
declaration on chain asks for more than the machine has (`shortfalls`).

Detection reads what a process may really use, not what the host has:
- CPUs: the scheduler affinity (a `taskset` or cpuset), capped by the cgroup's CPU quota (v2 `cpu.max`,
  v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`) rounded up, the way a container's limit appears;
- memory: physical memory, capped by the cgroup's limit (v2 `memory.max`, v1 `memory.limit_in_bytes`);
- GPUs: torch's CUDA devices and the first one's name, when torch is installed and CUDA is present. torch is
  imported only then: it is optional, and slow to import.
Each cgroup level from the process's own up to the root is read, since a parent's limit binds its children.
"""
from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.domain import Capabilities

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
# cgroup v1 writes "no limit" as the largest page-aligned signed 64-bit value; anything this large is none
_V1_UNLIMITED = 2**62
MIB = 2**20


def from_chain(value: Any) -> Capabilities:
    """The plain form of `runtime_bindings.generated.types.Capabilities` (its gpu_model is Bytes):
    orchestrator.domain's, the one the scheduler matches requirements against."""
    return Capabilities(int(value.cpus), int(value.gpus), value.gpu_model.text, int(value.memory_mb))


def shortfalls(machine: Capabilities, declared: Capabilities) -> list[str]:
    """What `declared` asks for beyond `machine`, one phrase each (empty: the machine has it all).

    A declared GPU model must name the machine's (case-insensitive; "H200" matches "NVIDIA H200"), since a
    task asking for a model is a task this machine could not run otherwise."""
    found: list[str] = []
    if declared.cpus > machine.cpus:
        found.append(f"{declared.cpus} CPUs declared, {machine.cpus} available")
    if declared.memory_mb > machine.memory_mb:
        found.append(f"{declared.memory_mb} MiB of memory declared, {machine.memory_mb} available")
    if declared.gpus > machine.gpus:
        found.append(f"{declared.gpus} GPUs declared, {machine.gpus} available")
    elif declared.gpus and declared.gpu_model \
            and declared.gpu_model.strip().lower() not in machine.gpu_model.lower():
        found.append(f"GPU model {declared.gpu_model!r} declared, this machine has {machine.gpu_model or 'none'!r}")
    return found


def detect(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> Capabilities:
    """This process's CPUs, memory and GPUs (see the module's docstring)."""
    gpus, model = detect_gpus()
    return Capabilities(detect_cpus(root, proc_cgroup), gpus, model, detect_memory_mb(root, proc_cgroup))


def detect_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_limit(root, proc_cgroup)
    return max(1, min(cpus, quota) if quota is not None else cpus)


def detect_memory_mb(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int:
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = 0
    limit = cgroup_memory_limit(root, proc_cgroup)
    usable = min(physical, limit) if physical and limit is not None else (physical or limit or 0)
    return usable // MIB


def detect_gpus() -> tuple[int, str]:
    """(CUDA devices, the first one's name); (0, "") without torch or CUDA."""
    if importlib.util.find_spec("torch") is None:
        return 0, ""
    import torch

    if not torch.cuda.is_available():
        return 0, ""
    count = torch.cuda.device_count()
    return count, (torch.cuda.get_device_name(0) if count else "")


# cgroups ------------------------------------------------------------------------------------------
def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int | None:
    """The tightest CPU quota on this process's cgroup path, in whole CPUs rounded up; None: no quota."""
    limits: list[float] = []
    for directory in _cgroup_dirs(root, proc_cgroup, "cpu"):
        v2 = _read(directory / "cpu.max")
        if v2 is not None:
            quota, _, period = v2.partition(" ")
            if quota != "max" and _positive(quota) and _positive(period):
                limits.append(int(quota) / int(period))
            continue
        v1_quota, v1_period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
        if v1_quota is not None and v1_period is not None and _positive(v1_quota) and _positive(v1_period):
            limits.append(int(v1_quota) / int(v1_period))
    return max(1, math.ceil(min(limits))) if limits else None


def cgroup_memory_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int | None:
    """The tightest memory limit on this process's cgroup path, in bytes; None: no limit."""
    limits: list[int] = []
    for directory in _cgroup_dirs(root, proc_cgroup, "memory"):
        for name in ("memory.max", "memory.limit_in_bytes"):
            text = _read(directory / name)
            if text is not None and _positive(text) and int(text) < _V1_UNLIMITED:
                limits.append(int(text))
    return min(limits) if limits else None


def _cgroup_dirs(root: Path, proc_cgroup: Path, controller: str) -> Iterator[Path]:
    """The directories of this process's cgroup and of each ancestor, for `controller`: the v2 unified
    hierarchy (line "0::/path") under `root`, and the v1 hierarchy that mounts the controller (a line such as
    "4:cpu,cpuacct:/path") under `root/<its controllers>` or `root/<controller>`. In a container whose
    cgroup namespace makes /proc/self/cgroup name a path not mounted here, the mount's root still counts."""
    text = _read(proc_cgroup)
    for line in (text or "").splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        names = [c for c in controllers.split(",") if c]
        if controllers == "":
            bases = [root]
        elif controller in names:
            bases = [root / controllers, root / controller]
        else:
            continue
        for base in bases:
            if not base.is_dir():
                continue
            relative = Path(path.strip().lstrip("/"))
            seen: set[Path] = set()
            for candidate in (base / relative, *(base / p for p in relative.parents)):
                if candidate.is_dir() and candidate not in seen:
                    seen.add(candidate)
                    yield candidate
            break


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _positive(text: str) -> bool:
    return text.isascii() and text.isdigit() and int(text) > 0
