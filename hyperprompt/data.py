"""Input pipeline: seqio tasks -> batches that carry per-example (or per-row) `task_ids`.

Training batches may be packed (several examples a row, seqio's packing): each task is
packed on its own, so a row holds examples of one task and `task_ids` stays [B] (task
conditioning is per row). Evaluation and inference batches are never packed.

The task-id registry is the mixture's ordered task list (seqio orders it by
name). It is written next to the checkpoints (`task_registry.json`) and read
back by eval/infer and on restart, so ids never get reordered.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import seqio
import tensorflow as tf

from hyperprompt.errors import UsageError
from hyperprompt.files import write_json

REGISTRY_FILE = "task_registry.json"
TASK_IDS = "task_ids"
# Fills the slots packing reserves for a method's input prompt (the model puts the prompt
# there, never this id's embedding); 2 is UNK in T5's vocabularies, nonzero (not padding).
PROMPT_PLACEHOLDER_ID = 2
# (shard_id, num_shards): a process's part of each global batch.
Shard = tuple[int, int]


class TaskIdFeatureConverter(seqio.EncDecFeatureConverter):
    """seqio's encoder-decoder converter, unpacked, passing `task_ids` [1] through (its
    length need not be given: t5x's TASK_FEATURE_LENGTHS name the text features only)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("pack", False)
        kwargs.setdefault(
            "passthrough_features",
            {TASK_IDS: seqio.FeatureConverter.FeatureSpec(dtype=tf.int32, rank=1)},
        )
        super().__init__(**kwargs)

    def __call__(self, ds: tf.data.Dataset,
                 task_feature_lengths: Mapping[str, int]) -> tf.data.Dataset:
        return super().__call__(ds, {TASK_IDS: 1, **task_feature_lengths})


def get_mixture_or_task(name: str) -> seqio.Task | seqio.Mixture:
    """seqio lookup with a one-line error listing close names."""
    import hyperprompt.tasks  # noqa: F401  (registers the embedded tasks)

    try:
        return seqio.get_mixture_or_task(name)
    except ValueError:
        names = list(seqio.TaskRegistry.names()) + list(seqio.MixtureRegistry.names())
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UsageError(
            f"unknown task or mixture {name!r}.{hint} Set MIXTURE_OR_TASK_NAME to a registered "
            f"name (e.g. 'synthetic_mtl')."
        ) from None


def task_registry(name: str) -> list[str]:
    """The ordered task list whose positions are the task ids."""
    provider = get_mixture_or_task(name)
    tasks = provider.tasks if isinstance(provider, seqio.Mixture) else [provider]
    return [t.name for t in tasks]


def eval_tasks(registry: Sequence[str], split: str) -> list[tuple[str, int]]:
    """(eval task, task id) pairs for a split: each trained task, or the tasks that
    evaluate it (`hyperprompt.tasks.EVALUATED_BY`, e.g. MNLI's matched/mismatched),
    with the trained task's id; tasks without that split are left out."""
    from hyperprompt.tasks import EVALUATED_BY

    pairs = [(name, task_id) for task_id, trained in enumerate(registry)
             for name in EVALUATED_BY.get(trained, (trained,))
             if split in seqio.get_mixture_or_task(name).splits]
    if not pairs:
        raise UsageError(f"no task of {list(registry)} has a split {split!r}; choose another "
                         f"split (e.g. 'validation').")
    return pairs


class DamagedRegistry(UsageError):
    """MODEL_DIR's task_registry.json exists but is not {"tasks": [name, ...]}."""


def save_registry(model_dir: str, tasks: Sequence[str]) -> None:
    write_json(os.path.join(model_dir, REGISTRY_FILE), {"tasks": list(tasks)})


def load_registry(model_dir: str) -> list[str] | None:
    """The saved task list; None when there is none; DamagedRegistry when unreadable."""
    path = os.path.join(model_dir, REGISTRY_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, "rb") as f:
            tasks = json.loads(f.read().decode("utf-8"))["tasks"]
        if isinstance(tasks, list) and tasks and all(isinstance(t, str) for t in tasks):
            return tasks
        problem = "its \"tasks\" is not a list of task names"
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        problem = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else e!r}"
    raise DamagedRegistry(f"{path} is damaged ({problem}) and no checkpoint records the run's "
                          f"tasks; write it back as {{\"tasks\": [task names in task-id order]}}"
                          f", or delete it and rerun `hyperprompt train` with the run's gin "
                          f"files (it writes the file from MIXTURE_OR_TASK_NAME).")


def mixture_rates(name: str) -> list[float]:
    """Sampling rate of each task of the registry, normalised to sum to 1."""
    provider = get_mixture_or_task(name)
    if isinstance(provider, seqio.Mixture):
        rates = [provider.get_rate(t) for t in provider.tasks]
    else:
        rates = [1.0]
    total = float(sum(rates))
    return [r / total for r in rates]


