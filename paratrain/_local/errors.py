"""The harness's one error type."""
from __future__ import annotations


class HarnessError(RuntimeError):
    """A part of the local market did not start, stopped early, or missed a deadline: the message says which."""


class HarnessTimeout(HarnessError, TimeoutError):
    """A part did not get where it was waited for in time (also a TimeoutError, as callers catch it)."""
