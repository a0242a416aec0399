"""The backbone: scan layouts, vanilla identity, and each injection point vs a reference.

References are independent re-expressions of the same math on the plain
backbone: an input prompt made of token embeddings equals prepending those
tokens; an FFN gate equals gating the `wi` kernels; an adapter that scales a
sublayer equals scaling that sublayer's output kernel.
"""

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperprompt.methods.vanilla import Vanilla
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.conditioning import (
    AdapterNorm,
    Conditioning,
    KVPrefix,
    LayerHook,
    StackConditioning,
)
from hyperprompt.models.layout import scan_params, unscan_params
from hyperprompt.models.t5 import Transformer

ENC = jnp.array([[5, 6, 7, 8, 1, 0], [9, 10, 1, 0, 0, 0]], jnp.int32)
DEC_IN = jnp.array([[0, 11, 12, 13], [0, 14, 15, 0]], jnp.int32)
TARGETS = jnp.array([[11, 12, 13, 1], [14, 15, 1, 0]], jnp.int32)
TASKS = jnp.array([0, 1], jnp.int32)


class Fixed(nn.Module):
    """A test conditioner: returns make(task_ids, embedder)."""

    make: Callable

    def __call__(self, task_ids, encoder_tokens, embedder, deterministic=True):
        return self.make(task_ids, embedder)


def init_params(cfg, conditioner=None):
    model = Transformer(cfg, conditioner)
    variables = model.init(jax.random.PRNGKey(0), ENC, DEC_IN, TARGETS, enable_dropout=False,
                           task_ids=TASKS)
    return nn.unbox(variables["params"])


def logits(cfg, params, conditioner=None, enc=ENC):
    return Transformer(cfg, conditioner).apply(
        {"params": params}, enc, DEC_IN, TARGETS, enable_dropout=False, task_ids=TASKS)


def test_vanilla_is_bit_identical_to_no_conditioner(tiny_config):
    params = init_params(tiny_config)
    assert np.array_equal(logits(tiny_config, params), logits(tiny_config, params, Vanilla()))


def test_scanned_and_unscanned_give_same_logits_and_round_trip(tiny_config):
    params = init_params(tiny_config)
    scanned_cfg = dataclasses.replace(tiny_config, scan_layers=True)
    scanned = scan_params(params, scanned_cfg)
    assert jax.tree.structure(scanned) == jax.tree.structure(init_params(scanned_cfg))
    np.testing.assert_allclose(logits(scanned_cfg, scanned), logits(tiny_config, params),
                               atol=1e-5)
    back = unscan_params(scanned, scanned_cfg)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(back),
                                                    jax.tree.leaves(params), strict=True))


@pytest.mark.parametrize("remat", ["full", "dots"])
def test_remat_does_not_change_logits(tiny_config, remat):
    params = init_params(tiny_config)
    cfg = dataclasses.replace(tiny_config, remat_policy=remat, scan_layers=True)
    np.testing.assert_allclose(logits(cfg, scan_params(params, cfg)),
                               logits(tiny_config, params), atol=1e-5)


@pytest.mark.parametrize("scan", [False, True])
def test_input_prompt_of_token_embeddings_equals_prepending_tokens(tiny_config, scan):
    """Prompt = embeddings of tokens [20, 21]; reference = those tokens prepended."""
    cfg = dataclasses.replace(tiny_config, scan_layers=scan)
    prompt_tokens = jnp.array([20, 21])
    cond = Fixed(lambda t, emb: Conditioning(
        input_prompt=jnp.broadcast_to(emb(prompt_tokens), (2, 2, cfg.emb_dim))))
    params = init_params(cfg)
    with_prompt = logits(cfg, params, cond)
    prepended = jnp.concatenate([jnp.broadcast_to(prompt_tokens, (2, 2)), ENC], axis=1)
    np.testing.assert_allclose(with_prompt, logits(cfg, params, None, prepended), atol=1e-5)


@pytest.mark.parametrize("scan", [False, True])
def test_ffn_gate_equals_gated_kernels(tiny_config, scan):
    """Per-layer gates on each FFN matrix's outputs (g_l [mlp] on wi_0 and wi_1, o_l [embed]
    on wo) equal the backbone with those kernels' columns scaled."""
    cfg = dataclasses.replace(tiny_config, scan_layers=scan)
    rng = np.random.default_rng(0)
    gates = {"wi_0": rng.uniform(0.5, 1.5, (2, cfg.mlp_dim)),
             "wi_1": rng.uniform(0.5, 1.5, (2, cfg.mlp_dim)),
             "wo": rng.uniform(0.5, 1.5, (2, cfg.emb_dim))}
    gates = {k: jnp.asarray(v, jnp.float32) for k, v in gates.items()}
    hook = LayerHook(gates, lambda g, x, name, h, kernel: (h @ kernel) * g[name])
    cond = Fixed(lambda t, emb: Conditioning(encoder=StackConditioning(ffn_gate=hook)))
    base = init_params(dataclasses.replace(cfg, scan_layers=False))
    gated = jax.tree.map(lambda x: x, base)
    for i in range(2):
        mlp = gated["encoder"][f"layers_{i}"]["mlp"]
        for name in gates:
            mlp[name] = {"kernel": mlp[name]["kernel"] * gates[name][i]}
    ref = logits(tiny_config, gated)
    params = scan_params(base, cfg) if scan else base
    np.testing.assert_allclose(logits(cfg, params, cond), ref, atol=1e-5)


