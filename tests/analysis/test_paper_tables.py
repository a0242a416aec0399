"""The stored paper numbers against their source texts in ../shared/seeds.

HyperGrid's Tables 5 and 6 are parsed from the seed's tab-separated rows and compared
in full; the other papers' numbers are found in the seed's prose by a pattern each.
"""

import os
import re

import pytest

from hyperprompt.analysis import paper_tables
from hyperprompt.tasks.benchmarks import BENCHMARKS
from tests.conftest import REPO_ROOT

SEEDS = os.path.join(os.path.dirname(REPO_ROOT), "shared", "seeds")
HYPERPROMPT, HYPERGRID, HYPERFORMER, ATTEMPT = (
    "000_00907804763829e5.txt", "001_21fcbd357462eaf1.txt", "002_47c0487135ca9ae6.txt",
    "003_d4142778a3481a82.txt")


def seed(name: str) -> str:
    """A seed's text with runs of whitespace as one space (the PDF extraction's spacing)."""
    path = os.path.join(SEEDS, name)
    if not os.path.exists(path):
        pytest.skip(f"../shared/seeds is not beside this checkout ({path})")
    with open(path) as f:
        return f.read()


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def number_list(cell: str) -> list[float] | None:
    """'84.8/90.4' -> [84.8, 90.4]; '-' -> None."""
    return None if cell.strip() == "-" else [float(v) for v in cell.split("/")]


def parsed_table(text: str, caption: str) -> dict[str, dict]:
    """{row label: {'params': theta, 'scores': {column: numbers}}} of the tab-separated
    table just above `caption` in a seed."""
    lines = text[:text.index(caption)].splitlines()
    header = max(i for i, line in enumerate(lines) if line.startswith("Model\t"))
    columns = lines[header].split("\t")[2:]  # after Model and |theta|
    rows = {}
    for line in lines[header + 1:]:
        cells = line.split("\t")
        if len(cells) == len(columns) + 2:
            rows[cells[0]] = {"params": cells[1], "scores": {
                c: number_list(v) for c, v in zip(columns, cells[2:], strict=True)}}
    return rows


@pytest.mark.parametrize("table, caption", [("Table 5", "Table 5:"), ("Table 6", "Table 6:")])
def test_hypergrid_tables_equal_the_seed_tables(table, caption):
    stored = next(t for t in paper_tables.load("hypergrid")["tables"] if t["table"] == table)
    source = parsed_table(seed(HYPERGRID), caption)
    assert [r["row"] for r in stored["rows"]] == list(source)
    for row in stored["rows"]:
        assert row["params"] == source[row["row"]]["params"]
        assert row["scores"] == source[row["row"]]["scores"], row["row"]
    assert [c["name"] for c in stored["columns"]] == list(source[stored["rows"][0]["row"]]
                                                            ["scores"])


# (paper, seed, row id or parameter method, column or None for `parameters`, pattern whose
# groups are the stored numbers in order).
PROSE = [
    ("hyperprompt", HYPERPROMPT, "hyperprompt-base", "SuperGLUE",
     r"\(([\d.]+) vs [\d.]+ for T5 Base\)"),
    ("hyperprompt", HYPERPROMPT, "mtl-base", "SuperGLUE", r"\([\d.]+ vs ([\d.]+) for T5 Base\)"),
    ("hyperprompt", HYPERPROMPT, "hyperprompt-xxl", "SuperGLUE",
     r"XXL with 11B parameters \(([\d.]+) vs"),
    ("hyperprompt", HYPERPROMPT, "mtl-xxl", "SuperGLUE",
     r"XXL with 11B parameters \([\d.]+ vs ([\d.]+)\)"),
    ("hyperprompt", HYPERPROMPT, "HyperPrompt", None, r"only\W*([\d.]+)%\W*additional"),
    ("hyperformer", HYPERFORMER, "HyperFormer++", None, r"adding only ([\d.]+)% parameters"),
    ("attempt", ATTEMPT, "pt", "CoLA", r"CoLA \( ([\d.]+) % \)"),
    ("attempt", ATTEMPT, "pt", "BoolQ", r"BoolQ \( ([\d.]+) % \)"),
    ("attempt", ATTEMPT, "pt", "WiC", r"WiC \( ([\d.]+) % \)"),
    ("attempt", ATTEMPT, "attempt-m", "MRQA avg", r"achieves ([\d.]+) MRQA average F1"),
    ("attempt", ATTEMPT, "attempt-m", "Others avg", r"yields ([\d.]+) % average accuracy"),
    ("attempt", ATTEMPT, "bitfit", "Others avg", r"BitFiT \( ([\d.]+) % \)"),
    ("attempt", ATTEMPT, "adapter", "Others avg", r"matching Adapter \( ([\d.]+) % \)"),
]


@pytest.mark.parametrize("paper, name, row_id, column, pattern", PROSE)
def test_prose_numbers_equal_the_seed_text(paper, name, row_id, column, pattern):
    found = re.findall(pattern, flat(seed(name)))
    assert len(set(found)) == 1, f"{pattern!r} should match one number, matched {found}"
    expected = [float(found[0])]
    data = paper_tables.load(paper)
    if column is None:
        stored = [p["value"] for p in data["parameters"] if p["method"] == row_id]
    else:
        stored = [e.value for e in paper_tables.entries(data)
                  if e.row_id == row_id and e.column == column]
    assert stored == expected


def test_attempt_parameter_counts_equal_the_seed_text():
    text = flat(seed(ATTEMPT))
    stored = {p["unit"].split()[0]: p["value"]
              for p in paper_tables.load("attempt")["parameters"]}
    assert stored["parameters"] == 1000 * int(re.search(r"stores (\d+)k parameters", text)[1])
    assert stored["%"] == float(re.search(r"only ([\d.]+) % of the parameters", text)[1])
    assert stored["times"] == int(re.search(r"updates ([\d,]+) times fewer", text)[1]
                                  .replace(",", ""))


def test_every_paper_is_readable_and_names_project_tasks():
    assert paper_tables.papers() == ["attempt", "hyperformer", "hypergrid", "hyperprompt"]
    counts = {}
    for paper in paper_tables.papers():
        data = paper_tables.load(paper)
        for table in data["tables"]:
            source = table["source"].split(",")[0]
            if not source.startswith("http"):
                seed(source)  # skips where ../shared/seeds is not beside this checkout
            for column in table["columns"]:
                benchmark = column.get("benchmark", table["benchmark"])
                assert column["task"] in (None, "average") or column["task"] in BENCHMARKS[
                    benchmark], (paper, column)
        counts[paper] = len(paper_tables.entries(data))  # raises on a list of wrong length
        assert data["tables"] or data["not_found"]  # nothing stored says why
    # HyperGrid: Table 5 has 9 rows x 10 columns less 4 '-'; Table 6 has 6 rows x 9
    # columns, three of them two numbers each.
    assert counts == {"attempt": 7, "hyperformer": 0, "hypergrid": 86 + 6 * 12,
                      "hyperprompt": 4}
