"""workers.capabilities: what a machine (or its container) offers, and what a declaration asks beyond it.

The cgroup readers run on directory trees laid out as the kernel mounts them (v2 unified, v1 per controller),
so every case is checked without the machine's own limits; torch is replaced by a stand-in module."""
from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path

import pytest

from orchestrator.domain import Capabilities
from workers import capabilities as caps

MACHINE = Capabilities(cpus=8, gpus=2, gpu_model="NVIDIA H200", memory_mb=65_536)


# shortfalls -----------------------------------------------------------------------------------------
def test_a_declaration_within_the_machine_has_no_shortfall() -> None:
    assert caps.shortfalls(MACHINE, MACHINE) == []
    assert caps.shortfalls(MACHINE, Capabilities(1, 0, "", 1)) == []
    # the model is matched case-insensitively, and the short name a person types matches the driver's
    assert caps.shortfalls(MACHINE, Capabilities(8, 2, "h200", 65_536)) == []
    # no GPUs declared: a model written beside them asks for nothing
    assert caps.shortfalls(Capabilities(8, 0, "", 1024), Capabilities(8, 0, "A100", 1024)) == []


@pytest.mark.parametrize(("declared", "phrase"), [
    (Capabilities(16, 2, "", 65_536), "16 CPUs declared, 8 available"),
    (Capabilities(8, 2, "", 65_537), "65537 MiB of memory declared, 65536 available"),
    (Capabilities(8, 4, "", 65_536), "4 GPUs declared, 2 available"),
    (Capabilities(8, 1, "A100", 65_536), "GPU model 'A100' declared, this machine has 'NVIDIA H200'"),
])
def test_each_excess_is_named(declared: Capabilities, phrase: str) -> None:
    assert caps.shortfalls(MACHINE, declared) == [phrase]


def test_every_excess_is_listed() -> None:
    found = caps.shortfalls(Capabilities(2, 0, "", 2048), Capabilities(4, 1, "T4", 4096))
    assert found == ["4 CPUs declared, 2 available", "4096 MiB of memory declared, 2048 available",
                     "1 GPUs declared, 0 available"]


def test_from_chain_reads_the_generated_type() -> None:
    from runtime_bindings.generated import types as t

    value = t.Capabilities.from_value({"cpus": 4, "gpus": 1, "gpu_model": "T4", "memory_mb": 2048})
    assert caps.from_chain(value) == Capabilities(4, 1, "T4", 2048)


# cgroups ---------------------------------------------------------------------------------------------
def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


