"""The report's figures (matplotlib, Agg): attention mass per layer, entropy densities, and
a task x value heatmap of what a method sows (e.g. ATTEMPT's attention over prompts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hyperprompt.files import atomic_write  # noqa: E402

DPI = 90


def attention_mass(mass: Mapping[str, Mapping[str, list[float]]], label: str, path: str) -> str:
    """One panel per prompted stack: mass on prompts [0, 1] against layer, a line per task."""
    fig, axes = plt.subplots(1, len(mass), figsize=(5 * len(mass), 3.8), squeeze=False)
    for ax, (stack, per_task) in zip(axes[0], mass.items(), strict=True):
        for task, values in per_task.items():
            average = task == "average"
            ax.plot(np.arange(len(values)), values, marker="o", label=task,
                    color="black" if average else None, linewidth=2.5 if average else 1.2)
        ax.set(xlabel=f"{stack} layer", ylabel="attention mass on prompts", ylim=(0, 1),
               title=f"{stack} self-attention")
        ax.set_xticks(np.arange(len(values)))
        ax.legend(fontsize=7)
    fig.suptitle(f"attention mass on prompts: {label}")
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, dpi=DPI, format="png")
    plt.close(fig)
    return path


def attention_entropy(entropies: Mapping[str, Mapping[str, np.ndarray]], path: str) -> str:
    """Per stack: density of token entropies (all layers, heads) and mean per layer, per run.

    entropies: {run label: {stack: [L, H, N] nats}}.
    """
    stacks = list(next(iter(entropies.values())))
    fig, axes = plt.subplots(len(stacks), 2, figsize=(10, 3.4 * len(stacks)), squeeze=False)
    top = max(float(e.max()) for by_stack in entropies.values() for e in by_stack.values())
    bins = np.linspace(0.0, max(top, 1e-3), 50)
    for row, stack in zip(axes, stacks, strict=True):
        for run, by_stack in entropies.items():
            values = by_stack[stack]
            row[0].hist(values.ravel(), bins=bins, density=True, histtype="step", linewidth=1.5,
                        label=run)
            layer_means = values.mean(axis=(1, 2))
            row[1].plot(np.arange(len(layer_means)), layer_means, marker="o", label=run)
            row[1].set_xticks(np.arange(len(layer_means)))
        row[0].set(xlabel="attention entropy per token (nats)", ylabel="density",
                   title=f"{stack} self-attention, all layers and heads")
        row[1].set(xlabel=f"{stack} layer", ylabel="mean entropy (nats)",
                   title=f"{stack}: mean per layer")
    axes[0, 1].legend(fontsize=7)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, dpi=DPI, format="png")
    plt.close(fig)
    return path


def method_heatmap(per_task: Mapping[str, Sequence[float]], labels: Sequence[str] | None,
                   title: str, path: str) -> str:
    """Rows: tasks; columns: the value's entries (named by `labels`); cells annotated."""
    tasks = list(per_task)
    values = np.array([per_task[t] for t in tasks])  # [tasks, k]
    labels = list(labels) if labels else [str(i) for i in range(values.shape[1])]
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 3, 0.5 * len(tasks) + 2))
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(np.arange(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(np.arange(len(tasks)), tasks)
    for (row, col), value in np.ndenumerate(values):
        ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                color="white" if value < values.max() / 2 else "black")
    fig.colorbar(image, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, dpi=DPI, format="png")
    plt.close(fig)
    return path
