"""The trainer's steps per second vs the bare jitted step at the quickstart's config.

  python -m benchmarks.trainer_throughput [--steps 300] [--log_period 50]

The trainer runs `experiments/quickstart.gin` as `hyperprompt train` does (input pipeline,
per-step finiteness check, logging; no eval, one checkpoint at the end, after the last
logged window); its rate is the median of its logged `steps_per_sec` windows after the
first (which holds the compile). The bare step is the same model, optimizer and donated
jitted step cycling over the pipeline's first 50 batches, already on the device, with no
host work, from a fresh initialisation over the same steps as the trainer's windows (the
step's speed on CPU drifts as training goes on, by up to 20% here), timed before and after
the trainer (their mean). Goal: the trainer within 5% of the bare step.

A third figure separates the loop from the input pipeline: the trainer again with its
pipeline replaced by the same 50 batches held in memory and cycled (`in_memory`), i.e. the
loop's own cost (finiteness checks, logging, progress bar, host-to-device copies). A fourth
is the input pipeline alone: the host CPU (all its threads) it spends a batch, which on CPU
training is taken from the step's cores.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from unittest import mock

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
IN_MEMORY_BATCHES = 50


def in_memory(train_batches):
    """`train_batches` yielding its first IN_MEMORY_BATCHES batches, cycled: no pipeline
    work in the loop."""
    return lambda *args, **kwargs: itertools.cycle(
        list(itertools.islice(train_batches(*args, **kwargs), IN_MEMORY_BATCHES)))


def quickstart_batches() -> Iterator[dict]:
    """The quickstart's training batches (host numpy), as the trainer reads them."""
    name = cli._macro("MIXTURE_OR_TASK_NAME")
    return data.train_batches(name, data.task_registry(name), cli._macro("TASK_FEATURE_LENGTHS"),
                              cli._macro("BATCH_SIZE"), seed=0)


def bare_step(steps: int, log_period: int) -> Callable[[], float]:
    """A function returning the jitted step's steps/s over steps log_period+1 .. steps from
    a fresh initialisation, as the trainer's windows after the first."""
    model = cli._bound("MODEL/macro.value")
    lengths = cli._macro("TASK_FEATURE_LENGTHS")
    host_batches = itertools.islice(quickstart_batches(), IN_MEMORY_BATCHES)
    mesh = partitioning.make_mesh(1)
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        boxed = abstract_boxed(model, lengths)
        tx = make_optimizer(learning_rate=cli._macro("LEARNING_RATE"),
                            groups=conditioner_of(model.module).param_groups(),
                            layer_axes=layer_axes(boxed))
        batches = [partitioning.shard_batch(batch, mesh) for batch in host_batches]
        step = jax.jit(train_lib.make_train_step(model, tx, 1, False), donate_argnums=0)

        def run(state, first, last):
            for i in range(first, last):
                state, metrics = step(state, batches[i % len(batches)])
            jax.block_until_ready(metrics["loss"])
            return state

        def steps_per_s():
            with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
                state = run(init_state(model, tx, lengths, mesh, 0, boxed), 0, log_period)
                return (steps - log_period) / timed(lambda: run(state, log_period, steps))

        return steps_per_s


def pipeline_cpu_ms(batches: int = 300) -> float:
    """Host CPU ms (every thread of this process) per batch of the quickstart's training
    input pipeline, after 20 batches of warm-up."""
    pipeline = quickstart_batches()
    for _ in itertools.islice(pipeline, 20):
        pass
    start = time.process_time()
    for _ in itertools.islice(pipeline, batches):
        pass
    return (time.process_time() - start) / batches * 1e3


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
        bare_steps_per_s = bare_step(args.steps, args.log_period)
        before = bare_steps_per_s()
        windows = trainer_steps_per_s(os.path.join(tmp, "run"), args.steps, args.log_period)
        after = bare_steps_per_s()
        with mock.patch.object(data, "train_batches", in_memory(data.train_batches)):
            memory = statistics.median(trainer_steps_per_s(
                os.path.join(tmp, "in_memory"), args.steps, args.log_period))
        pipeline_ms = pipeline_cpu_ms()
    bare = (before + after) / 2
    trainer = statistics.median(windows)
    print(f"bare step {bare:.2f} steps/s (before {before:.2f}, after {after:.2f}); trainer "
          f"{trainer:.2f} steps/s = {trainer / bare:.3f}x the bare step; batches from memory "
          f"{memory:.2f} steps/s = {memory / bare:.3f}x; the input pipeline alone "
          f"{pipeline_ms:.1f} ms of host CPU a batch")
    write_result("trainer_throughput", {
        "gin_file": GIN_FILE, "steps": args.steps, "log_period": args.log_period,
        "bare_steps_per_s": bare, "bare_before": before, "bare_after": after,
        "trainer_steps_per_s": trainer, "trainer_windows": windows,
        "trainer_x_bare": trainer / bare, "in_memory_steps_per_s": memory,
        "in_memory_x_bare": memory / bare, "pipeline_cpu_ms_per_batch": pipeline_ms})


if __name__ == "__main__":
    main()
