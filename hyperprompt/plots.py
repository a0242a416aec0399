"""Training-curve plot: loss and per-task eval metrics against steps."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hyperprompt.files import atomic_write  # noqa: E402


def training_curves(history: dict, path: str) -> str:
    """Two panels (train loss; each eval metric) written to `path` as PNG."""
    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(11, 4))
    train = history.get("train", [])
    if train:
        ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train])
    ax_loss.set(xlabel="step", ylabel="loss", title="training loss", yscale="log")
    evals = history.get("eval", [])
    keys = sorted({k for r in evals for k in r if k != "step"})
    for key in keys:
        rows = [r for r in evals if key in r]
        ax_eval.plot([r["step"] for r in rows], [r[key] for r in rows], marker="o",
                     label=key.removeprefix("eval/"))
    ax_eval.set(xlabel="step", ylabel="score", title="validation")
    if keys:
        ax_eval.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, dpi=100, format="png")
    plt.close(fig)
    return path
