"""The training loop: jit-ed, sharded train step, orbax checkpoints, periodic eval.

Everything a run needs arrives as arguments (bound by gin in gin/runs/train.gin);
the function is usable without gin.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from clu import metric_writers
from tqdm import tqdm

from hyperprompt import checkpoints, data, partitioning, plots, run_lock
from hyperprompt import eval as eval_lib
from hyperprompt import train_checks as checks
from hyperprompt.convert import restore
from hyperprompt.convert.optimizer_state import load_t5x_adafactor_state
from hyperprompt.errors import Preempted, TrainingDiverged, UsageError
from hyperprompt.files import atomic_write, write_json
from hyperprompt.methods.base import Conditioner, conditioner_of
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.optim import Optimizer, layer_axes, make_optimizer
from hyperprompt.preemption import PreemptionGuard
from hyperprompt.run_log import RunLog
from hyperprompt.state import abstract_boxed, abstract_params, init_state

CONFIG_FILE = "config.gin"
PREDICTIONS_DIR = "eval_predictions"  # {task}-{step}.jsonl of every evaluation


def make_train_step(model: EncoderDecoderModel, tx: optax.GradientTransformation | Optimizer,
                    dropout_seed: int, use_dropout: bool, debug_nan_step: int | None = None):
    """(state, batch) -> (state, metrics); jit it with the state donated.

    Parameters the optimizer freezes (`optim.Optimizer.frozen`) are not differentiated: a
    frozen backbone costs no weight gradients or their memory; `grad_norm` is the trained
    parameters'.

    A step whose loss or gradient norm is not finite leaves params and optimizer
    state unchanged (only `step` advances) and reports `finite = 0`; the host
    decides whether to stop. `debug_nan_step` poisons that step's loss (tests).
    """
    base_rng = jax.random.PRNGKey(dropout_seed)
    frozen = getattr(tx, "frozen", None)  # optim.Optimizer names them; plain optax does not

    def loss_fn(params, batch, rng, step):
        if frozen is not None:  # no gradient for what the optimizer never updates
            params = jax.tree.map(lambda p, f: jax.lax.stop_gradient(p) if f else p,
                                  params, frozen(params))
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


def load_initial_state(path: str, state: dict, config, optimizer_state: bool = True) -> dict:
    """INITIAL_CHECKPOINT_PATH (HF, t5x, t5x orbax or ours; format detected) into the
    state's params; with `optimizer_state`, a t5x checkpoint's Adafactor state too.

    Method parameters the checkpoint lacks keep their initialisation.
    """
    state = {**state, "params": restore.load_pretrained(path, "auto", config, state["params"])}
    if optimizer_state:
        state["opt_state"], step = load_t5x_adafactor_state(path, state["opt_state"])
        if step is not None:
            tqdm.write(f"Adafactor continues {path}'s state at step {step}, as t5x fine-tuning "
                       f"does (RESTORE_OPTIMIZER_STATE = False starts it afresh)")
    return state


def init_method_from_backbone(conditioner: Conditioner, params, seed: int):
    """Parameters with the method's part re-initialised from the backbone as it stands
    (`Conditioner.init_from_backbone`), placed as before."""
    if "conditioner" not in params:
        return params

    def reinit(params, rng):  # the key an argument: one program for every seed
        backbone = {k: v for k, v in params.items() if k != "conditioner"}
        return {**params, "conditioner": conditioner.init_from_backbone(
            params["conditioner"], backbone, rng)}

    shardings = jax.tree.map(lambda x: x.sharding, params)
    rng = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
    return jax.jit(reinit, out_shardings=shardings)(params, rng)


@contextlib.contextmanager
def writing(model_dir: str):
    """A write to MODEL_DIR: an OSError it raises becomes one line (chained to the cause)."""
    try:
        yield
    except OSError as e:
        raise UsageError(f"cannot write to MODEL_DIR={model_dir!r} ({e.strerror or e}); "
                         f"free space or point MODEL_DIR at a writable disk.") from e


def train(
    *,
    model: EncoderDecoderModel,
    model_dir: str,
    train_steps: int,
    batch_size: int,
    mixture_or_task_name: str,
    task_feature_lengths: Mapping[str, int],
    optimizer: Callable[..., optax.GradientTransformation | Optimizer] = make_optimizer,
    initial_checkpoint_path: str | None = None,
    eval_period: int = 1000,
    eval_examples: int | None = 256,
    eval_split: str = "validation",
    eval_predictions: bool = True,
    checkpoint_period: int = 1000,
    keep_checkpoints: int | None = 3,
    log_period: int = 50,
    model_parallel: int = 1,
    seed: int = 0,
    async_checkpointing: bool = True,
    nan_policy: str = "stop",
    debug_nan_step: int | None = None,
    config_text: str | None = None,
    restore_optimizer_state: bool = True,
    pack: bool = False,
    logical_axis_rules: partitioning.Rules = partitioning.LOGICAL_AXIS_RULES,
) -> dict[str, dict[str, float]]:
    """Train, evaluating every `eval_period` steps; returns the final per-task metrics.

    `optimizer(groups=..., layer_axes=...)` builds the optax transformation from the
    method's parameter groups (`optim.make_optimizer`, bound by gin). `eval_examples`
    examples per task are decoded (None: the whole split; 0: no eval); with
    `eval_predictions`, each evaluation's outputs go to MODEL_DIR/eval_predictions/
    (`eval.write_predictions`). `config_text` (the
    run's gin config) is written to MODEL_DIR/config.gin once the inputs are checked.
    `restore_optimizer_state`: a new run from a t5x INITIAL_CHECKPOINT_PATH continues its
    Adafactor state and step, as t5x fine-tuning does (convert/optimizer_state.py).
    `pack`: training rows hold several examples of one task (`data.train_batches`; each
    row shares a dropout draw, as t5x); evaluation stays unpacked.
    `logical_axis_rules`: logical -> mesh axes (`partitioning.standard_logical_axis_rules`).

    Several processes (`jax.distributed` initialised): each feeds its rows of every global
    batch (`partitioning.data_layout`); process 0 alone writes MODEL_DIR's files (logs,
    config, plots, results), checkpoints are saved by all together (orbax).

    Raises Preempted after checkpointing when SIGTERM/SIGINT arrives, and
    TrainingDiverged on a non-finite loss with nan_policy='stop' ('skip' drops
    such steps and goes on).
    """
    # Validate: the checks only read (train_checks.py); every rejection happens here, so a
    # rejected run leaves MODEL_DIR exactly as it was.
    checks.nan_policy(nan_policy)
    checks.positive(train_steps=train_steps, batch_size=batch_size, eval_period=eval_period,
                    checkpoint_period=checkpoint_period, log_period=log_period)
    conditioner = conditioner_of(model.module)
    registry = data.task_registry(mixture_or_task_name)
    checks.feature_lengths(conditioner, task_feature_lengths)
    checks.num_tasks(conditioner, registry)
    pack = checks.packs(conditioner, pack)
    mesh = partitioning.make_mesh(model_parallel)
    layout = partitioning.data_layout(mesh, batch_size)
    primary = jax.process_index() == 0
    checks.registry(model_dir, registry)
    run_info = {"tasks": registry, "batch_size": batch_size, "task_feature_lengths":
                dict(task_feature_lengths), "pack": pack, "seed": seed}
    with nn.logical_axis_rules(logical_axis_rules), jax.set_mesh(mesh):
        boxed = abstract_boxed(model, task_feature_lengths, seed)
        resume_step = checks.resumable(model_dir, run_info,
                                       abstract_params(model, task_feature_lengths, mesh,
                                                       boxed))
    if resume_step is None and initial_checkpoint_path:
        checks.initial_checkpoint(initial_checkpoint_path, model.module.config)
    checks.nonempty(registry, "train", task_feature_lengths)

    # Create: MODEL_DIR (its first write), then its lock; this run owns it from here on.
    checks.model_dir_writable(model_dir)
    with run_lock.owned(model_dir) if primary else contextlib.nullcontext():
        if primary:
            with writing(model_dir):
                _write_run_files(model_dir, config_text, registry)
        for name in checkpoints.partial_saves(model_dir):
            tqdm.write(f"ignoring a partially written checkpoint (a save was killed): {name}")

        with nn.logical_axis_rules(logical_axis_rules), jax.set_mesh(mesh):
            tx = optimizer(groups=conditioner.param_groups(), layer_axes=layer_axes(boxed))
            state = init_state(model, tx, task_feature_lengths, mesh, seed, boxed)
            with writing(model_dir):
                manager = checkpoints.make_manager(model_dir, keep_checkpoints,
                                                   async_checkpointing)
                writer = (metric_writers.SummaryWriter(os.path.join(model_dir, "tensorboard"))
                          if primary else metric_writers.MultiWriter([]))
            try:
                start, state = checkpoints.restore_latest(manager, state)
                start = start or 0
                if start:
                    tqdm.write(f"resuming from checkpoint step {start} in "
                               f"{checkpoints.checkpoint_dir(model_dir)}")
                else:
                    if initial_checkpoint_path:
                        state = load_initial_state(initial_checkpoint_path, state,
                                                   model.module.config,
                                                   restore_optimizer_state)
                    state["params"] = init_method_from_backbone(conditioner, state["params"],
                                                                seed)
                if start >= train_steps:
                    tqdm.write(f"checkpoint step {start} is at or past TRAIN_STEPS="
                               f"{train_steps}: nothing was trained (raise TRAIN_STEPS to train "
                               f"on)")
                with writing(model_dir):
                    log = RunLog(model_dir, start, write=primary)
                use_dropout = model.module.config.dropout_rate > 0
                step_fn = jax.jit(make_train_step(model, tx, seed + 1, use_dropout,
                                                  debug_nan_step), donate_argnums=0)
                evaluator = None
                if eval_examples != 0:
                    evaluator = eval_lib.Evaluator(model, registry, task_feature_lengths,
                                                   batch_size, mesh, eval_split, eval_examples)
                batches = data.train_batches(
                    mixture_or_task_name, registry, task_feature_lengths, batch_size, seed,
                    skip=start, pack=pack,
                    prompt_length=model.input_prompt_length() if pack else 0,
                    shard=(layout.shard_id, layout.num_shards))
                loop = _Loop(model_dir, manager, log, writer, evaluator, nan_policy, run_info,
                             eval_predictions)
                with PreemptionGuard() as guard:
                    state, results = loop.run(state, step_fn, batches, mesh, start, train_steps,
                                              log_period, eval_period, checkpoint_period, guard)
                if not results and evaluator:  # resumed at the end: evaluate the restored state
                    results = evaluator.evaluate(state["params"])
            finally:
                with writing(model_dir):
                    manager.close()
                    writer.flush()
        if primary:
            with writing(model_dir):
                plots.training_curves(log.history(),
                                      os.path.join(model_dir, "training_curves.png"))
                write_json(os.path.join(model_dir, "results.json"), results)
        return results


def _write_run_files(model_dir: str, config_text: str | None, registry: list[str]) -> None:
    """config.gin (when given) and task_registry.json (written once, never in place)."""
    if config_text is not None:
        with atomic_write(os.path.join(model_dir, CONFIG_FILE)) as f:
            f.write(config_text)
    try:
        saved = data.load_registry(model_dir)
    except data.DamagedRegistry:  # the checks found the checkpoint's copy: rewrite it
        saved = None
    if saved != registry:
        data.save_registry(model_dir, registry)


class _Loop:
    """The step loop and what it does every log/eval/checkpoint period."""

    def __init__(self, model_dir, manager, log, writer, evaluator, nan_policy, run_info,
                 eval_predictions):
        self.model_dir, self.manager, self.log = model_dir, manager, log
        self.writer, self.evaluator, self.nan_policy = writer, evaluator, nan_policy
        self.eval_predictions = eval_predictions
        self.run_info, self.batch_size = run_info, run_info["batch_size"]
        self.last_saved = manager.latest_step()

    def save(self, step: int, state, force: bool = False) -> None:
        with writing(self.model_dir):
            checkpoints.save(self.manager, step, state, force=force,
                             run_info=self.run_info)
        self.last_saved = step

    def record(self, kind: str, step: int, values: Mapping[str, float],
               tensorboard: bool = True) -> None:
        """One line of train_log.jsonl (and TensorBoard scalars)."""
        with writing(self.model_dir):
            if tensorboard:
                self.writer.write_scalars(step, values)
            self.log.append(kind, step, values)

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
            state, metrics = step_fn(state, partitioning.shard_batch(host_batch, mesh,
                                                                     self.batch_size))
            if pending is not None:  # check the previous step while this one runs
                self.check_finite(*pending)
            pending = (step, metrics, host_batch["task_ids"])
            if step % log_period == 0 or step == train_steps:
                scalars = {k: float(v) for k, v in jax.device_get(metrics).items()}
                now = time.time()
                scalars["steps_per_sec"] = (step - last_step) / max(now - last_time, 1e-9)
                last_time, last_step = now, step
                self.record("train", step, scalars)
                bar.set_postfix(loss=f"{scalars['loss']:.3f}",
                                steps_s=f"{scalars['steps_per_sec']:.1f}")
            bar.update(1)
            if self.evaluator and (step % eval_period == 0 or step == train_steps):
                self.check_finite(*pending)
                results = self.evaluator.evaluate(state["params"])
                self.record("eval", step, eval_lib.flatten_results(results))
                if self.eval_predictions:
                    with writing(self.model_dir):
                        eval_lib.write_predictions(self.evaluator, os.path.join(
                            self.model_dir, PREDICTIONS_DIR), step)
                bar.write(f"step {step}: " + eval_lib.one_line(results))
                if self.evaluator.invalid:  # counted wrong; logged so a user can see why
                    self.record("eval_invalid", step, self.evaluator.invalid, tensorboard=False)
                    bar.write(f"step {step}: {eval_lib.invalid_line(self.evaluator.invalid)}")
            if step % checkpoint_period == 0 or step == train_steps:
                self.check_finite(*pending)
                self.save(step, state, force=step == train_steps)
            if guard.should_stop(step) and step < train_steps:
                self.check_finite(*pending)
                if self.last_saved != step:
                    self.save(step, state, force=True)
                with writing(self.model_dir):
                    self.manager.wait_until_finished()
                raise Preempted(f"preempted at step {step}: checkpoint saved in "
                                f"{checkpoints.checkpoint_dir(self.model_dir)}; rerun the same "
                                f"command to resume.")
        if pending is not None:
            self.check_finite(*pending)
        with writing(self.model_dir):
            self.manager.wait_until_finished()
        return state, results
