"""Train on a Cloud TPU VM pod: create it, copy this checkout to every worker, install, and
run `hyperprompt train` on all workers at once (one process a host; jax finds the pod).

  python launch/tpu_pod.py --name hp-v4-32 --zone us-central2-b --accelerator v4-32 \
      --gin_file=experiments/quickstart.gin --gin MODEL_DIR="'gs://bucket/runs/qs'" [--dry_run]

MODEL_DIR must be storage that every worker sees (a gs:// bucket): orbax writes each
worker's shards there and process 0 the logs. `--skip_create` reuses a pod.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from common import add_run_flags, execute, shell, train_command

REMOTE_DIR = "hyperprompt"


def commands(args: argparse.Namespace) -> list[list[str]]:
    tpu = ["gcloud", "compute", "tpus", "tpu-vm"]
    where = [f"--zone={args.zone}", f"--project={args.project}"] if args.project else [
        f"--zone={args.zone}"]
    on_all = [*tpu, "ssh", args.name, *where, "--worker=all", "--command"]
    run = f"cd {REMOTE_DIR} && {shell(train_command(args))}"
    steps = [
        [*tpu, "scp", "--recurse", args.source, f"{args.name}:~/{REMOTE_DIR}", *where,
         "--worker=all"],
        [*on_all, f"cd {REMOTE_DIR} && make install && .venv/bin/pip install -q "
                  f"-c constraints.txt 'jax[tpu]'"],
        [*on_all, run],
    ]
    if not args.skip_create:
        steps.insert(0, [*tpu, "create", args.name, *where,
                         f"--accelerator-type={args.accelerator}", f"--version={args.version}"])
    return steps


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True, help="TPU VM name")
    parser.add_argument("--zone", required=True)
    parser.add_argument("--project", help="GCP project (default: gcloud's)")
    parser.add_argument("--accelerator", default="v4-32", help="e.g. v4-32, v5p-128")
    parser.add_argument("--version", default="tpu-ubuntu2204-base", help="TPU VM image")
    parser.add_argument("--source", default=".", help="the checkout to copy")
    parser.add_argument("--skip_create", action="store_true", help="the pod exists already")
    add_run_flags(parser)
    args = parser.parse_args(argv)
    execute(commands(args), args.dry_run)


if __name__ == "__main__":
    main(sys.argv[1:])
