"""HyperPrompt: hyper-prompts vs a naive per-example computation, parameter counts from
the closed form, Sep's task isolation, and prompt length 0 == vanilla."""

import dataclasses

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperprompt import cli
from hyperprompt.convert import sources
from hyperprompt.errors import UsageError
from hyperprompt.methods.hyperprompt import HyperPrompt, parameter_count
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import CONFIGS
from hyperprompt.models.t5 import Transformer

TASKS, LENGTH, BOTTLENECK, T_IN, T = 3, 4, 5, 6, 7
BATCH = {
    "encoder_input_tokens": jnp.array([[5, 6, 7, 1], [8, 9, 1, 0], [3, 1, 0, 0]], jnp.int32),
    "decoder_input_tokens": jnp.array([[0, 10, 11], [0, 12, 0], [0, 13, 14]], jnp.int32),
    "decoder_target_tokens": jnp.array([[10, 11, 1], [12, 1, 0], [13, 14, 1]], jnp.int32),
    "task_ids": jnp.array([2, 0, 2], jnp.int32),
}


def method(cfg, variant, placement="both", prompt_length=LENGTH):
    return HyperPrompt(cfg, TASKS, variant, placement, prompt_length, BOTTLENECK, T_IN, T)


def build(cfg, **kwargs):
    model = EncoderDecoderModel(Transformer(cfg, method(cfg, **kwargs)))
    return model, nn.unbox(model.init(jax.random.PRNGKey(0), 4, 3)["params"])


def naive_prefixes(p, variant, stack, depth, task_ids, heads, head_dim):
    """Loops over examples and layers: U ReLU(D P_m), D/U as each variant defines them."""
    relu = lambda x: np.maximum(x, 0)
    prompts = np.asarray(p["prompts"], np.float64)
    out = np.zeros((2, depth, len(task_ids), LENGTH, heads, head_dim))
    for kv in range(2):
        for j in range(depth):
            for i, m in enumerate(task_ids):
                if variant == "share":
                    down, up = p[f"{stack}_down"][kv, j], p[f"{stack}_up"][kv, j]
                elif variant == "sep":
                    down, up = p[f"{stack}_down"][kv, j, m], p[f"{stack}_up"][kv, j, m]
                else:
                    pair = np.concatenate([p["task_embedding"][m],
                                           p[f"{stack}_layer_embedding"][j]])
                    # Stored N(0, 1), used times their init scale (He, fan-in, hyperfan-in).
                    hidden = relu(pair @ p[f"{stack}_h_t_hidden"] * T_IN ** -0.5)
                    emb = hidden @ p[f"{stack}_h_t_out"] * T ** -0.5
                    w_scale = 0.02 * T ** -0.5
                    down = np.einsum("c,cdb->db", emb, p[f"{stack}_global_down"][kv]) * w_scale
                    up = np.einsum("c,cbh->bh", emb, p[f"{stack}_global_up"][kv]) * w_scale
                hyper = relu(prompts[m] @ np.asarray(down)) @ np.asarray(up)
                out[kv, j, i] = hyper.reshape(LENGTH, heads, head_dim)
    return out


