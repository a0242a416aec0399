"""Preemption, killed saves and non-finite losses: no run loses or corrupts a checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time

import flax.linen as nn
import jax
import numpy as np
import pytest

from hyperprompt import checkpoints, partitioning
from hyperprompt.cli import EXIT_PREEMPTED
from hyperprompt.errors import TrainingDiverged
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import T5Config
from hyperprompt.models.t5 import Transformer
from hyperprompt.state import restore_trained
from hyperprompt.train import train

pytestmark = pytest.mark.slow  # conftest: handed out first

# Small enough to train fast; byte vocabulary of the synthetic tasks (259 ids).
SMALL = ["--gin.configs.T5Config.emb_dim=32", "--gin.configs.T5Config.mlp_dim=64",
         "--gin.configs.T5Config.num_heads=2", "--gin.configs.T5Config.head_dim=16"]

# Makes every checkpoint finalisation after the first wait 120 s inside orbax's
# temporary folder, so a SIGKILL reliably lands in the middle of a save.
SLOW_SAVE = """
import sys, time
from orbax.checkpoint._src.handlers import standard_checkpoint_handler as handler
original, calls = handler.StandardCheckpointHandler.finalize, []
def slow_finalize(self, directory):
    calls.append(directory)
    if len(calls) > 1:
        time.sleep(120)
    return original(self, directory)
handler.StandardCheckpointHandler.finalize = slow_finalize
from hyperprompt import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def cli_args(model_dir, steps, *extra):
    return ["train", "--gin_file=experiments/quickstart.gin", f"--gin.MODEL_DIR='{model_dir}'",
            f"--gin.TRAIN_STEPS={steps}", "--gin.BATCH_SIZE=8", "--gin.EVAL_PERIOD=100000",
            "--gin.train_lib.train.log_period=1", "--gin.train_lib.train.eval_examples=0",
            *SMALL, *extra]


