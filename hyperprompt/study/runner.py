"""Train a study's cells: stages in order, then the grid over `jobs` parallel processes.

A finished cell (MODEL_DIR/results.json) is never rerun, and an unfinished one resumes
from its latest checkpoint (`hyperprompt train` on the same MODEL_DIR), so the same
command continues a study that was stopped. Each run's output goes to
ROOT/<cell>/train.out; one progress bar counts the cells.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

from tqdm import tqdm

from hyperprompt.runs import finished, shell_quote, train_command
from hyperprompt.study.spec import STAGES, Cell, cell_dir

OUTPUT_FILE = "train.out"
THEN_DONE = "then.done"  # written once a cell's `then` commands have all succeeded


def command(root: str, cell: Cell) -> list[str]:
    """The cell's `hyperprompt train` argv."""
    return train_command(cell.gin_files, cell.bindings, cell_dir(root, cell))


def then_commands(root: str, cell: Cell) -> list[list[str]]:
    """argv of each of the cell's `then` commands: `hyperprompt COMMAND` with the cell's gin
    flags and the command's own."""
    train = command(root, cell)
    return [[train[0], *then.split()[:1], *train[2:], *then.split()[1:]] for then in cell.then]


def done(root: str, cell: Cell) -> bool:
    """Trained to the end, and its `then` commands ran."""
    model_dir = cell_dir(root, cell)
    return finished(model_dir) and (
        not cell.then or os.path.exists(os.path.join(model_dir, THEN_DONE)))


def _train(root: str, cell: Cell) -> tuple[Cell, int]:
    model_dir = cell_dir(root, cell)
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, OUTPUT_FILE), "ab") as out:
        code = 0
        for argv in [command(root, cell), *then_commands(root, cell)]:
            code = code or subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL).returncode
    if code == 0 and cell.then:
        open(os.path.join(model_dir, THEN_DONE), "w").close()
    return cell, code


def run(root: str, cells: Sequence[Cell], jobs: int = 1) -> list[Cell]:
    """Train every unfinished cell (stages first, one at a time; then the rest, `jobs` at
    once, in order); returns the cells that failed (the others still run, unless a stage
    failed: the grid needs every stage)."""
    todo = [c for c in cells if not done(root, c)]
    failed: list[Cell] = []
    with tqdm(total=len(cells), initial=len(cells) - len(todo), desc="study", unit="run",
              dynamic_ncols=True) as bar:
        def report(cell: Cell, code: int) -> None:
            if code != 0:
                failed.append(cell)
                tqdm.write(f"{cell.name}: failed (exit {code}); see "
                           f"{os.path.join(cell_dir(root, cell), OUTPUT_FILE)}")
            bar.set_postfix_str(cell.name)
            bar.update()

        for cell in (c for c in todo if c.name.startswith(f"{STAGES}/")):
            report(*_train(root, cell))
        if failed:
            return failed
        grid = [c for c in todo if not c.name.startswith(f"{STAGES}/")]
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for future in as_completed([pool.submit(_train, root, c) for c in grid]):
                report(*future.result())
    return failed


def dry_run(root: str, cells: Sequence[Cell]) -> list[str]:
    """Each unfinished cell's command as a shell line, in the order `run` starts them."""
    return [" ".join(map(shell_quote, argv)) for c in cells if not done(root, c)
            for argv in [command(root, c), *then_commands(root, c)]]
