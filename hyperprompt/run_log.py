"""MODEL_DIR/train_log.jsonl: one line per logged train step or eval, append-only.

On resume the lines past the restored step are dropped, so the log always
describes the run that the latest checkpoint continues.
"""

from __future__ import annotations

import json
import os

LOG_FILE = "train_log.jsonl"


class RunLog:
    def __init__(self, model_dir: str, resume_step: int):
        self.path = os.path.join(model_dir, LOG_FILE)
        self.records = [r for r in self._read() if r["step"] <= resume_step]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in self.records)
        os.replace(tmp, self.path)  # atomic: a kill here keeps the old log

    def _read(self) -> list[dict]:
        if not os.path.exists(self.path):
            return []
        records = []
        with open(self.path) as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut short by a kill or a full disk
                    continue
        return records

    def append(self, kind: str, step: int, values: dict[str, float]) -> None:
        record = {"kind": kind, "step": step, **values}
        self.records.append(record)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def history(self) -> dict[str, list[dict]]:
        """{'train': [...], 'eval': [...], other kinds...} without the `kind` field."""
        out: dict[str, list[dict]] = {"train": [], "eval": []}
        for r in self.records:
            out.setdefault(r["kind"], []).append({k: v for k, v in r.items() if k != "kind"})
        return out
