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
import numpy as np
import optax
from clu import metric_writers
from tqdm import tqdm

from hyperprompt import checkpoints, data, partitioning, plots
from hyperprompt import eval as eval_lib
from hyperprompt.errors import UsageError
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.optim import make_optimizer, param_path
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


def check_registry(model_dir: str, registry: list[str]) -> None:
    saved = data.load_registry(model_dir)
    if saved is not None and saved != registry:
        raise UsageError(f"MODEL_DIR {model_dir!r} was trained with tasks {saved}, not "
                         f"{registry}; use a new MODEL_DIR or the same mixture.")


def make_train_step(model: EncoderDecoderModel, tx: optax.GradientTransformation,
                    dropout_seed: int, use_dropout: bool):
    """(state, batch) -> (state, metrics); jit it with the state donated."""
    base_rng = jax.random.PRNGKey(dropout_seed)

    def train_step(state, batch):
        rng = jax.random.fold_in(base_rng, state["step"]) if use_dropout else None
        grad_fn = jax.value_and_grad(model.loss_fn, has_aux=True)
        (_, metrics), grads = grad_fn(state["params"], batch, rng)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics["grad_norm"] = optax.tree.norm(grads)
        return {"step": state["step"] + 1, "params": params, "opt_state": opt_state}, metrics

    return train_step


def load_initial_params(path: str, params):
    """Backbone params from a hyperprompt checkpoint; params it lacks keep their init."""
    loaded = checkpoints.restore_params(path, None)
    flat_init = _flatten(params)
    flat_loaded = _flatten(loaded)
    for key, value in flat_loaded.items():
        if key in flat_init and tuple(flat_init[key].shape) != tuple(np.shape(value)):
            raise UsageError(f"INITIAL_CHECKPOINT_PATH parameter {key} has shape "
                             f"{tuple(np.shape(value))} but the model wants "
                             f"{tuple(flat_init[key].shape)}; use the matching model gin file.")
    merged = {k: jax.device_put(np.asarray(flat_loaded[k]), v.sharding) if k in flat_loaded
              else v for k, v in flat_init.items()}
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params),
                                        [merged[k] for k in flat_init])


def _flatten(tree) -> dict[str, object]:
    return {param_path(p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


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
    eval_examples: int = 256,
    eval_split: str = "validation",
    checkpoint_period: int = 1000,
    keep_checkpoints: int = 3,
    log_period: int = 50,
    model_parallel: int = 1,
    seed: int = 0,
    async_checkpointing: bool = True,
) -> dict[str, dict[str, float]]:
    """Train, evaluating every `eval_period` steps; returns the final per-task metrics."""
    registry = data.task_registry(mixture_or_task_name)
    check_feature_lengths(model, task_feature_lengths)
    mesh = partitioning.make_mesh(model_parallel)
    partitioning.check_batch_size(batch_size, mesh)
    check_registry(model_dir, registry)
    check_model_dir(model_dir)
    tx = optimizer or make_optimizer()

    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        state = init_state(model, tx, task_feature_lengths, mesh, seed)
        manager = checkpoints.make_manager(model_dir, keep_checkpoints, async_checkpointing)
        start, state = checkpoints.restore_latest(manager, state)
        start = start or 0
        if start == 0 and initial_checkpoint_path:
            state["params"] = load_initial_params(initial_checkpoint_path, state["params"])
        data.save_registry(model_dir, registry)
        use_dropout = model.module.config.dropout_rate > 0
        step_fn = jax.jit(make_train_step(model, tx, seed + 1, use_dropout), donate_argnums=0)
        evaluator = eval_lib.Evaluator(model, registry, task_feature_lengths, batch_size, mesh,
                                       eval_split, eval_examples)
        batches = data.train_batches(mixture_or_task_name, registry, task_feature_lengths,
                                     batch_size, seed, skip=start)
        writer = metric_writers.SummaryWriter(os.path.join(model_dir, "tensorboard"))
        history = _load_history(model_dir)
        results: dict[str, dict[str, float]] = {}
        bar = tqdm(total=train_steps, initial=start, desc="train", unit="step",
                   dynamic_ncols=True)
        last_time, last_step = time.time(), start
        for step in range(start + 1, train_steps + 1):
            batch = partitioning.shard_batch(next(batches), mesh)
            state, metrics = step_fn(state, batch)
            if step % log_period == 0 or step == train_steps:
                scalars = {k: float(v) for k, v in jax.device_get(metrics).items()}
                now = time.time()
                scalars["steps_per_sec"] = (step - last_step) / max(now - last_time, 1e-9)
                last_time, last_step = now, step
                writer.write_scalars(step, scalars)
                history["train"].append({"step": step, **scalars})
                bar.set_postfix(loss=f"{scalars['loss']:.3f}",
                                steps_s=f"{scalars['steps_per_sec']:.1f}")
            bar.update(1)
            if step % eval_period == 0 or step == train_steps:
                results = evaluator.evaluate(state["params"])
                writer.write_scalars(step, eval_lib.flatten_results(results))
                history["eval"].append({"step": step, **eval_lib.flatten_results(results)})
                bar.write(f"step {step}: " + eval_lib.one_line(results))
            if step % checkpoint_period == 0 or step == train_steps:
                checkpoints.save(manager, step, state, force=step == train_steps)
        bar.close()
        manager.wait_until_finished()
        manager.close()
        writer.flush()
        if not results:  # resumed at the end: evaluate the restored state
            results = evaluator.evaluate(state["params"])
    _write_outputs(model_dir, history, results)
    return results


def _load_history(model_dir: str) -> dict[str, list]:
    path = os.path.join(model_dir, "history.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"train": [], "eval": []}


def _write_outputs(model_dir: str, history: dict, results: dict) -> None:
    with open(os.path.join(model_dir, "history.json"), "w") as f:
        json.dump(history, f)
    with open(os.path.join(model_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    plots.training_curves(history, os.path.join(model_dir, "training_curves.png"))
