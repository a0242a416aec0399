"""`hyperprompt` CLI: bad input exits 2 with one line naming the problem; nothing written."""

import errno
import json
import os
import shutil

import pytest

from hyperprompt import checkpoints, cli

QUICK = ["--gin_file=experiments/quickstart.gin"]


# A conditioner whose prompt needs 64 input positions (for the length check).
NEEDS_LONG_INPUTS = """
from hyperprompt.methods.base import Method
from hyperprompt.models.conditioning import Conditioning


class NeedsLongInputs(Method):
    num_tasks = None

    def min_feature_lengths(self):
        return {"inputs": 64}

    def __call__(self, task_ids, encoder_tokens, embedder, deterministic=True):
        return Conditioning()

    def parameter_count(self, config):
        return 0
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
    assert "TASK_FEATURE_LENGTHS['inputs']=24 is shorter than NeedsLongInputs needs (64)" \
        in err[0]
    assert not os.path.exists(tmp_path / "run")


def test_eval_without_a_trained_run(tmp_path, capsys):
    code, err = run_cli(["eval", *QUICK, f"--gin.MODEL_DIR='{tmp_path}'"], capsys)
    assert code == cli.EXIT_USAGE and "has no task_registry.json" in err[0]


SMALL = ["--gin.configs.T5Config.emb_dim=32", "--gin.configs.T5Config.mlp_dim=64",
         "--gin.configs.T5Config.num_heads=2", "--gin.configs.T5Config.head_dim=16",
         "--gin.BATCH_SIZE=8", "--gin.train_lib.train.eval_examples=8"]

# A method with a parameter the vanilla checkpoint lacks, and a task with no training data.
EXTRAS_MODULE = """
import flax.linen as nn
import seqio
import tensorflow as tf
from hyperprompt.methods.base import Method
from hyperprompt.models.conditioning import Conditioning
from hyperprompt.tasks import synthetic


class WithPrompt(Method):
    num_tasks = None

    @nn.compact
    def __call__(self, task_ids, encoder_tokens, embedder, deterministic=True):
        prompt = self.param("prompt", nn.initializers.zeros, (2, embedder.features))
        return Conditioning(input_prompt=prompt[None].repeat(task_ids.shape[0], 0))

    def parameter_count(self, config):
        return 2 * config.emb_dim


