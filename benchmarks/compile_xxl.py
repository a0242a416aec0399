"""Every method's train step compiled for a simulated pod: XLA's per-device memory.

  python -m benchmarks.compile_xxl [--sizes xxl xl base] [--methods ...] [--mesh 64 4]

T5 1.1 XXL (11B), XL and Base, every registered method (8 tasks), on a data x model mesh of
CPU devices standing in for TPU chips (default 64 x 4 = 256); bf16 activations, float32
parameters, Adafactor factored, scanned layers with full rematerialisation; batch 128 x
inputs 512, targets 128. Parameters and optimizer state are never allocated
(`hyperprompt/step_memory.py`). Rule sets: t5x's 1-D parameter partitioning (`1d`: split
over `model` only) and FSDP (`fsdp`: also over `data`). Goal: <= 16 GiB per device for every
method at XXL. The figures are XLA CPU's buffer assignment for the partitioned program; a
TPU compile schedules differently, so temporaries there may differ somewhat.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

GOAL_GIB = 16
RULE_SETS = {"1d": (1, 1), "fsdp": (1, 2)}
SIZES = {"xxl": "t5_1_1_xxl", "xl": "t5_1_1_xl", "base": "t5_1_1_base"}
LENGTHS = {"inputs": 512, "targets": 128}
BATCH_SIZE = 128
NUM_TASKS = 8


def _simulate_devices(count: int) -> None:
    """`count` CPU devices; must run before jax's backend starts."""
    flag = f"--xla_force_host_platform_device_count={count}"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def measure(size: str, method: str, rules_name: str, mesh) -> dict:
    from hyperprompt import partitioning, step_memory
    from hyperprompt.models.configs import CONFIGS

    config = dataclasses.replace(CONFIGS[SIZES[size]], scan_layers=True, remat_policy="full",
                                 dtype="bfloat16")
    model = step_memory.build_model(config, method, NUM_TASKS)
    rules = partitioning.standard_logical_axis_rules(1, RULE_SETS[rules_name][1])
    start = time.perf_counter()
    compiled = step_memory.compile_train_step(model, LENGTHS, BATCH_SIZE, mesh, rules)
    seconds = time.perf_counter() - start
    memory = step_memory.device_bytes(compiled)
    return {**dataclasses.asdict(memory), "peak": memory.peak, "compile_s": seconds}


def _earlier_cells(mesh) -> dict:
    """{size: {rules: {method: row}}} of benchmarks/results/compile_xxl.json when it was
    made with the same mesh and settings, else empty."""
    from benchmarks.report import load

    earlier = load("compile_xxl") or {}
    same = (earlier.get("mesh") == {"data": mesh[0], "model": mesh[1]}
            and earlier.get("batch_size") == BATCH_SIZE and earlier.get("lengths") == LENGTHS)
    return earlier["sizes"] if same else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--methods", nargs="+", default=None,
                        help="registered method names (default: all, vanilla included)")
    parser.add_argument("--rules", nargs="+", default=list(RULE_SETS), choices=list(RULE_SETS))
    parser.add_argument("--mesh", nargs=2, type=int, default=(64, 4), metavar=("DATA", "MODEL"))
    args = parser.parse_args()
    _simulate_devices(args.mesh[0] * args.mesh[1])

    import jax
    from tqdm import tqdm

    from benchmarks.common import write_result
    from benchmarks.report import compile_xxl as table
    from hyperprompt import partitioning
    from hyperprompt.methods.base import registered

    mesh = partitioning.make_mesh(args.mesh[1], jax.devices()[:args.mesh[0] * args.mesh[1]])
    methods = args.methods or sorted(registered())
    cells = [(s, r, m) for s in args.sizes for r in args.rules for m in methods]
    results = _earlier_cells(args.mesh)  # a subset run updates only its own cells
    for size, rules, method in tqdm(cells, desc="compiling", unit="step"):
        row = measure(size, method, rules, mesh)
        results.setdefault(size, {}).setdefault(rules, {})[method] = row
        tqdm.write(f"  {size:4s} {rules:4s} {method:20s} peak {row['peak'] / 2**30:6.2f} GiB "
                   f"(compile {row['compile_s']:.0f} s)")
    result = {"mesh": {"data": args.mesh[0], "model": args.mesh[1]}, "batch_size": BATCH_SIZE,
              "lengths": LENGTHS, "num_tasks": NUM_TASKS, "goal_gib": GOAL_GIB,
              "sizes": results}
    write_result("compile_xxl", result)
    print("\n".join(table(result)))


if __name__ == "__main__":
    main()
