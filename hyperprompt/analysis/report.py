"""`hyperprompt report`: attention mass on prompts and attention entropy of a checkpoint.

Runs the latest checkpoint of MODEL_DIR (and optionally a second run, e.g.
vanilla, to compare entropies) teacher-forced over the first `num_examples`
examples of each task's eval split, and writes MODEL_DIR/report/
{attention_mass.png, attention_entropy.png, report.json}.

Attention mass (He et al. 2022, Fig. "attention mass on hyper-prompts"): the
softmax weight a query puts on the prompt keys, averaged over every real
(non-padding) query token of the examples and every head of a layer.
Entropy: of each real query token's attention distribution, per layer and head
(nats; a prompted run's distributions spread over the prompt keys as well).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from rich.console import Console
from rich.table import Table

from hyperprompt import data, partitioning
from hyperprompt.analysis import plots
from hyperprompt.analysis.attention import STACKS, token_statistics
from hyperprompt.errors import UsageError
from hyperprompt.eval import restored_run, saved_registry
from hyperprompt.files import write_json
from hyperprompt.methods.base import conditioner_of
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.optim import flat_paths

REPORT_DIR = "report"
METHOD = "method"  # report.json's section of what the method sows, per task
# task -> (stack, "mass" | "entropy") -> [L, H, N real tokens]
TaskStatistics = dict[str, dict[tuple[str, str], np.ndarray]]
Batches = dict[str, list[dict[str, np.ndarray]]]  # task -> its padded host batches


def method_label(model: EncoderDecoderModel, model_dir: str) -> str:
    """'HyperPrompt-Global (hp)': the method's label and the run's folder."""
    name = conditioner_of(model.module).label()
    return f"{name} ({os.path.basename(os.path.normpath(model_dir))})"


def real_tokens(stats: Mapping[str, Mapping[str, np.ndarray]], batch: Mapping[str, np.ndarray]
                ) -> dict[tuple[str, str], np.ndarray]:
    """`token_statistics` [L, B, H, T] -> {(stack, name): [L, H, n real tokens of the batch]}."""
    out = {}
    for stack, (_, feature) in STACKS.items():
        real = np.asarray(batch[feature]) > 0  # [B, T]
        for name, values in stats[stack].items():
            out[stack, name] = np.asarray(values).transpose(0, 2, 1, 3)[:, :, real]
    return out


def eval_batches(registry: Sequence[str], feature_lengths: Mapping[str, int],
                 batch_size: int, split: str, num_examples: int) -> Batches:
    """Each eval task's first `num_examples` examples of `split` as host batches (pad rows
    zero), with its trained task's id (`data.eval_tasks`: GLUE's MNLI -> matched/mismatched)."""
    out: Batches = {}
    for task, task_id in data.eval_tasks(registry, split):
        ds = data.task_dataset(task, task_id, split, feature_lengths, False, None)
        out[task] = [data.pad_batch(batch, batch_size)[0] for batch in data.convert_and_batch(
            ds.take(num_examples), feature_lengths, batch_size, drop_remainder=False)]
        if not out[task]:
            raise UsageError(f"task {task!r} has no examples in split {split!r}; choose "
                             f"another EVAL_SPLIT or fix the task's data source.")
    return out


def method_intermediates(model: EncoderDecoderModel, params, batch: Mapping[str, jax.Array]
                         ) -> dict[str, jax.Array]:
    """{name: [B, ...]}: what the method sows into "intermediates" when it conditions the
    batch (the Conditioner contract); the method alone runs, not the backbone."""
    _, state = model.module.apply(
        {"params": params}, batch.get("task_ids"), batch["encoder_input_tokens"], False,
        method=model.module.condition, mutable=["intermediates"])
    sown = flat_paths(state.get("intermediates", {}).get("conditioner", {}))
    return {path.rsplit("/", 1)[0]: value for path, value in sown.items()}  # drop sow's "/0"


def collect(model: EncoderDecoderModel, params, mesh, batches: Batches) -> TaskStatistics:
    """Per task, every statistic of every real query token (teacher-forced, no dropout),
    and under (METHOD, name) what the method sows, per real example [N, ...]."""
    stats_fn = jax.jit(partial(token_statistics, model))
    sown_fn = jax.jit(partial(method_intermediates, model))
    out: TaskStatistics = {}
    for task, task_batches in batches.items():
        chunks, examples = defaultdict(list), defaultdict(list)
        for batch in task_batches:
            sharded = partitioning.shard_batch(batch, mesh)
            for key, values in real_tokens(jax.device_get(stats_fn(params, sharded)),
                                           batch).items():
                chunks[key].append(values)
            real = np.asarray(batch["encoder_input_tokens"]).any(axis=1)  # pad rows are 0
            for name, values in jax.device_get(sown_fn(params, sharded)).items():
                examples[METHOD, name].append(np.asarray(values)[real])
        out[task] = {**{key: np.concatenate(parts, axis=-1) for key, parts in chunks.items()},
                     **{key: np.concatenate(parts) for key, parts in examples.items()}}
    return out


def method_values(stats: TaskStatistics) -> dict[str, dict[str, list]]:
    """{name: {task: mean over the task's examples}} of what the method sows."""
    out: dict[str, dict[str, list]] = {}
    for task, by_key in stats.items():
        for (kind, name), values in by_key.items():
            if kind == METHOD:
                out.setdefault(name, {})[task] = np.mean(values, axis=0).tolist()
    return out


def check_has_prompts(model: EncoderDecoderModel, model_dir: str,
                      feature_lengths: Mapping[str, int]) -> None:
    """UsageError when the model puts no prompt before any keys (abstract: nothing runs)."""
    def stats():
        params = nn.unbox(model.init(jax.random.PRNGKey(0), feature_lengths["inputs"],
                                     feature_lengths["targets"])["params"])
        tokens = jnp.ones((1, feature_lengths["targets"]), jnp.int32)
        batch = {"encoder_input_tokens": jnp.ones((1, feature_lengths["inputs"]), jnp.int32),
                 "decoder_input_tokens": tokens, "decoder_target_tokens": tokens,
                 "task_ids": jnp.zeros((1,), jnp.int32)}
        return token_statistics(model, params, batch)

    if not any("mass" in s for s in jax.eval_shape(stats).values()):
        raise UsageError(f"MODEL_DIR {model_dir!r} is a {method_label(model, model_dir)} run: "
                         f"it has no prompts, so there is no attention mass on prompts; point "
                         f"MODEL_DIR at a HyperPrompt or Prompt Tuning run and pass this one "
                         f"as --compare_model_dir.")


def run_statistics(model: EncoderDecoderModel, model_dir: str,
                   feature_lengths: Mapping[str, int], batch_size: int, batches: Batches,
                   trained: Sequence[str], model_parallel: int = 1
                   ) -> tuple[int, TaskStatistics]:
    """(step, statistics) of MODEL_DIR's latest checkpoint, which must have been trained on
    the `trained` registry (the batches carry its task ids)."""
    with restored_run(model, model_dir, feature_lengths, batch_size,
                      model_parallel) as (registry, mesh, step, params):
        if registry != list(trained):
            raise UsageError(f"{model_dir!r} was trained on tasks {registry}, not "
                             f"{list(trained)}; compare runs of the same mixture.")
        return step, collect(model, params, mesh, batches)


def attention_mass(stats: TaskStatistics) -> dict[str, dict[str, list[float]]]:
    """{stack: {task: mass per layer [L], ..., "average": mean over tasks}} for prompted stacks."""
    out: dict[str, dict[str, list[float]]] = {}
    for stack in STACKS:
        per_task = {task: s[stack, "mass"].mean(axis=(1, 2)) for task, s in stats.items()
                    if (stack, "mass") in s}
        if per_task:
            average = np.mean(list(per_task.values()), axis=0)
            out[stack] = {t: v.tolist() for t, v in {**per_task, "average": average}.items()}
    return out


def pooled_entropy(stats: TaskStatistics) -> dict[str, np.ndarray]:
    """{stack: entropy [L, H, N]} over the tokens of every task."""
    return {stack: np.concatenate([s[stack, "entropy"] for s in stats.values()], axis=-1)
            for stack in STACKS}


def entropy_summary(entropy: np.ndarray) -> dict:
    """Numbers of one stack's entropies [L, H, N] (nats)."""
    return {"mean": float(entropy.mean()), "median": float(np.median(entropy)),
            "std": float(entropy.std()), "tokens": int(entropy.shape[-1]),
            "per_layer_mean": entropy.mean(axis=(1, 2)).tolist(),
            "per_layer_head_mean": entropy.mean(axis=2).tolist()}


def attention_report(model: EncoderDecoderModel, model_dir: str,
                     feature_lengths: Mapping[str, int], batch_size: int,
                     split: str = "validation", num_examples: int = 100,
                     model_parallel: int = 1,
                     compare: tuple[EncoderDecoderModel, str] | None = None) -> dict:
    """Write MODEL_DIR/report/{attention_mass.png, attention_entropy.png, report.json}.

    `compare`: (model, model_dir) of a second run whose entropies are plotted beside.
    Returns the report (what report.json holds, plus the written paths under "files").
    """
    if num_examples < 1:
        raise UsageError(f"--num_examples={num_examples}: use at least 1 (the paper: 100).")
    check_has_prompts(model, model_dir, feature_lengths)
    registry = saved_registry(model_dir)
    batches = eval_batches(registry, feature_lengths, batch_size, split, num_examples)
    step, stats = run_statistics(model, model_dir, feature_lengths, batch_size, batches,
                                 registry, model_parallel)
    label = method_label(model, model_dir)
    entropies = {label: pooled_entropy(stats)}
    runs = {label: {"model_dir": model_dir, "step": step}}
    if compare is not None:
        other, other_dir = compare
        other_step, other_stats = run_statistics(other, other_dir, feature_lengths, batch_size,
                                                 batches, registry, model_parallel)
        other_label = method_label(other, other_dir)
        if other_label == label:
            other_label += " [compare]"
        entropies[other_label] = pooled_entropy(other_stats)
        runs[other_label] = {"model_dir": other_dir, "step": other_step}
    report = {
        "runs": runs, "split": split, "examples_per_task": num_examples, "tasks": registry,
        "attention_mass": attention_mass(stats),
        METHOD: method_values(stats),
        "method_labels": {k: list(v) for k, v in conditioner_of(model.module).value_labels()
                          .items()},
        "attention_entropy_nats": {run: {stack: entropy_summary(e) for stack, e in by.items()}
                                   for run, by in entropies.items()},
    }
    files = write(report, entropies, label, os.path.join(model_dir, REPORT_DIR))
    return {**report, "files": files}


def write(report: Mapping, entropies: Mapping[str, Mapping[str, np.ndarray]], label: str,
          out_dir: str) -> dict[str, str]:
    """The two plots and report.json in `out_dir`; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    files = {"attention_mass": plots.attention_mass(report["attention_mass"], label,
                                                    os.path.join(out_dir, "attention_mass.png")),
             "attention_entropy": plots.attention_entropy(
                 entropies, os.path.join(out_dir, "attention_entropy.png")),
             "report": os.path.join(out_dir, "report.json")}
    for name, per_task in report[METHOD].items():  # a [task x value] heatmap of 1-d values
        if np.ndim(next(iter(per_task.values()))) == 1:
            files[f"method_{name}"] = plots.method_heatmap(
                per_task, report["method_labels"].get(name), f"{name}: {label}",
                os.path.join(out_dir, f"method_{name}.png"))
    write_json(files["report"], report)
    return files


def print_summary(report: Mapping) -> None:
    """Attention mass per task and layer, entropy means (rich tables), the written files."""
    console = Console()
    for stack, per_task in report["attention_mass"].items():
        layers = len(per_task["average"])
        table = Table(title=f"{stack} attention mass on prompts, per layer")
        table.add_column("task")
        for layer in range(layers):
            table.add_column(str(layer), justify="right")
        for task, values in per_task.items():
            table.add_row(task, *(f"{v:.3f}" for v in values))
        console.print(table)
    table = Table(title="attention entropy (nats), mean over real tokens, heads and layers")
    table.add_column("run")
    for stack in STACKS:
        table.add_column(stack, justify="right")
    for run, by_stack in report["attention_entropy_nats"].items():
        table.add_row(run, *(f"{by_stack[s]['mean']:.3f}" for s in STACKS))
    console.print(table)
    for name, per_task in report[METHOD].items():
        shape = np.shape(next(iter(per_task.values())))
        print(f"method value {name!r} {list(shape)} per task: report.json[{METHOD!r}]")
    for path in report["files"].values():
        print(path)
