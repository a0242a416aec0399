"""Run files written atomically: a temporary file beside the target, then `os.replace`.

A kill or a full disk mid-write leaves the previous version (or no file), never a
truncated one. One process writes a run's files (`run_lock`), so the temporary name
only needs the process id to be unique.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """`open(path, mode)` whose content appears at `path` only once the block completes."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_json(path: str, value: Any) -> None:
    """`value` as indented JSON at `path`, atomically."""
    with atomic_write(path) as f:
        json.dump(value, f, indent=1)


def write_jsonl(path: str, rows: list[dict]) -> None:
    """`rows` as JSON lines at `path` (its folder made), atomically."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_write(path) as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
