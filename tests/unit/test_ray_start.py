"""ensure_ray's one retry of a local Ray start that timed out (a loaded machine's GCS coming up late), with
a stand-in for the ray module: no cluster is started here."""
from __future__ import annotations

import sys
import types

import pytest

from workers.runner import ensure_ray


class FakeRay(types.ModuleType):
    """ray.init fails `failures` times with Ray's start-up timeout, then succeeds; calls are counted."""

    def __init__(self, failures: int) -> None:
        super().__init__("ray")
        self.failures, self.inits, self.shutdowns, self.up = failures, 0, 0, False

    def is_initialized(self) -> bool:
        return self.up

    def init(self, **kwargs: object) -> None:
        self.inits += 1
        if self.inits <= self.failures:
            raise RuntimeError("Timed out waiting for file /tmp/ray/session_x/gcs_server_port_y")
        self.up = True

    def shutdown(self) -> None:
        self.shutdowns += 1


@pytest.fixture
def no_ray_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def test_a_local_start_that_timed_out_is_tried_once_more(monkeypatch: pytest.MonkeyPatch,
                                                         no_ray_address: None) -> None:
    fake = FakeRay(failures=1)
    monkeypatch.setitem(sys.modules, "ray", fake)
    ensure_ray()
    assert (fake.inits, fake.shutdowns, fake.up) == (2, 1, True)


def test_a_second_failure_is_raised(monkeypatch: pytest.MonkeyPatch, no_ray_address: None) -> None:
    fake = FakeRay(failures=2)
    monkeypatch.setitem(sys.modules, "ray", fake)
    with pytest.raises(RuntimeError, match="gcs_server_port"):
        ensure_ray()
    assert fake.inits == 2 and not fake.up


def test_joining_a_cluster_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster named by address is someone else's: its absence is reported at once, not started again."""
    fake = FakeRay(failures=1)
    monkeypatch.setitem(sys.modules, "ray", fake)
    with pytest.raises(RuntimeError):
        ensure_ray("ray://10.0.0.1:10001")
    assert fake.inits == 1
