"""HyperFormer and HyperFormer++: generated weights against a numpy hypernetwork; generators
set to emit given adapters equal the Adapters method; the frozen backbone after a step; the
output at initialisation; scanned == unrolled layers; few-shot transfer trains only the new
task embedding."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperprompt.methods.adapters import Adapters
from hyperprompt.methods.hyperformer import HyperFormer
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.layers import Embed
from hyperprompt.models.layout import scan_params
from hyperprompt.models.t5 import Transformer
from hyperprompt.optim import flat_paths, make_optimizer
from hyperprompt.train import make_train_step
from tests.methods.test_adapters import conditioning_and_params, hook_outputs, numpy_adapter

TASKS, REDUCTION, T, HIDDEN, P = 3, 4, 5, 24, 20
NAMES = ("down", "down_bias", "up", "up_bias", "norm_scale", "norm_bias")
BATCH = {
    "encoder_input_tokens": jnp.array([[5, 6, 7, 1], [8, 9, 1, 0], [3, 1, 0, 0], [4, 4, 1, 0]],
                                      jnp.int32),
    "decoder_input_tokens": jnp.array([[0, 10, 11], [0, 12, 0], [0, 13, 14], [0, 15, 0]],
                                      jnp.int32),
    "decoder_target_tokens": jnp.array([[10, 11, 1], [12, 1, 0], [13, 14, 1], [15, 1, 0]],
                                       jnp.int32),
    "task_ids": jnp.array([2, 0, 2, 1], jnp.int32),
}


def hyperformer(cfg, variant="hyperformer_pp", **kwargs):
    return HyperFormer(cfg, kwargs.pop("num_tasks", TASKS), variant, REDUCTION, T, HIDDEN, P,
                       **kwargs)


def build(method):
    model = EncoderDecoderModel(Transformer(method.config, method))
    return model, nn.unbox(model.init(jax.random.PRNGKey(0), 4, 3)["params"])


def numpy_embeddings(p, variant, stack, depth):
    """I [T, L, 2, P]: the projector's LayerNorm(W2 relu(W1 x + b1) + b2), looped."""
    out = np.zeros((TASKS, depth, 2, P))
    for m in range(TASKS):
        for layer in range(depth):
            for q in range(2):
                x = np.asarray(p["task_embedding"][m], np.float64)
                if variant == "hyperformer_pp":
                    x = np.concatenate([x, p[f"{stack}_layer_embedding"][layer],
                                        p[f"{stack}_position_embedding"][q]])
                hid = np.maximum(x @ p[f"{stack}_projector_hidden"]
                                 + p[f"{stack}_projector_hidden_bias"], 0)
                o = hid @ p[f"{stack}_projector_out"] + p[f"{stack}_projector_out_bias"]
                o = (o - o.mean()) / np.sqrt(o.var() + 1e-6)
                out[m, layer, q] = (o * p[f"{stack}_projector_norm_scale"]
                                    + p[f"{stack}_projector_norm_bias"])
    return out


def numpy_weights(p, variant, stack, depth, m, layer, q, shapes):
    """One adapter's weights from its generators, in float64."""
    emb = numpy_embeddings(p, variant, stack, depth)[m, layer, q]
    out = {}
    for name in NAMES:
        kernel, bias = p[f"{stack}_{name}_generator"], p[f"{stack}_{name}_generator_bias"]
        if variant == "hyperformer":
            kernel, bias = kernel[layer, q], bias[layer, q]
        kernel = np.asarray(kernel, np.float64).reshape(len(emb), -1)  # [p, *shape] -> [p, n]
        out[name] = (emb @ kernel + np.ravel(bias)).reshape(shapes[name])
    return out


