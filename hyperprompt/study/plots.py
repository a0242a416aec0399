"""The study's plots: per-task bars with error bars, and learning curves."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hyperprompt.files import atomic_write  # noqa: E402
from hyperprompt.study.table import short_task  # noqa: E402


def _save(fig, path: str) -> str:
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, dpi=100, format="png")
    plt.close(fig)
    return path


def bars(summary: Mapping, path: str) -> str:
    """Grouped bars: per task (and the average), each method's mean with ±1 std over seeds;
    the single-task models as black ticks."""
    tasks, methods = summary["tasks"], list(summary["methods"].values())
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.3 * len(tasks) * max(1, len(methods)) / 4), 4.2))
    x = np.arange(len(tasks))
    for i, row in enumerate(methods):
        means = [row["tasks"][t]["mean"] for t in tasks]
        stds = [row["tasks"][t]["std"] for t in tasks]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
               label=row["label"])
    label = "single-task models"
    for j, task in enumerate(tasks):
        if task in summary["single_task"]:
            ax.hlines(summary["single_task"][task]["mean"], j - 0.42, j + 0.42,
                      colors="black", linewidth=2, label=label)
            label = None
    ax.set(xticks=x, xticklabels=[short_task(t) for t in tasks], ylabel="score (mean ± std)",
           title="final score per task over seeds")
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    return _save(fig, path)


def curves(summary: Mapping, path: str) -> str:
    """Average score against step per method (mean over seeds)."""
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for method, by_step in summary["curves"].items():
        steps = [int(s) for s in by_step]
        ax.plot(steps, list(by_step.values()), marker="o", markersize=3,
                label=summary["methods"][method]["label"])
    ax.set(xlabel="step", ylabel="average score (mean over seeds)", title="learning curves")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)
