"""HyperGrid: the block-wise gated product vs materialised per-example weights (forward and
gradients), the whole model vs the plain backbone run per example with gated kernels,
σ = 0.5 == halved kernels, closed-form parameter counts, and activation memory that does
not hold a [batch, d_m, d_f] tensor."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperprompt.errors import UsageError
from hyperprompt.methods.hypergrid import VARIANTS, HyperGrid, gate_grid, grid_gated_matmul
from hyperprompt.models.configs import CONFIGS, T5Config
from hyperprompt.models.t5 import Transformer

jax.config.update("jax_default_matmul_precision", "highest")

# d_m 16, d_f 32; a 4 x 8 grid tiles both the wi [16, 32] and wo [32, 16] kernels.
CFG = T5Config(vocab_size=64, emb_dim=16, num_heads=2, num_encoder_layers=2,
               num_decoder_layers=2, head_dim=8, mlp_dim=32)
V1_0 = dataclasses.replace(CFG, mlp_activations=("relu",), logits_via_embedding=True)
ROWS, COLS = 4, 8
ENC = jnp.array([[5, 6, 7, 8, 1, 0], [9, 10, 1, 0, 0, 0], [12, 6, 7, 1, 0, 0]], jnp.int32)
DEC_IN = jnp.array([[0, 11, 12, 13], [0, 14, 15, 0], [0, 3, 4, 5]], jnp.int32)
TARGETS = jnp.array([[11, 12, 13, 1], [14, 15, 1, 0], [3, 4, 5, 1]], jnp.int32)
TASKS = jnp.zeros((3,), jnp.int32)


def random_generators(variant, d, out, rng, rows=ROWS, cols=COLS):
    if variant == "l":
        return {"U": rng.normal(size=(d, out))}
    second = ({"L_c": rng.normal(size=(d, cols))} if variant == "l2"
              else {"G_c": rng.normal(size=(cols,))})
    return {"L_r": rng.normal(size=(d, rows)), **second}


def naive_gates(variant, generators, prefix, fan_in, out):
    """H(X) [B, in, out] written from the equations: σ(U^T X) on every row (L), else the
    σ(a b^T) grid with each cell repeated over its (in / d_r) x (out / d_c) block."""
    sigmoid = lambda z: 1 / (1 + jnp.exp(-z))  # noqa: E731
    if variant == "l":
        return jnp.broadcast_to(sigmoid(prefix @ generators["U"])[:, None, :],
                                (prefix.shape[0], fan_in, out))
    a = prefix @ generators["L_r"]
    b = prefix @ generators["L_c"] if variant == "l2" else jnp.broadcast_to(
        generators["G_c"], (prefix.shape[0], COLS))
    grid = sigmoid(jnp.einsum("br,bc->brc", a, b))
    return jnp.repeat(jnp.repeat(grid, fan_in // ROWS, axis=1), out // COLS, axis=2)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", [(16, 32), (32, 16)], ids=["wi", "wo"])
def test_blockwise_product_equals_materialised_weights(variant, shape):
    """x_b @ (H(X_b) ⊙ W) per example, forward and gradients in x, W and the generators."""
    rng = np.random.default_rng(0)
    fan_in, out = shape
    x = jnp.asarray(rng.normal(size=(3, 5, fan_in)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=shape) / 4, jnp.float32)
    prefix = jnp.asarray(rng.normal(size=(3, 16)) / 4, jnp.float32)  # examples differ
    gens = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32),
                        random_generators(variant, 16, out, rng))

    def ours(x, kernel, gens):
        return grid_gated_matmul(x, kernel, gate_grid(variant, gens, prefix))

    def naive(x, kernel, gens):
        weights = naive_gates(variant, gens, prefix, fan_in, out) * kernel  # [B, in, out]
        return jnp.einsum("btd,bdf->btf", x, weights)

    np.testing.assert_allclose(ours(x, kernel, gens), naive(x, kernel, gens), rtol=1e-5,
                               atol=1e-6)
    loss = lambda f: lambda *a: jnp.sum(jnp.sin(f(*a)))  # noqa: E731
    got = jax.grad(loss(ours), argnums=(0, 1, 2))(x, kernel, gens)
    want = jax.grad(loss(naive), argnums=(0, 1, 2))(x, kernel, gens)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def method(cfg, variant, **kwargs):
    return HyperGrid(cfg, variant, ROWS, COLS, **kwargs)


def init_params(cfg, conditioner=None):
    variables = Transformer(cfg, conditioner).init(
        jax.random.PRNGKey(0), ENC, DEC_IN, TARGETS, enable_dropout=False, task_ids=TASKS)
    return nn.unbox(variables["params"])


def apply(cfg, params, conditioner=None, enc=ENC, dec_in=DEC_IN, targets=TARGETS, **kwargs):
    return Transformer(cfg, conditioner).apply(
        {"params": params}, enc, dec_in, targets, enable_dropout=False,
        task_ids=TASKS[:enc.shape[0]], **kwargs)


def gated_backbone_logits(cfg, hypergrid, params, stacks, prefix_of):
    """Each example alone through the plain backbone whose FFN kernels are replaced by
    H(X) ⊙ W, layer by layer: X from `prefix_of(backbone_params, example, stack, layer)`."""
    generators, backbone = params["conditioner"], {k: v for k, v in params.items()
                                                   if k != "conditioner"}
    rows = []
    for b in range(ENC.shape[0]):
        gated = jax.tree.map(lambda a: a, backbone)
        for stack in stacks:
            for j in range(2):
                prefix = prefix_of(gated, b, stack, j)[None]  # [1, d_m]
                mlp = gated[stack][f"layers_{j}"]["mlp"]
                for name in hypergrid.generator_shapes(cfg):
                    kernel = mlp[name]["kernel"]
                    gens = {g: generators[f"{stack}_{name}_{g}"][j]
                            for g in ("U", "L_r", "L_c", "G_c")
                            if f"{stack}_{name}_{g}" in generators}
                    gates = naive_gates(hypergrid.variant, gens, prefix, *kernel.shape)[0]
                    mlp[name] = {"kernel": kernel * gates}
        rows.append(apply(cfg, gated, None, ENC[b:b + 1], DEC_IN[b:b + 1], TARGETS[b:b + 1]))
    return jnp.concatenate(rows)


@pytest.mark.parametrize("variant", VARIANTS)
def test_layer_input_prefix_equals_per_example_gated_backbone(variant):
    """X = each encoder layer's FFN input at position 0, read off the gated backbone itself
    (Flax's captured pre-MLP norm output); all FFN matrices gated."""
    hypergrid = method(CFG, variant, matrices="both")
    params = init_params(CFG, hypergrid)

    def ffn_input_at_0(gated, b, stack, layer):
        _, state = apply(CFG, gated, None, ENC[b:b + 1], DEC_IN[b:b + 1], TARGETS[b:b + 1],
                         capture_intermediates=True, mutable=["intermediates"])
        norm = state["intermediates"][stack][f"layers_{layer}"]["pre_mlp_layer_norm"]
        return norm["__call__"][0][0, 0]

    want = gated_backbone_logits(CFG, hypergrid, params, ["encoder"], ffn_input_at_0)
    np.testing.assert_allclose(apply(CFG, params, hypergrid), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cfg", [CFG, V1_0], ids=["v1_1", "v1_0"])
def test_embedding_prefix_gates_both_stacks(cfg):
    """X = the first encoder token's embedding, every layer of encoder and decoder."""
    hypergrid = method(cfg, "lg", prefix="embedding", stacks="both")
    params = init_params(cfg, hypergrid)
    embedding = params["token_embedder"]["embedding"]
    want = gated_backbone_logits(cfg, hypergrid, params, ["encoder", "decoder"],
                                 lambda gated, b, stack, layer: embedding[ENC[b, 0]])
    np.testing.assert_allclose(apply(cfg, params, hypergrid), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_zero_pre_activation_halves_the_gated_kernels(variant):
    """Generators at 0 -> σ = 0.5 everywhere: the backbone with wi_0, wi_1 halved (exactly
    for L, one product; to float rounding for the grids, summed block by block)."""
    hypergrid = method(CFG, variant)
    params = init_params(CFG, hypergrid)
    params["conditioner"] = jax.tree.map(jnp.zeros_like, params["conditioner"])
    backbone = {k: v for k, v in params.items() if k != "conditioner"}
    halved = jax.tree.map(lambda a: a, backbone)
    for j in range(2):
        mlp = halved["encoder"][f"layers_{j}"]["mlp"]
        for name in ("wi_0", "wi_1"):
            mlp[name] = {"kernel": mlp[name]["kernel"] * 0.5}
    got, want = apply(CFG, params, hypergrid), apply(CFG, halved)
    if variant == "l":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert not np.allclose(want, apply(CFG, backbone), atol=1e-3)  # halving matters


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cfg, stacks, matrices", [
    (CFG, "encoder", "input"), (V1_0, "both", "both"), (CFG, "decoder", "output")])
def test_parameter_count_is_the_closed_form(variant, cfg, stacks, matrices):
    """Per gated [in, out] kernel and layer: d_m out (L), d_m (d_r + d_c) (L2), d_m d_r +
    d_c (LG); v1.1 gates wi_0 and wi_1, v1.0 its one wi."""
    hypergrid = method(cfg, variant, prefix="embedding", stacks=stacks, matrices=matrices)
    counted = sum(x.size for x in jax.tree.leaves(init_params(cfg, hypergrid)["conditioner"]))
    d, f = cfg.emb_dim, cfg.mlp_dim
    kernels = {"input": [(d, f)] * len(cfg.mlp_activations), "output": [(f, d)]}
    kernels["both"] = kernels["input"] + kernels["output"]
    per_kernel = {"l": lambda out: d * out, "l2": lambda out: d * (ROWS + COLS),
                  "lg": lambda out: d * ROWS + COLS}[variant]
    layers = {"encoder": 2, "decoder": 2, "both": 4}[stacks]
    want = layers * sum(per_kernel(out) for _, out in kernels[matrices])
    assert counted == want == hypergrid.parameter_count(cfg)


@pytest.mark.parametrize("name", ["t5_3B", "t5_11B", "t5_1_1_xxl"])
def test_the_papers_sizes_tile_the_default_grid(name):
    """The paper's T5 3B and 11B (v1.0): the 32 x 32 grid divides every FFN kernel."""
    cfg = CONFIGS[name]
    count = HyperGrid(cfg, "lg", matrices="both").parameter_count(cfg)
    per_kernel = cfg.emb_dim * 32 + 32
    assert count == cfg.num_encoder_layers * per_kernel * (len(cfg.mlp_activations) + 1)


def test_bad_choices_are_one_line_errors():
    with pytest.raises(UsageError, match="grid does not tile wi_0's"):
        HyperGrid(CFG, "l2", 3, 8).parameter_count(CFG)
    with pytest.raises(UsageError, match="use prefix='embedding' or stacks='encoder'"):
        HyperGrid(CFG, "lg", ROWS, COLS, stacks="both").parameter_count(CFG)
    with pytest.raises(UsageError, match=r"HyperGrid.variant='x': use one of"):
        HyperGrid(CFG, "x").parameter_count(CFG)
    # A stack named wrong gated none and trained the plain backbone without a word.
    with pytest.raises(UsageError, match=r"HyperGrid.stacks='encoders': use one of"):
        init_params(CFG, method(CFG, "l", stacks="encoders"))


@pytest.mark.parametrize("variant", VARIANTS)
def test_activation_memory_holds_no_per_example_weight(variant):
    """XLA's own buffer accounting of a forward+backward pass: the temporaries stay below
    one [B, d_m, d_f] float32 tensor (what materialising H(X) ⊙ W would take), at dims
    where that tensor is 16x the [B, T, d_f] activations, and below the d_r = 32 partial
    products [B, T, d_r, d_f] that a backward pass without rematerialisation keeps."""
    batch, length, d, f = 8, 16, 256, 512
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, length, d)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(d, f)), jnp.float32)
    prefix = jnp.asarray(rng.normal(size=(batch, d)), jnp.float32)
    gens = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32),
                        random_generators(variant, d, f, rng, rows=32, cols=32))

    def loss(x, kernel, gens):
        return jnp.sum(grid_gated_matmul(x, kernel, gate_grid(variant, gens, prefix)) ** 2)

    compiled = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(x, kernel, gens).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    assert temp < batch * d * f * 4, (temp, batch * d * f * 4)
