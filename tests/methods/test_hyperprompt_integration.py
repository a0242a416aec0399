"""HyperPrompt-Global and vanilla through the real trainer on the synthetic mixture.

Both methods run `hyperprompt train` (in process) on the same seed, data order and step
count; only the methods/ include differs.
"""

import json

import pytest

from hyperprompt import cli
from tests.conftest import INTEGRATION_SETTINGS, one_device_runs

pytestmark = pytest.mark.slow  # conftest: handed out first

# The shared integration model and optimizer (tests/conftest.py) for 700 steps: AdamW with
# a 50-step warm-up and cosine decay reaches in 700 steps what constant rates need 2000+
# for; inputs of 20 fit the longest example ("reverse: " + 10 letters + EOS).
# HyperPrompt at l=4 (b=16, t'=32, t=28 as shipped): l=16 doubles the attention length.
SETTINGS = INTEGRATION_SETTINGS + """
TRAIN_STEPS = 700
EVAL_PERIOD = 700
HYPERPROMPT_LENGTH = 4
train_lib.train.eval_examples = 256
"""

# Measured with these settings on a 2-core x86 CPU (exact match in %, 256 validation
# examples per task; SETTINGS with SEED = 0..5, at the commit that added this table):
#
#   seed  vanilla copy/count/reverse/sort   HyperPrompt-Global copy/count/reverse/sort
#   0     91.0 /  99.6 /  91.0 /  99.2       98.0 / 100.0 /  98.4 / 100.0
#   1     88.7 / 100.0 /  88.7 /  99.2       99.2 / 100.0 /  99.6 / 100.0
#   2     94.9 / 100.0 /  91.8 /  96.1       93.0 / 100.0 /  98.4 /  99.6
#   3     66.8 / 100.0 /  51.2 /  98.8       86.7 / 100.0 /  90.2 /  99.2
#   4     99.2 / 100.0 / 100.0 /  99.2       77.3 / 100.0 /  66.4 /  96.9
#   5     52.7 /  99.6 /  50.0 /  98.4       67.6 / 100.0 /  73.4 /  99.6
#
# HyperPrompt-Global is ahead on average (copy 87.0 vs 82.2, reverse 87.8 vs 78.8) and in 5
# of 6 seeds, but a single run decides little here: vanilla's copy spans 52.7-99.2 over
# seeds, seed 4 puts HyperPrompt 34 points behind, and another machine's float rounding
# reshuffles the dynamics like a new seed (CI's vanilla at seed 0 gave 84.0 / 77.7 on copy
# / reverse). A per-seed "at least vanilla" would need a tolerance that accepts anything,
# so the comparison across seeds belongs to a multi-seed study; this test asserts what one
# run shows on any machine: both learn every task, and HyperPrompt trains a different model
# (a HyperPrompt whose conditioning is ignored trains bit-identically to vanilla).
METHODS = ("vanilla", "hyperprompt_global")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{method: its MODEL_DIR} after training each method with SETTINGS."""
    root = tmp_path_factory.mktemp("integration")
    settings = root / "settings.gin"
    settings.write_text(SETTINGS)
    results = {}
    with one_device_runs():
        for method in METHODS:
            model_dir = root / method
            assert cli.main(["train", "--gin_file=experiments/quickstart.gin",
                             f"--gin_file=methods/{method}.gin", f"--gin_file={settings}",
                             f"--gin.MODEL_DIR='{model_dir}'"]) == 0
            results[method] = model_dir
    return results


@pytest.fixture(scope="module")
def exact_match(runs) -> dict[str, dict[str, float]]:
    """{method: {task: exact match}} of the final validation."""
    return {method: {task: m["exact_match"] for task, m in
                     json.loads((model_dir / "results.json").read_text()).items()}
            for method, model_dir in runs.items()}


@pytest.fixture(scope="module")
def losses(runs) -> dict[str, dict[int, float]]:
    """{method: {step: logged training loss}}."""
    out = {}
    for method, model_dir in runs.items():
        lines = (json.loads(line) for line in (model_dir / "train_log.jsonl").open())
        out[method] = {line["step"]: line["loss"] for line in lines if "loss" in line}
    return out


def test_both_runs_learn_every_task(exact_match):
    """Every task well above chance (count: 1 in 8 lengths; the string tasks ~0; the lowest
    of the 12 runs above: 50.0)."""
    for method, tasks in exact_match.items():
        assert set(tasks) == {"synthetic_copy", "synthetic_count", "synthetic_reverse",
                              "synthetic_sort"}
        assert min(tasks.values()) >= 40.0, (method, tasks)


def test_hyperprompt_changes_the_training_run(losses):
    """Same seed, data and backbone initialisation: the logged training losses differ from
    the first logged step on only if the hyper-prompts reach the attention."""
    vanilla, hyperprompt = losses["vanilla"], losses["hyperprompt_global"]
    assert vanilla.keys() == hyperprompt.keys() and len(vanilla) >= 10
    first = min(vanilla)
    assert abs(vanilla[first] - hyperprompt[first]) > 1e-4, (vanilla, hyperprompt)
