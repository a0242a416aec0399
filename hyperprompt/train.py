"""The training loop: jit-ed, sharded train step, orbax checkpoints, periodic eval.

Everything a run needs arrives as arguments (bound by gin in gin/runs/train.gin);
the function is usable without gin.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from clu import metric_writers
from tqdm import tqdm

from hyperprompt import checkpoints, data, partitioning, plots
from hyperprompt import eval as eval_lib
from hyperprompt.convert import restore, sources
from hyperprompt.errors import Preempted, TrainingDiverged, UsageError
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.optim import make_optimizer
from hyperprompt.preemption import PreemptionGuard
from hyperprompt.run_log import RunLog
from hyperprompt.state import init_state


def check_model_dir(model_dir: str) -> None:
    """MODEL_DIR must be creatable and writable; raises UsageError otherwise."""
    try:
        os.makedirs(model_dir, exist_ok=True)
        probe = os.path.join(model_dir, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise UsageError(f"MODEL_DIR={model_dir!r} is not writable ({e.strerror}); "
                         f"pass --gin.MODEL_DIR=\"'a/writable/dir'\".") from None


def check_feature_lengths(model: EncoderDecoderModel, lengths: Mapping[str, int]) -> None:
    """Feature lengths must cover what the method needs (its `min_feature_lengths`)."""
    for key in ("inputs", "targets"):
        if key not in lengths:
            raise UsageError(f"TASK_FEATURE_LENGTHS has no {key!r}; set e.g. "
                             f"{{'inputs': 64, 'targets': 16}}.")
    conditioner = model.module.conditioner
    needed = getattr(conditioner, "min_feature_lengths", lambda: {})()
    for key, minimum in needed.items():
        if lengths[key] < minimum:
            raise UsageError(
                f"TASK_FEATURE_LENGTHS[{key!r}]={lengths[key]} is shorter than the "
                f"{type(conditioner).__name__} prompt needs ({minimum}); set it to >= {minimum}.")


def check_num_tasks(model: EncoderDecoderModel, registry: list[str]) -> None:
    """A method with per-task parameters must have one slot per task of the mixture."""
    num_tasks = getattr(model.module.conditioner, "num_tasks", None)
    if num_tasks is not None and len(registry) > num_tasks:
        raise UsageError(f"the mixture has {len(registry)} tasks but the method was built for "
                         f"NUM_TASKS={num_tasks}; set --gin.NUM_TASKS={len(registry)}.")


def check_registry(model_dir: str, registry: list[str]) -> None:
    saved = data.load_registry(model_dir)
    if saved is not None and saved != registry:
        raise UsageError(f"MODEL_DIR {model_dir!r} was trained with tasks {saved}, not "
                         f"{registry}; use a new MODEL_DIR or the same mixture.")


def make_train_step(model: EncoderDecoderModel, tx: optax.GradientTransformation,
                    dropout_seed: int, use_dropout: bool, debug_nan_step: int | None = None):
    """(state, batch) -> (state, metrics); jit it with the state donated.

    A step whose loss or gradient norm is not finite leaves params and optimizer
    state unchanged (only `step` advances) and reports `finite = 0`; the host
    decides whether to stop. `debug_nan_step` poisons that step's loss (tests).
    """
    base_rng = jax.random.PRNGKey(dropout_seed)

    def loss_fn(params, batch, rng, step):
        loss, metrics = model.loss_fn(params, batch, rng)
        if debug_nan_step is not None:
            loss = loss * jnp.where(step + 1 == debug_nan_step, jnp.nan, 1.0)
        return loss, {**metrics, "loss": loss}

    def train_step(state, batch):
        rng = jax.random.fold_in(base_rng, state["step"]) if use_dropout else None
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, metrics), grads = grad_fn(state["params"], batch, rng, state["step"])
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
        metrics.update(grad_norm=grad_norm, finite=finite.astype(jnp.float32))
        return {"step": state["step"] + 1, "params": keep(params, state["params"]),
                "opt_state": keep(opt_state, state["opt_state"])}, metrics

    return train_step


def load_initial_params(path: str, params, config) -> dict:
    """INITIAL_CHECKPOINT_PATH (HF, t5x, t5x orbax or ours; format detected) into `params`.

    Method parameters the checkpoint lacks keep their initialisation.
    """
    return restore.load_pretrained(path, "auto", config, params)


def check_nonempty(registry: list[str], split: str, feature_lengths: Mapping[str, int]) -> None:
    """An empty split would make the mixed stream wait forever: fail with its name instead."""
    for task_id, name in enumerate(registry):
        ds = data.task_dataset(name, task_id, split, feature_lengths, False, None)
        if next(iter(ds.take(1)), None) is None:
            raise UsageError(f"task {name!r} has no examples in split {split!r}; fix its data "
                             f"source or leave it out of MIXTURE_OR_TASK_NAME.")


def _disk_error(model_dir: str, error: OSError) -> UsageError:
    return UsageError(f"cannot write to MODEL_DIR={model_dir!r} ({error.strerror or error}); "
                      f"free space or point MODEL_DIR at a writable disk.")


def train(
    *,
    model: EncoderDecoderModel,
    model_dir: str,
    train_steps: int,
    batch_size: int,
    mixture_or_task_name: str,
    task_feature_lengths: Mapping[str, int],
    optimizer: optax.GradientTransformation | None = None,
    initial_checkpoint_path: str | None = None,
    eval_period: int = 1000,
    eval_examples: int | None = 256,
    eval_split: str = "validation",
    checkpoint_period: int = 1000,
    keep_checkpoints: int | None = 3,
    log_period: int = 50,
    model_parallel: int = 1,
    seed: int = 0,
    async_checkpointing: bool = True,
    nan_policy: str = "stop",
    debug_nan_step: int | None = None,
) -> dict[str, dict[str, float]]:
    """Train, evaluating every `eval_period` steps; returns the final per-task metrics.

    `eval_examples` examples per task are decoded (None: the whole split; 0: no eval).

    Raises Preempted after checkpointing when SIGTERM/SIGINT arrives, and
    TrainingDiverged on a non-finite loss with nan_policy='stop' ('skip' drops
    such steps and goes on).
    """
    if nan_policy not in ("stop", "skip"):
        raise UsageError(f"nan_policy={nan_policy!r}: use 'stop' or 'skip'.")
    if initial_checkpoint_path and os.path.exists(initial_checkpoint_path):
        # its stored model config, before anything is compiled or written
        sources.check_config(initial_checkpoint_path, "auto", model.module.config)
    registry = data.task_registry(mixture_or_task_name)
    check_feature_lengths(model, task_feature_lengths)
    check_num_tasks(model, registry)
    mesh = partitioning.make_mesh(model_parallel)
    partitioning.check_batch_size(batch_size, mesh)
    check_registry(model_dir, registry)
    check_nonempty(registry, "train", task_feature_lengths)
    check_model_dir(model_dir)
    tx = optimizer or make_optimizer()
    for name in checkpoints.partial_saves(model_dir):
        tqdm.write(f"ignoring a partially written checkpoint (a save was killed): {name}")

    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        state = init_state(model, tx, task_feature_lengths, mesh, seed)
        manager = checkpoints.make_manager(model_dir, keep_checkpoints, async_checkpointing)
        writer = metric_writers.SummaryWriter(os.path.join(model_dir, "tensorboard"))
        try:
            start, state = checkpoints.restore_latest(manager, state)
            start = start or 0
            if start:
                tqdm.write(f"resuming from checkpoint step {start} in "
                           f"{checkpoints.checkpoint_dir(model_dir)}")
            if start == 0 and initial_checkpoint_path:
                state["params"] = load_initial_params(initial_checkpoint_path, state["params"],
                                                      model.module.config)
            data.save_registry(model_dir, registry)
            use_dropout = model.module.config.dropout_rate > 0
            step_fn = jax.jit(make_train_step(model, tx, seed + 1, use_dropout, debug_nan_step),
                              donate_argnums=0)
            evaluator = None
            if eval_examples != 0:
                evaluator = eval_lib.Evaluator(model, registry, task_feature_lengths, batch_size,
                                               mesh, eval_split, eval_examples)
            batches = data.train_batches(mixture_or_task_name, registry, task_feature_lengths,
                                         batch_size, seed, skip=start)
            log = RunLog(model_dir, start)
            loop = _Loop(model_dir, manager, log, writer, evaluator, nan_policy)
            with PreemptionGuard() as guard:
                state, results = loop.run(state, step_fn, batches, mesh, start, train_steps,
                                          log_period, eval_period, checkpoint_period, guard)
            if not results and evaluator:  # resumed at the end: evaluate the restored state
                results = evaluator.evaluate(state["params"])
        except OSError as e:
            raise _disk_error(model_dir, e) from None
        finally:
            manager.close()
            writer.flush()
    plots.training_curves(log.history(), os.path.join(model_dir, "training_curves.png"))
    with open(os.path.join(model_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    return results


class _Loop:
    """The step loop and what it does every log/eval/checkpoint period."""

    def __init__(self, model_dir, manager, log, writer, evaluator, nan_policy):
        self.model_dir, self.manager, self.log = model_dir, manager, log
        self.writer, self.evaluator, self.nan_policy = writer, evaluator, nan_policy
        self.last_saved = manager.latest_step()

    def save(self, step: int, state, force: bool = False) -> None:
        checkpoints.save(self.manager, step, state, force=force)
        self.last_saved = step

    def check_finite(self, step: int, metrics, task_ids: np.ndarray) -> None:
        if float(metrics["finite"]) or self.nan_policy == "skip":
            return
        where = (f"step {self.last_saved} in {checkpoints.checkpoint_dir(self.model_dir)}"
                 if self.last_saved is not None else "none (no checkpoint was saved yet)")
        raise TrainingDiverged(
            f"non-finite loss or gradient norm at step {step} (batch task ids "
            f"{sorted(set(task_ids.tolist()))}); last good checkpoint: {where}. Lower the "
            f"learning rate, or set NAN_POLICY = 'skip' to drop such steps.")

    def run(self, state, step_fn, batches, mesh, start, train_steps, log_period, eval_period,
            checkpoint_period, guard):
        with tqdm(total=train_steps, initial=start, desc="train", unit="step",
                  dynamic_ncols=True) as bar:
            return self._steps(state, step_fn, batches, mesh, start, train_steps, log_period,
                               eval_period, checkpoint_period, guard, bar)

    def _steps(self, state, step_fn, batches, mesh, start, train_steps, log_period,
               eval_period, checkpoint_period, guard, bar):
        results: dict = {}
        last_time, last_step, pending = time.time(), start, None
        for step in range(start + 1, train_steps + 1):
            host_batch = next(batches)
            state, metrics = step_fn(state, partitioning.shard_batch(host_batch, mesh))
            if pending is not None:  # check the previous step while this one runs
                self.check_finite(*pending)
            pending = (step, metrics, host_batch["task_ids"])
            if step % log_period == 0 or step == train_steps:
                scalars = {k: float(v) for k, v in jax.device_get(metrics).items()}
                now = time.time()
                scalars["steps_per_sec"] = (step - last_step) / max(now - last_time, 1e-9)
                last_time, last_step = now, step
                self.writer.write_scalars(step, scalars)
                self.log.append("train", step, scalars)
                bar.set_postfix(loss=f"{scalars['loss']:.3f}",
                                steps_s=f"{scalars['steps_per_sec']:.1f}")
            bar.update(1)
            if self.evaluator and (step % eval_period == 0 or step == train_steps):
                self.check_finite(*pending)
                results = self.evaluator.evaluate(state["params"])
                flat = eval_lib.flatten_results(results)
                self.writer.write_scalars(step, flat)
                self.log.append("eval", step, flat)
                bar.write(f"step {step}: " + eval_lib.one_line(results))
                if self.evaluator.invalid:  # counted wrong; logged so a user can see why
                    self.log.append("eval_invalid", step, self.evaluator.invalid)
                    bar.write(f"step {step}: {eval_lib.invalid_line(self.evaluator.invalid)}")
            if step % checkpoint_period == 0 or step == train_steps:
                self.check_finite(*pending)
                self.save(step, state, force=step == train_steps)
            if guard.should_stop(step) and step < train_steps:
                self.check_finite(*pending)
                if self.last_saved != step:
                    self.save(step, state, force=True)
                self.manager.wait_until_finished()
                raise Preempted(f"preempted at step {step}: checkpoint saved in "
                                f"{checkpoints.checkpoint_dir(self.model_dir)}; rerun the same "
                                f"command to resume.")
        if pending is not None:
            self.check_finite(*pending)
        self.manager.wait_until_finished()
        return state, results
