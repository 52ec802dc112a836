"""The harness's children die with their parent and are stopped as a group (paratrain.local), so a benchmark
or a test run killed with -9 leaves no node behind."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from paratrain.local import die_with_parent, stop_group

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux only")

# A parent that starts `sleep` the harness's way, prints the child's pid and waits to be killed.
PARENT = """
import subprocess, sys, time
from paratrain.local import die_with_parent
child = subprocess.Popen(["sleep", "60"], start_new_session=True, preexec_fn=die_with_parent)
print(child.pid, flush=True)
time.sleep(60)
"""


def _gone(pid: int, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":  # a zombie waiting for init: dead
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_a_child_dies_when_its_parent_is_killed_with_9() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        parent.kill()
        parent.wait()
        assert _gone(child), "the child outlived its parent"
    finally:
        parent.kill()
        parent.wait()


def test_stop_group_stops_the_leaders_children_too() -> None:
    leader = subprocess.Popen(["sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE, text=True,
                              start_new_session=True, preexec_fn=die_with_parent)
    assert leader.stdout is not None
    grandchild = int(leader.stdout.readline())
    status = stop_group(leader, signal.SIGTERM, timeout=5)
    assert status == -signal.SIGTERM
    assert _gone(grandchild), "the leader's own child was left running"

