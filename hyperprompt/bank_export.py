"""`hyperprompt bank`: export a trained run's prompts (or ATTEMPT's G) into a prompt bank.

From a Prompt Tuning run, each task's prompt (`conditioner/prompts[task id]`) becomes the
entry named as the task, taken at the task's best validation step where that checkpoint is
kept (Asai et al., Appendix C.2: "the checkpoints with the best development score"), else
at the latest. From an ATTEMPT(-m) run, its attention module G (the task's, or the shared
one) becomes an "attention" entry: G pretrained on source tasks for later target runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from hyperprompt import checkpoints, data, prompt_bank
from hyperprompt.analysis import selection
from hyperprompt.convert.sources import orbax_tree
from hyperprompt.errors import UsageError
from hyperprompt.methods.attempt import G_PARAMS
from hyperprompt.optim import flat_paths


def kept_steps(model_dir: str) -> list[int]:
    """Steps of MODEL_DIR's complete checkpoints."""
    directory = checkpoints.checkpoint_dir(model_dir)
    if not os.path.isdir(directory):
        return []
    return sorted(int(s) for s in os.listdir(directory) if s.isdigit()
                  and os.path.exists(os.path.join(directory, s, "_CHECKPOINT_METADATA")))


def conditioner_at(model_dir: str, step: int) -> dict[str, np.ndarray]:
    """{name: array} of the method's parameters in checkpoint `step`."""
    folder = os.path.join(checkpoints.checkpoint_dir(model_dir), str(step))
    item = os.path.join(folder, "default")
    params = orbax_tree(item if os.path.isdir(item) else folder)["params"]
    return {k.removeprefix("conditioner/"): np.asarray(v) for k, v in flat_paths(
        params.get("conditioner", {})).items()}


def best_kept_step(model_dir: str, task: str, kept: Sequence[int]) -> int:
    """The task's best validation step if kept, else the latest kept step."""
    try:
        best = selection.select(model_dir).steps.get(task)
    except UsageError:  # trained without evaluation
        best = None
    return best if best in kept else kept[-1]


def export(model_dir: str, bank_dir: str, backbone: str, tasks: Sequence[str] = (),
           name: str | None = None) -> list[str]:
    """Write the run's entries into `bank_dir`; returns lines saying what was written.

    `tasks`: the registry's tasks to export (default every one); `name`: the entry's name
    (one task's prompt, or the attention module; default the task's name, or "attention").
    """
    kept = kept_steps(model_dir)
    if not kept:
        raise UsageError(f"{model_dir!r} has no checkpoint; train it first "
                         f"(`hyperprompt train` with this MODEL_DIR).")
    registry = data.load_registry(model_dir) or []
    unknown = [t for t in tasks if t not in registry]
    if unknown:
        raise UsageError(f"{model_dir!r} did not train {', '.join(unknown)}; its tasks are "
                         f"{', '.join(registry)}.")
    tasks = list(tasks) or registry
    if name is not None and len(tasks) > 1:
        raise UsageError(f"--bank_name names one entry but {len(tasks)} tasks are exported; "
                         f"pick one with --bank_tasks.")
    written = []
    for task in tasks:
        step = best_kept_step(model_dir, task, kept)
        params = conditioner_at(model_dir, step)
        meta = {"task": task, "backbone": backbone, "step": step, "model_dir": model_dir}
        if "prompts" in params:
            prompt = params["prompts"][registry.index(task)]
            entry = name or task
            prompt_bank.save(bank_dir, entry, {prompt_bank.PROMPT: prompt}, {
                **meta, "kind": prompt_bank.PROMPT, "prompt_length": prompt.shape[0],
                "d_model": prompt.shape[1]})
        elif "attention_down" in params:
            slot = registry.index(task) if params["attention_down"].shape[0] > 1 else 0
            entry = name or prompt_bank.ATTENTION
            prompt_bank.save(bank_dir, entry, {k: params[k][slot] for k in G_PARAMS}, {
                **meta, "kind": prompt_bank.ATTENTION,
                "d_model": params["attention_down"].shape[1]})
        else:
            raise UsageError(f"{model_dir!r} is neither a Prompt Tuning nor an ATTEMPT run "
                             f"(its method parameters: {', '.join(params) or 'none'}).")
        written.append(f"{os.path.join(bank_dir, entry)}: {task} at step {step}")
        if entry == prompt_bank.ATTENTION or name:
            break  # one G (shared) or one named entry
    return written
