"""Preemption: turn SIGTERM/SIGINT into a request to stop after the current step."""

from __future__ import annotations

import signal
import threading

import jax
from jax.experimental import multihost_utils

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class PreemptionGuard:
    """Context manager: while active, the signals only set a flag (old handlers restored).

    On several hosts every process must stop at the same step, so there the
    guard leaves the signals to jax's preemption service (started by
    `jax.distributed.initialize`) and asks its sync point instead.
    """

    def __init__(self):
        self._event = threading.Event()
        self._previous = {}

    def __enter__(self) -> PreemptionGuard:
        single_host = jax.process_count() == 1
        if single_host and threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, lambda *_: self._event.set())
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def should_stop(self, step: int) -> bool:
        """True once a signal arrived (multi-host: at the step all processes agreed on)."""
        if jax.process_count() > 1:
            return multihost_utils.reached_preemption_sync_point(step)
        return self._event.is_set()
