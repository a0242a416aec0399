"""Evaluation: decode each task's split, postprocess, apply the task's metric_fns."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np
import seqio
from rich.console import Console
from rich.table import Table

from hyperprompt import checkpoints, data, partitioning
from hyperprompt.errors import UsageError
from hyperprompt.files import write_jsonl
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.state import restore_trained
from hyperprompt.tasks import postprocessors
from hyperprompt.tasks.benchmarks import benchmark_scores


class Predictor:
    """Jitted greedy decoding of host batches: pads to the batch size, shards, trims."""

    def __init__(self, model: EncoderDecoderModel, batch_size: int, mesh, eos_id: int):
        self.batch_size, self.mesh = batch_size, mesh
        self._predict = jax.jit(lambda params, batch: model.predict_batch(params, batch,
                                                                          eos_id=eos_id))

    def __call__(self, params, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        """Token ids [n, targets length] for a batch of n <= batch_size examples."""
        padded, n = data.pad_batch(batch, self.batch_size)
        rows = partitioning.process_rows(padded, self.mesh)  # each example decoded once
        tokens = self._predict(params, partitioning.shard_batch(rows, self.mesh,
                                                                self.batch_size))
        return partitioning.gather(tokens)[:n]


@dataclasses.dataclass
class EvalSet:
    """One eval task's examples: raw (for postprocessing), input texts, targets, batches."""
    examples: list[dict]
    inputs: list[str]
    targets: list
    batches: list[dict[str, np.ndarray]]


def eval_lengths(examples: Sequence[Mapping[str, np.ndarray]],
                 lengths: Mapping[str, int]) -> dict[str, int]:
    """Feature lengths that hold every example whole: each training length where the
    longest example fits it, else the longest rounded up to a power of two (so a few
    shapes, and compiles, cover all tasks)."""
    longest = {key: max(len(ex[key]) for ex in examples) for key in lengths}
    return {key: length if longest[key] <= length else 1 << (longest[key] - 1).bit_length()
            for key, length in lengths.items()}


class Evaluator:
    """Holds each eval task's batches (built once) and a jitted decoder.

    Eval tasks are the registry's tasks or the ones that evaluate them with
    their task id (`data.eval_tasks`: MNLI -> matched, mismatched, AX). Examples
    are never truncated, as t5x evaluates (`task_feature_lengths=None`): a task
    whose longest input or target exceeds `feature_lengths` gets longer batches
    (`eval_lengths`); prompts are added inside the model, on top of these.
    """

    def __init__(self, model: EncoderDecoderModel, registry: Sequence[str],
                 feature_lengths: Mapping[str, int], batch_size: int, mesh,
                 split: str = "validation", num_examples: int | None = 256):
        self.model, self.registry, self.mesh = model, list(registry), mesh
        self.batch_size = batch_size
        pairs = data.eval_tasks(self.registry, split)
        self.tasks = [seqio.get_mixture_or_task(name) for name, _ in pairs]
        self.sets: dict[str, EvalSet] = {}
        # Tasks with unparsable predictions in the last evaluation -> how many.
        self.invalid: dict[str, int] = {}
        # The last evaluation's output text of each task's examples.
        self.texts: dict[str, list[str]] = {}
        for task, (_, task_id) in zip(self.tasks, pairs, strict=True):
            ds = data.task_dataset(task.name, task_id, split, None, False, None)
            if num_examples is not None:
                ds = ds.take(num_examples)
            ds = ds.cache()  # read twice below (raw holds them all anyway): preprocess once
            raw = list(ds.as_numpy_iterator())
            if not raw:
                raise UsageError(f"task {task.name!r} has no examples in split {split!r}; "
                                 f"choose another eval split or fix the task's data source.")
            targets = [task.postprocess_fn(ex["targets_pretokenized"].decode(), example=ex,
                                           is_target=True) for ex in raw]
            inputs = [ex["inputs_pretokenized"].decode() for ex in raw]
            lengths = eval_lengths(raw, feature_lengths)
            batches = list(data.convert_and_batch(ds, lengths, batch_size, False))
            self.sets[task.name] = EvalSet(raw, inputs, targets, batches)
        eos_id = self.tasks[0].output_features["targets"].vocabulary.eos_id
        self.predict = Predictor(model, batch_size, mesh, eos_id)

    def inputs(self, task: seqio.Task) -> list[str]:
        """The task's eval inputs as text."""
        return self.sets[task.name].inputs

    def decode(self, params, task: seqio.Task) -> list[str]:
        """The model's output text for each of the task's eval examples."""
        vocab = task.output_features["targets"].vocabulary
        return [vocab.decode(row.tolist()) for batch in self.sets[task.name].batches
                for row in self.predict(params, batch)]

    def predictions(self, params, task: seqio.Task, texts: Sequence[str] | None = None) -> list:
        """Postprocessed predictions (labels) for the task's eval examples."""
        texts = self.decode(params, task) if texts is None else texts
        return [task.postprocess_fn(text, example=ex, is_target=False)
                for text, ex in zip(texts, self.sets[task.name].examples, strict=True)]

    def evaluate(self, params) -> dict[str, dict[str, float]]:
        """{task: {metric: value}} over the eval tasks; counts unparsable predictions."""
        results, self.invalid, self.texts = {}, {}, {}
        for task in self.tasks:
            if not task.metric_fns:  # e.g. diagnostics scored only by the leaderboard
                continue
            self.texts[task.name] = self.decode(params, task)
            predictions = self.predictions(params, task, self.texts[task.name])
            if invalid := sum(map(postprocessors.is_invalid, predictions)):
                self.invalid[task.name] = invalid
            metrics = {}
            for metric_fn in task.metric_fns:
                metrics.update(metric_fn(self.sets[task.name].targets, predictions))
            results[task.name] = {k: float(v) for k, v in metrics.items()}
        return results


