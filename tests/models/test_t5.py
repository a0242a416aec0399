"""The backbone: scan layouts, vanilla identity, and each injection point vs a reference.

References are independent re-expressions of the same math on the plain
backbone: an input prompt made of token embeddings equals prepending those
tokens; an FFN gate equals gating the `wi` kernels; an adapter equals the same
function applied to each sublayer's output by a Flax method interceptor; the
decoder's K/V prefix equals a numpy attention over [prefix; keys] in each
layer's self-attention.
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
from hyperprompt.models.attention import MultiHeadAttention
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
STACKS = ("encoder", "decoder")


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
    """Per-stack, per-layer gates on each FFN matrix's outputs (g_l [mlp] on wi_0 and wi_1,
    [embed] on wo) in the encoder and the decoder equal the backbone with those kernels'
    columns scaled."""
    cfg = dataclasses.replace(tiny_config, scan_layers=scan)
    rng = np.random.default_rng(0)
    widths = {"wi_0": cfg.mlp_dim, "wi_1": cfg.mlp_dim, "wo": cfg.emb_dim}
    gates = {stack: {name: jnp.asarray(rng.uniform(0.5, 1.5, (2, w)), jnp.float32)
                     for name, w in widths.items()} for stack in STACKS}
    gate = lambda g, x, name, h, kernel: (h @ kernel) * g[name]  # noqa: E731
    cond = Fixed(lambda t, emb: Conditioning(**{
        stack: StackConditioning(ffn_gate=LayerHook(g, gate)) for stack, g in gates.items()}))
    base = init_params(dataclasses.replace(cfg, scan_layers=False))
    gated = jax.tree.map(lambda x: x, base)
    for stack, g in gates.items():
        for i in range(2):
            mlp = gated[stack][f"layers_{i}"]["mlp"]
            for name in widths:
                mlp[name] = {"kernel": mlp[name]["kernel"] * g[name][i]}
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
def test_adapter_and_norm_equal_transformed_sublayer_outputs(tiny_config, scan):
    """Adapter y -> y * c_l[pos] * gamma + beta (gamma, beta per layer, position and example)
    in both stacks equals the plain backbone whose self-attention and FFN outputs are
    transformed so by a method interceptor."""
    cfg = dataclasses.replace(tiny_config, scan_layers=scan)
    rng = np.random.default_rng(1)
    shape = (2, len(TASKS), 2, cfg.emb_dim)  # [layers, batch, position, embed]
    values = {stack: tuple(np.asarray(v, np.float32) for v in (
        rng.uniform(0.5, 1.5, (2, 2)), rng.uniform(0.5, 1.5, shape), rng.normal(0, 0.5, shape)))
        for stack in STACKS}  # c [layers, position], gamma, beta

    def adapter(c_l, position, y, norm_l):
        scale, bias = norm_l
        return y * c_l[position] * scale[:, None, :] + bias[:, None, :]

    cond = Fixed(lambda t, emb: Conditioning(**{
        stack: StackConditioning(adapter=LayerHook(jnp.asarray(c), adapter),
                                 adapter_norm=AdapterNorm(jnp.asarray(gamma), jnp.asarray(beta)))
        for stack, (c, gamma, beta) in values.items()}))
    positions = {"attention": 0, "self_attention": 0, "mlp": 1}

    def transform(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        path = context.module.path  # e.g. ("encoder", "layers_1", "mlp")
        if context.method_name != "__call__" or len(path) != 3 or path[2] not in positions:
            return out
        stack, layer, name = path
        c, gamma, beta = values[stack]
        i, pos = int(layer.removeprefix("layers_")), positions[name]
        return out * c[i, pos] * gamma[i, :, pos, None] + beta[i, :, pos, None]

    base = init_params(dataclasses.replace(cfg, scan_layers=False))
    with nn.intercept_methods(transform):
        ref = logits(tiny_config, base)
    params = scan_params(base, cfg) if scan else base
    np.testing.assert_allclose(logits(cfg, params, cond), ref, atol=1e-5)


def naive_attention(p: dict, xq: np.ndarray, xkv: np.ndarray, mask: np.ndarray,
                    bias: np.ndarray | float, heads: int,
                    prefix: np.ndarray | None = None) -> np.ndarray:
    """softmax(q k^T + bias) v per example and head in float64, keys/values = [prefix; x W]
    with every query seeing every prefix position; xq [B, Q, D], xkv [B, K, D], mask
    [B, Q, K] bool, bias [H, Q, K] or 0, prefix [2 (k, v), B, P, H, Dh] -> [B, Q, D]."""
    w = {k: np.asarray(v["kernel"], np.float64) for k, v in p.items()}
    split = lambda x: x.reshape(*x.shape[:2], heads, -1)
    q, k, v = split(xq @ w["query"]), split(xkv @ w["key"]), split(xkv @ w["value"])
    full_bias = np.broadcast_to(np.where(mask[:, None], bias, -1e30),
                                (len(q), heads, *mask.shape[1:]))
    if prefix is not None:
        k, v = np.concatenate([prefix[0], k], 1), np.concatenate([prefix[1], v], 1)
        seen = np.zeros((*full_bias.shape[:3], prefix.shape[2]))
        full_bias = np.concatenate([seen, full_bias], -1)
    out = np.zeros(q.shape)
    for b in range(q.shape[0]):
        for h in range(heads):
            scores = q[b, :, h] @ k[b, :, h].T + full_bias[b, h]
            weights = np.exp(scores - scores.max(-1, keepdims=True))
            out[b, :, h] = weights / weights.sum(-1, keepdims=True) @ v[b, :, h]
    return out.reshape(*out.shape[:2], -1) @ w["out"]


def test_decoder_kv_prefix_enters_each_layers_self_attention_only(tiny_config):
    """Each decoder layer's self-attention output equals the numpy attention with that
    layer's (per-task) prefix prepended to K and V, seen by every query (padded target rows
    see only the prompts); cross-attention equals the numpy attention without any prefix.
    Scanned layers give the unrolled logits."""
    table = np.random.default_rng(3).normal(size=(2, 2, 2, 3, 2, 8))  # [k|v, L, task, P, H, Dh]
    prefix = table[:, :, np.asarray(TASKS)]  # [k|v, L, B, P, H, Dh]
    cond = Fixed(lambda t, emb: Conditioning(decoder=StackConditioning(kv_prefix=KVPrefix(
        jnp.asarray(table[0], jnp.float32)[:, t], jnp.asarray(table[1], jnp.float32)[:, t]))))
    params = init_params(tiny_config, cond)
    calls = {}

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if isinstance(context.module, MultiHeadAttention) and context.method_name == "__call__":
            calls[context.module.path[-2:]] = (args, out)
        return out

    with nn.intercept_methods(record):
        got = logits(tiny_config, params, cond)
    scanned = dataclasses.replace(tiny_config, scan_layers=True)
    np.testing.assert_allclose(logits(scanned, scan_params(params, scanned), cond), got,
                               atol=1e-5)
    valid = np.asarray(TARGETS) > 0
    causal = valid[:, :, None] & valid[:, None, :] & np.tri(TARGETS.shape[1], dtype=bool)
    cross = valid[:, :, None] & (np.asarray(ENC) > 0)[:, None, :]
    for i in range(tiny_config.num_decoder_layers):
        layer = params["decoder"][f"layers_{i}"]
        (x, _, _, bias, *_), out = calls[(f"layers_{i}", "self_attention")]
        want = naive_attention(layer["self_attention"], np.asarray(x), np.asarray(x), causal,
                               np.asarray(bias)[0], tiny_config.num_heads, prefix[:, i])
        np.testing.assert_allclose(out, want, atol=1e-5, err_msg=f"self-attention {i}")
        (xq, encoded, *_), out = calls[(f"layers_{i}", "encoder_decoder_attention")]
        want = naive_attention(layer["encoder_decoder_attention"], np.asarray(xq),
                               np.asarray(encoded), cross, 0.0, tiny_config.num_heads)
        np.testing.assert_allclose(out, want, atol=1e-5, err_msg=f"cross-attention {i}")


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