def _with_task_id(ds: tf.data.Dataset, task_id: int) -> tf.data.Dataset:
    # Rank 1 (length 1) so that seqio's trim/pad accepts it; batches squeeze it to [B].
    return ds.map(lambda ex: {**ex, TASK_IDS: tf.constant([task_id], tf.int32)},
                  num_parallel_calls=tf.data.AUTOTUNE)


def task_dataset(task_name: str, task_id: int, split: str,
                 feature_lengths: Mapping[str, int] | None, shuffle: bool, seed: int | None,
                 repeat: bool = False) -> tf.data.Dataset:
    """One task's preprocessed examples plus its `task_ids` (untrimmed if no lengths)."""
    task = seqio.get_mixture_or_task(task_name)
    # No in-memory cache: seqio would cache the raw source only (tokenising is redone
    # anyway), and deciding it needs TFDS split sizes that mock/custom datasets lack.
    lengths = None if feature_lengths is None else dict(feature_lengths)
    ds = task.get_dataset(lengths, split=split, shuffle=shuffle, seed=seed,
                          num_epochs=None if repeat else 1, try_in_mem_cache=False)
    return _with_task_id(ds, task_id)


def packed_task_rows(task_name: str, task_id: int, feature_lengths: Mapping[str, int],
                     seed: int, prompt_length: int = 0) -> tf.data.Dataset:
    """One task's endless shuffled training examples packed into rows, each with its
    `task_ids` (scalar) and seqio's segment ids and positions.

    With `prompt_length` P > 0, P slots (PROMPT_PLACEHOLDER_ID) go in front of each
    example's inputs before packing, and packed inputs are P longer: the model fills them
    with the method's input prompt, so each example sees its own prompt as unpacked.
    """
    ds = task_dataset(task_name, task_id, "train", feature_lengths, True, seed, repeat=True)
    ds = ds.map(lambda ex: {k: ex[k] for k in feature_lengths})
    lengths = dict(feature_lengths)
    if prompt_length:
        slots = tf.fill([prompt_length], tf.constant(PROMPT_PLACEHOLDER_ID, tf.int32))
        ds = ds.map(lambda ex: {**ex, "inputs": tf.concat([slots, ex["inputs"]], axis=0)})
        lengths["inputs"] += prompt_length
    rows = seqio.EncDecFeatureConverter(pack=True)(ds, lengths)
    return rows.map(lambda row: {**row, TASK_IDS: tf.constant(task_id, tf.int32)})


def examples_per_row(rows: tf.data.Dataset, probe_rows: int = 64) -> float:
    """Mean examples a packed row holds, over a task's first `probe_rows` rows."""
    counts = [row["encoder_segment_ids"].max()
              for row in rows.take(probe_rows).as_numpy_iterator()]
    return float(np.mean(counts))


def train_batches(name: str, registry: Sequence[str], feature_lengths: Mapping[str, int],
                  batch_size: int, seed: int, skip: int = 0, pack: bool = False,
                  prompt_length: int = 0, shard: Shard = (0, 1)
                  ) -> Iterator[dict[str, np.ndarray]]:
    """Endless mixed, shuffled training batches (numpy, static shapes).

    Deterministic for a seed; `skip` drops the batches a resumed run already saw,
    so a restart continues the same sequence. `shard` = (shard_id, num_shards): this
    process's rows of each global batch of `batch_size` (`partitioning.DataLayout`); the
    global batches are the same for any number of shards. With `pack`, rows are packed per task
    (`packed_task_rows`, inputs `prompt_length` longer) and then mixed (t5x mixes
    examples, then packs; packing each task alone is what keeps a row to one task id).
    The mixture's rates stay rates of examples: a task's rows are drawn at its rate
    divided by its mean examples a row (`examples_per_row`), so tasks of short examples
    are not over-sampled.
    """
    rates = mixture_rates(name)
    if pack:
        datasets = [packed_task_rows(t, i, feature_lengths, seed + i, prompt_length)
                    for i, t in enumerate(registry)]
        row_rates = [r / examples_per_row(ds) for r, ds in zip(rates, datasets, strict=True)]
        mixed = tf.data.Dataset.sample_from_datasets(
            datasets, weights=[r / sum(row_rates) for r in row_rates], seed=seed)
        return _numpy_batches(_shard_batches(mixed, batch_size, shard).skip(skip))
    # Only what training reads: tasks differ in their other features (labels, ids).
    keep = lambda ex: {k: ex[k] for k in (*feature_lengths, TASK_IDS)}  # noqa: E731
    datasets = [task_dataset(t, i, "train", feature_lengths, True, seed + i, repeat=True)
                .map(keep) for i, t in enumerate(registry)]
    mixed = tf.data.Dataset.sample_from_datasets(datasets, weights=rates, seed=seed)
    return convert_and_batch(mixed, feature_lengths, batch_size, drop_remainder=True, skip=skip,
                             shard=shard)


