"""Two real processes (4 CPU devices each, gloo) train like one process with 8 devices.

The two-process run is stopped by SIGTERM to both and resumed; its losses at every step,
its final parameters (1e-6) and its final evaluation (each process decodes its rows of the
eval batches; the gathered predictions, example by example) equal a one-process run's on
the same 8-device mesh, and only process 0 writes the run's files.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from hyperprompt import cli
from hyperprompt.cli import EXIT_PREEMPTED

pytestmark = pytest.mark.slow  # conftest: handed out first

STEPS = 12
SMALL = ["--gin_file=experiments/quickstart.gin", "--gin.BATCH_SIZE=8",
         "--gin.EVAL_PERIOD=100000", "--gin.train_lib.train.log_period=1",
         "--gin.train_lib.train.eval_examples=8", "--gin.configs.T5Config.emb_dim=32",
         "--gin.configs.T5Config.mlp_dim=64", "--gin.configs.T5Config.num_heads=2",
         "--gin.configs.T5Config.head_dim=16", f"--gin.TRAIN_STEPS={STEPS}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_processes(model_dir, cwd) -> list[subprocess.Popen]:
    """`hyperprompt train` as processes 0 and 1 of a two-process run."""
    port, processes = free_port(), []
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    for index in range(2):
        log = cwd / f"process_{index}_{time.monotonic_ns()}.txt"
        with open(log, "w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "hyperprompt.cli", "train", *SMALL,
                 f"--gin.MODEL_DIR='{model_dir}'", f"--coordinator_address=127.0.0.1:{port}",
                 "--num_processes=2", f"--process_id={index}"],
                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        process.log = log
        processes.append(process)
    return processes


def finish(processes, timeout=300) -> list[tuple[int, str]]:
    for process in processes:
        process.wait(timeout=timeout)
    return [(p.returncode, p.log.read_text()) for p in processes]


def log_records(model_dir) -> list[dict]:
    path = model_dir / "train_log.jsonl"
    if not path.exists():
        return []
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["kind"] == "train"]


def predictions(model_dir, task) -> list[tuple[str, str]]:
    """(input, prediction) of each example of the final evaluation."""
    path = model_dir / "eval_predictions" / f"{task}-{STEPS}.jsonl"
    return [(r["input"], r["prediction"]) for r in map(json.loads, path.open())]


def final_params(model_dir) -> dict:
    """{path: numpy array} of the last checkpoint's parameters (placed on no mesh)."""
    item = str(model_dir / "checkpoints" / str(STEPS) / "default")
    checkpointer = ocp.PyTreeCheckpointer()
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                            checkpointer.metadata(item).item_metadata.tree)
    state = checkpointer.restore(item, args=ocp.args.PyTreeRestore(restore_args=as_numpy))
    return dict(ocp.tree.to_flat_dict(state["params"]))


def test_two_processes_preempted_and_resumed_equal_one_process(tmp_path):
    two, one = tmp_path / "two_processes", tmp_path / "one_process"
    processes = start_processes(two, tmp_path)
    deadline = time.time() + 240
    while not log_records(two):
        assert all(p.poll() is None for p in processes), finish(processes)
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for code, output in finish(processes):
        assert code == EXIT_PREEMPTED, output
    stopped = [r["step"] for r in log_records(two)][-1]
    assert stopped < STEPS, "the signal came after the last step; raise STEPS"
    assert os.listdir(two / "checkpoints") == [str(stopped)]

    processes = start_processes(two, tmp_path)
    # The one-process reference runs here meanwhile (conftest: 8 CPU devices).
    assert cli.main(["train", *SMALL, f"--gin.MODEL_DIR='{one}'"]) == 0
    for code, output in finish(processes):
        assert code == 0, output
        assert f"resuming from checkpoint step {stopped}" in output

    resumed, reference = log_records(two), log_records(one)
    assert [r["step"] for r in resumed] == list(range(1, STEPS + 1))  # one log, each step once
    np.testing.assert_allclose([r["loss"] for r in resumed],
                               [r["loss"] for r in reference], rtol=1e-6)
    assert len(os.listdir(two / "tensorboard")) == 2  # process 0's, once per start
    # The final eval: each process decoded its rows of every batch; the gathered
    # predictions, example by example, are the one-process run's (and so the metrics).
    results = json.loads((two / "results.json").read_text())
    assert len(results) == 4 and results == json.loads((one / "results.json").read_text())
    for task in results:
        got, want = (predictions(run, task) for run in (two, one))
        assert got == want and len(got) == 8, task
    # Most examples get their own answer, so a process that kept only its own rows would
    # show (planted: it did).
    answers = sum(len({answer for _, answer in predictions(one, task)}) for task in results)
    assert answers >= 16
    got, want = final_params(two), final_params(one)
    assert got.keys() == want.keys()
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, atol=1e-6, err_msg=str(key))
