"""Errors the CLI turns into one line and a distinct exit status."""


class UsageError(Exception):
    """Bad input (config, data, paths): the message names the problem and the fix."""


class TrainingDiverged(Exception):
    """A non-finite loss or gradient norm stopped training (NAN_POLICY = 'stop')."""


class Preempted(Exception):
    """SIGTERM/SIGINT: a checkpoint of the current step was written; rerun to resume."""


class Stopped(BaseException):
    """SIGTERM/SIGINT outside the training loop, raised by the signal handler wherever the
    program is: a BaseException, as KeyboardInterrupt, so that no library's
    `except Exception` (optional imports, retries) swallows it."""