def test_ffn_gate_hook_that_multiplies_is_bit_identical(tiny_config):
    """A hook computing h @ kernel as the backbone does leaves the logits bit-identical, in
    both stacks: the injection point adds nothing of its own."""
    matmul = LayerHook(jnp.zeros((2,)), lambda _, x, name, h, kernel: jnp.einsum(
        "...d,df->...f", h, kernel))
    stack = StackConditioning(ffn_gate=matmul)
    cond = Fixed(lambda t, emb: Conditioning(encoder=stack, decoder=stack))
    params = init_params(tiny_config)
    assert np.array_equal(logits(tiny_config, params, cond), logits(tiny_config, params))


@pytest.mark.parametrize("scan", [False, True])
def test_adapter_and_norm_equal_scaled_output_kernels(tiny_config, scan):
    """Adapter y -> y * c_l[pos] * gamma_l[pos] equals scaling the sublayer's out kernel."""
    cfg = dataclasses.replace(tiny_config, scan_layers=scan)
    rng = np.random.default_rng(1)
    c = jnp.asarray(rng.uniform(0.5, 1.5, (2, 2)), jnp.float32)  # [layers, position]
    gamma = jnp.asarray(rng.uniform(0.5, 1.5, (2, 1, 2, cfg.emb_dim)), jnp.float32)
    norm = AdapterNorm(jnp.broadcast_to(gamma, (2, 2, 2, cfg.emb_dim)),
                       jnp.zeros((2, 2, 2, cfg.emb_dim)))

    def adapter(c_l, position, y, norm_l):
        scale, bias = norm_l
        return y * c_l[position] * scale[:, None, :] + bias[:, None, :]

    cond = Fixed(lambda t, emb: Conditioning(decoder=StackConditioning(
        adapter=LayerHook(c, adapter), adapter_norm=norm)))
    base = init_params(dataclasses.replace(cfg, scan_layers=False))
    scaled = jax.tree.map(lambda x: x, base)
    for i in range(2):
        layer = scaled["decoder"][f"layers_{i}"]
        out = layer["self_attention"]["out"]["kernel"]
        layer["self_attention"]["out"] = {"kernel": out * c[i, 0] * gamma[i, 0, 0]}
        wo = layer["mlp"]["wo"]["kernel"]
        layer["mlp"]["wo"] = {"kernel": wo * c[i, 1] * gamma[i, 0, 1]}
    ref = logits(tiny_config, scaled)
    params = scan_params(base, cfg) if scan else base
    np.testing.assert_allclose(logits(cfg, params, cond), ref, atol=1e-5)


def test_conditioning_with_wrong_layer_count_is_an_error(tiny_config):
    bad = Fixed(lambda t, emb: Conditioning(encoder=StackConditioning(kv_prefix=KVPrefix(
        jnp.zeros((3, 2, 1, 2, 8)), jnp.zeros((3, 2, 1, 2, 8))))))
    with pytest.raises(ValueError, match="leading layers axis of 3"):
        init_params(tiny_config, bad)


@pytest.mark.parametrize("scan", [False, True])
def test_cached_decoding_with_kv_prefix_equals_full_forward(tiny_config, scan):
    """Greedy decoding through the KV cache equals argmax of teacher-forced recomputation,
    with per-task prefixes in encoder and decoder self-attention."""
    cfg = dataclasses.replace(tiny_config, scan_layers=scan)
    table = jnp.asarray(np.random.default_rng(2).normal(size=(2, 2, 3, 2, 8)), jnp.float32)

    def make(task_ids, emb):
        per_example = table[:, task_ids]  # [L, B, P, H, Dh]
        stack = StackConditioning(kv_prefix=KVPrefix(per_example, -per_example))
        return Conditioning(encoder=stack, decoder=stack)

    model = EncoderDecoderModel(Transformer(cfg, Fixed(make)))
    params = nn.unbox(model.init(jax.random.PRNGKey(0), 6, 5)["params"])
    batch = {"encoder_input_tokens": ENC, "decoder_input_tokens": jnp.zeros((2, 5), jnp.int32),
             "task_ids": TASKS}
    got = np.asarray(jax.jit(lambda p, b: model.predict_batch(p, b, eos_id=1))(params, batch))
    tokens = np.zeros((2, 5), np.int32)
    for i in range(5):
        dec_in = np.concatenate([np.zeros((2, 1), np.int32), tokens[:, :-1]], axis=1)
        step_logits = model.module.apply({"params": params}, ENC, jnp.asarray(dec_in), None,
                                         enable_dropout=False, task_ids=TASKS)
        tokens[:, i] = np.argmax(step_logits[:, i], -1)
    for row in tokens:  # zero after the first EOS, as greedy_decode emits
        eos = np.where(row == 1)[0]
        if len(eos):
            row[eos[0] + 1:] = 0
    np.testing.assert_array_equal(got, tokens)
