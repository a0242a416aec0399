"""Orbax checkpointing: async saves, keep-N, restore the latest step on restart."""

from __future__ import annotations

import os
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


def make_manager(model_dir: str, keep: int | None = 3, async_save: bool = True
                 ) -> ocp.CheckpointManager:
    """A manager over MODEL_DIR/checkpoints keeping the latest `keep` steps (None: all);
    partially written steps are never listed."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, enable_async_checkpointing=async_save)
    # Naming the handler lets a fresh manager read item metadata before any restore.
    return ocp.CheckpointManager(checkpoint_dir(model_dir), options=options,
                                 item_handlers=ocp.StandardCheckpointHandler())


def save(manager: ocp.CheckpointManager, step: int, state: Any, force: bool = False) -> bool:
    return manager.save(step, args=ocp.args.StandardSave(state), force=force)


def restore_latest(manager: ocp.CheckpointManager, target: Any) -> tuple[int | None, Any]:
    """(step, state) of the latest checkpoint, placed like `target`; else (None, target)."""
    step = manager.latest_step()
    if step is None:
        return None, target
    check_params_match(manager, step, target["params"])
    try:
        return step, manager.restore(step, args=ocp.args.StandardRestore(target))
    except UNREADABLE as e:
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
        saved = manager.item_metadata(step).tree["params"]
    except UNREADABLE as e:
        raise _unreadable(manager, step, e) from e
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


def _unreadable(manager: ocp.CheckpointManager, step: int, error: Exception,
                resuming: bool = False) -> UsageError:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    other_optimizer = ("if you changed the optimizer bindings, restore the ones it was trained "
                       "with; if its files are damaged, " if resuming else "")
    return UsageError(f"checkpoint step {step} in {manager.directory} cannot be read ({first}); "
                      f"{other_optimizer}delete that step folder to resume from an earlier "
                      f"checkpoint.")


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
    except UNREADABLE as e:
        raise _unreadable(manager, step, e) from e
    return restored["params"]
