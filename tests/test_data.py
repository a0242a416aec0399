"""The input pipeline: task ids from the registry, T5 text formats, padded batches."""

import itertools

import numpy as np
import pytest

from hyperprompt import data
from hyperprompt.errors import UsageError
from hyperprompt.tasks import synthetic

LENGTHS = {"inputs": 24, "targets": 12}


def test_registry_is_the_mixtures_task_order_and_round_trips(tmp_path):
    registry = data.task_registry("synthetic_mtl")
    assert registry == sorted(f"synthetic_{k}" for k in ("copy", "reverse", "sort", "count"))
    data.save_registry(str(tmp_path), registry)
    assert data.load_registry(str(tmp_path)) == registry
    assert data.task_registry("synthetic_sort") == ["synthetic_sort"]


def test_equal_rates():
    assert data.mixture_rates("synthetic_mtl") == [0.25] * 4


def test_unknown_task_suggests_close_names():
    with pytest.raises(UsageError, match="synthetic_copy"):
        data.get_mixture_or_task("synthetic_cpy")


def test_synthetic_targets_follow_each_tasks_rule():
    strings = synthetic.letter_strings("validation")
    assert len(strings) == synthetic.SPLIT_SIZES["validation"]
    assert strings == synthetic.letter_strings("validation")  # deterministic
    s = strings[0]
    assert synthetic.TASKS["reverse"](s) == "".join(reversed(list(s)))
    assert synthetic.TASKS["sort"](s) == "".join(sorted(list(s)))
    assert synthetic.TASKS["count"](s) == str(len(s))
    assert synthetic.exact_match(["ab", "cd"], ["ab", "dc"]) == {"exact_match": 50.0}


def test_eval_batches_carry_task_ids_and_byte_tokens():
    registry = data.task_registry("synthetic_mtl")
    task_id = registry.index("synthetic_reverse")
    ds = data.task_dataset("synthetic_reverse", task_id, "validation", LENGTHS, False, None)
    batch = next(data.convert_and_batch(ds.take(3), LENGTHS, 4, drop_remainder=False))
    assert batch["task_ids"].tolist() == [task_id] * 3
    assert batch["encoder_input_tokens"].shape == (3, 24)
    text = synthetic.letter_strings("validation")[0]
    want = [b + 3 for b in f"reverse: {text}".encode()] + [1]  # ByteVocabulary: +3, EOS 1
    assert batch["encoder_input_tokens"][0, : len(want)].tolist() == want
    target = [b + 3 for b in text[::-1].encode()] + [1]
    assert batch["decoder_target_tokens"][0, : len(target)].tolist() == target
    # decoder inputs are the targets shifted right with BOS 0
    assert batch["decoder_input_tokens"][0, 1: len(target)].tolist() == target[:-1]
    padded, n = data.pad_batch(batch, 8)
    assert n == 3 and padded["task_ids"].shape == (8,)
    assert np.all(padded["encoder_input_tokens"][3:] == 0)


def test_train_batches_mix_all_tasks():
    registry = data.task_registry("synthetic_mtl")
    batches = data.train_batches("synthetic_mtl", registry, LENGTHS, 64, seed=0)
    ids = np.concatenate([next(batches)["task_ids"] for _ in range(4)])
    counts = np.bincount(ids, minlength=4)
    assert counts.sum() == 256 and counts.min() > 30  # equal rates: 64 expected each


def test_fused_maps_yield_the_batches_of_the_plain_pipeline():
    """`_numpy_batches` fuses seqio's per-example maps for speed: same batches, in order."""
    registry = data.task_registry("synthetic_mtl")

    def batched():  # built anew: a second iterator of one dataset reshuffles
        mixed = data.tf.data.Dataset.sample_from_datasets(
            [data.task_dataset(t, i, "train", LENGTHS, True, i, repeat=True)
             for i, t in enumerate(registry)], seed=0)
        return data.TaskIdFeatureConverter()(mixed, LENGTHS).batch(16)

    plain, fused = batched(), data._numpy_batches(batched())
    assert plain.options().experimental_optimization.map_fusion is not True
    plain = plain.as_numpy_iterator()
    for a, b in itertools.islice(zip(plain, fused, strict=False), 8):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def _untrimmed_mix(n: int):
    """The first n validation examples of the synthetic tasks mixed, untrimmed (as eval
    reads them), each with its task id."""
    registry = data.task_registry("synthetic_mtl")
    return data.tf.data.Dataset.sample_from_datasets(
        [data.task_dataset(t, i, "validation", None, False, None)
         for i, t in enumerate(registry)], seed=0).take(n)


