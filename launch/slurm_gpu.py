"""Train on several GPU nodes under SLURM: one process per GPU (srun), which find each
other through SLURM's environment (`hyperprompt train --multiprocess`).

  python launch/slurm_gpu.py --nodes 4 --gpus_per_node 8 --partition gpu \
      --gin_file=experiments/quickstart.gin --gin MODEL_DIR="'/shared/runs/qs'" [--dry_run]

Writes the batch script next to MODEL_DIR's name (--script) and submits it with sbatch;
`--dry_run` prints the script and the sbatch command instead. MODEL_DIR must be on a file
system all nodes share.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from common import add_run_flags, execute, shell, train_command


def batch_script(args: argparse.Namespace) -> str:
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={args.job_name}",
        f"#SBATCH --nodes={args.nodes}",
        f"#SBATCH --ntasks-per-node={args.gpus_per_node}",
        "#SBATCH --gpus-per-task=1",
        f"#SBATCH --time={args.time}",
        *([f"#SBATCH --partition={args.partition}"] if args.partition else []),
        # Exit status 75 (preempted, checkpoint saved): requeue to resume.
        "#SBATCH --requeue",
        f"cd {shell([args.workdir])}",
        f"srun {shell(train_command(args))}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--gpus_per_node", type=int, default=8)
    parser.add_argument("--partition")
    parser.add_argument("--time", default="24:00:00")
    parser.add_argument("--job_name", default="hyperprompt")
    parser.add_argument("--workdir", default=".", help="this checkout, as the nodes see it")
    parser.add_argument("--script", default="hyperprompt.sbatch", help="batch script to write")
    add_run_flags(parser)
    args = parser.parse_args(argv)
    script = batch_script(args)
    if args.dry_run:
        print(f"# {args.script}\n{script}", end="")
    else:
        with open(args.script, "w") as f:
            f.write(script)
    execute([["sbatch", args.script]], args.dry_run)


if __name__ == "__main__":
    main(sys.argv[1:])
