"""`hyperprompt study`: train the grid (resumably), then ROOT/study.{json,md}, bars.png and
curves.png, and the table on the terminal.

  hyperprompt study --gin_file=studies/synthetic.gin --root=runs/study [--jobs=2]
  hyperprompt study ... --dry_run      # the commands of the cells still to train
  hyperprompt study ... --collect      # tables and plots of what has finished
"""

from __future__ import annotations

import json
import os
import time

from rich.console import Console
from rich.markdown import Markdown

from hyperprompt.files import atomic_write, write_json
from hyperprompt.study import aggregate, plots, runner, table
from hyperprompt.study.spec import Cell, Study

SUMMARY, TABLE, BARS, CURVES = "study.json", "study.md", "bars.png", "curves.png"


def trainable_parameters(cell: Cell) -> tuple[int, str]:
    """(parameters the cell's run trains, its method's label), from the cell's gin config."""
    from hyperprompt.analysis.params import trainable_count
    from hyperprompt.methods.base import conditioner_of
    from hyperprompt.runs import network_of

    network = network_of(cell.gin_files, cell.bindings)
    conditioner = conditioner_of(network)
    return trainable_count(network.config, conditioner), conditioner.label()


def main(study: Study, root: str, jobs: int = 1, dry_run: bool = False,
         collect_only: bool = False) -> int:
    """Exit status: 0, or 1 when a cell failed or none has finished."""
    cells = study.cells(root)
    if dry_run:
        print("\n".join(runner.dry_run(root, cells)) or "every cell has finished")
        return 0
    grid_cells = [c for c in cells if c.method is not None and c.task is None]
    details = {}
    for cell in grid_cells:  # a bad gin file or binding fails here, before any training
        if cell.method not in details:
            details[cell.method] = trainable_parameters(cell)
    previous = _read(os.path.join(root, SUMMARY)).get("wall_seconds", 0.0)
    start, failed = time.time(), []
    if not collect_only:
        failed = runner.run(root, cells, jobs)
    wall = previous + (0.0 if collect_only else time.time() - start)
    summary = aggregate.collect(study, root, cells, lambda c: details[c.method][0],
                                {m: label for m, (_, label) in details.items()})
    os.makedirs(root, exist_ok=True)
    write_json(os.path.join(root, SUMMARY), {**summary, "wall_seconds": wall, "jobs": jobs})
    if "methods" not in summary:
        print(f"no {study.reference} run has finished yet; nothing to tabulate.")
        return 1
    text = table.markdown(summary)
    with atomic_write(os.path.join(root, TABLE)) as f:
        f.write(text)
    plots.bars(summary, os.path.join(root, BARS))
    plots.curves(summary, os.path.join(root, CURVES))
    Console().print(Markdown(text))
    print(f"wall time {wall / 60:.1f} min (jobs={jobs}); table {os.path.join(root, TABLE)}, "
          f"plots {os.path.join(root, BARS)}, {os.path.join(root, CURVES)}, "
          f"summary {os.path.join(root, SUMMARY)}")
    if summary["missing"]:
        print(f"unfinished: {', '.join(summary['missing'])}")
    return 1 if failed else 0


def _read(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)