@pytest.mark.parametrize("variant", ["hyperformer", "hyperformer_pp"])
def test_every_adapter_is_the_numpy_hypernetworks(tiny_config, variant):
    method = hyperformer(tiny_config, variant)
    cond, p = conditioning_and_params(method)
    shapes = method.shapes(tiny_config)
    y = jax.random.normal(jax.random.PRNGKey(7), (4, 5, tiny_config.emb_dim))
    for stack in ("encoder", "decoder"):
        got = hook_outputs(getattr(cond, stack), 2, y)
        for layer in range(2):
            for q in range(2):
                for b, m in enumerate(np.asarray(BATCH["task_ids"])):
                    w = numpy_weights(p, variant, stack, 2, m, layer, q, shapes)
                    want = numpy_adapter(np.asarray(y[b], np.float64), *w.values())
                    np.testing.assert_allclose(got[layer, q, b], want, rtol=2e-4, atol=2e-4)
    # Tasks get different adapters: examples 0 and 2 share task 2, example 1 is task 0.
    same_y = jnp.broadcast_to(y[:1], y.shape)
    out = hook_outputs(cond.encoder, 2, same_y)
    np.testing.assert_allclose(out[:, :, 0], out[:, :, 2], rtol=1e-6)
    assert np.abs(out[:, :, 0] - out[:, :, 1]).min(axis=-1).mean() > 1e-3


def test_generators_set_to_emit_adapters_equal_the_adapter_method(tiny_config):
    """Solve each generator (kernel, bias) so that W·I + b = the Adapters method's weights for
    all 3 tasks x 2 layers x 2 positions: 12 equations in P + 1 unknowns a number, exact
    when the 12 [I, 1] are independent (LayerNorm-centred I span P - 1 dimensions at most,
    and a projector of HIDDEN units HIDDEN: both >= 12 here)."""
    adapters = Adapters(tiny_config, TASKS, reduction_factor=REDUCTION)
    a_model, a_params = build(adapters)
    _, targets = conditioning_and_params(adapters, seed=3)
    a_params = {**a_params, "conditioner": targets}
    method = hyperformer(tiny_config)
    h_model = build(method)[0]
    # Random projectors and embeddings: well-spread I, so the solved generators are moderate.
    hp = jax.tree.map(np.asarray, conditioning_and_params(method, seed=5)[1])
    for stack in ("encoder", "decoder"):
        emb = numpy_embeddings(hp, "hyperformer_pp", stack, 2).reshape(-1, P)  # [12, P]
        system = np.concatenate([emb, np.ones((len(emb), 1))], axis=1)
        for name in NAMES:
            want = np.asarray(targets[f"{stack}_{name}"], np.float64).reshape(len(emb), -1)
            solution = np.linalg.lstsq(system, want, rcond=None)[0]
            for key, rows in (("generator", solution[:-1]), ("generator_bias", solution[-1])):
                key = f"{stack}_{name}_{key}"
                hp[key] = rows.reshape(hp[key].shape).astype(np.float32)
    h_params = {**a_params, "conditioner": hp}  # the same backbone
    want = a_model.logits(a_params, BATCH)
    np.testing.assert_allclose(h_model.logits(h_params, BATCH), want, rtol=1e-4, atol=1e-4)
    vanilla = a_model.logits({**a_params, "conditioner": jax.tree.map(
        lambda x: x * 0, targets)}, BATCH)
    assert np.abs(want - vanilla).max() > 0.1  # the adapters matter


@pytest.mark.parametrize("variant", ["hyperformer", "hyperformer_pp"])
def test_a_step_moves_the_method_and_the_layer_norm_scales_only(tiny_config, variant):
    model, params = build(hyperformer(tiny_config, variant))
    tx = make_optimizer("adamw", 1e-2, groups=model.module.conditioner.param_groups())
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
    new, _ = jax.jit(make_train_step(model, tx, 0, use_dropout=False))(state, BATCH)
    before, after = flat_paths(params), flat_paths(new["params"])
    norms = [k for k in before if k.endswith("norm/scale") and not k.startswith("conditioner/")]
    assert len(norms) == 2 * 2 + 1 + 3 * 2 + 1  # every LayerNorm of both stacks
    for path, value in before.items():
        moved = not np.array_equal(np.asarray(value), np.asarray(after[path]))
        assert moved == (path in norms or path.startswith("conditioner/")), path


def test_few_shot_transfer_trains_only_the_new_task_embedding(tiny_config):
    model, params = build(hyperformer(tiny_config, num_tasks=1, source_tasks=TASKS))
    assert params["conditioner"]["task_embedding"].shape == (TASKS, T)
    assert params["conditioner"]["new_task_embedding"].shape == (1, T)
    tx = make_optimizer("adamw", 1e-2, groups=model.module.conditioner.param_groups())
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
    batch = {**BATCH, "task_ids": jnp.zeros((4,), jnp.int32)}
    new, _ = jax.jit(make_train_step(model, tx, 0, use_dropout=False))(state, batch)
    before, after = flat_paths(params), flat_paths(new["params"])
    for path, value in before.items():
        moved = not np.array_equal(np.asarray(value), np.asarray(after[path]))
        assert moved == (path == "conditioner/new_task_embedding"), path


