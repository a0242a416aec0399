"""The trainer's steps per second vs the bare jitted step at the quickstart's config.

  python -m benchmarks.trainer_throughput [--steps 300] [--log_period 50]

The trainer runs `experiments/quickstart.gin` as `hyperprompt train` does (input pipeline,
per-step finiteness check, logging; no eval, one checkpoint at the end, after the last
logged window); its rate is the median of its logged `steps_per_sec` windows after the
first (which holds the compile). The bare step is the same model, optimizer and donated
jitted step looping over one batch from the same pipeline, with no host work, timed before
and after the trainer (their mean). Goal: the trainer within 5% of the bare step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

import flax.linen as nn
import gin
import jax

from benchmarks.common import timed, write_result
from hyperprompt import cli, data, partitioning, run_log
from hyperprompt import train as train_lib
from hyperprompt.methods.base import conditioner_of
from hyperprompt.optim import layer_axes, make_optimizer
from hyperprompt.state import abstract_boxed, init_state

GIN_FILE = "experiments/quickstart.gin"


def bare_steps_per_s(steps: int) -> tuple[float, float]:
    """(before, after): steps/s of the jitted step alone, measured twice around nothing."""
    model = cli._bound("MODEL/macro.value")
    lengths, batch_size = cli._macro("TASK_FEATURE_LENGTHS"), cli._macro("BATCH_SIZE")
    registry = data.task_registry(cli._macro("MIXTURE_OR_TASK_NAME"))
    host_batch = next(data.train_batches(cli._macro("MIXTURE_OR_TASK_NAME"), registry,
                                         lengths, batch_size, seed=0))
    mesh = partitioning.make_mesh(1)
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        boxed = abstract_boxed(model, lengths)
        tx = make_optimizer(learning_rate=cli._macro("LEARNING_RATE"),
                            groups=conditioner_of(model.module).param_groups(),
                            layer_axes=layer_axes(boxed))
        state = {"state": init_state(model, tx, lengths, mesh, 0, boxed)}
        batch = partitioning.shard_batch(host_batch, mesh)
        step = jax.jit(train_lib.make_train_step(model, tx, 1, False), donate_argnums=0)

        def run(n):
            for _ in range(n):
                state["state"], metrics = step(state["state"], batch)
            jax.block_until_ready(metrics["loss"])

        run(2)  # compile
        return steps / timed(lambda: run(steps)), run


def trainer_steps_per_s(model_dir: str, steps: int, log_period: int) -> list[float]:
    """The trainer's logged steps/s windows after the first."""
    with gin.unlock_config():
        gin.parse_config([f"MODEL_DIR = {model_dir!r}", f"TRAIN_STEPS = {steps}",
                          f"EVAL_PERIOD = {steps}", "train_lib.train.eval_examples = 0",
                          f"train_lib.train.log_period = {log_period}"])
    gin.get_configurable(train_lib.train)()
    records = run_log.read_records(os.path.join(model_dir, run_log.LOG_FILE))
    rates = [r["steps_per_sec"] for r in records if r["kind"] == "train"]
    return rates[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--log_period", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cli.parse_gin([GIN_FILE], [f"MODEL_DIR = {tmp!r}"], [])
        before, run = bare_steps_per_s(args.steps)
        windows = trainer_steps_per_s(os.path.join(tmp, "run"), args.steps, args.log_period)
        after = args.steps / timed(lambda: run(args.steps))
    bare = (before + after) / 2
    trainer = statistics.median(windows)
    print(f"bare step {bare:.2f} steps/s (before {before:.2f}, after {after:.2f}); trainer "
          f"{trainer:.2f} steps/s = {trainer / bare:.3f}x the bare step")
    write_result("trainer_throughput", {
        "gin_file": GIN_FILE, "steps": args.steps, "log_period": args.log_period,
        "bare_steps_per_s": bare, "bare_before": before, "bare_after": after,
        "trainer_steps_per_s": trainer, "trainer_windows": windows,
        "trainer_x_bare": trainer / bare})


if __name__ == "__main__":
    main()
