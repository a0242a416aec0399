"""launch/tpu_pod.py, slurm_gpu.py, gpu_host.py: the commands their --dry_run prints."""

import importlib.util
import os
import shlex
import sys

import pytest

LAUNCH = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "launch")
RUN = ["--gin_file=experiments/quickstart.gin", "--gin", "MODEL_DIR='gs://b/run one'",
       "--gin", "TRAIN_STEPS=10", "--dry_run"]


def script(name):
    sys.path.insert(0, LAUNCH)  # the scripts import launch/common.py, as when run
    try:
        spec = importlib.util.spec_from_file_location(name, os.path.join(LAUNCH, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # launch/ is a folder of scripts, not a package
        return module
    finally:
        sys.path.remove(LAUNCH)


TRAIN = [".venv/bin/python", "-m", "hyperprompt.cli", "train",
         "--gin_file=experiments/quickstart.gin", "--gin.MODEL_DIR='gs://b/run one'",
         "--gin.TRAIN_STEPS=10"]


def test_tpu_pod_creates_copies_installs_and_runs_on_every_worker(capsys):
    script("tpu_pod").main(["--name", "pod", "--zone", "z1", "--accelerator", "v4-32", *RUN])
    lines = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
    assert [line[:5] for line in lines] == [["gcloud", "compute", "tpus", "tpu-vm", verb]
                                           for verb in ("create", "scp", "ssh", "ssh")]
    assert "--accelerator-type=v4-32" in lines[0] and "--zone=z1" in lines[0]
    assert all("--worker=all" in line for line in lines[1:])
    remote = shlex.split(lines[3][-1].split("&&", 1)[1])
    assert remote == [*TRAIN, "--multiprocess"]  # jax finds the pod's hosts itself


def test_tpu_pod_reuses_a_pod(capsys):
    script("tpu_pod").main(["--name", "pod", "--zone", "z1", "--skip_create", *RUN])
    assert "create" not in capsys.readouterr().out


def test_slurm_runs_one_process_per_gpu(capsys):
    script("slurm_gpu").main(["--nodes", "2", "--gpus_per_node", "4", "--partition", "p",
                              *RUN])
    out = capsys.readouterr().out
    assert "#SBATCH --nodes=2" in out and "#SBATCH --ntasks-per-node=4" in out
    assert "#SBATCH --gpus-per-task=1" in out and "#SBATCH --partition=p" in out
    srun = next(line for line in out.splitlines() if line.startswith("srun "))
    assert shlex.split(srun)[1:] == [*TRAIN, "--multiprocess"]
    assert out.splitlines()[-1] == "sbatch hyperprompt.sbatch"


def test_slurm_dry_run_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script("slurm_gpu").main(["--nodes", "1", *RUN])
    assert os.listdir(tmp_path) == []


def test_gpu_host_runs_one_process_over_the_chosen_gpus(capsys):
    script("gpu_host").main(["--gpus", "0,1", *RUN])
    words = shlex.split(capsys.readouterr().out)
    assert "CUDA_VISIBLE_DEVICES=0,1" in words
    assert words[-len(TRAIN):] == TRAIN  # no --multiprocess: one process


def test_run_flags_are_required():
    with pytest.raises(SystemExit):
        script("gpu_host").main(["--dry_run"])
