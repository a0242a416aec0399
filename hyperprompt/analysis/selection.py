"""Model selection as the paper and T5: each task's best validation step.

The training loop appends its periodic evaluations to MODEL_DIR/train_log.jsonl
(`{"kind": "eval", "step": N, "eval/<task>/<metric>": value, ...}`). For every
task the step with the highest mean of the task's metrics is chosen (the
earliest on ties), and its metrics are reported; the benchmark average is taken
over these per-task bests.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping

from hyperprompt import checkpoints
from hyperprompt import eval as eval_lib
from hyperprompt.errors import UsageError
from hyperprompt.run_log import LOG_FILE, eval_results, read_records


@dataclasses.dataclass(frozen=True)
class Selection:
    results: dict[str, dict[str, float]]  # {task: {metric: value}} at the task's best step
    steps: dict[str, int]  # {task: best step}


def eval_records(model_dir: str) -> list[dict]:
    """The "eval" lines of MODEL_DIR/train_log.jsonl (unreadable lines skipped, counted)."""
    path = os.path.join(model_dir, LOG_FILE)
    if not os.path.exists(path):
        raise UsageError(f"{path} does not exist; point MODEL_DIR at a run written by "
                         f"`hyperprompt train`.")
    return [r for r in read_records(path) if r["kind"] == "eval"]


def best_steps(records: Iterable[Mapping]) -> Selection:
    """Per task, the step whose mean metric is highest (earliest on ties)."""
    best: dict[str, tuple[float, int, dict[str, float]]] = {}
    for record in sorted(records, key=lambda r: r["step"]):
        for task, metrics in eval_results(record).items():
            score = sum(metrics.values()) / len(metrics)
            if task not in best or score > best[task][0]:
                best[task] = (score, record["step"], metrics)
    return Selection(results={t: b[2] for t, b in best.items()},
                     steps={t: b[1] for t, b in best.items()})


def select(model_dir: str) -> Selection:
    """The per-task best steps of MODEL_DIR's logged validation evaluations."""
    records = eval_records(model_dir)
    if not records:
        raise UsageError(f"{os.path.join(model_dir, LOG_FILE)} has no evaluations; train with "
                         f"evaluation on (EVAL_PERIOD, train_lib.train.eval_examples != 0).")
    return best_steps(records)


def print_selection(selection: Selection, model_dir: str) -> None:
    """The per-task bests with their average (`eval.print_table`), then each task's step."""
    eval_lib.print_table(selection.results, title="best validation step per task")
    for task, step in selection.steps.items():
        kept = os.path.isdir(os.path.join(checkpoints.checkpoint_dir(model_dir), str(step)))
        print(f"{task}: step {step} (checkpoint {'kept' if kept else 'deleted'})")
