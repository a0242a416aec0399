"""Orbax checkpointing: async saves, keep-N, restore the latest step on restart."""

from __future__ import annotations

import os
from typing import Any

import orbax.checkpoint as ocp


def checkpoint_dir(model_dir: str) -> str:
    return os.path.join(os.path.abspath(model_dir), "checkpoints")


def make_manager(model_dir: str, keep: int = 3, async_save: bool = True
                 ) -> ocp.CheckpointManager:
    """A manager over MODEL_DIR/checkpoints; partially written steps are never listed."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, enable_async_checkpointing=async_save)
    return ocp.CheckpointManager(checkpoint_dir(model_dir), options=options)


def save(manager: ocp.CheckpointManager, step: int, state: Any, force: bool = False) -> bool:
    return manager.save(step, args=ocp.args.StandardSave(state), force=force)


def restore_latest(manager: ocp.CheckpointManager, target: Any) -> tuple[int | None, Any]:
    """(step, state) of the latest checkpoint, placed like `target`; else (None, target)."""
    step = manager.latest_step()
    if step is None:
        return None, target
    return step, manager.restore(step, args=ocp.args.StandardRestore(target))


def restore_params(path: str, target_params: Any) -> Any:
    """Parameters of the latest checkpoint under `path` (a MODEL_DIR or its checkpoints/)."""
    is_ckpt_dir = os.path.basename(path.rstrip("/")) == "checkpoints"
    directory = path if is_ckpt_dir else checkpoint_dir(path)
    with ocp.CheckpointManager(directory) as manager:
        step = manager.latest_step()
        if step is None:
            raise FileNotFoundError(f"no checkpoint under {directory}")
        restored = manager.restore(step, args=ocp.args.StandardRestore(None))
    return restored["params"]