if "empty_task" not in seqio.TaskRegistry.names():
    seqio.TaskRegistry.add(
        "empty_task",
        source=seqio.FunctionDataSource(
            lambda split, shuffle_files, seed=None: tf.data.Dataset.from_tensor_slices(
                {"inputs": tf.constant([], tf.string), "targets": tf.constant([], tf.string)}),
            splits=["train", "validation"]),
        preprocessors=[seqio.preprocessors.tokenize],
        output_features=synthetic.OUTPUT_FEATURES)
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step run of the quickstart experiment at a small width."""
    model_dir = tmp_path_factory.mktemp("trained") / "run"
    assert cli.main(["train", *QUICK, f"--gin.MODEL_DIR='{model_dir}'",
                     "--gin.TRAIN_STEPS=2", *SMALL]) == 0
    return model_dir


@pytest.fixture
def extras(tmp_path, monkeypatch):
    (tmp_path / "cli_extras.py").write_text(EXTRAS_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))

    def gin_flag(*lines):
        gin_file = tmp_path / "extras.gin"
        gin_file.write_text("\n".join(["from __gin__ import dynamic_registration",
                                       "import cli_extras", *lines, ""]))
        return f"--gin_file={gin_file}"

    return gin_flag


def copy_run(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def test_checkpoint_of_another_size(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    code, err = run_cli(["train", *QUICK, f"--gin.MODEL_DIR='{run}'", "--gin.TRAIN_STEPS=4",
                         *SMALL, "--gin.configs.T5Config.mlp_dim=48"], capsys)
    assert code == cli.EXIT_USAGE and len(err) == 1
    assert ("checkpoint step 2 stores decoder/layers_0/mlp/wi_0/kernel as [32, 64] but this "
            "model has [32, 48]") in err[0]


def test_checkpoint_of_another_method(trained, tmp_path, capsys, extras):
    run = copy_run(trained, tmp_path)
    method = extras("CONDITIONER = @cli_extras.WithPrompt()")
    code, err = run_cli(["train", *QUICK, method, f"--gin.MODEL_DIR='{run}'",
                         "--gin.TRAIN_STEPS=4", *SMALL], capsys)
    assert code == cli.EXIT_USAGE and len(err) == 1
    assert "checkpoint step 2 has no parameter conditioner/prompt" in err[0]


def test_corrupt_checkpoint(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    data_files = [p for p in (run / "checkpoints" / "2").rglob("*")
                  if p.is_file() and p.parent.name == "d"]
    assert data_files
    for path in data_files:  # truncate every array data file
        path.write_bytes(path.read_bytes()[:10])
    code, err = run_cli(["eval", *QUICK, f"--gin.MODEL_DIR='{run}'", *SMALL], capsys)
    assert code == cli.EXIT_USAGE and len(err) == 1
    assert f"checkpoint step 2 in {run}/checkpoints cannot be read" in err[0]
    assert "delete that step folder" in err[0]


def test_empty_dataset_split(tmp_path, capsys, extras):
    code, err = run_cli(["train", *QUICK, extras(), f"--gin.MODEL_DIR='{tmp_path / 'run'}'",
                         "--gin.MIXTURE_OR_TASK_NAME='empty_task'", *SMALL], capsys)
    assert code == cli.EXIT_USAGE and len(err) == 1
    assert "task 'empty_task' has no examples in split 'train'" in err[0]
    assert not (tmp_path / "run").exists()


def test_full_disk_during_a_save(tmp_path, capsys, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoints, "save", no_space)
    code, err = run_cli(["train", *QUICK, f"--gin.MODEL_DIR='{tmp_path / 'run'}'",
                         "--gin.TRAIN_STEPS=2", *SMALL], capsys)
    errors = [line for line in err if line.startswith("hyperprompt: error")]
    assert code == cli.EXIT_USAGE and errors == err[-1:]  # after the progress bar, one line
    assert "cannot write to MODEL_DIR" in err[-1] and "No space left on device" in err[-1]


def test_infer_from_file_replaces_bad_utf8_and_truncates(trained, tmp_path, capsys):
    inputs = tmp_path / "inputs.txt"
    inputs.write_bytes(b"copy: abc\ncopy: ab\xff\xfecd\n" + b"copy: " + b"a" * 100 + b"\n"
                       + b'{"task": "synthetic_sort", "input": "sort: cab"}\n')
    code, err = run_cli(["infer", *QUICK, f"--gin.MODEL_DIR='{trained}'", *SMALL,
                         f"--gin.INFER_INPUT_FILE='{inputs}'",
                         "--gin.INFER_TASK='synthetic_copy'"], capsys)
    assert code == 0, err
    assert "hyperprompt: warning: 1 line(s) of" in "\n".join(err)
    assert "hyperprompt: warning: 1 input(s) longer than 23 tokens were truncated" in \
        "\n".join(err)
    rows = [json.loads(line) for line in
            (trained / "inference" / "inputs.jsonl").read_text().splitlines()]
    assert [(r["task"], r["input"]) for r in rows] == [
        ("synthetic_copy", "copy: abc"), ("synthetic_copy", "copy: ab\ufffd\ufffdcd"),
        ("synthetic_copy", "copy: " + "a" * 100), ("synthetic_sort", "sort: cab")]
    assert all(r["step"] == 2 and isinstance(r["prediction"], str) for r in rows)


def test_infer_rejects_a_malformed_json_line(trained, tmp_path, capsys):
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"task": "synthetic_copy", "input": "copy: ab"}\n{"task": 3\n')
    code, err = run_cli(["infer", *QUICK, f"--gin.MODEL_DIR='{trained}'", *SMALL,
                         f"--gin.INFER_INPUT_FILE='{inputs}'"], capsys)
    assert code == cli.EXIT_USAGE and len(err) == 1
    assert f"{inputs}:2 is not a JSON object with an \"input\" field" in err[0]