def _shard_batches(ds: tf.data.Dataset, batch_size: int, shard: Shard) -> tf.data.Dataset:
    """This shard's rows of each global batch: consecutive runs of batch_size / num_shards
    examples, every num_shards-th run (rows in the same order as one process reads them).
    Rows of unequal lengths are zero-padded to the run's longest."""
    shard_id, num_shards = shard
    if batch_size % num_shards:
        raise UsageError(f"BATCH_SIZE={batch_size} cannot be split over {num_shards} data "
                         f"shards; use a multiple of {num_shards}.")
    local = ds.padded_batch(batch_size // num_shards, drop_remainder=True)
    return local.shard(num_shards, shard_id) if num_shards > 1 else local


def convert_and_batch(ds: tf.data.Dataset, feature_lengths: Mapping[str, int], batch_size: int,
                      drop_remainder: bool, skip: int = 0, shard: Shard = (0, 1)
                      ) -> Iterator[dict[str, np.ndarray]]:
    """Batch (this shard's rows of each batch when `drop_remainder`), convert each batch to
    the model's features (`model_features`), skip `skip` batches, yield numpy dicts."""
    needed = (*feature_lengths, TASK_IDS)
    missing = [k for k in needed if k not in ds.element_spec]
    if missing:
        raise UsageError(f"examples lack {missing} (they have {sorted(ds.element_spec)}); a "
                         f"task must output each of TASK_FEATURE_LENGTHS' features.")
    for name in feature_lengths:  # as seqio's converter requires
        spec = ds.element_spec[name]
        if spec.dtype != tf.int32 or spec.shape.rank != 1:
            raise UsageError(f"feature {name!r} is {spec.dtype.name} of rank {spec.shape.rank}"
                             f"; a task's text features must be int32 token vectors (rank 1).")
    examples = ds.map(lambda ex: {k: ex[k] for k in needed})
    batched = (_shard_batches(examples, batch_size, shard) if drop_remainder
               else examples.padded_batch(batch_size))
    return _numpy_batches(batched.skip(skip).map(lambda b: model_features(b, feature_lengths)))


def model_features(batch: Mapping[str, tf.Tensor], feature_lengths: Mapping[str, int]
                   ) -> dict[str, tf.Tensor]:
    """A batch of examples (inputs, targets [B, <= length], task_ids [B, 1]) as the model's
    features: what seqio's unpacked `EncDecFeatureConverter` (`TaskIdFeatureConverter`)
    makes of each example, made for the whole batch at once. Each text feature zero-padded
    to its length (a longer one fails, as in seqio); decoder inputs are the targets shifted
    right after a 0; loss weights mark the targets' non-padding positions; task_ids [B].

    seqio's converter is a chain of per-example maps; a batch at a time, the host spends
    ~1/3 less CPU a training batch (synthetic mixture, batch 64, 2-core AMD EPYC: 14-17 ->
    10 ms), CPU that on CPU training the step would otherwise have. The batches are seqio's,
    number for number (tests/test_data.py). Packed rows keep seqio's converter.
    """
    def fit(name):  # [B, <= length] -> [B, length]
        tokens, length = batch[name], feature_lengths[name]
        width = tf.shape(tokens)[1]
        check = tf.debugging.assert_less_equal(
            width, length, message=f"feature {name} is longer than its length {length} "
                                   f"(TASK_FEATURE_LENGTHS)")
        with tf.control_dependencies([check]):  # before the padding's own (cryptic) error
            padded = tf.pad(tokens, [[0, 0], [0, length - width]])
        return tf.reshape(padded, [-1, length])

    inputs, targets = fit("inputs"), fit("targets")
    return {
        "encoder_input_tokens": inputs,
        "decoder_target_tokens": targets,
        "decoder_input_tokens": tf.concat([tf.zeros_like(targets[:, :1]), targets[:, :-1]], 1),
        "decoder_loss_weights": tf.cast(tf.not_equal(targets, 0), tf.int32),
        TASK_IDS: batch[TASK_IDS][:, 0],
    }


def _numpy_batches(batched: tf.data.Dataset) -> Iterator[dict[str, np.ndarray]]:
    """The batches as numpy, prefetched, with consecutive per-example maps fused.

    seqio's preprocessors and feature converter are a chain of small per-example maps;
    fused, the host spends ~35% less CPU a batch (synthetic mixture, batch 64: 21 -> 13 ms)
    and yields the same batches. On a host whose cores also run the step (CPU training)
    that CPU is the trainer's overhead over the bare step.
    """
    options = tf.data.Options()
    options.experimental_optimization.map_fusion = True
    return batched.with_options(options).prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def pad_batch(batch: Mapping[str, np.ndarray], batch_size: int) -> tuple[dict, int]:
    """Pad a final short batch to `batch_size` rows (static shapes); returns (batch, n real)."""
    n = len(next(iter(batch.values())))
    if n == batch_size:
        return dict(batch), n
    return {k: np.concatenate([v, np.zeros((batch_size - n, *v.shape[1:]), v.dtype)])
            for k, v in batch.items()}, n
