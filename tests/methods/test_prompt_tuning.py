"""Prompt Tuning: per-task prompts reach the encoder, start from the loaded checkpoint's
vocabulary, train with Lester et al.'s optimizer, and a frozen backbone gets no update."""

import functools

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperprompt import cli, partitioning
from hyperprompt.convert import sources
from hyperprompt.methods.prompt_tuning import VOCAB_POPULATION, PromptTuning
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import T5Config
from hyperprompt.models.t5 import Transformer
from hyperprompt.optim import make_optimizer
from hyperprompt.state import restore_trained
from hyperprompt.train import make_train_step, train

BATCH = {
    "encoder_input_tokens": jnp.array([[5, 6, 7, 1], [8, 9, 1, 0]], jnp.int32),
    "decoder_input_tokens": jnp.array([[0, 10, 11], [0, 12, 0]], jnp.int32),
    "decoder_target_tokens": jnp.array([[10, 11, 1], [12, 1, 0]], jnp.int32),
    "task_ids": jnp.array([2, 0], jnp.int32),
}


def build(config, **kwargs):
    model = EncoderDecoderModel(Transformer(config, PromptTuning(3, 4, **kwargs)))
    params = nn.unbox(model.init(jax.random.PRNGKey(0), 4, 3)["params"])
    return model, params


def test_prompts_are_gathered_per_task(tiny_config):
    model, params = build(tiny_config)
    prompts = np.asarray(params["conditioner"]["prompts"])
    assert prompts.shape == (3, 4, tiny_config.emb_dim)
    cond = model.module.apply({"params": params}, BATCH["task_ids"],
                              BATCH["encoder_input_tokens"], False,
                              method=model.module.condition)
    np.testing.assert_array_equal(cond.input_prompt, prompts[[2, 0]])


def test_uniform_init_range(tiny_config):
    _, params = build(tiny_config, prompt_init="uniform")
    prompts = np.asarray(params["conditioner"]["prompts"])
    assert prompts.min() >= -0.5 and prompts.max() <= 0.5 and prompts.std() > 0.1


def test_the_method_is_a_flax_module_with_init(tiny_config):
    """`prompt_init` (not `init`) names the initialisation: Module.init stays callable."""
    method = PromptTuning(2, 3)
    variables = method.init(jax.random.PRNGKey(0), jnp.zeros((1,), jnp.int32),
                            jnp.ones((1, 4), jnp.int32),
                            Transformer(tiny_config).bind({"params": build(tiny_config)[1]})
                            .token_embedder)
    assert nn.unbox(variables["params"])["prompts"].shape == (2, 3, tiny_config.emb_dim)


@pytest.mark.parametrize("freeze", [True, False])
def test_only_the_prompt_trains_when_the_backbone_is_frozen(tiny_config, freeze):
    model, params = build(tiny_config, freeze_backbone=freeze)
    tx = make_optimizer("adamw", 1e-2, groups=model.module.conditioner.param_groups())
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
    new, _ = make_train_step(model, tx, 0, use_dropout=False)(state, BATCH)
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                           new["params"], params)
    assert changed["conditioner"]["prompts"]
    backbone = [v for k, v in changed.items() if k != "conditioner"]
    assert not any(jax.tree.leaves(backbone)) if freeze else all(jax.tree.leaves(backbone))
    # the prompt rows of task 1 (absent from the batch) get no gradient: weight decay only
    np.testing.assert_allclose(new["params"]["conditioner"]["prompts"][1],
                               (1 - 1e-5) * params["conditioner"]["prompts"][1], rtol=1e-6)


