"""Train on one host's GPUs: one process drives them all (the mesh spans every GPU; set
MODEL_PARALLEL to split the model over some of them).

  python launch/gpu_host.py --gpus 0,1,2,3 --gin_file=experiments/quickstart.gin \
      --gin MODEL_DIR="'runs/qs'" [--dry_run]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence

from common import add_run_flags, shell, train_command

# XLA's GPU flags for overlapping collectives with compute (jax's GPU performance guide).
XLA_FLAGS = "--xla_gpu_enable_latency_hiding_scheduler=true"


def environment(args: argparse.Namespace) -> dict[str, str]:
    env = {"XLA_FLAGS": XLA_FLAGS, "XLA_PYTHON_CLIENT_MEM_FRACTION": str(args.mem_fraction)}
    if args.gpus:
        env["CUDA_VISIBLE_DEVICES"] = args.gpus
    return env


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpus", help="GPU ids to use, e.g. 0,1,2,3 (default: all)")
    parser.add_argument("--mem_fraction", type=float, default=0.9,
                        help="share of each GPU's memory jax takes")
    add_run_flags(parser)
    args = parser.parse_args(argv)
    env, command = environment(args), train_command(args, multiprocess=False)
    if args.dry_run:
        print(" ".join(f"{k}={shell([v])}" for k, v in env.items()), shell(command))
        return
    subprocess.run(command, env={**os.environ, **env}, check=True)


if __name__ == "__main__":
    main(sys.argv[1:])
