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


def method_of(cell: Cell):
    """The cell's method, built from its gin config (UsageError for a bad file or binding)."""
    from hyperprompt.methods.base import conditioner_of
    from hyperprompt.runs import network_of

    network = network_of(cell.gin_files, cell.bindings)
    return network.config, conditioner_of(network)


def trainable_parameters(cell: Cell) -> int:
    """Parameters the cell's run trains (after its stages ran: a method may read them)."""
    from hyperprompt.analysis.params import trainable_count

    return trainable_count(*method_of(cell))


def main(study: Study, root: str, jobs: int = 1, dry_run: bool = False,
         collect_only: bool = False) -> int:
    """Exit status: 0, or 1 when a cell failed or none has finished."""
    cells = study.cells(root)
    if dry_run:
        print("\n".join(runner.dry_run(root, cells)) or "every cell has finished")
        return 0
    labels = {}
    for cell in cells:  # a bad gin file or binding fails here, before any training
        if cell.method is not None and cell.task is None and cell.method not in labels:
            labels[cell.method] = method_of(cell)[1].label()
    previous = _read(os.path.join(root, SUMMARY)).get("wall_seconds", 0.0)
    start, failed = time.time(), []
    if not collect_only:
        failed = runner.run(root, cells, jobs)
    wall = previous + (0.0 if collect_only else time.time() - start)
    summary = aggregate.collect(study, root, cells, trainable_parameters, labels)
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
