"""Train-step time of unrolled vs scanned vs rematerialised layers, as ratios in one run.

  python benchmarks/step_time.py [--size t5_1_1_small] [--steps 5] [--batch 8]

Ratios (not absolute times) are the result: they hold across machines.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import flax.linen as nn
import jax
import numpy as np

from hyperprompt import partitioning
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import CONFIGS
from hyperprompt.models.t5 import Transformer
from hyperprompt.optim import make_optimizer
from hyperprompt.state import init_state
from hyperprompt.train import make_train_step

LENGTHS = {"inputs": 64, "targets": 16}


def time_variant(config, steps: int, batch_size: int) -> tuple[float, float]:
    """(compile seconds, seconds per step) for one config."""
    model = EncoderDecoderModel(Transformer(config))
    tx = make_optimizer()
    mesh = partitioning.make_mesh(1)
    rng = np.random.default_rng(0)
    batch = {k: rng.integers(2, 1000, size=(batch_size, LENGTHS[f])).astype(np.int32)
             for k, f in [("encoder_input_tokens", "inputs"), ("decoder_input_tokens", "targets"),
                          ("decoder_target_tokens", "targets")]}
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        state = init_state(model, tx, LENGTHS, mesh, seed=0)
        step = jax.jit(make_train_step(model, tx, 0, False), donate_argnums=0)
        sharded = partitioning.shard_batch(batch, mesh)
        start = time.perf_counter()
        state, metrics = step(state, sharded)
        jax.block_until_ready(metrics["loss"])
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(steps):
            state, metrics = step(state, sharded)
        jax.block_until_ready(metrics["loss"])
        return compile_s, (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="t5_1_1_small", choices=sorted(CONFIGS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    base = CONFIGS[args.size]
    variants = {
        "unrolled": base,
        "scanned": dataclasses.replace(base, scan_layers=True),
        "scanned+remat(dots)": dataclasses.replace(base, scan_layers=True, remat_policy="dots"),
    }
    results = {name: time_variant(cfg, args.steps, args.batch) for name, cfg in variants.items()}
    ref_compile, ref_step = results["unrolled"]
    print(f"{args.size}, batch {args.batch}, lengths {LENGTHS}, {jax.devices()[0].platform}")
    print(f"{'variant':22s} {'compile x':>10s} {'step x':>8s}")
    for name, (compile_s, step_s) in results.items():
        print(f"{name:22s} {compile_s / ref_compile:10.2f} {step_s / ref_step:8.2f}")


if __name__ == "__main__":
    main()