@pytest.mark.parametrize("lengths", [LENGTHS, {"inputs": 20, "targets": 11}])
def test_batch_conversion_yields_seqios_converter_batches(lengths):
    """`convert_and_batch` converts whole batches (`data.model_features`): the batches of
    seqio's per-example converter (`TaskIdFeatureConverter`), number for number, dtype for
    dtype: padded (24/12, or 20/11: the longest examples fill their rows), a short last
    batch, and one shard's rows of each global batch after skipping the first."""
    seqio_batches = lambda rows, drop: list(  # noqa: E731
        data.TaskIdFeatureConverter()(_untrimmed_mix(70), lengths)
        .batch(rows, drop_remainder=drop).as_numpy_iterator())
    cases = [
        (data.convert_and_batch(_untrimmed_mix(70), lengths, 16, drop_remainder=False),
         seqio_batches(16, False)),  # 4 x 16 + 6
        (data.convert_and_batch(_untrimmed_mix(70), lengths, 16, drop_remainder=True, skip=1,
                                shard=(1, 2)), seqio_batches(8, True)[1::2][1:]),
    ]
    for got, want in cases:
        got = list(got)
        assert [len(b["task_ids"]) for b in got] == [len(b["task_ids"]) for b in want]
        assert len(got) in (5, 3)
        for ours, theirs in zip(got, want, strict=True):
            theirs = {**theirs, "task_ids": theirs["task_ids"][:, 0]}
            assert ours.keys() == theirs.keys()
            for key in theirs:
                assert ours[key].dtype == theirs[key].dtype, key
                np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)


def test_batch_conversion_fails_on_a_missing_mistyped_or_too_long_feature():
    """As seqio's converter does, rather than train on cut examples."""
    ds = _untrimmed_mix(4).map(lambda ex: {k: v for k, v in ex.items() if k != "targets"})
    with pytest.raises(UsageError, match=r"lack \['targets'\]"):
        data.convert_and_batch(ds, LENGTHS, 4, drop_remainder=False)
    int64 = _untrimmed_mix(4).map(lambda ex: {**ex, "targets": data.tf.cast(ex["targets"],
                                                                            data.tf.int64)})
    with pytest.raises(UsageError, match="'targets' is int64 of rank 1; a task's text"):
        data.convert_and_batch(int64, LENGTHS, 4, drop_remainder=False)
    short = {"inputs": 24, "targets": 2}  # every target is longer
    with pytest.raises(data.tf.errors.InvalidArgumentError, match="feature targets is longer"):
        next(data.convert_and_batch(_untrimmed_mix(4), short, 4, drop_remainder=False))


def test_packed_train_rows_hold_examples_of_their_row_task_only():
    registry = data.task_registry("synthetic_mtl")
    lengths = {"inputs": 64, "targets": 24}
    batches = data.train_batches("synthetic_mtl", registry, lengths, 8, seed=0, pack=True)
    batch = next(batches)
    assert len(set(batch["task_ids"].tolist())) > 1  # rows of several tasks are mixed
    examples = 0
    for row, task_id in enumerate(batch["task_ids"]):
        segments = batch["encoder_segment_ids"][row]
        for seg in range(1, segments.max() + 1):
            text = bytes(t - 3 for t in batch["encoder_input_tokens"][row][segments == seg][:-1])
            assert text.decode().startswith(registry[task_id].removeprefix("synthetic_") + ": ")
            examples += 1
    assert examples > 8  # rows hold more than one example
    again = next(data.train_batches("synthetic_mtl", registry, lengths, 8, seed=0, pack=True))
    assert all(np.array_equal(batch[k], again[k]) for k in batch)  # deterministic for a seed
    other = next(data.train_batches("synthetic_mtl", registry, lengths, 8, seed=1, pack=True))
    assert not np.array_equal(batch["encoder_input_tokens"], other["encoder_input_tokens"])


def test_packed_rows_reserve_prompt_slots_before_each_example():
    lengths = {"inputs": 64, "targets": 24}
    row = next(data.packed_task_rows("synthetic_copy", 0, lengths, 0, prompt_length=3)
               .as_numpy_iterator())
    tokens, positions = row["encoder_input_tokens"], row["encoder_positions"]
    assert tokens.shape == (67,) and row["task_ids"] == 0
    starts = np.flatnonzero((positions == 0) & (row["encoder_segment_ids"] > 0))
    assert len(starts) > 1
    for start in starts:
        assert tokens[start:start + 3].tolist() == [data.PROMPT_PLACEHOLDER_ID] * 3
        assert bytes(t - 3 for t in tokens[start + 3:start + 8]).decode() == "copy:"


def test_packed_batches_keep_the_mixture_rates_of_examples():
    """count's rows hold 3.9 examples, the other tasks' 2.7 (inputs 64, targets 24): drawn
    at the mixture's rate, rows would give count 33% of the examples instead of its 25%."""
    registry = data.task_registry("synthetic_mtl")
    lengths = {"inputs": 64, "targets": 24}
    batches = data.train_batches("synthetic_mtl", registry, lengths, 16, seed=0, pack=True)
    examples = np.zeros(len(registry))
    for batch in itertools.islice(batches, 100):
        np.add.at(examples, batch["task_ids"], batch["encoder_segment_ids"].max(axis=1))
    share = examples / examples.sum()
    np.testing.assert_allclose(share, data.mixture_rates("synthetic_mtl"), atol=0.03)
