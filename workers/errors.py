"""The daemons' own typed errors: what workers.retry decides on, and what the daemons raise to each other's
callers. They live apart from the daemons so that the policy (workers.retry) and the checks
(workers.result_checks) can name them without importing a daemon."""
from __future__ import annotations


class DaemonSetupError(RuntimeError):
    """A condition that stops a daemon with a clear message (no traceback): each daemon's error class."""


class DaemonError(DaemonSetupError):
    """The worker daemon cannot go on: a clear message, no traceback."""


class ValidatorError(DaemonSetupError):
    """The validator daemon cannot go on: a clear message, no traceback."""


class TaskRefused(Exception):
    """This worker will not (or can no longer) work on a task; the message says why."""


class TaskCancelled(Exception):
    """Training was stopped because the claim was released (deadline) or the daemon is stopping."""


class DaemonStopped(BaseException):
    """Raised in the daemon's thread by SIGINT/SIGTERM: stop now, keep the claim."""


class Abstain(Exception):
    """This validator cannot judge the result (e.g. the requester's spec document is unreachable)."""


class ModelUnusable(Exception):
    """The attested model weights cannot be loaded into the task's model or evaluated: the worker's fault
    (another architecture, a document that is not PTTS1, ...), a failed check, never a crash."""
