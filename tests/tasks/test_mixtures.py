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


def test_benchmark_mixtures_hold_t5s_training_tasks():
    assert len(mixtures.MIXTURES["glue_mtl"]) == 8 and "glue_wnli" not in data.task_registry(
        "glue_mtl")
    assert "super_glue_wsc_simple_train" in data.task_registry("super_glue_mtl")
    assert len(data.task_registry("glue_super_glue_mtl")) == 16
