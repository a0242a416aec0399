"""Everything `train` checks before it writes: each check only reads, and raises UsageError.

`train` runs all of them first, so a rejected run leaves MODEL_DIR exactly as it was
(tests/test_bad_input.py compares the whole tree before and after).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from tqdm import tqdm

from hyperprompt import checkpoints, data
from hyperprompt.convert import sources
from hyperprompt.errors import UsageError
from hyperprompt.eval import saved_registry
from hyperprompt.methods.base import Conditioner
from hyperprompt.models.configs import T5Config

# run_info keys (checkpoints.save) -> the macro that sets each
STREAM_MACROS = {"batch_size": "BATCH_SIZE", "task_feature_lengths": "TASK_FEATURE_LENGTHS",
                 "pack": "PACK", "seed": "SEED"}


def nan_policy(policy: str) -> None:
    if policy not in ("stop", "skip"):
        raise UsageError(f"nan_policy={policy!r}: use 'stop' or 'skip'.")


def positive(**values: int) -> None:
    """Step counts, periods and the batch size must be integers >= 1 (a period of 0 would
    divide by 0)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{name}={value!r} must be an integer >= 1.")


def feature_lengths(conditioner: Conditioner, lengths: Mapping[str, int]) -> None:
    """Feature lengths must cover what the method needs (its `min_feature_lengths`)."""
    for key in ("inputs", "targets"):
        if key not in lengths:
            raise UsageError(f"TASK_FEATURE_LENGTHS has no {key!r}; set e.g. "
                             f"{{'inputs': 64, 'targets': 16}}.")
    for key, minimum in conditioner.min_feature_lengths().items():
        if lengths.get(key, 0) < minimum:
            raise UsageError(
                f"TASK_FEATURE_LENGTHS[{key!r}]={lengths.get(key)} is shorter than "
                f"{conditioner.label()} needs ({minimum}); set it to >= {minimum}.")


def num_tasks(conditioner: Conditioner, registry: list[str]) -> None:
    """A method with per-task parameters must have one slot per task of the mixture."""
    if conditioner.num_tasks is not None and len(registry) > conditioner.num_tasks:
        raise UsageError(f"the mixture has {len(registry)} tasks but the method was built for "
                         f"NUM_TASKS={conditioner.num_tasks}; set --gin.NUM_TASKS={len(registry)}.")


def packs(conditioner: Conditioner, pack: bool) -> bool:
    """Whether training rows are packed: PACK asks for it, and packed rows share one
    Conditioning per row (one task), so a method that conditions on each example's input
    trains unpacked (said once), which keeps every benchmark recipe composable with it."""
    if pack and not conditioner.per_task:
        tqdm.write(f"training unpacked: {conditioner.label()} conditions on each example's "
                   f"input, so packed rows cannot share one conditioning (PACK=True ignored)")
        return False
    return pack


def registry(model_dir: str, tasks: list[str]) -> None:
    """MODEL_DIR's saved registry (if any) must be the mixture's."""
    saved = saved_registry(model_dir, required=False)
    if saved is not None and saved != tasks:
        raise UsageError(f"MODEL_DIR {model_dir!r} was trained with tasks {saved}, not "
                         f"{tasks}; use a new MODEL_DIR or the same mixture.")


def resumable(model_dir: str, run_info: Mapping[str, Any], abstract_params) -> int | None:
    """The step a resume starts from (None: a new run), after checking that its parameters
    fit the model and that its data stream continues: a step saved with another BATCH_SIZE,
    TASK_FEATURE_LENGTHS, PACK or SEED is refused (its batches were counted in another size,
    so skipping them would not continue the stream where it stopped)."""
    if checkpoints.latest_step(model_dir) is None:
        return None
    with checkpoints.make_manager(model_dir, read_only=True) as manager:
        step = manager.latest_step()
        checkpoints.check_params_match(manager, step, abstract_params)
        saved = checkpoints.run_info(manager, step)
    wanted = json.loads(json.dumps(dict(run_info)))  # as the metadata stores it
    for key, macro in STREAM_MACROS.items():
        if key in saved and saved[key] != wanted[key]:
            value = f'"{saved[key]!r}"' if isinstance(saved[key], dict) else repr(saved[key])
            raise UsageError(
                f"checkpoint step {step} in {checkpoints.checkpoint_dir(model_dir)} was trained "
                f"with {macro}={saved[key]!r}, not {wanted[key]!r}; resuming would not continue "
                f"its data stream: pass --gin.{macro}={value}, or start a new MODEL_DIR from "
                f"it with --gin.INITIAL_CHECKPOINT_PATH=\"'{model_dir}'\".")
    return step


def initial_checkpoint(path: str, config: T5Config) -> None:
    """INITIAL_CHECKPOINT_PATH must be a checkpoint folder (format detected) whose stored
    model config, if any, is this model's."""
    kinds = ("a Hugging Face folder, a t5x checkpoint_N folder, or a hyperprompt MODEL_DIR or "
             "converted folder")
    if not os.path.exists(path):
        problem = "does not exist"
    elif not os.path.isdir(path):
        problem = "is a file, not a checkpoint folder"
    else:
        try:
            sources.detect_format(path)
        except UsageError:
            problem = "holds no checkpoint (no config.json, t5x `checkpoint` file or orbax step)"
        else:
            sources.check_config(path, "auto", config)
            return
    raise UsageError(f"INITIAL_CHECKPOINT_PATH={path!r} {problem}; point it at {kinds}.")


def nonempty(tasks: list[str], split: str, lengths: Mapping[str, int]) -> None:
    """An empty split would make the mixed stream wait forever: fail with its name instead."""
    for task_id, name in enumerate(tasks):
        ds = data.task_dataset(name, task_id, split, lengths, False, None)
        if next(iter(ds.take(1)), None) is None:
            raise UsageError(f"task {name!r} has no examples in split {split!r}; fix its data "
                             f"source or leave it out of MIXTURE_OR_TASK_NAME.")


def model_dir_writable(model_dir: str) -> None:
    """MODEL_DIR must be creatable and writable (this creates it: the first write)."""
    try:
        os.makedirs(model_dir, exist_ok=True)
        probe = os.path.join(model_dir, f".write_test.{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise UsageError(f"MODEL_DIR={model_dir!r} is not writable ({e.strerror}); "
                         f"pass --gin.MODEL_DIR=\"'a/writable/dir'\".") from None
