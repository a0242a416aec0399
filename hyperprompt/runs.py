"""Training runs driven from outside (sweeps, studies): their commands and finished results.

A run is `hyperprompt train` with gin files and `--gin.NAME=VALUE` bindings into a
MODEL_DIR; it is finished when MODEL_DIR/results.json exists, and its scores are the
last eval record of MODEL_DIR/train_log.jsonl.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Sequence

from hyperprompt.run_log import LOG_FILE, eval_results, read_records

RESULTS_FILE = "results.json"  # written by `hyperprompt train` when it finishes


def finished(model_dir: str) -> bool:
    """Whether `hyperprompt train` ran to its last step in `model_dir`."""
    return os.path.exists(os.path.join(model_dir, RESULTS_FILE))


def shell_quote(arg: str) -> str:
    """shlex.quote, but "--gin.MODEL_DIR='runs/x'" rather than '--gin.MODEL_DIR='"'"'...'."""
    quoted = shlex.quote(arg)
    if quoted != arg and not re.search(r'["$`\\!]', arg):
        return f'"{arg}"'
    return quoted


def hyperprompt_executable() -> str:
    """The `hyperprompt` script next to this Python (a venv's bin/), else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "hyperprompt")
    return beside if os.path.exists(beside) else "hyperprompt"


def train_command(gin_files: Sequence[str], bindings: Sequence[str], model_dir: str
                  ) -> list[str]:
    """argv of `hyperprompt train` (bindings as 'NAME=VALUE', applied in order)."""
    return [hyperprompt_executable(), "train", *(f"--gin_file={f}" for f in gin_files),
            *(f"--gin.{b}" for b in bindings), f"--gin.MODEL_DIR='{model_dir}'"]


def eval_records(model_dir: str) -> list[dict]:
    """MODEL_DIR's eval records as {'step', 'tasks': {task: {metric: value}}}, in order."""
    return [{"step": r["step"], "tasks": eval_results(r)}
            for r in read_records(os.path.join(model_dir, LOG_FILE)) if r["kind"] == "eval"]


def train_step_seconds(model_dir: str) -> list[float]:
    """Seconds per train step of each logged period after the first (which includes the
    compilation), from the `steps_per_sec` of MODEL_DIR/train_log.jsonl's train records."""
    rates = [r["steps_per_sec"] for r in read_records(os.path.join(model_dir, LOG_FILE))
             if r["kind"] == "train" and r.get("steps_per_sec")]
    return [1.0 / rate for rate in rates[1:]]


def network_of(gin_files: Sequence[str], bindings: Sequence[str]):
    """The T5 network (`Transformer`, with its method) that `hyperprompt train` with these
    gin files and 'NAME=VALUE' bindings builds; UsageError for what train would reject."""
    import gin

    from hyperprompt import cli

    try:
        cli.parse_gin(gin_files, [b.replace("=", " = ", 1) for b in bindings], [])
        return gin.query_parameter("MODEL/macro.value").scoped_configurable_fn().module
    finally:
        gin.clear_config()
