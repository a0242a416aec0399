"""`hyperprompt` CLI: bad input exits 2 with one line naming the problem; nothing written."""

import os

import pytest

from hyperprompt import cli

QUICK = ["--gin_file=experiments/quickstart.gin"]


# A conditioner whose prompt needs 64 input positions (for the length check).
NEEDS_LONG_INPUTS = """
import flax.linen as nn
from hyperprompt.models.conditioning import Conditioning


class NeedsLongInputs(nn.Module):
    def min_feature_lengths(self):
        return {"inputs": 64}

    def __call__(self, task_ids, encoder_tokens, embedder, deterministic=True):
        return Conditioning()
"""


def run_cli(argv, capsys):
    code = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize("extra, message", [
    (["--gin.TRAIN_STEP=5"], "TRAIN_STEP sets a macro that no gin file uses; did you mean "
                             "TRAIN_STEPS"),
    (["--gin.train_lib.train.stepz=5"], "doesn't have a parameter named 'stepz'"),
    (["--gin.MIXTURE_OR_TASK_NAME='synthetic_mt'"], "unknown task or mixture 'synthetic_mt'. "
                                                    "Did you mean synthetic_mtl"),
    (["--gin.TASK_FEATURE_LENGTHS={'inputs': 24}"], "TASK_FEATURE_LENGTHS has no 'targets'"),
    (["--gin.BATCH_SIZE=12"], "BATCH_SIZE=12 is not divisible by the data-parallel mesh size 8"),
    (["--gin_file=no/such.gin"], "gin file 'no/such.gin' not found"),
    (["--bogus"], "unrecognised argument '--bogus'"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, message):
    model_dir = tmp_path / "run"
    code, err = run_cli(["train", *QUICK, f"--gin.MODEL_DIR='{model_dir}'", *extra], capsys)
    assert code == cli.EXIT_USAGE
    assert len(err) == 1 and message in err[0], err
    assert not model_dir.exists()


def test_model_dir_not_writable(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, err = run_cli(["train", *QUICK, f"--gin.MODEL_DIR='{blocker}/run'"], capsys)
    assert code == cli.EXIT_USAGE and len(err) == 1
    assert "is not writable" in err[0]


def test_missing_model_dir(capsys):
    code, err = run_cli(["train", *QUICK], capsys)
    assert code == cli.EXIT_USAGE and err == [
        "hyperprompt: error: macro MODEL_DIR is not set; pass --gin.MODEL_DIR=..."]


def test_feature_lengths_too_short_for_the_methods_prompt(tmp_path, capsys, monkeypatch):
    (tmp_path / "long_prompt_method.py").write_text(NEEDS_LONG_INPUTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    method = tmp_path / "needs_long.gin"
    method.write_text("from __gin__ import dynamic_registration\nimport long_prompt_method\n"
                      "CONDITIONER = @long_prompt_method.NeedsLongInputs()\n")
    code, err = run_cli(["train", *QUICK, f"--gin_file={method}",
                         f"--gin.MODEL_DIR='{tmp_path / 'run'}'"], capsys)
    assert code == cli.EXIT_USAGE and len(err) == 1
    assert "TASK_FEATURE_LENGTHS['inputs']=24 is shorter than the NeedsLongInputs prompt " \
           "needs (64)" in err[0]
    assert not os.path.exists(tmp_path / "run")


def test_eval_without_a_trained_run(tmp_path, capsys):
    code, err = run_cli(["eval", *QUICK, f"--gin.MODEL_DIR='{tmp_path}'"], capsys)
    assert code == cli.EXIT_USAGE and "has no task_registry.json" in err[0]
