"""The study's table: method x task (mean ± std over seeds), gain, parameters, step time."""

from __future__ import annotations

from collections.abc import Mapping

from hyperprompt.study.aggregate import AVERAGE


def _pm(cell: Mapping | None, signed: bool = False) -> str:
    if not cell:
        return "–"
    return f"{cell['mean']:{'+' if signed else ''}.1f} ± {cell['std']:.1f}"


def _params(n: int | None) -> str:
    if n is None:
        return "–"
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    return f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def short_task(task: str) -> str:
    return task.removeprefix("synthetic_")


def markdown(summary: Mapping) -> str:
    """One row per method (and the single-task models), one column per task, then the
    average, the gain of the average over the reference (paired by seed), trainable
    parameters and the step-time ratio to the reference; a second table: the share of
    the single-task models' lead each method recovers."""
    tasks, ref = summary["tasks"], summary["reference"]
    head = ["method", *(short_task(t) for t in tasks), f"gain vs {ref}", "trainable",
            "step time"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summary["methods"].values():
        ratio = row.get("step_time_ratio")
        lines.append("| " + " | ".join([
            row["label"], *(_pm(row["tasks"][t]) for t in tasks),
            _pm(row["gain"][AVERAGE], signed=True), _params(row.get("trainable")),
            f"{ratio['mean']:.2f}x" if ratio else "–"]) + " |")
    if summary["single_task"]:
        lines.append("| " + " | ".join([
            "single-task models", *(_pm(summary["single_task"].get(t)) for t in tasks),
            "", "", ""]) + " |")
    recovered_tasks = sorted({t for shares in summary["recovered"].values() for t in shares})
    if recovered_tasks:
        lines += ["", "| recovered of the single-task lead | "
                  + " | ".join(short_task(t) for t in recovered_tasks) + " |",
                  "|" + "---|" * (len(recovered_tasks) + 1)]
        for method, shares in summary["recovered"].items():
            if method == ref:
                continue
            lines.append("| " + " | ".join([summary["methods"][method]["label"], *(
                f"{100 * shares[t]:.0f}%" if t in shares else "–"
                for t in recovered_tasks)]) + " |")
    return "\n".join(lines) + "\n"