def test_prompts_train_with_lester_et_al_adafactor(tiny_config, t5_adafactor):
    """lr 0.3, decay 0.8, updates clipped at RMS 1, no parameter scaling, weight decay 1e-5,
    whatever the run's optimizer: three train steps move the prompts as T5's Adafactor so
    set (conftest's numpy implementation), each gradient taken at the reference's prompts.
    The first step alone is -0.3 sign(g) - 1e-5 p, blind to decay and clipping; the second
    batch, BATCH four times under a summed loss, quadruples the gradient, so its update's
    RMS (~1.3) is clipped."""
    model = EncoderDecoderModel(Transformer(tiny_config, PromptTuning(3, 4)),
                                loss_normalizing_factor=None)
    params = nn.unbox(model.init(jax.random.PRNGKey(0), 4, 3)["params"])
    tx = make_optimizer("adamw", 1e-4, groups=model.module.conditioner.param_groups())
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
    train_step = jax.jit(make_train_step(model, tx, 0, use_dropout=False))
    prompt_grad = jax.jit(lambda p, batch: jax.grad(
        lambda p: model.loss_fn(p, batch)[0])(p)["conditioner"]["prompts"])
    reference = t5_adafactor(0.3, decay=0.8, param_scale=False, clip=1.0, weight_decay=1e-5)
    want = np.asarray(params["conditioner"]["prompts"], np.float64)
    quadrupled = {k: jnp.concatenate([v] * 4) for k, v in BATCH.items()}
    for batch in (BATCH, quadrupled, BATCH):
        at = {**params, "conditioner": {"prompts": jnp.asarray(want, jnp.float32)}}
        want = reference.step({"p": want}, {"p": prompt_grad(at, batch)})["p"]
        state, _ = train_step(state, batch)
    # float32 against float64 over three steps at lr 0.3: up to ~2e-6 apart (seen); the
    # weight decay alone (1e-5 x 0.3 a step) moves a prompt by ~9e-6.
    np.testing.assert_allclose(state["params"]["conditioner"]["prompts"], want, rtol=1e-6,
                               atol=4e-6)


# The t5x fixture's dims (../shared/fixtures/README.md).
FIXTURE_CONFIG = T5Config(vocab_size=32128, emb_dim=4, num_heads=2, head_dim=2, mlp_dim=8,
                          num_encoder_layers=2, num_decoder_layers=2, relpos_num_buckets=4,
                          relpos_max_distance=8)


def test_vocab_init_draws_distinct_rows_of_the_loaded_checkpoint(tmp_path, t5x_checkpoint):
    """Through `train` from INITIAL_CHECKPOINT_PATH (the prompts' learning rate 0, so the
    saved prompts are the initial ones): every row is one of the first 5,000 rows of the
    *loaded* embedding, none twice in a prompt, none from the random initial table."""
    model = EncoderDecoderModel(Transformer(FIXTURE_CONFIG, PromptTuning(
        4, 150, learning_rate=None)))  # 150 of 5,000 rows: repeats if drawn with replacement
    lengths = {"inputs": 24, "targets": 12}
    train(model=model, model_dir=str(tmp_path), train_steps=1, batch_size=8,
          mixture_or_task_name="synthetic_mtl", task_feature_lengths=lengths,
          optimizer=functools.partial(make_optimizer, learning_rate=0.0), eval_examples=0,
          initial_checkpoint_path=t5x_checkpoint, async_checkpointing=False)
    mesh = partitioning.make_mesh(1)
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        _, params = restore_trained(model, str(tmp_path), lengths, mesh)
    table = sources.read(t5x_checkpoint, "t5x", FIXTURE_CONFIG)["token_embedder/embedding"].load()
    prompts = np.asarray(params["conditioner"]["prompts"])
    random_table = np.asarray(jax.jit(lambda: nn.unbox(model.init(  # jit: only the table
        jax.random.PRNGKey(0), 4, 4)["params"])["token_embedder"]["embedding"])())
    for task_prompt in prompts:
        rows = [np.flatnonzero(np.all(table == row, axis=1)) for row in task_prompt]
        assert all(len(r) == 1 for r in rows), "every prompt row is one loaded table row"
        ids = [int(r[0]) for r in rows]
        assert max(ids) < VOCAB_POPULATION and len(set(ids)) == len(ids)
        assert not any(np.all(random_table == row, axis=1).any() for row in task_prompt)
    assert not np.array_equal(prompts[0], prompts[1])  # each task draws its own


def test_quickstart_runs_with_the_method_swapped_by_one_gin_file(tmp_path):
    model_dir = tmp_path / "run"
    assert cli.main(["train", "--gin_file=experiments/quickstart.gin",
                     "--gin_file=methods/prompt_tuning.gin", f"--gin.MODEL_DIR='{model_dir}'",
                     "--gin.TRAIN_STEPS=2", "--gin.BATCH_SIZE=8", "--gin.PROMPT_LENGTH=5",
                     "--gin.train_lib.train.eval_examples=8"]) == 0
    config = gin.get_configurable("hyperprompt.models.configs.T5Config")()
    saved = sources.read(str(model_dir), "hyperprompt", config)
    assert saved["conditioner/prompts"].shape == (4, 5, 128)
