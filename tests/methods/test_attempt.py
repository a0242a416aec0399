"""ATTEMPT: G and the instance prompt against numpy, trainable counts, frozen sources, the
ablations, and G's own learning rate against optax's Adam."""

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hyperprompt import prompt_bank
from hyperprompt.analysis import params as params_lib
from hyperprompt.errors import UsageError
from hyperprompt.methods.attempt import Attempt
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import CONFIGS
from hyperprompt.models.t5 import Transformer
from hyperprompt.optim import make_optimizer
from hyperprompt.train import make_train_step

SOURCES = ("src_a", "src_b", "src_c")
LENGTH = 4
BATCH = {
    "encoder_input_tokens": jnp.array([[5, 6, 7, 1], [8, 9, 1, 0]], jnp.int32),
    "decoder_input_tokens": jnp.array([[0, 10, 11], [0, 12, 0]], jnp.int32),
    "decoder_target_tokens": jnp.array([[10, 11, 1], [12, 1, 0]], jnp.int32),
    "task_ids": jnp.array([1, 0], jnp.int32),
}


@pytest.fixture
def bank(tmp_path, tiny_config):
    """A bank of three random prompts of the tiny model's width."""
    rng = np.random.default_rng(0)
    for name in SOURCES:
        prompt_bank.save(str(tmp_path), name, {"prompt": rng.normal(
            size=(LENGTH, tiny_config.emb_dim)).astype(np.float32)},
            {"kind": "prompt", "task": name, "backbone": "tiny", "prompt_length": LENGTH,
             "d_model": tiny_config.emb_dim, "step": 1})
    return str(tmp_path)


def build(config, bank, **kwargs):
    method = Attempt(2, bank_dir=bank, sources=SOURCES, prompt_length=LENGTH, bottleneck=5,
                     target_init="src_b", **kwargs)
    model = EncoderDecoderModel(Transformer(config, method), loss_normalizing_factor=None)
    params = nn.unbox(model.init(jax.random.PRNGKey(0), 4, 3)["params"])
    return model, params


def condition(model, params, tokens=BATCH["encoder_input_tokens"]):
    """(instance prompts [B, m, d], sown attention [B, k])."""
    cond, state = model.module.apply({"params": params}, BATCH["task_ids"], tokens, False,
                                     method=model.module.condition, mutable=["intermediates"])
    return np.asarray(cond.input_prompt), np.asarray(
        state["intermediates"]["conditioner"]["attention"][0])


