"""MODEL_DIR/train_log.jsonl: one line per logged train step or eval, append-only.

On resume the lines past the restored step are dropped, so the log always
describes the run that the latest checkpoint continues. Lines that cannot be read
(cut short by a kill, bytes that are not UTF-8, JSON without `kind` and `step`) are
skipped with one warning that counts them; a resume drops them from the file.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping

from hyperprompt.files import atomic_write

LOG_FILE = "train_log.jsonl"


def _record(line: bytes) -> dict | None:
    """The record on one line, or None when the line is not one."""
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if (isinstance(record, dict) and isinstance(record.get("kind"), str)
            and isinstance(record.get("step"), int)):
        return record
    return None


def read_records(path: str) -> list[dict]:
    """Every readable record of a log file ([] when it does not exist); warns once, with
    their line numbers, about the lines it skipped."""
    if not os.path.exists(path):
        return []
    records, skipped = [], []
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            record = _record(line)
            if record is None:
                skipped.append(number)
            else:
                records.append(record)
    if skipped:
        shown = ", ".join(map(str, skipped[:5])) + (", ..." if len(skipped) > 5 else "")
        warnings.warn(f"skipped {len(skipped)} unreadable line(s) of {path} (line {shown}: "
                      f"cut short, not UTF-8, or JSON without \"kind\" and \"step\").",
                      stacklevel=2)
    return records


def eval_results(record: Mapping) -> dict[str, dict[str, float]]:
    """{task: {metric: value}} of one eval record's `eval/<task>/<metric>` keys."""
    out: dict[str, dict[str, float]] = {}
    for key, value in record.items():
        if key.startswith("eval/"):
            _, task, metric = key.split("/", 2)
            out.setdefault(task, {})[metric] = float(value)
    return out


def final_eval(model_dir: str) -> dict | None:
    """The last eval record of MODEL_DIR/train_log.jsonl as {'step', 'average', 'tasks'}
    ('tasks': {task: {metric: value}}; 'average' as `hyperprompt.eval.average`), or None."""
    from hyperprompt import eval as eval_lib

    evals = [r for r in read_records(os.path.join(model_dir, LOG_FILE)) if r["kind"] == "eval"]
    if not evals:
        return None
    tasks = eval_results(evals[-1])
    return {"step": evals[-1]["step"], "average": eval_lib.average(tasks), "tasks": tasks}


class RunLog:
    """The records of a run; `write=False` (processes other than 0) keeps them in memory."""

    def __init__(self, model_dir: str, resume_step: int, write: bool = True):
        self.path, self.write = os.path.join(model_dir, LOG_FILE), write
        self.records = [r for r in read_records(self.path) if r["step"] <= resume_step]
        if write:
            with atomic_write(self.path) as f:  # a kill here keeps the old log
                f.writelines(json.dumps(r) + "\n" for r in self.records)

    def append(self, kind: str, step: int, values: dict[str, float]) -> None:
        record = {"kind": kind, "step": step, **values}
        self.records.append(record)
        if not self.write:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def history(self) -> dict[str, list[dict]]:
        """{'train': [...], 'eval': [...], other kinds...} without the `kind` field."""
        out: dict[str, list[dict]] = {"train": [], "eval": []}
        for r in self.records:
            out.setdefault(r["kind"], []).append({k: v for k, v in r.items() if k != "kind"})
        return out
