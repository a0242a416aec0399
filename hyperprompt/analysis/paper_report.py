"""`report --paper NAME --row ID`: a run's evaluated scores beside a paper's row.

The run's scores are MODEL_DIR's last evaluation in train_log.jsonl (`run_log.final_eval`).
Each paper column names a leaderboard task of `tasks/benchmarks.py`; the run's value is
that task's metric over its eval tasks (MNLI: matched and mismatched), its mean metric
("score"), or the benchmark average ("benchmark_score"). The difference is run - paper.
Written to MODEL_DIR/report/paper_<paper>_<row>.json and printed as a table.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping

import numpy as np
from rich.console import Console
from rich.table import Table

from hyperprompt.analysis import paper_tables
from hyperprompt.errors import UsageError
from hyperprompt.files import atomic_write
from hyperprompt.run_log import LOG_FILE, final_eval
from hyperprompt.tasks.benchmarks import BENCHMARKS, benchmark_scores, task_score


def run_value(results: Mapping[str, Mapping[str, float]], benchmark: str | None,
              task: str | None, metric: str) -> float | None:
    """The run's number for one paper cell, or None when the run has no result for it.

    results: {eval task: {metric: value}} as `run_log.final_eval` returns them.
    """
    if task is None or benchmark is None:
        return None
    if task == "average":
        score = benchmark_scores(results).get(benchmark)
        return None if score is None else score[0]
    present = [results[t] for t in BENCHMARKS[benchmark][task] if results.get(t)]
    if metric == "score":
        values = [task_score(m) for m in present]
    else:
        values = [m[metric] for m in present if metric in m]
    return float(np.mean(values)) if values else None


def _coverage(results: Mapping[str, Mapping[str, float]], benchmark: str | None) -> str:
    """A note when the run has only some of the benchmark's tasks, else ''."""
    _, present, total = benchmark_scores(results).get(benchmark, (None, 0, 0))
    return f"the run's mean over {present}/{total} tasks" if present < total else ""


def compare(paper: str, row_id: str | None, model_dir: str) -> dict:
    """The report: paper, row, run step and one line per reported number (paper, run,
    difference; run and difference None where the run has no such result)."""
    entries = paper_tables.row_entries(paper_tables.load(paper), row_id)
    path = os.path.join(model_dir, LOG_FILE)
    if not os.path.exists(path):
        raise UsageError(f"{path} does not exist; point --gin.MODEL_DIR at a run written by "
                         f"`hyperprompt train` (or evaluated with it).")
    run = final_eval(model_dir)
    if run is None:
        raise UsageError(f"{path} has no evaluations; train with evaluation on "
                         f"(EVAL_PERIOD) so that the run has scores to compare.")
    lines = []
    for e in entries:
        line = dataclasses.asdict(e)
        paper_value = line.pop("value")
        value = run_value(run["tasks"], e.benchmark, e.task, e.metric)
        lines.append({**line, "paper_value": paper_value, "run_value": value,
                      "difference": None if value is None else value - paper_value,
                      "run_note": _coverage(run["tasks"], e.benchmark) if e.task == "average"
                      else ""})
    return {"paper": paper, "row_id": entries[0].row_id, "row": entries[0].row,
            "model": entries[0].model, "model_dir": model_dir, "step": run["step"],
            "entries": lines}


def write(report: Mapping, model_dir: str) -> str:
    """MODEL_DIR/report/paper_<paper>_<row id>.json."""
    name = re.sub(r"[^\w.+-]", "_", f"paper_{report['paper']}_{report['row_id']}")
    path = os.path.join(model_dir, "report", f"{name}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_write(path) as f:
        json.dump(report, f, indent=1)
    return path


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def print_report(report: Mapping, json_path: str) -> None:
    """One line per reported number: table (split), column, metric, paper, run, run - paper."""
    table = Table(title=f"{report['paper']}: {report['row']} ({report['model']}) beside "
                        f"{report['model_dir']} at step {report['step']}")
    for name in ("table", "column", "metric", "paper", "run", "run - paper"):
        table.add_column(name, justify="right" if name in ("paper", "run", "run - paper")
                         else "left")
    notes = []
    for line in report["entries"]:
        column = line["column"] if line["task"] else f"{line['column']} (not a task here)"
        if line["run_note"]:
            notes.append(f"{'*' * (len(notes) + 1)} {line['table']} {line['column']}: "
                         f"{line['run_note']}")
            column += "*" * len(notes)
        table.add_row(f"{line['table']} ({line['split'] or 'split not stated'})", column,
                      line["metric"], _number(line["paper_value"]), _number(line["run_value"]),
                      _number(line["difference"], signed=True))
    console = Console()
    console.print(table)
    sources = sorted({line["source"] for line in report["entries"]})
    console.print("\n".join([*notes, f"paper numbers: {'; '.join(sources)}",
                             f"written: {json_path}"]), soft_wrap=True)