def numpy_attempt(p, table, tokens, task_ids, masked, temperature, shared=False):
    """Section 3.2 in numpy (float64): max-pool, W_down, SiLU, W_up, LayerNorm, softmax of
    P̂ · H / T over [sources; target], P = P_target + Σ a_j P_j."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    out, weights = [], []
    for row, task in zip(np.asarray(tokens), np.asarray(task_ids), strict=True):
        emb = np.asarray(table, np.float64)[row]
        x = emb[row != 0].max(axis=0) if masked else emb.max(axis=0)
        g = 0 if shared else task
        hidden = x @ p["attention_down"][g]
        hidden = hidden / (1 + np.exp(-hidden))
        h = hidden @ p["attention_up"][g]
        h = (h - h.mean()) / np.sqrt(h.var() + 1e-5) * p["attention_norm_scale"][g] \
            + p["attention_norm_bias"][g]
        prompts = np.concatenate([p["source_prompts"], p["target_prompts"][task][None]])
        logits = prompts.max(axis=1) @ h / temperature
        a = np.exp(logits - logits.max())
        a /= a.sum()
        weights.append(a)
        out.append(p["target_prompts"][task] + np.einsum("k,kmd->md", a, prompts))
    return np.array(out), np.array(weights)


@pytest.mark.parametrize("pooling", ["masked", "unmasked"])
@pytest.mark.parametrize("shared", [False, True])
def test_g_and_the_instance_prompt_equal_numpy(tiny_config, bank, pooling, shared):
    model, params = build(tiny_config, bank, pooling=pooling, shared_attention=shared)
    # G's LayerNorm away from its init, so scale and bias count
    rng = np.random.default_rng(1)
    conditioner = {k: (v + rng.normal(size=v.shape).astype(np.float32)
                       if k.startswith("attention_norm") else v)
                   for k, v in params["conditioner"].items()}
    # padding's embedding (id 0) above every real token's: unmasked pooling would take it
    table = params["token_embedder"]["embedding"].at[0].set(3.0)
    params = {**params, "conditioner": conditioner, "token_embedder": {"embedding": table}}
    prompts, weights = condition(model, params)
    d = tiny_config.emb_dim
    want_prompts, want_weights = numpy_attempt(
        conditioner, params["token_embedder"]["embedding"], BATCH["encoder_input_tokens"],
        BATCH["task_ids"], pooling == "masked", d * math.e, shared)
    np.testing.assert_allclose(weights, want_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prompts, want_prompts, rtol=1e-5, atol=1e-5)
    # the second example has padding, whose embedding changes the unmasked pooling
    assert conditioner["attention_down"].shape[0] == (1 if shared else 2)


def test_prompts_come_from_the_bank_and_the_target_from_its_source(tiny_config, bank):
    _, params = build(tiny_config, bank)
    stored = [prompt_bank.load_prompt(bank, s, LENGTH, tiny_config.emb_dim) for s in SOURCES]
    np.testing.assert_array_equal(params["conditioner"]["source_prompts"], np.stack(stored))
    for task_prompt in params["conditioner"]["target_prompts"]:
        np.testing.assert_array_equal(task_prompt, stored[1])


def test_temperature_is_d_times_e(tiny_config, bank):
    """A temperature of d·e differs from any other: the default's weights move when it does;
    one that is not > 0 is refused."""
    model, params = build(tiny_config, bank)
    _, default = condition(model, params)
    explicit, _ = build(tiny_config, bank, temperature=tiny_config.emb_dim * math.e)
    other, _ = build(tiny_config, bank, temperature=1.0)
    np.testing.assert_array_equal(condition(explicit, params)[1], default)
    assert not np.allclose(condition(other, params)[1], default)
    for bad in (0.0, -1.0):  # 0 fell back to d·e (an `or`), a negative one inverted it
        with pytest.raises(UsageError, match=f"temperature={bad} must be > 0"):
            build(tiny_config, bank, temperature=bad)


@pytest.mark.parametrize("train_layer_norm,want", [(True, 231_936), (False, 230_400)])
def test_trainable_counts_at_t5_base(train_layer_norm, want):
    """One target task at T5 base (d 768): 76,800 (P_target) + 76,800 (W_down) + 76,800
    (W_up) + 1,536 (LayerNorm); the six frozen source prompts are not trained."""
    config = CONFIGS["t5_base"]
    for shared in (False, True):
        method = Attempt(1, shared_attention=shared, train_layer_norm=train_layer_norm)
        trained = params_lib.trainable_count(config, method)
        assert trained == want
        # the method's parameters: the trained ones, G's LayerNorm, and the 6 x 76,800 sources
        assert params_lib.conditioner_count(config, method) == method.parameter_count(
            config) == 231_936 + 6 * 76_800


def test_attempt_m_for_eight_tasks_shares_g():
    """8 GLUE tasks: 8 target prompts + one G (ATTEMPT-m) = 769,536; ATTEMPT trains a G per
    task: 8 x 231,936."""
    config = CONFIGS["t5_base"]
    assert params_lib.trainable_count(config, Attempt(8, shared_attention=True)) == \
        8 * 76_800 + 2 * 76_800 + 1_536 == 769_536
    assert params_lib.trainable_count(config, Attempt(8)) == 8 * 231_936


def test_sources_get_no_gradient_and_no_update(tiny_config, bank):
    model, params = build(tiny_config, bank)
    grads = jax.grad(lambda p: model.loss_fn(p, BATCH)[0])(params)["conditioner"]
    assert not np.any(np.asarray(grads["source_prompts"]))
    assert all(np.any(np.asarray(grads[k])) for k in grads if k != "source_prompts")
    tx = make_optimizer("adamw", 1e-2, groups=model.module.conditioner.param_groups())
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
    new, _ = make_train_step(model, tx, 0, use_dropout=False)(state, BATCH)
    np.testing.assert_array_equal(new["params"]["conditioner"]["source_prompts"],
                                  params["conditioner"]["source_prompts"])
    np.testing.assert_array_equal(new["params"]["encoder"]["relpos_bias"]["rel_embedding"],
                                  params["encoder"]["relpos_bias"]["rel_embedding"])
    assert not np.array_equal(new["params"]["conditioner"]["target_prompts"],
                              params["conditioner"]["target_prompts"])


def test_no_attention_is_the_uniform_average_of_the_sources(tiny_config, bank):
    model, params = build(tiny_config, bank, attention="uniform")
    prompts, weights = condition(model, params)
    np.testing.assert_array_equal(weights, np.full((2, 3), 1 / 3, np.float32))
    p = params["conditioner"]
    want = np.asarray(p["target_prompts"])[[1, 0]] + np.mean(p["source_prompts"], axis=0)
    np.testing.assert_allclose(prompts, want, rtol=1e-6, atol=1e-6)
    assert not any(k.startswith("attention_") for k in p)


def test_no_target_prompt_mixes_the_sources_only(tiny_config, bank):
    model, params = build(tiny_config, bank, target_prompt=False)
    prompts, weights = condition(model, params)
    assert weights.shape == (2, 3) and "target_prompts" not in params["conditioner"]
    want = np.einsum("bk,kmd->bmd", weights, params["conditioner"]["source_prompts"])
    np.testing.assert_allclose(prompts, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("train_layer_norm", [True, False])
def test_g_has_its_own_learning_rate(tiny_config, bank, train_layer_norm):
    """Prompts at lr 0, G at 0.05: one step moves only G, by optax's Adam (weight decay
    1e-5, multiplied by the lr as optax's adamw) on G's gradients; LayerNorm too unless
    frozen."""
    model, params = build(tiny_config, bank, prompt_learning_rate=0.0,
                          attention_learning_rate=0.05, train_layer_norm=train_layer_norm)
    tx = make_optimizer("adafactor", 1e-3, groups=model.module.conditioner.param_groups())
    state = {"step": jnp.zeros((), jnp.int32), "params": params,
             "opt_state": tx.init(params)}
    new, _ = make_train_step(model, tx, 0, use_dropout=False)(state, BATCH)
    old, moved = params["conditioner"], new["params"]["conditioner"]
    np.testing.assert_array_equal(moved["target_prompts"], old["target_prompts"])
    g_names = [k for k in old if k.startswith("attention_")
               and (train_layer_norm or not k.startswith("attention_norm"))]
    g_old = {k: old[k] for k in g_names}
    grads = jax.grad(lambda p: model.loss_fn(p, BATCH)[0])(params)["conditioner"]
    adam = optax.adamw(0.05, weight_decay=1e-5)
    updates, _ = adam.update({k: grads[k] for k in g_names}, adam.init(g_old), g_old)
    for k in g_names:
        np.testing.assert_allclose(moved[k], g_old[k] + updates[k], rtol=1e-6, atol=1e-7)
        assert np.abs(np.asarray(moved[k]) - np.asarray(old[k])).max() > 1e-3
    if not train_layer_norm:
        for k in ("attention_norm_scale", "attention_norm_bias"):
            np.testing.assert_array_equal(moved[k], old[k])


def test_bank_round_trip_and_one_line_errors(tmp_path):
    prompt = np.arange(12, dtype=np.float32).reshape(3, 4)
    meta = {"kind": "prompt", "task": "glue_mnli", "backbone": "t5_base", "prompt_length": 3,
            "d_model": 4, "step": 7}
    prompt_bank.save(str(tmp_path), "mnli", {"prompt": prompt}, meta)
    arrays, got = prompt_bank.load(str(tmp_path), "mnli", "prompt")
    np.testing.assert_array_equal(arrays["prompt"], prompt)
    assert got == meta and prompt_bank.names(str(tmp_path)) == ["mnli"]
    np.testing.assert_array_equal(prompt_bank.load_prompt(str(tmp_path), "mnli", 3, 4), prompt)
    for length, d_model, says in ((3, 8, "d_model 4"), (5, 4, "3 tokens long"),
                                  (3, 4, "no entry 'qqp'")):
        name = "qqp" if "qqp" in says else "mnli"
        with pytest.raises(UsageError, match=says) as error:
            prompt_bank.load_prompt(str(tmp_path), name, length, d_model)
        assert "\n" not in str(error.value)
    with pytest.raises(UsageError, match="not a 'attention'"):
        prompt_bank.load(str(tmp_path), "mnli", "attention")


def test_a_bank_of_another_width_fails_before_training(tiny_config, bank):
    wide = dataclasses.replace(tiny_config, emb_dim=32, head_dim=16)
    with pytest.raises(UsageError, match="d_model 16"):
        build(wide, bank)