def _proc(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "proc-self-cgroup"
    path.write_text(text)
    return path


def test_v2_quota_and_memory_limit(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _tree(root, {"cpu.max": "max 100000", "memory.max": "max",
                 "kubepods/pod1/cpu.max": "150000 100000", "kubepods/pod1/memory.max": str(3 * 2**30)})
    proc = _proc(tmp_path, "0::/kubepods/pod1\n")
    assert caps.cgroup_cpu_limit(root, proc) == 2  # 1.5 CPUs of quota: rounded up
    assert caps.cgroup_memory_limit(root, proc) == 3 * 2**30


def test_v2_a_parents_limit_binds_its_child(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _tree(root, {"parent/memory.max": str(2**30), "parent/child/memory.max": str(4 * 2**30),
                 "parent/cpu.max": "100000 100000", "parent/child/cpu.max": "max 100000"})
    proc = _proc(tmp_path, "0::/parent/child\n")
    assert caps.cgroup_memory_limit(root, proc) == 2**30
    assert caps.cgroup_cpu_limit(root, proc) == 1


def test_v2_without_limits(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _tree(root, {"cpu.max": "max 100000", "memory.max": "max"})
    proc = _proc(tmp_path, "0::/\n")
    assert caps.cgroup_cpu_limit(root, proc) is None
    assert caps.cgroup_memory_limit(root, proc) is None


def test_v2_in_a_container_whose_path_is_not_mounted(tmp_path: Path) -> None:
    # without a cgroup namespace /proc/self/cgroup names the host's path; the container's mount is its root
    root = tmp_path / "cg"
    _tree(root, {"cpu.max": "200000 100000", "memory.max": str(512 * 2**20)})
    proc = _proc(tmp_path, "0::/docker/0123abcd\n")
    assert caps.cgroup_cpu_limit(root, proc) == 2
    assert caps.cgroup_memory_limit(root, proc) == 512 * 2**20


def test_v1_quota_and_memory_limit(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _tree(root, {"cpu,cpuacct/job/cpu.cfs_quota_us": "300000", "cpu,cpuacct/job/cpu.cfs_period_us": "100000",
                 "cpu,cpuacct/cpu.cfs_quota_us": "-1", "cpu,cpuacct/cpu.cfs_period_us": "100000",
                 "memory/job/memory.limit_in_bytes": str(2**31),
                 "memory/memory.limit_in_bytes": "9223372036854771712"})
    proc = _proc(tmp_path, "12:memory:/job\n4:cpu,cpuacct:/job\n1:name=systemd:/\n0::/\n")
    assert caps.cgroup_cpu_limit(root, proc) == 3
    assert caps.cgroup_memory_limit(root, proc) == 2**31


def test_v1_unlimited_reads_as_no_limit(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _tree(root, {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000",
                 "memory/memory.limit_in_bytes": "9223372036854771712"})
    proc = _proc(tmp_path, "5:memory:/\n3:cpu:/\n")
    assert caps.cgroup_cpu_limit(root, proc) is None
    assert caps.cgroup_memory_limit(root, proc) is None


def test_no_cgroup_filesystem(tmp_path: Path) -> None:
    proc = tmp_path / "absent"
    assert caps.cgroup_cpu_limit(tmp_path / "none", proc) is None
    assert caps.cgroup_memory_limit(tmp_path / "none", proc) is None


def test_detection_takes_the_tighter_of_machine_and_cgroup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "cg"
    _tree(root, {"cpu.max": "200000 100000", "memory.max": str(1024 * 2**20)})
    proc = _proc(tmp_path, "0::/\n")
    monkeypatch.setattr(caps.os, "sched_getaffinity", lambda _pid: set(range(16)))
    monkeypatch.setattr(caps, "detect_gpus", lambda: (0, ""))
    assert caps.detect(root, proc) == Capabilities(cpus=2, gpus=0, gpu_model="", memory_mb=1024)
    # a cpuset narrower than the quota: the affinity binds
    monkeypatch.setattr(caps.os, "sched_getaffinity", lambda _pid: {0})
    assert caps.detect_cpus(root, proc) == 1
    # no cgroup limit: the machine's own memory
    _tree(root, {"memory.max": "max"})
    assert caps.detect_memory_mb(root, proc) > 0


# GPUs ------------------------------------------------------------------------------------------------
def _fake_torch(monkeypatch: pytest.MonkeyPatch, available: bool, names: list[str]) -> None:
    torch = types.ModuleType("torch")
    torch.__spec__ = importlib.machinery.ModuleSpec("torch", None)
    torch.cuda = types.SimpleNamespace(is_available=lambda: available, device_count=lambda: len(names),
                                       get_device_name=lambda i: names[i])
    monkeypatch.setitem(sys.modules, "torch", torch)


def test_gpus_from_torch_when_cuda_is_present(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_torch(monkeypatch, True, ["NVIDIA H200", "NVIDIA H200"])
    assert caps.detect_gpus() == (2, "NVIDIA H200")


def test_no_gpus_without_cuda_or_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_torch(monkeypatch, False, [])
    assert caps.detect_gpus() == (0, "")
    monkeypatch.setattr(caps.importlib.util, "find_spec", lambda name: None)
    assert caps.detect_gpus() == (0, "")