def write_predictions(evaluator: Evaluator, directory: str, step: int) -> None:
    """The last evaluation's outputs as `{task}-{step}.jsonl` in `directory` (as t5x's
    inference evaluator writes them): input, target and prediction text of every example,
    in the split's order; by process 0 alone (every process holds all rows)."""
    if jax.process_index() != 0:
        return
    for name, texts in evaluator.texts.items():
        rows = [{"input": text, "target": ex["targets_pretokenized"].decode(),
                 "prediction": prediction}
                for text, ex, prediction in zip(evaluator.sets[name].inputs,
                                                evaluator.sets[name].examples, texts,
                                                strict=True)]
        write_jsonl(os.path.join(directory, f"{name}-{step}.jsonl"), rows)


def flatten_results(results: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """{'eval/<task>/<metric>': value} for metric writers."""
    return {f"eval/{t}/{m}": v for t, ms in results.items() for m, v in ms.items()}


def average(results: Mapping[str, Mapping[str, float]]) -> float:
    """Mean over tasks of each task's mean metric (the GLUE-style average)."""
    return float(np.mean([np.mean(list(ms.values())) for ms in results.values()]))


def summary(results: Mapping[str, Mapping[str, float]]) -> list[tuple[str, float]]:
    """(label, score) rows: each benchmark's leaderboard score, else the plain average."""
    rows = [(f"{name} score ({present}/{total} tasks)" if present < total else f"{name} score",
             score) for name, (score, present, total) in benchmark_scores(results).items()]
    return rows or [("average", average(results))]


def one_line(results: Mapping[str, Mapping[str, float]]) -> str:
    parts = [f"{t}: " + ", ".join(f"{m} {v:.1f}" for m, v in ms.items())
             for t, ms in results.items()]
    return " | ".join(parts + [f"{label} {score:.1f}" for label, score in summary(results)])


def print_table(results: Mapping[str, Mapping[str, float]], title: str = "results") -> None:
    table = Table(title=title)
    table.add_column("task")
    table.add_column("metric")
    table.add_column("score", justify="right")
    for task, metrics in results.items():
        for metric, value in metrics.items():
            table.add_row(task, metric, f"{value:.2f}")
    for label, score in summary(results):
        table.add_row(f"[b]{label}[/b]", "", f"[b]{score:.2f}[/b]")
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
        results = evaluator.evaluate(params)
        if evaluator.invalid:
            warnings.warn(invalid_line(evaluator.invalid), stacklevel=2)
        return results


def invalid_line(invalid: Mapping[str, int]) -> str:
    """One line naming the tasks with unparsable predictions."""
    return ("predictions that name no label (counted wrong): "
            + ", ".join(f"{task} {n}" for task, n in invalid.items()))


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


def saved_registry(model_dir: str, required: bool = True) -> list[str] | None:
    """The task-id registry written by `train` (a damaged file: the one the latest checkpoint
    recorded, with a warning); UsageError if MODEL_DIR has none and one is `required`."""
    try:
        registry = data.load_registry(model_dir)
    except data.DamagedRegistry:
        registry = checkpoints.recorded_tasks(model_dir)
        if registry is None:
            raise
        warnings.warn(f"{os.path.join(model_dir, data.REGISTRY_FILE)} is damaged; using the "
                      f"tasks its latest checkpoint recorded: {registry}.", stacklevel=2)
    if registry is None:
        if not required:
            return None
        raise UsageError(f"{model_dir!r} has no {data.REGISTRY_FILE}; point MODEL_DIR at a "
                         f"directory written by `hyperprompt train`.")
    for name in registry:
        data.get_mixture_or_task(name)
    return registry
