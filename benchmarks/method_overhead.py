"""Every registered method's train step vs vanilla's: step time and peak memory ratios.

  python -m benchmarks.method_overhead [--sizes tiny small base] [--repeats 5]

Each method (`hyperprompt.methods.base.registered()`, so every method in
hyperprompt/methods/ is included) trains on a T5 1.1 backbone of the size's dims (tiny: the
2+2-layer d=128 test size with T5's vocabulary; small; base), scanned layers, Adafactor,
its own parameter groups (a method that freezes the backbone updates fewer parameters),
inputs 64, targets 16, 4 tasks, batch 8 (base: 2, to keep `make bench` short). Step time:
the method's step and vanilla's run alternately in one loop, median of each. Peak memory:
XLA's accounting of the compiled step (arguments + temporaries + outputs not aliased to
donated inputs), deterministic.
Goals (the issue's): HyperPrompt <= 1.10x vanilla, every other method <= 1.25x.
"""

from __future__ import annotations

import argparse
import dataclasses

import flax.linen as nn
import jax
import numpy as np

from benchmarks import report
from benchmarks.common import interleaved, write_result
from benchmarks.vs_torch import SIZES
from hyperprompt import partitioning
from hyperprompt.methods.base import conditioner_of, registered
from hyperprompt.models.configs import CONFIGS
from hyperprompt.optim import layer_axes, make_optimizer
from hyperprompt.state import abstract_boxed, init_state
from hyperprompt.step_memory import build_model
from hyperprompt.train import make_train_step

BACKBONES = {"tiny": SIZES["tiny"][0], "small": CONFIGS["t5_1_1_small"],
             "base": CONFIGS["t5_1_1_base"]}
BATCH = {"tiny": 8, "small": 8, "base": 2}
NUM_TASKS = 4
LENGTHS = {"inputs": 64, "targets": 16}


class MethodStep:
    """One method's jitted, donated train step on its own state, with its peak memory."""

    def __init__(self, config, method: str, batch: dict, mesh):
        model = build_model(config, method, NUM_TASKS)
        groups = conditioner_of(model.module).param_groups()
        self.mesh = mesh
        with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
            boxed = abstract_boxed(model, LENGTHS)
            tx = make_optimizer(groups=groups, layer_axes=layer_axes(boxed))
            self.state = init_state(model, tx, LENGTHS, mesh, seed=0, boxed=boxed)
            self.batch = partitioning.shard_batch(batch, mesh)
            self.step_fn = jax.jit(make_train_step(model, tx, 0, False), donate_argnums=0)
            compiled = self.step_fn.lower(self.state, self.batch).compile()
        memory = compiled.memory_analysis()
        self.peak_bytes = (memory.argument_size_in_bytes + memory.temp_size_in_bytes
                           + memory.output_size_in_bytes - memory.alias_size_in_bytes)

    def __call__(self):
        with jax.set_mesh(self.mesh):
            self.state, metrics = self.step_fn(self.state, self.batch)
        return jax.block_until_ready(metrics["loss"])


def random_batch(vocab: int, batch_size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    tokens = lambda n: rng.integers(2, vocab, size=(batch_size, n)).astype(np.int32)  # noqa: E731
    return {"encoder_input_tokens": tokens(LENGTHS["inputs"]),
            "decoder_input_tokens": tokens(LENGTHS["targets"]),
            "decoder_target_tokens": tokens(LENGTHS["targets"]),
            "task_ids": (np.arange(batch_size) % NUM_TASKS).astype(np.int32)}


def overheads(size: str, methods: list[str], repeats: int) -> dict:
    """{method: step-time and peak-memory ratios to vanilla} at one size."""
    config = dataclasses.replace(BACKBONES[size], scan_layers=True)
    batch = random_batch(config.vocab_size, BATCH[size])
    mesh = partitioning.make_mesh(1, jax.devices()[:1])
    vanilla = MethodStep(config, "vanilla", batch, mesh)
    rows = {}
    for method in methods:
        step = MethodStep(config, method, batch, mesh)
        times = interleaved({"vanilla": vanilla, method: step}, repeats, warmup=1)
        rows[method] = {"step_x_vanilla": times[method] / times["vanilla"],
                        "memory_x_vanilla": step.peak_bytes / vanilla.peak_bytes,
                        "step_ms": times[method] * 1e3, "vanilla_step_ms": times["vanilla"] * 1e3,
                        "peak_mib": step.peak_bytes / 2**20,
                        "vanilla_peak_mib": vanilla.peak_bytes / 2**20}
        print(f"  {size:6s} {method:20s} step x{rows[method]['step_x_vanilla']:.2f} "
              f"memory x{rows[method]['memory_x_vanilla']:.2f}", flush=True)
        del step
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--methods", nargs="+", default=None,
                        help="registered method names (default: every one but vanilla); the "
                             "other methods' rows of an earlier result are kept")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    methods = args.methods or [name for name in sorted(registered()) if name != "vanilla"]
    results = {size: overheads(size, methods, args.repeats) for size in args.sizes}
    earlier = report.load("method_overhead") if args.methods else None
    if earlier:  # each row is its own interleaved run, so rows of two runs sit together
        sizes = [*earlier["sizes"], *(s for s in results if s not in earlier["sizes"])]
        results = {size: {**earlier["sizes"].get(size, {}), **results.get(size, {})}
                   for size in sizes}
    write_result("method_overhead", {"batch_size": BATCH, "lengths": LENGTHS,
                                     "repeats": args.repeats, "sizes": results})


if __name__ == "__main__":
    main()
