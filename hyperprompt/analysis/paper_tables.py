"""The numbers the four papers report, as data: hyperprompt/paper_tables/<paper>.json.

Each file holds the paper's tables (benchmark, split, source; columns naming the
leaderboard task of `hyperprompt.tasks.benchmarks.BENCHMARKS` and the metrics of each
number; rows with an id, the row label as printed, the model and the scores), the
parameter shares it quotes, and what could not be found (`not_found`). A multi-metric
cell such as CB "84.8/90.4" is stored as both numbers, [84.8, 90.4], in the order of
the column's metrics. Metric "score" is the task's mean metric and "benchmark_score"
the benchmark average, as `tasks/benchmarks.py` computes them.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json

from hyperprompt.errors import UsageError

SUFFIX = ".json"


def _folder():
    return importlib.resources.files("hyperprompt") / "paper_tables"


def papers() -> list[str]:
    """The names `--paper` accepts (the data files' stems)."""
    return sorted(f.name[:-len(SUFFIX)] for f in _folder().iterdir() if f.name.endswith(SUFFIX))


def load(paper: str) -> dict:
    """One paper's data; a UsageError listing the papers when there is none of that name."""
    if paper not in papers():
        raise UsageError(f"no paper named {paper!r}; --paper is one of {', '.join(papers())}.")
    return json.loads((_folder() / f"{paper}{SUFFIX}").read_text())


@dataclasses.dataclass(frozen=True)
class Entry:
    """One reported number: a row's value of one metric of one column."""

    paper: str
    table: str
    benchmark: str | None
    split: str | None
    row_id: str
    row: str  # the row's label as the paper prints it
    model: str | None
    column: str  # the column as the paper names it
    task: str | None  # its BENCHMARKS task, "average", or None (not a task of this project)
    metric: str
    value: float
    source: str


def entries(data: dict) -> list[Entry]:
    """Every number of every table of one paper, in table, row, column order."""
    out = []
    for table in data["tables"]:
        for row in table["rows"]:
            for column in table["columns"]:
                values = row["scores"].get(column["name"])  # None: not reported
                for metric, value in zip(column["metrics"], values or [], strict=bool(values)):
                    out.append(Entry(
                        data["paper"], table["table"], column.get("benchmark", table["benchmark"]),
                        table["split"], row["id"], row["row"], row["model"], column["name"],
                        column["task"], metric, value, table["source"]))
    return out


def rows(data: dict) -> dict[str, str]:
    """{row id: 'label, model (tables)'} of one paper, for listings."""
    found: dict[str, tuple[str, list[str]]] = {}
    for table in data["tables"]:
        for row in table["rows"]:
            label = f"{row['row']}, {row['model']}" if row["model"] else row["row"]
            found.setdefault(row["id"], (label, []))[1].append(table["table"])
    return {row_id: f"{label} ({', '.join(tables)})" for row_id, (label, tables) in found.items()}


def row_entries(data: dict, row_id: str | None) -> list[Entry]:
    """The numbers of one row id (across the paper's tables; None: the only row); a
    UsageError listing the rows when the id is missing or unknown, or saying that the paper
    has no table stored."""
    listing = rows(data)
    if row_id is None and len(listing) == 1:
        (row_id,) = listing
    if not listing:
        raise UsageError(f"no result table of {data['paper']} is stored: "
                         f"{' '.join(data['not_found'])}")
    if row_id not in listing:
        what = f"no row {row_id!r} in {data['paper']}" if row_id else \
            f"{data['paper']} has {len(listing)} rows: pick one with --row"
        rows_text = "; ".join(f"{k} = {v}" for k, v in listing.items())
        raise UsageError(f"{what}; rows: {rows_text}.")
    return [e for e in entries(data) if e.row_id == row_id]