def scaled_generators(params, factor):
    """The parameters with every generator kernel times `factor` (N(0, (factor σ)^2))."""
    return {**params, "conditioner": {k: v * factor if k.endswith("_generator") else v
                                      for k, v in params["conditioner"].items()}}


def test_at_init_the_output_is_the_backbones_within_the_generator_bound(tiny_config):
    """Bound implied by the generator init (kernels N(0, σ^2), σ = 0.01, zero biases).

    The projector ends in a LayerNorm of gain 1 and bias 0, so ||I||_2 <= sqrt(p). Every
    generated number is W_j·I (W_j a kernel column), so by Cauchy-Schwarz |w| <= ||W_j||_2
    sqrt(p): D, U, γ, β are all O(σ). The adapter adds δ = γ ⊙ LN(h) + β to its sublayer's
    output, and a LayerNorm output has |LN(h)_i| <= sqrt(d - 1), so per element

        |δ_i| <= sqrt(p) (max_j ||W_β,j||_2 + sqrt(d - 1) max_j ||W_γ,j||_2).      (1)

    Tighter in practice: h = U gelu(D y) + b_U is O(σ^2), far below the LayerNorm's eps
    (1e-5), so LN(h) = O(σ^2) and δ = β + O(σ^3), each β_i ~ N(0, σ^2 ||I||^2) with
    ||I||^2 ~= p: RMS(δ) ~= σ sqrt(p). The network's output then deviates from the frozen
    backbone's by a term linear in σ: exactly zero at σ = 0, and a quarter of it when the
    generators shrink by 4 (up to the O(σ^2) rest: 14% at this tiny random backbone).
    """
    model, params = build(hyperformer(tiny_config))
    backbone = model.logits(scaled_generators(params, 0.0), BATCH)
    np.testing.assert_array_equal(  # zero generators: the adapters are the identity
        backbone, EncoderDecoderModel(Transformer(tiny_config)).logits(
            {k: v for k, v in params.items() if k != "conditioner"}, BATCH))
    # (1) on every adapter of the initialised method
    cp = params["conditioner"]
    d = tiny_config.emb_dim
    cond = model.module.conditioner.apply({"params": cp}, BATCH["task_ids"],
                                          BATCH["encoder_input_tokens"],
                                          Embed(tiny_config.vocab_size, d))
    y = jax.random.normal(jax.random.PRNGKey(1), (4, 5, d))
    for stack in ("encoder", "decoder"):
        col = lambda name, stack=stack: np.linalg.norm(cp[f"{stack}_{name}_generator"], axis=0)  # noqa: E731
        bound = np.sqrt(P) * (col("norm_bias").max() + np.sqrt(d - 1) * col("norm_scale").max())
        delta = hook_outputs(getattr(cond, stack), 2, y) - np.asarray(y)[None, None]
        assert np.abs(delta).max() <= bound
        # β dominates, as derived: the typical |δ| is that of N(0, σ^2 ||I||^2 = σ^2 p)
        assert np.sqrt(np.mean(delta ** 2)) == pytest.approx(0.01 * np.sqrt(P), rel=0.35)
    deviation = np.abs(model.logits(params, BATCH) - backbone).max()
    quarter = np.abs(model.logits(scaled_generators(params, 0.25), BATCH) - backbone).max()
    assert 0 < deviation == pytest.approx(4 * quarter, rel=0.25)


@pytest.mark.parametrize("variant", ["hyperformer", "hyperformer_pp"])
def test_scanned_layers_equal_unrolled(tiny_config, variant):
    model, params = build(hyperformer(tiny_config, variant))
    params = {**params, "conditioner": conditioning_and_params(
        hyperformer(tiny_config, variant))[1]}
    scanned_cfg = dataclasses.replace(tiny_config, scan_layers=True)
    scanned = EncoderDecoderModel(Transformer(scanned_cfg, hyperformer(scanned_cfg, variant)))
    np.testing.assert_allclose(scanned.logits(scan_params(params, scanned_cfg), BATCH),
                               model.logits(params, BATCH), rtol=1e-5, atol=1e-5)
