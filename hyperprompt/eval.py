"""Evaluation: decode each task's split, postprocess, apply the task's metric_fns."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np
import seqio
from rich.console import Console
from rich.table import Table

from hyperprompt import data, partitioning
from hyperprompt.errors import UsageError
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.state import restore_trained


class Predictor:
    """Jitted greedy decoding of host batches: pads to the batch size, shards, trims."""

    def __init__(self, model: EncoderDecoderModel, batch_size: int, mesh, eos_id: int):
        self.batch_size, self.mesh = batch_size, mesh
        self._predict = jax.jit(lambda params, batch: model.predict_batch(params, batch,
                                                                          eos_id=eos_id))

    def __call__(self, params, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        """Token ids [n, targets length] for a batch of n <= batch_size examples."""
        padded, n = data.pad_batch(batch, self.batch_size)
        tokens = self._predict(params, partitioning.shard_batch(padded, self.mesh))
        return np.asarray(jax.device_get(tokens))[:n]


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
            raw = list(ds.as_numpy_iterator())
            if not raw:
                raise UsageError(f"task {task.name!r} has no examples in split {split!r}; "
                                 f"choose another eval split or fix the task's data source.")
            targets = [task.postprocess_fn(ex["targets_pretokenized"].decode(), example=ex,
                                           is_target=True) for ex in raw]
            inputs = [ex["inputs_pretokenized"].decode() for ex in raw]
            batches = list(data.convert_and_batch(ds, feature_lengths, batch_size, False))
            self.examples[task.name] = (inputs, targets, batches)
        eos_id = self.tasks[0].output_features["targets"].vocabulary.eos_id
        self.predict = Predictor(model, batch_size, mesh, eos_id)

    def inputs(self, task: seqio.Task) -> list[str]:
        """The task's eval inputs as text."""
        return self.examples[task.name][0]

    def predictions(self, params, task: seqio.Task) -> list[str]:
        """Decoded, postprocessed predictions for the task's eval examples."""
        vocab = task.output_features["targets"].vocabulary
        _, _, batches = self.examples[task.name]
        out = []
        for batch in batches:
            out += [task.postprocess_fn(vocab.decode(row.tolist()), is_target=False)
                    for row in self.predict(params, batch)]
        return out

    def evaluate(self, params) -> dict[str, dict[str, float]]:
        """{task: {metric: value}} over the registry."""
        results = {}
        for task in self.tasks:
            _, targets, _ = self.examples[task.name]
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


def evaluate_checkpoint(
    *,
    model: EncoderDecoderModel,
    model_dir: str,
    task_feature_lengths: Mapping[str, int],
    batch_size: int,
    split: str = "validation",
    eval_examples: int | None = None,
    model_parallel: int = 1,
) -> dict[str, dict[str, float]]:
    """Evaluate MODEL_DIR's latest checkpoint on every task of its saved registry."""
    with restored_run(model, model_dir, task_feature_lengths, batch_size,
                      model_parallel) as (registry, mesh, _, params):
        evaluator = Evaluator(model, registry, task_feature_lengths, batch_size, mesh, split,
                              eval_examples)
        return evaluator.evaluate(params)


@contextlib.contextmanager
def restored_run(model: EncoderDecoderModel, model_dir: str,
                 feature_lengths: Mapping[str, int], batch_size: int,
                 model_parallel: int = 1):
    """(registry, mesh, step, params) of MODEL_DIR's latest checkpoint, inside its mesh."""
    registry = saved_registry(model_dir)
    mesh = partitioning.make_mesh(model_parallel)
    partitioning.check_batch_size(batch_size, mesh)
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        step, params = restore_trained(model, model_dir, feature_lengths, mesh)
        yield registry, mesh, step, params


def saved_registry(model_dir: str) -> list[str]:
    """The task-id registry written by `train`; UsageError if MODEL_DIR has none."""
    registry = data.load_registry(model_dir)
    if registry is None:
        raise UsageError(f"{model_dir!r} has no {data.REGISTRY_FILE}; point MODEL_DIR at a "
                         f"directory written by `hyperprompt train`.")
    for name in registry:
        data.get_mixture_or_task(name)
    return registry
