"""The study's aggregation against numbers worked out by hand."""

import pytest

from hyperprompt.study import aggregate, table

# Two methods, seeds 0 and 1, tasks a and b; averages are the mean of a and b.
SCORES = {
    "vanilla": {0: {"a": 50.0, "b": 70.0, "average": 60.0},
                1: {"a": 54.0, "b": 66.0, "average": 60.0}},
    "hp": {0: {"a": 60.0, "b": 70.0, "average": 65.0},
           1: {"a": 56.0, "b": 72.0, "average": 64.0}},
}
SINGLE = {"a": {0: 80.0, 1: 84.0}}
SECONDS = {"vanilla": {0: 0.10, 1: 0.20}, "hp": {0: 0.11, 1: 0.30}}


@pytest.fixture
def summary():
    return aggregate.summarise(SCORES, SINGLE, "vanilla", SECONDS, {"vanilla": 1000, "hp": 40},
                               {"hp": "HyperPrompt"})


def test_means_and_sample_stds(summary):
    hp = summary["methods"]["hp"]
    assert hp["tasks"]["a"]["mean"] == pytest.approx(58.0)
    assert hp["tasks"]["a"]["std"] == pytest.approx(2.8284271247)  # |60 - 56| / sqrt(2)
    assert hp["tasks"]["b"]["values"] == [70.0, 72.0]
    assert hp["tasks"]["b"]["std"] == pytest.approx(1.4142135624)
    assert hp["tasks"]["average"]["mean"] == pytest.approx(64.5)
    assert summary["single_task"]["a"]["mean"] == pytest.approx(82.0)
    assert summary["tasks"] == ["a", "b", "average"]


def test_gains_are_paired_by_seed(summary):
    gain = summary["methods"]["hp"]["gain"]
    assert gain["a"]["values"] == [10.0, 2.0]  # 60 - 50, 56 - 54
    assert gain["a"]["mean"] == pytest.approx(6.0)
    assert gain["a"]["std"] == pytest.approx(5.6568542495)  # |10 - 2| / sqrt(2)
    assert gain["average"]["values"] == [5.0, 4.0]
    assert summary["methods"]["vanilla"]["gain"]["a"] == {"mean": 0.0, "std": 0.0,
                                                           "values": [0.0, 0.0]}


def test_recovered_share_of_the_single_task_lead(summary):
    # single-task a: 82; vanilla a: 52; hp gains 6 of that lead of 30.
    assert summary["recovered"]["hp"] == pytest.approx({"a": 0.2})
    assert summary["recovered"]["vanilla"] == pytest.approx({"a": 0.0})


def test_step_time_ratio_per_seed_and_parameters(summary):
    ratio = summary["methods"]["hp"]["step_time_ratio"]
    assert ratio["values"] == pytest.approx([1.1, 1.5])
    assert ratio["mean"] == pytest.approx(1.3)
    assert summary["methods"]["hp"]["trainable"] == 40
    assert summary["methods"]["hp"]["label"] == "HyperPrompt"


def test_one_seed_has_zero_spread():
    one = aggregate.summarise({"v": {3: {"a": 10.0, "average": 10.0}}}, {}, "v")
    assert one["methods"]["v"]["tasks"]["a"] == {"mean": 10.0, "std": 0.0, "values": [10.0]}


def test_task_scores_average_each_tasks_metrics():
    scores = aggregate.task_scores({"mrpc": {"accuracy": 80.0, "f1": 90.0},
                                    "cola": {"mcc": 40.0}})
    assert scores == {"mrpc": 85.0, "cola": 40.0, "average": 62.5}


def test_markdown_table(summary):
    text = table.markdown(summary)
    lines = text.splitlines()
    assert lines[0] == "| method | a | b | average | gain vs vanilla | trainable | step time |"
    assert lines[3] == ("| HyperPrompt | 58.0 ± 2.8 | 71.0 ± 1.4 | 64.5 ± 0.7 | +4.5 ± 0.7 | "
                        "40 | 1.30x |")
    assert "| single-task models | 82.0 ± 2.8 | – | – |" in text
    assert "| HyperPrompt | 20% |" in text
