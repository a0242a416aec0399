"""A study's results: per method and task, mean ± std over seeds, gains, parameters, speed.

Scores are each task's mean metric (`hyperprompt.eval.average`'s convention) at the
run's last eval. Over seeds: mean and sample standard deviation (ddof 1; 0 for one
seed). A method's gain over the reference (vanilla) is taken per seed — the two runs of
a seed see the same data in the same order — then averaged (mean ± std of the paired
differences). `recovered`: the share of the single-task models' lead over the reference
that a method wins back, (method - reference) / (single task - reference), per task where
the single-task models lead.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from hyperprompt.runs import eval_records, train_step_seconds
from hyperprompt.study.spec import Cell, Study, cell_dir

AVERAGE = "average"


def mean_std(values: Sequence[float]) -> dict:
    """{'mean', 'std' (sample, ddof 1; 0 for one value), 'values'}."""
    values = [float(v) for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "values": values}


def task_scores(tasks: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """{task: mean of its metrics} plus 'average' (their mean)."""
    scores = {task: float(np.mean(list(metrics.values()))) for task, metrics in tasks.items()}
    return {**scores, AVERAGE: float(np.mean(list(scores.values())))} if scores else {}


def summarise(scores: Mapping[str, Mapping[int, Mapping[str, float]]],
              single: Mapping[str, Mapping[int, float]], reference: str,
              step_seconds: Mapping[str, Mapping[int, float]] | None = None,
              trainable: Mapping[str, int] | None = None,
              labels: Mapping[str, str] | None = None) -> dict:
    """The study's summary from its final scores.

    scores: {method: {seed: {task or 'average': score}}}; single: {task: {seed: score}}
    (single-task models); step_seconds: {method: {seed: median seconds per step}};
    trainable: {method: trainable parameters}; labels: display names.
    """
    ref = scores[reference]
    tasks = [t for t in next(iter(ref.values())) if t != AVERAGE] + [AVERAGE]
    methods = {}
    for method, by_seed in scores.items():
        seeds = sorted(by_seed)
        row = {"label": (labels or {}).get(method, method), "seeds": seeds,
               "tasks": {t: mean_std([by_seed[s][t] for s in seeds]) for t in tasks},
               "gain": {t: mean_std([by_seed[s][t] - ref[s][t] for s in seeds if s in ref])
                        for t in tasks}}
        if trainable is not None:
            row["trainable"] = trainable[method]
        if step_seconds is not None and step_seconds.get(method):
            ratios = [step_seconds[method][s] / step_seconds[reference][s] for s in seeds
                      if s in step_seconds[method] and s in step_seconds.get(reference, {})]
            row["step_time_ratio"] = mean_std(ratios) if ratios else None
        methods[method] = row
    single_rows = {t: mean_std([v for _, v in sorted(by_seed.items())])
                   for t, by_seed in single.items()}
    recovered = {}
    for method, row in methods.items():
        shares = {}
        for task, single_row in single_rows.items():
            lead = single_row["mean"] - methods[reference]["tasks"][task]["mean"]
            if task in row["tasks"] and lead > 0:
                shares[task] = row["gain"][task]["mean"] / lead
        recovered[method] = shares
    return {"reference": reference, "tasks": tasks, "methods": methods,
            "single_task": single_rows, "recovered": recovered}


def collect(study: Study, root: str, cells: Sequence[Cell],
            trainable_of: Callable[[Cell], int] | None = None,
            labels: Mapping[str, str] | None = None) -> dict:
    """The summary of the finished cells (a method without a finished seed is left out;
    `missing` lists unfinished cells) plus learning curves {method: {step: mean average}}."""
    scores: dict[str, dict[int, dict[str, float]]] = {}
    curves: dict[str, dict[int, list[float]]] = {}
    single: dict[str, dict[int, float]] = {}
    seconds: dict[str, dict[int, float]] = {}
    trainable: dict[str, int] = {}
    missing = []
    for cell in cells:
        if cell.method is None:
            continue
        records = eval_records(cell_dir(root, cell))
        if not records:
            missing.append(cell.name)
            continue
        final = task_scores(records[-1]["tasks"])
        if cell.task is not None:  # every task that evaluates it (MNLI: matched, ...)
            for task, score in final.items():
                if task != AVERAGE:
                    single.setdefault(task, {})[cell.seed] = score
            continue
        scores.setdefault(cell.method, {})[cell.seed] = final
        for record in records:
            curves.setdefault(cell.method, {}).setdefault(record["step"], []).append(
                task_scores(record["tasks"])[AVERAGE])
        steps = train_step_seconds(cell_dir(root, cell))
        if steps:
            seconds.setdefault(cell.method, {})[cell.seed] = float(np.median(steps))
        if trainable_of is not None and cell.method not in trainable:
            trainable[cell.method] = trainable_of(cell)
    if study.reference not in scores:
        return {"missing": missing}
    summary = summarise(scores, single, study.reference, seconds,
                        trainable if trainable_of is not None else None, labels)
    summary["curves"] = {m: {step: float(np.mean(v)) for step, v in sorted(by_step.items())}
                         for m, by_step in curves.items()}
    summary["missing"] = missing
    return summary
