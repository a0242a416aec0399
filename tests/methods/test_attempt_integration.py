"""ATTEMPT's two stages through the real CLI on the synthetic tasks: source prompts trained
on copy and count, exported into a prompt bank; an ATTEMPT target on echo (copy under an
unseen prefix) trains, and its attention concentrates on the copy prompt."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import seqio

import hyperprompt.tasks  # noqa: F401  (registers the synthetic tasks)
from hyperprompt import cli, prompt_bank
from hyperprompt.bank_export import conditioner_at
from hyperprompt.methods.attempt import G_PARAMS, Attempt
from hyperprompt.models.configs import T5Config
from hyperprompt.models.t5 import Transformer
from tests.conftest import INTEGRATION_SETTINGS

pytestmark = pytest.mark.slow  # conftest: handed out first

SOURCES = ("synthetic_copy", "synthetic_count")
STEPS = {"sources": 150, "target": 100}
BASE = INTEGRATION_SETTINGS + """
PROMPT_LENGTH = 8
train_lib.train.eval_examples = 32
"""
# Stage 1: one Prompt Tuning run over both sources, backbone trained with them (a random
# backbone is all this test has), so the two prompts share one backbone.
SOURCE_SETTINGS = BASE + f"""
TRAIN_STEPS = {STEPS['sources']}
EVAL_PERIOD = {STEPS['sources']}
FREEZE_BACKBONE = False
NUM_TASKS = 2
MIXTURE_OR_TASK_NAME = 'synthetic_copy_count'
"""


def target_settings(root) -> str:
    return BASE + f"""
TRAIN_STEPS = {STEPS['target']}
EVAL_PERIOD = {STEPS['target']}
NUM_TASKS = 1
MIXTURE_OR_TASK_NAME = 'synthetic_echo'
ATTEMPT_BANK = '{root / "bank"}'
ATTEMPT_SOURCES = {SOURCES!r}
ATTEMPT_TARGET_INIT = 'vocab'
INITIAL_CHECKPOINT_PATH = '{root / "backbone"}'
train_lib.train.log_period = 1
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(source run, bank, target run) after both stages, the target's report written."""
    if "synthetic_copy_count" not in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.add("synthetic_copy_count", list(SOURCES), default_rate=1.0)
    root = tmp_path_factory.mktemp("attempt")
    (root / "sources.gin").write_text(SOURCE_SETTINGS)
    (root / "target.gin").write_text(target_settings(root))
    source = ["--gin_file=experiments/quickstart.gin", "--gin_file=methods/prompt_tuning.gin",
              f"--gin_file={root / 'sources.gin'}", f"--gin.MODEL_DIR='{root / 'sources'}'"]
    target = ["--gin_file=experiments/quickstart.gin", "--gin_file=methods/attempt.gin",
              f"--gin_file={root / 'target.gin'}", f"--gin.MODEL_DIR='{root / 'target'}'"]
    assert cli.main(["train", *source]) == 0
    assert cli.main(["bank", *source, f"--bank_dir={root / 'bank'}"]) == 0
    # the trained backbone, without the source run's prompts, as the target's initial one
    assert cli.main(["convert", "--from", "hyperprompt", "--to", "hf", "--src",
                     str(root / "sources"), "--dst", str(root / "backbone"), *source[:3]]) == 0
    assert cli.main(["train", *target]) == 0
    assert cli.main(["report", *target, "--num_examples=32"]) == 0
    assert cli.main(["bank", *target, f"--bank_dir={root / 'bank'}",
                     "--bank_name=echo_attention"]) == 0
    return root / "sources", root / "bank", root / "target"


def test_sources_are_banked_at_their_run_step(runs):
    _, bank, _ = runs
    assert prompt_bank.names(str(bank)) == sorted([*SOURCES, "echo_attention"])
    for name in SOURCES:
        arrays, meta = prompt_bank.load(str(bank), name, "prompt")
        assert arrays["prompt"].shape == (8, 32)
        assert (meta["task"], meta["prompt_length"], meta["d_model"], meta["step"]) == (
            name, 8, 32, STEPS["sources"])


def test_g_is_banked_and_loads_into_a_new_target(runs):
    """G of the target run, exported, initialises another ATTEMPT's G (`attention_init`)."""
    _, bank, target = runs
    arrays, meta = prompt_bank.load(str(bank), "echo_attention", "attention")
    trained = conditioner_at(str(target), STEPS["target"])
    assert meta["step"] == STEPS["target"] and meta["d_model"] == 32
    method = Attempt(3, bank_dir=str(bank), sources=SOURCES, prompt_length=8,
                     attention_init="echo_attention", target_init="vocab")
    config = T5Config(vocab_size=384, emb_dim=32, mlp_dim=64, num_heads=4, head_dim=8)
    net = Transformer(config, method)
    tokens = jnp.ones((1, 4), jnp.int32)
    params = nn.unbox(net.init(jax.random.PRNGKey(0), tokens[:, 0], tokens, False,
                               method=net.condition)["params"])["conditioner"]
    for name in G_PARAMS:
        np.testing.assert_array_equal(arrays[name], trained[name][0])
        np.testing.assert_array_equal(params[name], np.stack([trained[name][0]] * 3))
    np.testing.assert_array_equal(params["source_prompts"], trained["source_prompts"])


def test_the_target_trains_and_attends_to_the_related_source(runs):
    _, _, target = runs
    lines = [json.loads(line) for line in (target / "train_log.jsonl").open()]
    results = json.loads((target / "results.json").read_text())
    report = json.loads((target / "report" / "report.json").read_text())
    # At this size and length exact match stays low (3 of 32 at seed 0): the loss shows the
    # training. Step 1's logged loss is the untrained target's. Measured on a 2-core AMD EPYC
    # at SEED 0 / 1 / 2 (target stage): mean of the last 10 losses / step 1's 0.60 / 0.56 /
    # 0.58; attention copy 0.55 / 0.76 / 0.82, count 0.05 / 0.02 / 0.05 (G starts near a
    # third each). A float rounding of another machine moves these like a new seed.
    assert "exact_match" in results["synthetic_echo"]
    losses = [line["loss"] for line in lines if "loss" in line]
    assert lines[0]["step"] == 1 and np.mean(losses[-10:]) < 0.75 * losses[0]
    copy, count, own = report["method"]["attention"]["synthetic_echo"]
    print(f"attention copy {copy:.3f} count {count:.3f} target {own:.3f}")
    assert copy > 0.4 and copy > 3 * count
    assert (target / "report" / "method_attention.png").exists()
    assert report["method_labels"]["attention"] == [*SOURCES, "target"]