@pytest.mark.parametrize("variant", ["share", "sep", "global"])
def test_hyper_prompts_equal_naive_computation(tiny_config, variant):
    cfg = dataclasses.replace(tiny_config, num_decoder_layers=3)
    model, params = build(cfg, variant=variant)
    cond = model.module.apply({"params": params}, BATCH["task_ids"],
                              BATCH["encoder_input_tokens"], False,
                              method=model.module.condition)
    p = jax.tree.map(np.asarray, params["conditioner"])
    for stack, depth in (("encoder", 2), ("decoder", 3)):
        want = naive_prefixes(p, variant, stack, depth, [2, 0, 2], cfg.num_heads, cfg.head_dim)
        got = getattr(cond, stack).kv_prefix
        np.testing.assert_allclose(got.key, want[0], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got.value, want[1], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("variant", ["share", "sep", "global"])
@pytest.mark.parametrize("placement", ["encoder", "both"])
def test_parameter_count_is_the_closed_form(tiny_config, variant, placement):
    _, params = build(tiny_config, variant=variant, placement=placement)
    count = sum(x.size for x in jax.tree.leaves(params["conditioner"]))
    d, hd, layers, stacks = 16, 16, 2, 2 if placement == "both" else 1
    b, t_in, t = BOTTLENECK, T_IN, T
    local = 2 * layers * (d * b + b * hd)  # D and U, keys and values, every layer
    want = TASKS * LENGTH * d + {
        "share": stacks * local,
        "sep": stacks * TASKS * local,
        "global": TASKS * t_in + stacks * (layers * t_in + 2 * t_in * t + t * t
                                           + 2 * t * (d * b + b * hd)),
    }[variant]
    assert count == want
    assert parameter_count(variant, TASKS, d, hd, [layers] * stacks, LENGTH, b, t_in, t) == want
    assert method(tiny_config, variant, placement).parameter_count(tiny_config) == want


def test_parameter_count_with_stacks_of_different_depths(tiny_config):
    cfg = dataclasses.replace(tiny_config, num_decoder_layers=3)
    for variant in ("share", "sep", "global"):
        _, params = build(cfg, variant=variant)
        count = sum(x.size for x in jax.tree.leaves(params["conditioner"]))
        assert method(cfg, variant).parameter_count(cfg) == count


def test_initial_hyper_prompts_of_every_variant_have_the_same_scale():
    """At T5 1.1 Base dims (d = H*Dh = 768, l = b = 16, t' = 32, t = 28, 8 tasks): P, D, U
    ~ N(0, s^2), s = 0.02, give hyper-prompts U ReLU(D P) of RMS s^3 sqrt(b d / 2) (ReLU
    halves the second moment once), 6.3e-4; Global generates D, U at that scale
    (hyperfan-in). With N(0, 0.02^2) for Global's own parameters they were ~1e-9."""
    config = CONFIGS["t5_1_1_base"]
    tokens = jnp.ones((8, 4), jnp.int32)
    rms = {}
    for variant in ("share", "sep", "global"):
        net = Transformer(config, HyperPrompt(config, 8, variant, "both", 16, 16, 32, 28))
        params = nn.unbox(net.init(jax.random.PRNGKey(1), jnp.arange(8), tokens, False,
                                   method=net.condition)["params"])
        cond = net.apply({"params": params}, jnp.arange(8), tokens, False, method=net.condition)
        prefixes = np.concatenate([np.ravel(x) for x in jax.tree.leaves(cond)])
        rms[variant] = float(np.sqrt(np.mean(prefixes ** 2)))
        expected = 0.02 ** 3 * np.sqrt(16 * 768 / 2)
        assert expected / 1.5 < rms[variant] < 1.5 * expected, (variant, rms, expected)
    assert rms["share"] / 2 < rms["global"] < 2 * rms["share"], rms


def test_sep_hypernetworks_of_an_absent_task_get_zero_gradient(tiny_config):
    model, params = build(tiny_config, variant="sep")
    grads = jax.grad(lambda p: model.loss_fn(p, BATCH)[0])(params)["conditioner"]
    for name in ("encoder_down", "encoder_up", "decoder_down", "decoder_up"):
        g = np.asarray(grads[name])  # [2, L, tasks, ...]; the batch has tasks 2 and 0
        assert np.all(g[:, :, 1] == 0) and np.any(g[:, :, 2] != 0), name
    assert np.all(np.asarray(grads["prompts"])[1] == 0)


def test_prompt_length_zero_is_bit_identical_to_vanilla(tiny_config):
    model, params = build(tiny_config, variant="global", prompt_length=0)
    plain = EncoderDecoderModel(Transformer(tiny_config))
    backbone = {k: v for k, v in params.items() if k != "conditioner"}
    assert np.array_equal(model.logits(params, BATCH), plain.logits(backbone, BATCH))


def test_bad_variant_is_rejected(tiny_config):
    with pytest.raises(UsageError, match="variant='local'"):
        build(tiny_config, variant="local")


def test_quickstart_with_a_hyperprompt_gin_file(tmp_path, variant="global"):
    model_dir = tmp_path / "run"
    assert cli.main(["train", "--gin_file=experiments/quickstart.gin",
                     f"--gin_file=methods/hyperprompt_{variant}.gin",
                     f"--gin.MODEL_DIR='{model_dir}'", "--gin.TRAIN_STEPS=1",
                     "--gin.BATCH_SIZE=8", "--gin.train_lib.train.eval_examples=0"]) == 0
    config = gin.get_configurable("hyperprompt.models.configs.T5Config")()
    saved = sources.read(str(model_dir), "hyperprompt", config)
    assert saved["conditioner/prompts"].shape == (4, 16, 128)
    assert any(k.startswith("conditioner/decoder_") for k in saved)
