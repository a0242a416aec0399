"""Bad input: exit 2, one line naming the problem and the fix, and MODEL_DIR exactly as it
was (a fresh MODEL_DIR is not even created; a trained run keeps every file and folder)."""

import shutil

import gin
import pytest

from hyperprompt import cli, macros
from hyperprompt.errors import UsageError

BAD_GIN = "TRAIN_STEPS = (\n"
MISSING_INCLUDE = "include 'experiments/quickstart.gin'\ninclude 'no/such/file.gin'\n"


def gin_file(tmp_path, text):
    path = tmp_path / "bad.gin"
    path.write_text(text)
    return f"--gin_file={path}"


def no_such(tmp_path):
    return f"--gin.INITIAL_CHECKPOINT_PATH='{tmp_path / 'no_such_checkpoint'}'"


def empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return f"--gin.INITIAL_CHECKPOINT_PATH='{tmp_path / 'empty'}'"


def a_file(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0" * 8)
    return f"--gin.INITIAL_CHECKPOINT_PATH='{tmp_path / 'weights.bin'}'"


# (an extra flag, several, or a function of tmp_path giving one; what the line must say)
FRESH_RUN = [
    (lambda p: gin_file(p, BAD_GIN), "bad.gin: EOF in multi-line statement (line 2): a bracket "
                                     "or quote is not closed"),
    (lambda p: gin_file(p, MISSING_INCLUDE), "Unable to open file: no/such/file.gin"),
    ("--gin.TRAIN_STEPS=1e", "--gin.TRAIN_STEPS=1e: "),
    ("--gin.TRAIN_STEPS=(", "--gin.TRAIN_STEPS=(: "),
    ("--gin.BATCH_SIZE=0", "BATCH_SIZE=0 is out of range: it must be an integer >= 1"),
    ("--gin.EVAL_PERIOD=0", "EVAL_PERIOD=0 is out of range: it must be an integer >= 1"),
    ("--gin.TRAIN_STEPS=-5", "TRAIN_STEPS=-5 is out of range: it must be an integer >= 1"),
    ("--gin.TRAIN_STEPS=2.5", "TRAIN_STEPS=2.5 is out of range"),
    ("--gin.BATCH_SIZE='8'", "BATCH_SIZE='8' is out of range"),
    ("--gin.CHECKPOINT_PERIOD=0", "CHECKPOINT_PERIOD=0 is out of range"),
    ("--gin.KEEP_CHECKPOINTS=0", "KEEP_CHECKPOINTS=0 is out of range: it must be an integer "
                                 ">= 1 or None (keep all)"),
    ("--gin.LEARNING_RATE=-1", "LEARNING_RATE=-1 is out of range: it must be a number >= 0"),
    ("--gin.LEARNING_RATE=-1e-3", "LEARNING_RATE=-0.001 is out of range"),
    ("--gin.DROPOUT_RATE=1.5", "DROPOUT_RATE=1.5 is out of range: it must be a number in [0, 1)"),
    ("--gin.SEED=-1", "SEED=-1 is out of range: it must be an integer >= 0"),
    ("--gin.TASK_FEATURE_LENGTHS={'inputs': 0, 'targets': 8}",
     "TASK_FEATURE_LENGTHS={'inputs': 0, 'targets': 8} is out of range"),
    ("--gin.train_lib.train.log_period=0", "log_period=0 must be an integer >= 1"),
    (no_such, "INITIAL_CHECKPOINT_PATH="),
    (empty_folder, "holds no checkpoint (no config.json, t5x `checkpoint` file or orbax step)"),
    (a_file, "weights.bin' is a file, not a checkpoint folder"),
    # A method's macros and fields (its gin file swapped in).
    (["--gin_file=methods/adapters.gin", "--gin.ADAPTER_REDUCTION=0"],
     "ADAPTER_REDUCTION=0 is out of range: it must be an integer >= 1 dividing d_model"),
    (["--gin_file=methods/adapters.gin", "--gin.ADAPTER_REDUCTION=3"],
     "Adapters.reduction_factor=3 does not divide"),
    (["--gin_file=methods/hypergrid_lg.gin", "--gin.HYPERGRID_COLS=-4"],
     "HYPERGRID_COLS=-4 is out of range"),
    (["--gin_file=methods/hypergrid_l.gin", "--gin.HYPERGRID_STACKS='encoders'"],
     "HyperGrid.stacks='encoders': use one of"),
    (["--gin_file=methods/hyperprompt_global.gin", "--gin.HYPERPROMPT_PLACEMENT='input'"],
     "placement='input'"),
    (["--gin_file=methods/attempt.gin", "--gin.ATTEMPT_ATTENTION_LEARNING_RATE=-0.3"],
     "ATTEMPT_ATTENTION_LEARNING_RATE=-0.3 is out of range: it must be a number > 0"),
    (["--gin_file=methods/attempt.gin", "--gin.ATTEMPT_BOTTLENECK=0"],
     "ATTEMPT_BOTTLENECK=0 is out of range"),
    (["--gin_file=methods/attempt.gin", "--gin.ATTEMPT_SOURCES='glue_mnli'"],
     "Attempt.sources='glue_mnli' is one name, not a tuple of names; write ('glue_mnli',)."),
    # A string is truthy: 'False' would have switched the setting on.
    ("--gin.PACK='False'", "PACK='False' is out of range: it must be True or False"),
    (["--gin_file=methods/adapters.gin", "--gin.ADAPTER_SHARED='no'"],
     "ADAPTER_SHARED='no' is out of range: it must be True or False"),
]


@pytest.mark.parametrize("method, macro", [("prompt_tuning", "PROMPT_LEARNING_RATE"),
                                           ("attempt", "ATTEMPT_ATTENTION_LEARNING_RATE")])
def test_a_none_learning_rate_is_in_range(method, macro):
    """None trains the method's parameters with the run's optimizer (the ATTEMPT recipe's
    source prompts: README, studies/glue.gin); its range check once refused it."""
    files = ["experiments/quickstart.gin", f"methods/{method}.gin"]
    try:
        cli.parse_gin(files, [f"{macro}=None"], [])
        macros.check()
        cli.parse_gin(files, [f"{macro}=0"], [])
        with pytest.raises(UsageError, match=f"{macro}=0 is out of range: it must be a number "
                                             f"> 0 or None"):
            macros.check()
    finally:
        gin.clear_config()


def run_cli(argv, capsys):
    code = cli.main(argv)
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("extra, message", FRESH_RUN)
def test_rejected_train_does_not_create_model_dir(tmp_path, capsys, small_run_flags, extra,
                                                  message):
    model_dir = tmp_path / "run"
    flags = extra(tmp_path) if callable(extra) else extra
    flags = [flags] if isinstance(flags, str) else flags
    code, err = run_cli(["train", *small_run_flags, f"--gin.MODEL_DIR='{model_dir}'",
                         "--gin.TRAIN_STEPS=2", *flags], capsys)
    assert code == cli.EXIT_USAGE and len(err) == 1, err
    assert message in err[0], err
    assert "--from" not in err[0] and "object at 0x" not in err[0]
    assert not model_dir.exists()


def test_bad_initial_checkpoint_names_the_macro_not_a_convert_flag(tmp_path, capsys,
                                                                    small_run_flags):
    code, err = run_cli(["train", *small_run_flags, f"--gin.MODEL_DIR='{tmp_path / 'run'}'",
                         no_such(tmp_path)], capsys)
    assert err == [f"hyperprompt: error: INITIAL_CHECKPOINT_PATH="
                   f"'{tmp_path / 'no_such_checkpoint'}' does not exist; point it at a Hugging "
                   f"Face folder, a t5x checkpoint_N folder, or a hyperprompt MODEL_DIR or "
                   f"converted folder."]


# On a trained run (BATCH_SIZE 8, TASK_FEATURE_LENGTHS {'inputs': 24, 'targets': 12}, SEED 0).
ON_A_RUN = [
    (["train", "--gin.TRAIN_STEPS=4", "--gin.BATCH_SIZE=16"],
     "was trained with BATCH_SIZE=8, not 16; resuming would not continue its data stream: "
     "pass --gin.BATCH_SIZE=8, or start a new MODEL_DIR from it"),
    (["train", "--gin.TRAIN_STEPS=4", "--gin.TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 12}"],
     "was trained with TASK_FEATURE_LENGTHS={'inputs': 24, 'targets': 12}, not {'inputs': 32, "
     "'targets': 12}"),
    (["train", "--gin.TRAIN_STEPS=4", "--gin.SEED=1"], "was trained with SEED=0, not 1"),
    (["train", "--gin.TRAIN_STEPS=4", "--gin.EVAL_PERIOD=0"], "EVAL_PERIOD=0 is out of range"),
    (["train", "--gin.TRAIN_STEPS=4", "--gin.MIXTURE_OR_TASK_NAME='synthetic_copy'"],
     "was trained with tasks ["),
    (["infer", "--gin.INFER_INPUT_FILE='/no/such/inputs.txt'"],
     "INFER_INPUT_FILE='/no/such/inputs.txt' cannot be read (No such file or directory)"),
    (["eval", "--gin.EVAL_EXAMPLES=0"], "EVAL_EXAMPLES=0 is out of range"),
]


@pytest.mark.parametrize("command, message", ON_A_RUN)
def test_rejected_command_leaves_a_run_exactly_as_it_was(tmp_path, capsys, trained_run,
                                                         snapshot, small_run_flags, command,
                                                         message):
    model_dir = tmp_path / "run"
    shutil.copytree(trained_run, model_dir)
    before = snapshot(model_dir)
    code, err = run_cli([command[0], *small_run_flags, f"--gin.MODEL_DIR='{model_dir}'",
                         *command[1:]], capsys)
    assert code == cli.EXIT_USAGE and len(err) == 1, err
    assert message in err[0], err
    assert snapshot(model_dir) == before


def test_empty_input_file_warns_and_writes_nothing(tmp_path, capsys, trained_run, snapshot,
                                                   small_run_flags):
    model_dir = tmp_path / "run"
    shutil.copytree(trained_run, model_dir)
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("\n  \n\t\n")
    before = snapshot(model_dir)
    code, err = run_cli(["infer", *small_run_flags, f"--gin.MODEL_DIR='{model_dir}'",
                         f"--gin.INFER_INPUT_FILE='{inputs}'",
                         "--gin.INFER_TASK='synthetic_copy'"], capsys)
    assert code == 0
    assert err == [f"hyperprompt: warning: INFER_INPUT_FILE='{inputs}' holds no inputs (empty "
                   f"or blank lines only); nothing was predicted."]
    assert snapshot(model_dir) == before
