"""What the benchmarks share: the machine's description, interleaved timing, result files.

Times taken on a shared machine drift; a ratio is only meaningful when its two sides are
measured alternately in one run, so `interleaved` runs one step of each variant in turn and
reports each variant's median.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def cores() -> int:
    """CPU cores this process may run on (what XLA's CPU thread pool uses)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine() -> dict:
    """CPU model, cores and library versions, recorded beside every result."""
    import jax

    cpu = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {"cpu": cpu, "cores": cores(), "jax": jax.__version__,
            "backend": jax.default_backend(), "python": platform.python_version()}


def timed(fn: Callable[[], object]) -> float:
    """Seconds `fn()` takes; `fn` blocks until its result is ready."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(steps: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 2
                ) -> dict[str, float]:
    """{name: median seconds of one call}: every variant once per round, `repeats` rounds
    after `warmup` rounds; each callable blocks until its result is ready."""
    for _ in range(warmup):
        for fn in steps.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            samples[name].append(timed(fn))
    return {name: statistics.median(times) for name, times in samples.items()}


def copy_bandwidth_gb_s(megabytes: int = 256, repeats: int = 5) -> float:
    """GB/s that one jitted pass reading and writing a float32 buffer reaches on the default
    device (bytes read + written / median time): the ceiling of memory-bound work."""
    import jax
    import jax.numpy as jnp

    buffer = jnp.ones((megabytes * 2**20 // 4,), jnp.float32)
    double = jax.jit(lambda a: a * 2.0)
    seconds = interleaved({"copy": lambda: jax.block_until_ready(double(buffer))}, repeats)
    return 2 * buffer.nbytes / seconds["copy"] / 1e9


def write_result(name: str, result: dict) -> str:
    """benchmarks/results/<name>.json with the machine's description; returns the path."""
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w") as f:
        json.dump({"machine": machine(), **result}, f, indent=1)
    print(f"wrote {path}")
    return path
