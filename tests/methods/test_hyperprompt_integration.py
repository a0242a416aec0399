"""HyperPrompt-Global trains to at least vanilla's per-task exact match on the synthetic mixture.

Both methods run through the real trainer (`hyperprompt train`, in process) on the same
seed, data order and step count; only the methods/ include differs.
"""

import json

import pytest

from hyperprompt import cli

# A 2+2-layer T5 1.1 at d=32 (4 heads of 8) trained from scratch for 700 steps of 64 examples.
# AdamW with a 50-step warm-up and cosine decay reaches in 700 steps what constant rates need
# 2000+ for; inputs of 20 fit the longest example ("reverse: " + 10 letters + EOS).
# HyperPrompt at l=4 (b=16, t'=32, t=28 as shipped): l=16 doubles the attention length.
SETTINGS = """
from __gin__ import dynamic_registration
import optax
from hyperprompt import optim
from hyperprompt import train as train_lib
from hyperprompt.models import configs

configs.T5Config:
  emb_dim = 32
  mlp_dim = 64
  num_heads = 4
  head_dim = 8
TASK_FEATURE_LENGTHS = {'inputs': 20, 'targets': 12}
TRAIN_STEPS = 700
BATCH_SIZE = 64
EVAL_PERIOD = 700
SEED = 0
HYPERPROMPT_LENGTH = 4
train_lib.train.eval_examples = 256
optim.make_optimizer.name = 'adamw'
LEARNING_RATE = @optax.warmup_cosine_decay_schedule()
optax.warmup_cosine_decay_schedule:
  init_value = 0.0
  peak_value = 2e-2
  warmup_steps = 50
  decay_steps = %TRAIN_STEPS
"""

# Measured with these settings (exact match in %, 256 validation examples per task):
#
#   seed  vanilla copy/count/reverse/sort   HyperPrompt-Global copy/count/reverse/sort
#   0     87.9 / 100.0 / 80.1 /  98.0       97.7 / 100.0 /  99.2 / 100.0
#   1     95.3 / 100.0 / 94.5 /  99.6       99.6 / 100.0 / 100.0 / 100.0
#   2     90.2 / 100.0 / 90.2 /  98.4       96.1 / 100.0 /  96.1 /  99.2
#   3     60.5 / 100.0 / 49.2 /  96.5       94.5 / 100.0 /  95.3 /  98.0
#   4     96.5 / 100.0 / 94.1 /  99.2       94.1 / 100.0 /  87.9 /  98.4
#   5     44.5 /  99.6 / 48.4 / 100.0       68.0 / 100.0 /  66.4 /  99.6
#
# HyperPrompt-Global is ahead on average (copy 91.7 vs 79.2, reverse 90.8 vs 76.1), but
# vanilla's own run-to-run spread is large (copy 44.5-96.5 over seeds, std 20 points), and in
# 2 of 6 seeds HyperPrompt fell below vanilla on some task, by at most 6.2 points (seed 4,
# reverse). The test runs seed 0 (HyperPrompt ahead or equal everywhere); the tolerance
# covers the largest deficit seen, so another machine's float rounding, which reshuffles
# these dynamics like a new seed, does not flake the test.
TOLERANCE = 7.0
METHODS = ("vanilla", "hyperprompt_global")


@pytest.fixture(scope="module")
def exact_match(tmp_path_factory) -> dict[str, dict[str, float]]:
    """{method: {task: exact match}} after training each method with SETTINGS."""
    root = tmp_path_factory.mktemp("integration")
    settings = root / "settings.gin"
    settings.write_text(SETTINGS)
    results = {}
    for method in METHODS:
        model_dir = root / method
        assert cli.main(["train", "--gin_file=experiments/quickstart.gin",
                         f"--gin_file=methods/{method}.gin", f"--gin_file={settings}",
                         f"--gin.MODEL_DIR='{model_dir}'"]) == 0
        metrics = json.loads((model_dir / "results.json").read_text())
        results[method] = {task: m["exact_match"] for task, m in metrics.items()}
    return results


def test_both_runs_learn_but_vanilla_is_not_saturated(exact_match):
    """The comparison means something: every task well above chance (count: 1 in 8 lengths;
    the string tasks ~0; the lowest of the 12 runs above: 44.5), and vanilla is not
    saturated (its weakest task below 98 in every seed above)."""
    for method, tasks in exact_match.items():
        assert set(tasks) == {"synthetic_copy", "synthetic_count", "synthetic_reverse",
                              "synthetic_sort"}
        assert min(tasks.values()) >= 40.0, (method, tasks)
    assert min(exact_match["vanilla"].values()) < 98.0, exact_match["vanilla"]


def test_hyperprompt_global_at_least_vanilla_per_task(exact_match):
    vanilla, hyperprompt = exact_match["vanilla"], exact_match["hyperprompt_global"]
    for task, baseline in vanilla.items():
        assert hyperprompt[task] >= baseline - TOLERANCE, (task, hyperprompt, vanilla)
