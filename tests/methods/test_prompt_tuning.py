"""Prompt Tuning: per-task prompts reach the encoder; a frozen backbone gets no update."""

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperprompt import cli
from hyperprompt.convert import sources
from hyperprompt.methods.prompt_tuning import PromptTuning
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.t5 import Transformer
from hyperprompt.optim import backbone_patterns, make_optimizer, param_labels
from hyperprompt.train import make_train_step

BATCH = {
    "encoder_input_tokens": jnp.array([[5, 6, 7, 1], [8, 9, 1, 0]], jnp.int32),
    "decoder_input_tokens": jnp.array([[0, 10, 11], [0, 12, 0]], jnp.int32),
    "decoder_target_tokens": jnp.array([[10, 11, 1], [12, 1, 0]], jnp.int32),
    "task_ids": jnp.array([2, 0], jnp.int32),
}


def build(tiny_config, init="vocab"):
    model = EncoderDecoderModel(Transformer(tiny_config, PromptTuning(3, 4, init)))
    params = nn.unbox(model.init(jax.random.PRNGKey(0), 4, 3)["params"])
    return model, params


def test_prompts_are_gathered_per_task_and_initialised_from_the_vocabulary(tiny_config):
    model, params = build(tiny_config)
    prompts = np.asarray(params["conditioner"]["prompts"])
    assert prompts.shape == (3, 4, tiny_config.emb_dim)
    table = np.asarray(params["token_embedder"]["embedding"])
    for row in prompts.reshape(-1, tiny_config.emb_dim):  # every row is a vocabulary row
        assert np.any(np.all(table == row, axis=1))
    cond = model.module.apply({"params": params}, BATCH["task_ids"],
                              BATCH["encoder_input_tokens"], False,
                              method=model.module.condition)
    np.testing.assert_array_equal(cond.input_prompt, prompts[[2, 0]])


def test_uniform_init_range(tiny_config):
    _, params = build(tiny_config, "uniform")
    prompts = np.asarray(params["conditioner"]["prompts"])
    assert prompts.min() >= -0.5 and prompts.max() <= 0.5 and prompts.std() > 0.1


@pytest.mark.parametrize("freeze", [True, False])
def test_only_the_prompt_trains_when_the_backbone_is_frozen(tiny_config, freeze):
    model, params = build(tiny_config)
    tx = make_optimizer("adamw", 1e-2, frozen=backbone_patterns(freeze))
    labels = param_labels(params, backbone_patterns(freeze))
    assert labels["conditioner"]["prompts"] == "default"
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
    new, _ = make_train_step(model, tx, 0, use_dropout=False)(state, BATCH)
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                           new["params"], params)
    assert changed["conditioner"]["prompts"]
    backbone = [v for k, v in changed.items() if k != "conditioner"]
    assert not any(jax.tree.leaves(backbone)) if freeze else all(jax.tree.leaves(backbone))
    # the prompt rows of task 1 (absent from the batch) get no gradient
    np.testing.assert_array_equal(new["params"]["conditioner"]["prompts"][1],
                                  params["conditioner"]["prompts"][1])


def test_quickstart_runs_with_the_method_swapped_by_one_gin_file(tmp_path):
    model_dir = tmp_path / "run"
    assert cli.main(["train", "--gin_file=experiments/quickstart.gin",
                     "--gin_file=methods/prompt_tuning.gin", f"--gin.MODEL_DIR='{model_dir}'",
                     "--gin.TRAIN_STEPS=2", "--gin.BATCH_SIZE=8", "--gin.PROMPT_LENGTH=5",
                     "--gin.train_lib.train.eval_examples=8"]) == 0
    config = gin.get_configurable("hyperprompt.models.configs.T5Config")()
    saved = sources.read(str(model_dir), "hyperprompt", config)
    assert saved["conditioner/prompts"].shape == (4, 5, 128)
