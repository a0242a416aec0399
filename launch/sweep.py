"""Sweep two gin macros over a grid: one `hyperprompt train` per cell, then a table and a heatmap.

  python launch/sweep.py --root runs/hyperprompt_sweep             # train every cell, collect
  python launch/sweep.py --root runs/hyperprompt_sweep --dry_run   # print the commands only
  python launch/sweep.py --root runs/hyperprompt_sweep --collect   # collect runs made elsewhere

Defaults: experiments/hyperprompt_sweep.gin over HYPERPROMPT_LENGTH=4,8,16,32 x
HYPERPROMPT_BOTTLENECK=8,16,32,64. Each cell trains into ROOT/<NAME>=<value>_<NAME>=<value>
(a cell with results.json is done and is skipped); extra --gin_file and --gin.NAME=VALUE
flags go to every cell. Collection reads each cell's last validation record from
MODEL_DIR/train_log.jsonl and writes ROOT/sweep.json and ROOT/sweep.png: the average score
per cell and the method's parameter count (its closed form, `parameter_count`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence

from hyperprompt import startup
from hyperprompt.run_log import final_eval
from hyperprompt.runs import finished, hyperprompt_executable, network_of, shell_quote

DEFAULT_GIN_FILE = "experiments/hyperprompt_sweep.gin"
DEFAULT_GRID = ("HYPERPROMPT_LENGTH=4,8,16,32", "HYPERPROMPT_BOTTLENECK=8,16,32,64")


def parse_grid(specs: Sequence[str]) -> dict[str, list[str]]:
    """['NAME=v1,v2', 'OTHER=a,b,c'] -> {'NAME': ['v1', 'v2'], 'OTHER': ['a', 'b', 'c']}."""
    grid: dict[str, list[str]] = {}
    for spec in specs:
        name, _, values = spec.partition("=")
        name = name.strip()
        if not re.fullmatch(r"[A-Za-z_]\w*", name) or not values.strip():
            raise ValueError(f"--grid {spec!r}: write MACRO=v1,v2,... (e.g. "
                             f"HYPERPROMPT_LENGTH=4,8,16,32).")
        if name in grid:
            raise ValueError(f"--grid {name} is given twice; list all its values in one flag.")
        grid[name] = [v.strip() for v in values.split(",")]
    if len(grid) != 2:
        raise ValueError(f"the sweep needs exactly two --grid macros (rows and columns of the "
                         f"heatmap), got {len(grid)}: {', '.join(grid) or 'none'}.")
    return grid


def cells(grid: Mapping[str, Sequence[str]]) -> list[dict[str, str]]:
    """Every combination, the first macro varying slowest (the heatmap's rows)."""
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def cell_dir(root: str, cell: Mapping[str, str]) -> str:
    """ROOT/NAME=value_NAME=value, keeping only [A-Za-z0-9_.-] of each value."""
    safe = {n: re.sub(r"[^\w.-]", "", v) for n, v in cell.items()}
    return os.path.join(root, "_".join(f"{n}={v}" for n, v in safe.items()))


def gin_flags(gin_files: Sequence[str], bindings: Sequence[str], cell: Mapping[str, str],
              model_dir: str) -> list[str]:
    """The `hyperprompt train` flags of one cell (the cell's macros after `bindings`)."""
    return ([f"--gin_file={f}" for f in gin_files] + list(bindings)
            + [f"--gin.{n}={v}" for n, v in cell.items()] + [f"--gin.MODEL_DIR='{model_dir}'"])


def run_cell(command: Sequence[str]) -> int:
    """Train one cell (output to this terminal); its exit status."""
    return subprocess.run(command).returncode


def method_parameters(gin_files: Sequence[str], bindings: Sequence[str],
                      cell: Mapping[str, str]) -> int:
    """The method's parameter count (its closed form, `parameter_count`) in the config the
    cell's command runs. Raises UsageError for what `hyperprompt train` would reject."""
    from hyperprompt.methods.base import conditioner_of

    cell_bindings = [*(b.removeprefix("--gin.") for b in bindings),
                     *(f"{n}={v}" for n, v in cell.items())]
    network = network_of(gin_files, cell_bindings)
    return conditioner_of(network).parameter_count(network.config)


def collect(root: str, grid: Mapping[str, Sequence[str]], gin_files: Sequence[str],
            bindings: Sequence[str]) -> dict:
    """sweep.json's content: per cell its final eval and parameters, plus row x column
    matrices of 'average' and 'parameters' (None where a cell has no eval yet)."""
    rows, cols = grid
    summary: dict = {"rows": {rows: list(grid[rows])}, "columns": {cols: list(grid[cols])},
                     "cells": [], "average": [], "parameters": []}
    for cell in cells(grid):
        model_dir = cell_dir(root, cell)
        result = final_eval(model_dir) or {"step": None, "average": None, "tasks": {}}
        summary["cells"].append({**cell, "model_dir": model_dir, **result,
                                 "parameters": method_parameters(gin_files, bindings,
                                                                      cell)})
    width = len(grid[cols])
    for key in ("average", "parameters"):
        values = [c[key] for c in summary["cells"]]
        summary[key] = [values[i:i + width] for i in range(0, len(values), width)]
    return summary


def heatmap(summary: Mapping, path: str, title: str = "validation average") -> str:
    """Average score over (rows, columns) as a PNG, each cell annotated with its parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    (row_name, row_values), = summary["rows"].items()
    (col_name, col_values), = summary["columns"].items()
    scores = np.array([[np.nan if v is None else v for v in r] for r in summary["average"]])
    fig, ax = plt.subplots(figsize=(1.4 * len(col_values) + 2.2, 1.0 * len(row_values) + 1.6))
    image = ax.imshow(scores, cmap="viridis", origin="lower", aspect="auto")
    fig.colorbar(image, ax=ax, label="validation average")
    for i, j in itertools.product(range(len(row_values)), range(len(col_values))):
        score, params = summary["average"][i][j], summary["parameters"][i][j]
        text = "n/a" if score is None else f"{score:.1f}"
        if params is not None:
            text += f"\n{params / 1000:.1f}k"
        ax.text(j, i, text, ha="center", va="center", fontsize=8,
                color="black" if score is not None and score > np.nanmean(scores) else "white")
    ax.set(xticks=range(len(col_values)), xticklabels=col_values, xlabel=col_name,
           yticks=range(len(row_values)), yticklabels=row_values, ylabel=row_name,
           title=f"{title}\n(each cell: average score, method parameters)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="folder holding one MODEL_DIR per cell")
    parser.add_argument("--gin_file", action="append", default=None,
                        help=f"gin file of the base run (repeatable; default {DEFAULT_GIN_FILE})")
    parser.add_argument("--grid", action="append", default=None,
                        help="MACRO=v1,v2,... (exactly two; default "
                             f"{' '.join(DEFAULT_GRID)})")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
    mode.add_argument("--collect", action="store_true", help="only collect finished cells")
    parser.add_argument("--json", help="summary path (default ROOT/sweep.json)")
    parser.add_argument("--png", help="heatmap path (default ROOT/sweep.png)")
    parser.add_argument("--title", default="validation average", help="heatmap title")
    args, rest = parser.parse_known_args(argv)
    for flag in rest:
        if not re.fullmatch(r"--gin\.[^=]+=.*", flag, re.S):
            parser.error(f"unrecognised argument {flag!r}; bindings for every cell are written "
                         f"--gin.NAME=VALUE (e.g. --gin.TRAIN_STEPS=500).")
    args.gin_file = args.gin_file or [DEFAULT_GIN_FILE]
    try:
        args.grid = parse_grid(args.grid or DEFAULT_GRID)
    except ValueError as e:
        parser.error(str(e))
    return args, rest


def main(argv: Sequence[str] | None = None) -> int:
    from hyperprompt.errors import UsageError

    args, bindings = parse_args(sys.argv[1:] if argv is None else argv)
    startup.quiet_start()  # as the CLI: no TensorFlow start-up noise, no gin path lines
    if not args.dry_run:
        try:  # a typo in a file, macro or binding fails here, not after 16 runs
            method_parameters(args.gin_file, bindings, cells(args.grid)[0])
        except UsageError as e:
            print(f"sweep: error: {str(e).splitlines()[0]}", file=sys.stderr)
            return 2
    failed = []
    for cell in cells(args.grid):
        model_dir = cell_dir(args.root, cell)
        command = [hyperprompt_executable(), "train",
                   *gin_flags(args.gin_file, bindings, cell, model_dir)]
        if args.dry_run:
            print(" ".join(map(shell_quote, command)))
        elif not args.collect:
            if finished(model_dir):
                print(f"done already: {model_dir}")
            elif run_cell(command) != 0:
                failed.append(model_dir)
    if args.dry_run:
        return 0
    summary = collect(args.root, args.grid, args.gin_file, bindings)
    json_path = args.json or os.path.join(args.root, "sweep.json")
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    with open(json_path, "w") as f:
        json.dump(summary, f, indent=1)
    png_path = heatmap(summary, args.png or os.path.join(args.root, "sweep.png"), args.title)
    print(f"summary: {json_path}\nheatmap: {png_path}")
    if failed:
        print(f"{len(failed)} cell(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
