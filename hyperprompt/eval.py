"""Evaluation: decode each task's split, postprocess, apply the task's metric_fns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np
import seqio
from rich.console import Console
from rich.table import Table

from hyperprompt import data, partitioning
from hyperprompt.model import EncoderDecoderModel


class Evaluator:
    """Holds each task's eval batches (built once) and a jitted decoder."""

    def __init__(self, model: EncoderDecoderModel, registry: Sequence[str],
                 feature_lengths: Mapping[str, int], batch_size: int, mesh,
                 split: str = "validation", num_examples: int | None = 256):
        self.model, self.registry, self.mesh = model, list(registry), mesh
        self.batch_size = batch_size
        self.tasks = [seqio.get_mixture_or_task(t) for t in self.registry]
        self.examples = {}
        for task_id, task in enumerate(self.tasks):
            ds = data.task_dataset(task.name, task_id, split, feature_lengths, False, None)
            if num_examples is not None:
                ds = ds.take(num_examples)
            targets = [task.postprocess_fn(ex["targets_pretokenized"].decode(), example=ex,
                                           is_target=True)
                       for ex in ds.as_numpy_iterator()]
            batches = list(data.convert_and_batch(ds, feature_lengths, batch_size, False))
            self.examples[task.name] = (targets, batches)
        self._predict = jax.jit(self._predict_fn)

    def _predict_fn(self, params, batch):
        eos_id = self.tasks[0].output_features["targets"].vocabulary.eos_id
        return self.model.predict_batch(params, batch, eos_id=eos_id)

    def predictions(self, params, task: seqio.Task) -> list[str]:
        """Decoded, postprocessed predictions for the task's eval examples."""
        vocab = task.output_features["targets"].vocabulary
        _, batches = self.examples[task.name]
        out = []
        for batch in batches:
            padded, n = data.pad_batch(batch, self.batch_size)
            tokens = np.asarray(jax.device_get(
                self._predict(params, partitioning.shard_batch(padded, self.mesh))))[:n]
            out += [task.postprocess_fn(vocab.decode(row.tolist()), is_target=False)
                    for row in tokens]
        return out

    def evaluate(self, params) -> dict[str, dict[str, float]]:
        """{task: {metric: value}} over the registry."""
        results = {}
        for task in self.tasks:
            targets, _ = self.examples[task.name]
            predictions = self.predictions(params, task)
            metrics = {}
            for metric_fn in task.metric_fns:
                metrics.update(metric_fn(targets, predictions))
            results[task.name] = {k: float(v) for k, v in metrics.items()}
        return results


def flatten_results(results: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """{'eval/<task>/<metric>': value} for metric writers."""
    return {f"eval/{t}/{m}": v for t, ms in results.items() for m, v in ms.items()}


def average(results: Mapping[str, Mapping[str, float]]) -> float:
    """Mean over tasks of each task's mean metric (the GLUE-style average)."""
    return float(np.mean([np.mean(list(ms.values())) for ms in results.values()]))


def one_line(results: Mapping[str, Mapping[str, float]]) -> str:
    parts = [f"{t}: " + ", ".join(f"{m} {v:.1f}" for m, v in ms.items())
             for t, ms in results.items()]
    return " | ".join(parts) + f" | average {average(results):.1f}"


def print_table(results: Mapping[str, Mapping[str, float]], title: str = "results") -> None:
    table = Table(title=title)
    table.add_column("task")
    table.add_column("metric")
    table.add_column("score", justify="right")
    for task, metrics in results.items():
        for metric, value in metrics.items():
            table.add_row(task, metric, f"{value:.2f}")
    table.add_row("[b]average[/b]", "", f"[b]{average(results):.2f}[/b]")
    Console().print(table)
