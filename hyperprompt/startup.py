"""CLI start-up: TensorFlow for input pipelines only, without its known-harmless noise.

TensorFlow's C++ runtime prints start-up lines (oneDNN, CUDA stubs, cuInit, CPU
features) before `absl::InitializeLog`, whatever TF_CPP_MIN_LOG_LEVEL says, and
seqio warns about uncached FunctionDatasets (the synthetic tasks; resumes here skip
batches deterministically, so its shuffling concern does not apply). Both are
hidden; every other warning stays. TensorFlow is kept off accelerators (JAX owns
them; TF only feeds data). Set HYPERPROMPT_DEBUG=1 to see everything again.

Until the training loop starts (and after it ends) no step is in progress, so SIGTERM
and SIGINT stop the command at once, with status 75 and one line (`stop_on_signals`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator

from hyperprompt.errors import Stopped

DEBUG = "HYPERPROMPT_DEBUG"
HARMLESS_LOGS = (
    "Path not found",  # gin, for each search path without an included file
    "Using an uncached FunctionDataset",  # seqio, see the module docstring
    # orbax, after a damaged checkpoint failed to restore: its other reads still in flight
    # (the error itself is reported in one line)
    "Task exception was never retrieved",
    "Given directory is read only",  # orbax, for the read-only managers of eval/infer/report
    # orbax, before a step whose item _METADATA is missing is reported in one line
    'Item "default" was found in the checkpoint, but could not be restored',
)
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def debugging() -> bool:
    return os.environ.get(DEBUG, "") not in ("", "0")


@contextlib.contextmanager
def _stderr_silenced():
    """File descriptor 2 to /dev/null (C++ writes there directly), restored on exit."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _keep(record: logging.LogRecord) -> bool:
    """A logging filter: False drops the record."""
    return not record.getMessage().startswith(HARMLESS_LOGS)


# What orbax's other reads, still in flight when a damaged checkpoint failed to restore,
# raise where nobody can catch them (the failure itself is reported in one line).
RESTORE_NOISE = ("Event loop is closed", "Encountered error while reading array index")


# The same reads, when the garbage collector finds them later, as a RuntimeWarning (it may
# surface in any later command of the process, attributed to whatever line was running).
UNAWAITED = r"coroutine '.*' was never awaited"


def ignore_unawaited_reads() -> None:
    """Inside a warnings.catch_warnings(): drop the UNAWAITED RuntimeWarnings."""
    warnings.filterwarnings("ignore", UNAWAITED, RuntimeWarning)


def _drop_restore_noise(unraisable) -> None:
    """sys.unraisablehook: drops RESTORE_NOISE; anything else is reported as usual."""
    if not str(unraisable.exc_value).startswith(RESTORE_NOISE):
        sys.__unraisablehook__(unraisable)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While active (main thread), SIGTERM and SIGINT raise Stopped: no training step is
    in progress, so nothing needs checkpointing. The training loop's PreemptionGuard
    replaces these handlers while it runs."""
    def stop(signum: int, frame) -> None:
        raise Stopped(f"stopped by {signal.Signals(signum).name} outside the training loop "
                        f"(no step in progress, nothing to checkpoint); rerun the same command.")

    if threading.current_thread() is not threading.main_thread():  # signals are not ours
        yield
        return
    previous = {sig: signal.signal(sig, stop) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def quiet_start() -> None:
    """Import TensorFlow silently and on the CPU only, filter known-harmless log lines."""
    if debugging():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced():
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")
    sys.unraisablehook = _drop_restore_noise
    for name in ("", "absl", "asyncio"):
        logger = logging.getLogger(name)
        if _keep not in logger.filters:
            logger.addFilter(_keep)