def start(args, cwd, script=None):
    """The CLI in a subprocess; its output goes to a file (a full pipe would block it)."""
    command = [sys.executable, str(script)] if script else [sys.executable, "-m",
                                                           "hyperprompt.cli"]
    log = cwd / f"output_{time.monotonic_ns()}.txt"
    with open(log, "w") as out:
        process = subprocess.Popen(command + args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    process.log = log
    return process


def finish(process, timeout=600) -> tuple[int, str]:
    """Wait for the process; (exit status, everything it printed)."""
    process.wait(timeout=timeout)
    return process.returncode, process.log.read_text()


def logged_losses(model_dir):
    path = model_dir / "train_log.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r["step"], r["loss"]) for r in records if r["kind"] == "train"]


def wait_for(predicate, process, timeout=240):
    deadline = time.time() + timeout
    while not predicate():
        assert process.poll() is None, process.log.read_text()
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_sigterm_checkpoints_and_resume_is_bit_identical(tmp_path):
    steps, run_dir = 60, tmp_path / "interrupted"
    straight = start(cli_args(tmp_path / "straight", steps), tmp_path)  # runs alongside
    first = start(cli_args(run_dir, steps), tmp_path)
    wait_for(lambda: len(logged_losses(run_dir)) >= 5, first)
    first.send_signal(signal.SIGTERM)
    code, output = finish(first)
    assert code == EXIT_PREEMPTED, output
    assert "preempted at step" in output.strip().splitlines()[-1]
    with checkpoints.make_manager(str(run_dir), async_save=False) as manager:
        stopped_at = manager.latest_step()
    assert 5 <= stopped_at < steps

    code, output = finish(start(cli_args(run_dir, steps), tmp_path))
    assert code == 0, output
    assert f"resuming from checkpoint step {stopped_at}" in output
    code, output = finish(straight)
    assert code == 0, output
    reference = logged_losses(tmp_path / "straight")
    assert [s for s, _ in reference] == list(range(1, steps + 1))
    assert logged_losses(run_dir) == reference  # every step, bit for bit


def test_sigkill_during_a_save_resumes_from_the_previous_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    (tmp_path / "slow_save.py").write_text(SLOW_SAVE)
    args = cli_args(run_dir, 40, "--gin.CHECKPOINT_PERIOD=10")
    killed = start(args, tmp_path, tmp_path / "slow_save.py")
    ckpt = run_dir / "checkpoints"

    def mid_save():
        names = os.listdir(ckpt) if ckpt.exists() else []
        return "10" in names and any(checkpoints.TMP_MARKER in n for n in names)

    wait_for(mid_save, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert checkpoints.partial_saves(str(run_dir))

    code, output = finish(start(cli_args(run_dir, 40, "--gin.CHECKPOINT_PERIOD=10"), tmp_path))
    assert code == 0, output
    assert "ignoring a partially written checkpoint" in output
    assert "resuming from checkpoint step 10" in output
    assert [s for s, _ in logged_losses(run_dir)] == list(range(1, 41))


BYTE_CONFIG = T5Config(vocab_size=384, emb_dim=16, num_heads=2, num_encoder_layers=1,
                       num_decoder_layers=1, head_dim=8, mlp_dim=32)
LENGTHS = {"inputs": 16, "targets": 8}


def run_train(model_dir, steps, **kwargs):
    return train(model=EncoderDecoderModel(Transformer(BYTE_CONFIG)), model_dir=str(model_dir),
                 train_steps=steps, batch_size=8, mixture_or_task_name="synthetic_mtl",
                 task_feature_lengths=LENGTHS, eval_period=steps, eval_examples=0,
                 log_period=1, async_checkpointing=False, **kwargs)


def params_at(model_dir, step):
    model = EncoderDecoderModel(Transformer(BYTE_CONFIG))
    mesh = partitioning.make_mesh(1)
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        with checkpoints.make_manager(str(model_dir), keep=10, async_save=False) as manager:
            for later in [s for s in manager.all_steps() if s > step]:
                manager.delete(later)
        return restore_trained(model, str(model_dir), LENGTHS, mesh)


def test_nan_stops_with_step_task_ids_and_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged) as error:
        run_train(tmp_path, 6, checkpoint_period=2, debug_nan_step=3)
    message = str(error.value).splitlines()[0]
    assert "non-finite loss or gradient norm at step 3 (batch task ids [" in message
    assert f"last good checkpoint: step 2 in {tmp_path}" in message
    step, _ = params_at(tmp_path, 10)  # the checkpoint is intact and restorable
    assert step == 2


def test_nan_skip_policy_drops_the_poisoned_step(tmp_path):
    run_train(tmp_path, 5, checkpoint_period=1, keep_checkpoints=10, debug_nan_step=3,
              nan_policy="skip")
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    finite = {r["step"]: r["finite"] for r in log if r["kind"] == "train"}
    assert finite == {1: 1.0, 2: 1.0, 3: 0.0, 4: 1.0, 5: 1.0}
    _, at_3 = params_at(tmp_path, 3)
    _, at_2 = params_at(tmp_path, 2)
    for a, b in zip(jax.tree.leaves(at_3), jax.tree.leaves(at_2), strict=True):
        np.testing.assert_array_equal(a, b)  # step 3 changed nothing


def test_preemption_at_a_checkpoint_step_saves_once(tmp_path, monkeypatch):
    from hyperprompt.errors import Preempted
    from hyperprompt.preemption import PreemptionGuard

    monkeypatch.setattr(PreemptionGuard, "should_stop", lambda self, step: step == 2)
    with pytest.raises(Preempted, match="preempted at step 2"):
        run_train(tmp_path, 6, checkpoint_period=2)
    step, _ = params_at(tmp_path, 10)
    assert step == 2


def signal_self(sig):
    """A stand-in for a step of start-up that a signal interrupts, inside library code that
    swallows any Exception (as optional imports do)."""
    def interrupted(*args, **kwargs):
        try:
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the handler raises before this ends
        except Exception:
            pass
        raise AssertionError("the signal did not stop start-up")

    return interrupted


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("where", ["checks", "after_lock"])
def test_signal_during_start_up_exits_75_in_one_line(tmp_path, capsys, monkeypatch,
                                                      small_run_flags, sig, where):
    from hyperprompt import cli, train_checks
    from hyperprompt import train as train_lib

    if where == "checks":  # reading the data, before anything is written
        monkeypatch.setattr(train_checks, "nonempty", signal_self(sig))
    else:  # initialising the state, MODEL_DIR created and locked
        monkeypatch.setattr(train_lib, "init_state", signal_self(sig))
    model_dir = tmp_path / "run"
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    code = cli.main(["train", *small_run_flags, f"--gin.MODEL_DIR='{model_dir}'"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_PREEMPTED
    assert err == [f"hyperprompt: stopped by {sig.name} outside the training loop (no step in "
                   f"progress, nothing to checkpoint); rerun the same command."]
    assert not model_dir.exists() if where == "checks" else \
        not (model_dir / "train.lock").exists()  # the lock went with the run
    assert {s: signal.getsignal(s) for s in before} == before  # handlers restored


def test_resume_past_the_end_reports_the_checkpoint_step(tmp_path, capsys, trained_run,
                                                         small_run_flags):
    import shutil

    from hyperprompt import cli

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    log_before = (run / "train_log.jsonl").read_text()
    assert cli.main(["train", *small_run_flags, f"--gin.MODEL_DIR='{run}'",
                     "--gin.TRAIN_STEPS=1", "--gin.train_lib.train.eval_examples=2"]) == 0
    out = capsys.readouterr().out
    assert "checkpoint step 2 is at or past TRAIN_STEPS=1: nothing was trained" in out
    assert "validation at checkpoint step 2" in out and "after 1 steps" not in out
    assert (run / "train_log.jsonl").read_text() == log_before  # no step logged
