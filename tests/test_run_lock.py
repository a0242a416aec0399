"""One `train` per MODEL_DIR: a second one is refused in one line; a killed run's lock is
taken over; eval and report read a run that is being trained."""

import shutil
import signal
import subprocess
import sys

import pytest

from hyperprompt import cli, run_lock
from hyperprompt.errors import UsageError

# A stand-in for a running `hyperprompt train`: holds the lock until killed.
HOLDER = ("import filelock, sys, time\n"
          "lock = filelock.SoftFileLock(sys.argv[1], timeout=0)\n"
          "lock.acquire()\n"
          "print('held', flush=True)\n"
          "time.sleep(600)\n")


@pytest.fixture
def holder():
    """`hold(model_dir)`: a live process holding MODEL_DIR's lock (killed afterwards)."""
    processes = []

    def hold(model_dir):
        model_dir.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen([sys.executable, "-c", HOLDER,
                                    str(model_dir / run_lock.LOCK_FILE)], stdout=subprocess.PIPE)
        processes.append(process)
        assert process.stdout.readline() == b"held\n"
        return process

    yield hold
    for process in processes:
        process.kill()
        process.wait()


def run_cli(argv, capsys):
    code = cli.main(argv)
    return code, capsys.readouterr().err.strip().splitlines()


def test_second_train_is_refused_naming_the_running_one(tmp_path, capsys, holder, snapshot,
                                                        small_run_flags):
    model_dir = tmp_path / "run"
    running = holder(model_dir)
    before = snapshot(model_dir)
    code, err = run_cli(["train", *small_run_flags, f"--gin.MODEL_DIR='{model_dir}'"], capsys)
    assert code == cli.EXIT_USAGE and len(err) == 1, err
    assert f"is being trained by another `hyperprompt train` (pid {running.pid} on host " in err[0]
    assert snapshot(model_dir) == before


def test_a_killed_runs_lock_is_taken_over(tmp_path, holder):
    killed = holder(tmp_path)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert (tmp_path / run_lock.LOCK_FILE).exists()  # left behind
    with run_lock.owned(str(tmp_path)):
        with pytest.raises(UsageError, match="is being trained by another"):
            with run_lock.owned(str(tmp_path)):  # and now held: by this process
                pass
    assert not (tmp_path / run_lock.LOCK_FILE).exists()  # released


def test_a_lock_of_another_host_is_refused(tmp_path):
    (tmp_path / run_lock.LOCK_FILE).write_text("4242\nother-host\n")
    with pytest.raises(UsageError, match=r"\(pid 4242 on host other-host\); wait for it or stop "
                                         r"it, or use another MODEL_DIR \(if that run is gone, "
                                         r"delete .*train.lock\)"):
        with run_lock.owned(str(tmp_path)):
            pass


def test_eval_and_report_read_a_run_being_trained(tmp_path, capsys, holder, snapshot,
                                                  trained_run, small_run_flags):
    model_dir = tmp_path / "run"
    shutil.copytree(trained_run, model_dir)
    holder(model_dir)
    before = snapshot(model_dir)
    for command in (["eval"], ["report", "--select"]):
        code, err = run_cli([*command, *small_run_flags, f"--gin.MODEL_DIR='{model_dir}'"],
                            capsys)
        expected = 0 if command == ["eval"] else cli.EXIT_USAGE  # no evals logged: one line
        assert code == expected and not any("Traceback" in line for line in err), err
    assert snapshot(model_dir) == before  # read only: not one file or folder written
