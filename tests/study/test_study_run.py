"""`hyperprompt study` end to end: two methods, then a second seed, a few steps each; the
summary equals the runs' own logs, and a finished cell is never trained again."""

import json
import os

import numpy as np
import pytest

from hyperprompt import cli
from hyperprompt.analysis import params as params_lib
from hyperprompt.methods.hyperprompt import HyperPrompt
from hyperprompt.models.configs import T5Config

pytestmark = pytest.mark.slow  # conftest: handed out first

BASE = """
from __gin__ import dynamic_registration
from hyperprompt.models import configs
include 'experiments/study_synthetic.gin'
configs.T5Config:
  emb_dim = 32
  mlp_dim = 64
  num_heads = 4
  head_dim = 8
TRAIN_STEPS = 6
EVAL_PERIOD = 3
EVAL_EXAMPLES = 8
BATCH_SIZE = 8
"""
STUDY = """
from __gin__ import dynamic_registration
from hyperprompt.study import spec
STUDY = @spec.Study()
spec.Study:
  base = ['{base}']
  methods = {{'vanilla': ['methods/vanilla.gin'],
             'hp': ['methods/hyperprompt_share.gin', 'HYPERPROMPT_LENGTH=2']}}
  seeds = {seeds}
"""
CONFIG = T5Config(vocab_size=384, emb_dim=32, num_heads=4, num_encoder_layers=2,
                  num_decoder_layers=2, head_dim=8, mlp_dim=64,
                  mlp_activations=("gelu", "linear"), logits_via_embedding=False)


def last_eval_scores(model_dir):
    """{task: mean metric} of the last eval line of the run's log, read directly."""
    with open(os.path.join(model_dir, "train_log.jsonl")) as f:
        last = [json.loads(line) for line in f if '"kind": "eval"' in line][-1]
    scores = {}
    for key, value in last.items():
        if key.startswith("eval/"):
            scores.setdefault(key.split("/")[1], []).append(value)
    return {task: float(np.mean(values)) for task, values in scores.items()}


def study(tmp_path, seeds):
    base = tmp_path / "base.gin"
    base.write_text(BASE)
    path = tmp_path / f"study_{len(seeds)}.gin"
    path.write_text(STUDY.format(base=base, seeds=seeds))
    return cli.main(["study", f"--gin_file={path}", f"--root={tmp_path / 'root'}", "--jobs=2"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    assert study(tmp, [0]) == 0
    root = tmp / "root"
    first = {name: os.stat(root / name / "results.json").st_mtime_ns
             for name in ("vanilla/seed_0", "hp/seed_0")}
    outputs = {name: (root / name / "train.out").read_bytes() for name in first}
    assert study(tmp, [0, 1]) == 0
    return root, first, outputs


def test_summary_equals_the_runs_logs(runs):
    root, _, _ = runs
    summary = json.loads((root / "study.json").read_text())
    assert summary["tasks"][-1] == "average" and len(summary["tasks"]) == 7
    for method in ("vanilla", "hp"):
        per_seed = [last_eval_scores(root / method / f"seed_{s}") for s in (0, 1)]
        for task in summary["tasks"][:-1]:
            row = summary["methods"][method]["tasks"][task]
            assert row["values"] == pytest.approx([s[task] for s in per_seed])
            assert row["std"] == pytest.approx(np.std([s[task] for s in per_seed], ddof=1))
        gains = [np.mean(list(h.values())) - np.mean(list(v.values())) for h, v in zip(
            [last_eval_scores(root / "hp" / f"seed_{s}") for s in (0, 1)],
            [last_eval_scores(root / "vanilla" / f"seed_{s}") for s in (0, 1)], strict=True)]
    assert summary["methods"]["hp"]["gain"]["average"]["values"] == pytest.approx(gains)


def test_trainable_parameters_are_the_closed_forms(runs):
    root, _, _ = runs
    summary = json.loads((root / "study.json").read_text())
    backbone = params_lib.backbone_count(CONFIG)
    method = HyperPrompt(CONFIG, 6, variant="share", prompt_length=2).parameter_count(CONFIG)
    assert summary["methods"]["vanilla"]["trainable"] == backbone
    assert summary["methods"]["hp"]["trainable"] == backbone + method
    assert summary["methods"]["hp"]["label"] == "HyperPrompt-Share"


def test_a_second_seed_trains_only_the_new_cells(runs):
    root, first, outputs = runs
    for name, mtime in first.items():
        assert os.stat(root / name / "results.json").st_mtime_ns == mtime
        assert (root / name / "train.out").read_bytes() == outputs[name]
    for name in ("vanilla/seed_1", "hp/seed_1"):
        assert (root / name / "results.json").exists()
    for name in ("bars.png", "curves.png"):
        assert (root / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| HyperPrompt-Share |" in (root / "study.md").read_text()
