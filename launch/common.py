"""What the launch scripts share: the `hyperprompt train` command line and running or
printing commands (`--dry_run`)."""

from __future__ import annotations

import argparse
import shlex
import subprocess
from collections.abc import Sequence


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gin_file", action="append", default=[], required=True,
                        help="gin file of the run (repeatable), e.g. experiments/quickstart.gin")
    parser.add_argument("--gin", action="append", default=[], metavar="NAME=VALUE",
                        help="a gin binding (repeatable), e.g. MODEL_DIR=\"'gs://b/run'\"")
    parser.add_argument("--dry_run", action="store_true",
                        help="print the commands instead of running them")


def train_command(args: argparse.Namespace, python: str = ".venv/bin/python",
                  multiprocess: bool = True) -> list[str]:
    """`hyperprompt train` with the run's gin files and bindings; `multiprocess`: the
    processes find each other through the cluster's environment."""
    command = [python, "-m", "hyperprompt.cli", "train"]
    command += [f"--gin_file={path}" for path in args.gin_file]
    command += [f"--gin.{binding}" for binding in args.gin]
    return command + (["--multiprocess"] if multiprocess else [])


def shell(command: Sequence[str]) -> str:
    return shlex.join(command)


def execute(commands: Sequence[Sequence[str]], dry_run: bool) -> None:
    """Run each command in turn (stop at the first failure), or print them."""
    for command in commands:
        if dry_run:
            print(shell(command))
        else:
            subprocess.run(list(command), check=True)
