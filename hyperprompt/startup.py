"""CLI start-up: TensorFlow for input pipelines only, without its known-harmless noise.

TensorFlow's C++ runtime prints start-up lines (oneDNN, CUDA stubs, cuInit, CPU
features) before `absl::InitializeLog`, whatever TF_CPP_MIN_LOG_LEVEL says, and
seqio warns about uncached FunctionDatasets (the synthetic tasks; resumes here skip
batches deterministically, so its shuffling concern does not apply). Both are
hidden; every other warning stays. TensorFlow is kept off accelerators (JAX owns
them; TF only feeds data). Set HYPERPROMPT_DEBUG=1 to see everything again.
"""

from __future__ import annotations

import contextlib
import logging
import os

DEBUG = "HYPERPROMPT_DEBUG"
HARMLESS_LOGS = (
    "Path not found",  # gin, for each search path without an included file
    "Using an uncached FunctionDataset",  # seqio, see the module docstring
)


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


def quiet_start() -> None:
    """Import TensorFlow silently and on the CPU only, filter known-harmless log lines."""
    if debugging():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced():
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")
    for name in ("", "absl"):
        logger = logging.getLogger(name)
        if _keep not in logger.filters:
            logger.addFilter(_keep)
