"""Orbax checkpointing: async saves, keep-N, restore the latest step on restart.

Each step also records the run's settings that decide its data stream (`run_info`:
tasks, BATCH_SIZE, TASK_FEATURE_LENGTHS, PACK, SEED) in orbax's step metadata, so a
resume can refuse settings that would not continue the stream where it stopped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import jax
import orbax.checkpoint as ocp

from hyperprompt.errors import UsageError
from hyperprompt.optim import flat_paths

# orbax writes a step to '<step>.orbax-checkpoint-tmp...' and renames it when complete.
TMP_MARKER = ".orbax-checkpoint-tmp"
# What unreadable, truncated or mismatched checkpoint files raise (tensorstore: ValueError;
# missing files: OSError; tree mismatches: KeyError/TypeError/ValueError). Anything else
# (out of memory, an XLA runtime error) is not about the files and propagates as it is.
UNREADABLE = (OSError, ValueError, KeyError, TypeError)


def checkpoint_dir(model_dir: str) -> str:
    return os.path.join(os.path.abspath(model_dir), "checkpoints")


def make_manager(model_dir: str, keep: int | None = 3, async_save: bool = True,
                 read_only: bool = False) -> ocp.CheckpointManager:
    """A manager over MODEL_DIR/checkpoints keeping the latest `keep` steps (None: all);
    partially written steps are never listed. `read_only` creates, saves and deletes
    nothing (eval, infer and report beside a running `train`)."""
    if read_only:
        options = ocp.CheckpointManagerOptions(read_only=True, create=False, max_to_keep=None,
                                               save_interval_steps=0)
    else:
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save)
    # Naming the handler lets a fresh manager read item metadata before any restore.
    return ocp.CheckpointManager(checkpoint_dir(model_dir), options=options,
                                 item_handlers=ocp.StandardCheckpointHandler())


def latest_step(model_dir: str) -> int | None:
    """MODEL_DIR's latest complete checkpoint step (None: none), read without writing."""
    if not os.path.isdir(checkpoint_dir(model_dir)):
        return None
    with make_manager(model_dir, read_only=True) as manager:
        return manager.latest_step()


def save(manager: ocp.CheckpointManager, step: int, state: Any, force: bool = False,
         run_info: Mapping[str, Any] | None = None) -> bool:
    """Save `state` as `step`, recording `run_info` (JSON values) in the step's metadata."""
    return manager.save(step, args=ocp.args.StandardSave(state), force=force,
                        custom_metadata=dict(run_info or {}))


def recorded_tasks(model_dir: str) -> list[str] | None:
    """The task registry the latest checkpoint recorded (None: no checkpoint, or one saved
    without it)."""
    step = latest_step(model_dir)
    if step is None:
        return None
    with make_manager(model_dir, read_only=True) as manager:
        return run_info(manager, step).get("tasks")


