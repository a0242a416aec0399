"""One `train` per MODEL_DIR: the run holds MODEL_DIR/train.lock while it writes there.

The lock file records its owner's pid and host (filelock's SoftFileLock). A lock whose
owner is gone (this host, and its pid no longer runs, or runs another process) is stale
and taken over, so a killed run never leaves MODEL_DIR stuck. A live owner, or one on
another host (which this host cannot probe), refuses the second run with one line.
eval, infer and report take no lock: they only read the checkpoints.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import filelock

from hyperprompt.errors import UsageError

LOCK_FILE = "train.lock"


def _owner(path: str) -> str:
    """'pid N on host H' as the lock file records it (SoftFileLock: pid, host lines)."""
    try:
        pid, host = open(path).read().splitlines()[:2]
    except (OSError, ValueError):
        return "owner not recorded"
    return f"pid {pid} on host {host.split('?pidns-')[0]}"  # filelock marks pid namespaces


@contextlib.contextmanager
def owned(model_dir: str) -> Iterator[None]:
    """Hold MODEL_DIR's lock for the block; UsageError naming the owner when it is held."""
    path = os.path.join(model_dir, LOCK_FILE)
    lock = filelock.SoftFileLock(path, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise UsageError(f"MODEL_DIR {model_dir!r} is being trained by another `hyperprompt "
                         f"train` ({_owner(path)}); wait for it or stop it, or use another "
                         f"MODEL_DIR (if that run is gone, delete {path}).") from None
    try:
        yield
    finally:
        lock.release()
