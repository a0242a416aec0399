"""Model selection: each task's best validation step from a hand-written train log."""

import json

import pytest

from hyperprompt import cli
from hyperprompt.analysis import selection
from hyperprompt.errors import UsageError

LOG = [
    {"kind": "train", "step": 100, "loss": 2.0},
    {"kind": "eval", "step": 100, "eval/task_a/mcc": 30.0, "eval/task_b/f1": 80.0,
     "eval/task_b/accuracy": 70.0},
    {"kind": "eval", "step": 200, "eval/task_a/mcc": 50.0, "eval/task_b/f1": 90.0,
     "eval/task_b/accuracy": 60.0},  # task_b mean 75 = step 100's: the earlier step stays
    {"kind": "eval", "step": 300, "eval/task_a/mcc": 40.0, "eval/task_b/f1": 74.0,
     "eval/task_b/accuracy": 75.0},
]


def write_log(model_dir, records, tail=""):
    model_dir.mkdir(exist_ok=True)
    lines = "".join(json.dumps(r) + "\n" for r in records)
    (model_dir / "train_log.jsonl").write_text(lines + tail)
    return model_dir


def test_best_step_per_task_and_its_metrics(tmp_path):
    model_dir = write_log(tmp_path / "run", LOG, tail='{"kind": "eval", "st')  # cut-off line
    chosen = selection.select(str(model_dir))
    assert chosen.steps == {"task_a": 200, "task_b": 100}
    assert chosen.results == {"task_a": {"mcc": 50.0}, "task_b": {"f1": 80.0, "accuracy": 70.0}}


def test_missing_log_and_log_without_evaluations(tmp_path):
    with pytest.raises(UsageError, match="train_log.jsonl does not exist"):
        selection.select(str(tmp_path))
    write_log(tmp_path, LOG[:1])
    with pytest.raises(UsageError, match="has no evaluations; train with evaluation on"):
        selection.select(str(tmp_path))


def test_report_select_prints_the_table_and_steps(tmp_path, capsys):
    model_dir = write_log(tmp_path / "run", LOG)
    (model_dir / "checkpoints" / "200").mkdir(parents=True)
    assert cli.main(["report", "--select", "--gin_file=experiments/quickstart.gin",
                     f"--gin.MODEL_DIR='{model_dir}'"]) == 0
    out = capsys.readouterr().out
    assert "50.00" in out and "80.00" in out
    assert "62.50" in out  # average of task_a 50 and task_b (80 + 70) / 2
    assert "task_a: step 200 (checkpoint kept)" in out
    assert "task_b: step 100 (checkpoint deleted)" in out
