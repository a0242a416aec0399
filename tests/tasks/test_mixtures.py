"""Mixture rates against T5's formulas (Raffel et al. 2020, section 3.5.2)."""

import pytest

from hyperprompt import data
from hyperprompt.tasks import mixtures

SIZES = {"a": 1_000_000, "b": 10_000, "c": 100}


def test_rates_equal_the_formulas():
    cap = 2**19
    proportional = mixtures.mixing_rates(SIZES)
    total = cap + 10_000 + 100
    assert proportional == pytest.approx({"a": cap / total, "b": 10_000 / total,
                                          "c": 100 / total})
    t = 10.0
    raw = {k: min(n, cap) ** (1 / t) for k, n in SIZES.items()}
    assert mixtures.mixing_rates(SIZES, t) == pytest.approx(
        {k: r / sum(raw.values()) for k, r in raw.items()})
    assert mixtures.mixing_rates(SIZES, None) == pytest.approx({k: 1 / 3 for k in SIZES})


@pytest.mark.parametrize("suffix,temperature", [("", 1), ("_temp2", 2), ("_temp10", 10),
                                                 ("_equal", None)])
def test_registered_mixtures_use_the_task_sizes(suffix, temperature):
    for mixture, tasks in mixtures.MIXTURES.items():
        registry = data.task_registry(mixture + suffix)
        assert sorted(registry) == sorted(tasks)  # the registry: the mixture's ordered tasks
        expected = mixtures.mixing_rates({t: mixtures.TRAIN_EXAMPLES[t] for t in registry},
                                         temperature)
        assert data.mixture_rates(mixture + suffix) == pytest.approx(
            [expected[t] for t in registry])


def test_glue_mtl_rates_from_the_tfds_catalog_sizes():
    # Train split sizes in the TFDS catalog (glue/*:2.0.0), none above the 2^19 cap.
    sizes = {"glue_cola": 8551, "glue_sst2": 67349, "glue_mrpc": 3668, "glue_qqp": 363846,
             "glue_stsb": 5749, "glue_mnli": 392702, "glue_qnli": 104743, "glue_rte": 2490}
    total = sum(sizes.values())  # 949,098
    registry = data.task_registry("glue_mtl")
    assert data.mixture_rates("glue_mtl") == pytest.approx([sizes[t] / total for t in registry])
    assert data.mixture_rates("glue_mtl_equal") == pytest.approx([1 / 8] * 8)


def test_eval_tasks_carry_the_trained_tasks_id():
    glue_ids = {t: i for i, t in enumerate(data.task_registry("glue_mtl"))}
    assert data.eval_tasks(data.task_registry("glue_mtl"), "validation") == [
        ("glue_cola", 0), ("glue_mnli_matched", 1), ("glue_mnli_mismatched", 1),
        ("glue_mrpc", 2), ("glue_qnli", 3), ("glue_qqp", 4), ("glue_rte", 5), ("glue_sst2", 6),
        ("glue_stsb", 7)]
    assert glue_ids["glue_mnli"] == 1
    test = dict(data.eval_tasks(data.task_registry("glue_mtl"), "test"))
    assert test["glue_ax"] == test["glue_mnli_matched"] == 1
    super_glue = data.task_registry("super_glue_mtl")
    assert super_glue.index("super_glue_rte") == 6
    assert super_glue.index("super_glue_wsc_simple_train") == 8
    test = dict(data.eval_tasks(super_glue, "test"))
    assert (test["super_glue_axb"], test["super_glue_axg"], test["super_glue_rte"]) == (6, 6, 6)
    assert test["super_glue_wsc_simple"] == 8
    assert "dpr_simple_train" not in dict(data.eval_tasks(super_glue, "test"))
    assert "super_glue_axb" not in dict(data.eval_tasks(super_glue, "validation"))


def test_benchmark_mixtures_hold_t5s_training_tasks():
    assert len(mixtures.MIXTURES["glue_mtl"]) == 8 and "glue_wnli" not in data.task_registry(
        "glue_mtl")
    # T5's SuperGLUE training tasks: its super_glue_v102_proportional less the tasks of
    # rate 0 (simple WSC's eval copy, AX-b, AX-g), with DPR at its 1,322 examples.
    assert sorted(data.task_registry("super_glue_mtl")) == [
        "dpr_simple_train", "super_glue_boolq", "super_glue_cb", "super_glue_copa",
        "super_glue_multirc", "super_glue_record", "super_glue_rte", "super_glue_wic",
        "super_glue_wsc_simple_train"]
    assert mixtures.TRAIN_EXAMPLES["dpr_simple_train"] == 1_322
    assert len(data.task_registry("glue_super_glue_mtl")) == 17