def run_info(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
    """The `run_info` that `save` recorded with a step ({} for steps saved without it)."""
    try:
        return dict(manager.metadata(step).custom_metadata or {})
    except UNREADABLE:
        return {}


def restore_latest(manager: ocp.CheckpointManager, target: Any) -> tuple[int | None, Any]:
    """(step, state) of the latest checkpoint, placed like `target`; else (None, target)."""
    step = manager.latest_step()
    if step is None:
        return None, target
    check_params_match(manager, step, target["params"])
    try:
        return step, manager.restore(step, args=ocp.args.StandardRestore(target))
    except Exception as e:
        if not _about_files(e):
            raise
        raise _unreadable(manager, step, e, resuming=True) from e


def partial_saves(model_dir: str) -> list[str]:
    """Step folders a killed save left half-written (orbax's temporary names)."""
    directory = checkpoint_dir(model_dir)
    if not os.path.isdir(directory):
        return []
    return sorted(name for name in os.listdir(directory) if TMP_MARKER in name)


def check_params_match(manager: ocp.CheckpointManager, step: int, params: Any) -> None:
    """UsageError naming the first parameter whose path or shape differs from the checkpoint."""
    try:
        metadata = manager.item_metadata(step)
    except UNREADABLE as e:
        raise _unreadable(manager, step, e) from e
    if metadata is None:  # orbax returns None when the item's _METADATA file is missing
        missing = os.path.join(str(manager.directory), str(step), "default", "_METADATA")
        raise UsageError(f"checkpoint step {step} cannot be read: {missing} is missing; "
                         f"delete {os.path.dirname(os.path.dirname(missing))} to resume from "
                         f"an earlier checkpoint.")
    saved = metadata.tree["params"]
    saved_shapes = {k: tuple(m.shape) for k, m in flat_paths(saved).items()}
    wanted = {k: tuple(x.shape) for k, x in flat_paths(params).items()}
    hint = "another model size or method? Use a new MODEL_DIR or the gin files it was trained with"
    for key, shape in wanted.items():
        if key not in saved_shapes:
            raise UsageError(f"checkpoint step {step} has no parameter {key}; {hint}.")
        if saved_shapes[key] != shape:
            raise UsageError(f"checkpoint step {step} stores {key} as {list(saved_shapes[key])} "
                             f"but this model has {list(shape)}; {hint}.")
    extra = sorted(set(saved_shapes) - set(wanted))
    if extra:
        raise UsageError(f"checkpoint step {step} has parameter {extra[0]} that this model "
                         f"lacks; {hint}.")


def _chain(error: BaseException) -> list[BaseException]:
    """`error` and the errors behind it (causes, then contexts), outermost first."""
    chain = [error]
    while (inner := chain[-1].__cause__ or chain[-1].__context__) and inner not in chain:
        chain.append(inner)
    return chain


def _about_files(error: BaseException) -> bool:
    """Whether reading the files raised `error` (orbax wraps tensorstore's ValueError in a
    bare Exception whose text quotes a bound method)."""
    return any(isinstance(e, UNREADABLE) for e in _chain(error))


def _root_cause(error: BaseException) -> str:
    """The first line of the innermost error behind `error`, without tensorstore's spec."""
    inner = _chain(error)[-1]
    first = (str(inner).strip().splitlines() or [type(inner).__name__])[0]
    return first.split(" [tensorstore_spec=")[0]


def _unreadable(manager: ocp.CheckpointManager, step: int, error: Exception,
                resuming: bool = False) -> UsageError:
    """One line naming the damaged file (tensorstore's innermost 'local file') and why."""
    cause = _root_cause(error)
    files = re.findall(r'local file "([^"]+)"', cause)
    reason = cause.rsplit('": ', 1)[-1]
    what = f"{files[-1]}: {reason}" if files else cause
    other_optimizer = ("if you changed the optimizer bindings, restore the ones it was trained "
                       "with; if its files are damaged, " if resuming else "")
    return UsageError(f"checkpoint step {step} in {manager.directory} cannot be read "
                      f"({what[:300]}); {other_optimizer}delete that step folder to resume "
                      f"from an earlier checkpoint.")


def restore_params(manager: ocp.CheckpointManager, step: int, target: Any) -> Any:
    """Only the `params` of a step (any optimizer state is left on disk), placed like
    `target` (arrays or ShapeDtypeStructs with shardings); orbax streams each array."""
    check_params_match(manager, step, target)
    restore_args = jax.tree.map(lambda x: ocp.ArrayRestoreArgs(sharding=x.sharding), target)
    item = os.path.join(str(manager.directory), str(step), "default")
    try:
        restored = ocp.PyTreeCheckpointer().restore(item, args=ocp.args.PyTreeRestore(
            item={"params": target}, restore_args={"params": restore_args},
            partial_restore=True))
    except Exception as e:
        if not _about_files(e):
            raise
        raise _unreadable(manager, step, e) from e
    return restored["params"]
