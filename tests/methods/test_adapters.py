"""Adapters and single adapter: each adapter against a numpy loop over examples, layers and
positions; parameter counts of the three methods at T5 v1.0 Base against the paper; the
`report --params` table."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperprompt import cli
from hyperprompt.analysis import params as params_lib
from hyperprompt.methods.adapters import Adapters
from hyperprompt.methods.base import registered
from hyperprompt.models.configs import CONFIGS
from hyperprompt.models.layers import Embed

TASKS, REDUCTION = 3, 4
TASK_IDS = jnp.array([2, 0, 2, 1], jnp.int32)


def numpy_adapter(y, down, down_bias, up, up_bias, gamma, beta):
    """y [T, d] -> y + LayerNorm_{γ,β}(U gelu_tanh(D y + b_D) + b_U), in float64."""
    h = y @ down + down_bias
    h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))
    h = h @ up + up_bias
    normed = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5)
    return y + normed * gamma + beta


def conditioning_and_params(method, seed=0):
    """The method's Conditioning for TASK_IDS, with every parameter drawn N(0, 0.5^2) (so no
    weight is trivially 0 or 1), and those parameters."""
    embedder = Embed(64, method.config.emb_dim)
    args = (TASK_IDS, jnp.ones((4, 3), jnp.int32), embedder)
    params = nn.unbox(method.init(jax.random.PRNGKey(seed), *args)["params"])
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
    params = tree.unflatten([0.5 * jax.random.normal(k, x.shape)
                             for k, x in zip(keys, leaves, strict=True)])
    return method.apply({"params": params}, *args), params


@functools.partial(jax.jit, static_argnums=1)
def _hook_outputs(stack_cond, depth, y):
    out = []
    for layer in range(depth):
        one = jax.tree.map(lambda x, layer=layer: x[layer], stack_cond)
        out.append([one.adapter.fn(one.adapter.params, q, y,
                                   (one.adapter_norm.scale[:, q], one.adapter_norm.bias[:, q]))
                    for q in range(2)])
    return jnp.asarray(out)


def hook_outputs(stack_cond, depth, y):
    """[L, 2, B, T, d]: the stack's adapter hook at every layer and position on y."""
    return np.asarray(_hook_outputs(stack_cond, depth, y), np.float64)


@pytest.mark.parametrize("shared", [False, True])
def test_each_adapter_equals_a_numpy_adapter_of_its_task(tiny_config, shared):
    method = Adapters(tiny_config, TASKS, shared=shared, reduction_factor=REDUCTION)
    cond, p = conditioning_and_params(method)
    y = jax.random.normal(jax.random.PRNGKey(7), (4, 5, tiny_config.emb_dim))
    for stack in ("encoder", "decoder"):
        got = hook_outputs(getattr(cond, stack), 2, y)
        for layer in range(2):
            for q in range(2):
                for b, task in enumerate(np.asarray(TASK_IDS)):
                    m = 0 if shared else task
                    w = {k: np.asarray(p[f"{stack}_{k}"][m, layer, q], np.float64) for k in (
                        "down", "down_bias", "up", "up_bias", "norm_scale", "norm_bias")}
                    want = numpy_adapter(np.asarray(y[b], np.float64), *w.values())
                    np.testing.assert_allclose(got[layer, q, b], want, rtol=1e-5, atol=1e-5)
    # Examples of different tasks get different adapters unless shared.
    assert np.allclose(got[:, :, 1], got[:, :, 0]) == shared or not np.allclose(y[1], y[0])
    assert p["encoder_down"].shape == (1 if shared else TASKS, 2, 2, 16, 16 // REDUCTION)


def test_init_is_the_authors(tiny_config):
    method = Adapters(tiny_config, TASKS, reduction_factor=REDUCTION)
    params = nn.unbox(method.init(jax.random.PRNGKey(0), TASK_IDS, jnp.ones((4, 3), jnp.int32),
                                  Embed(64, tiny_config.emb_dim))["params"])
    assert np.std(np.concatenate([params["encoder_down"].ravel(), params["decoder_up"].ravel()])
                  ) == pytest.approx(0.01, rel=0.1)
    np.testing.assert_array_equal(params["decoder_norm_scale"], 1.0)
    for name in ("down_bias", "up_bias", "norm_bias"):
        np.testing.assert_array_equal(params[f"encoder_{name}"], 0.0)


# T5 v1.0 Base (Raffel et al. 2020): d 768, 12 + 12 layers; r 32 -> b 24; 8 GLUE tasks;
# HyperFormer(++): t 64, projector 192 (or 64) -> 128 -> 64, p 64. Counted by hand from the
# architecture (each adapter: D, b_D, U, b_U, γ, β), independently of the methods' code.
D, B, L, TASKS_GLUE, t, h, p = 768, 24, 12, 8, 64, 128, 64
ADAPTER = D * B + B + B * D + D + 2 * D  # 39,192
NORM_SCALES = (2 * L + 1 + 3 * L + 1) * D  # encoder 2 a layer + final, decoder 3 + final
EXPECTED_TRAINABLE = {
    "adapters": TASKS_GLUE * 2 * 2 * L * ADAPTER + NORM_SCALES,
    "single_adapter": 2 * 2 * L * ADAPTER + NORM_SCALES,
    "hyperformer": TASKS_GLUE * t + 2 * (t * h + h + h * p + p + 2 * p
                                         + 2 * L * (p + 1) * ADAPTER) + NORM_SCALES,
    "hyperformer_pp": TASKS_GLUE * t + 2 * ((L + 2) * t + 3 * t * h + h + h * p + p + 2 * p
                                            + (p + 1) * ADAPTER) + NORM_SCALES,
}
BACKBONE_BASE = 222_903_552  # HF t5-base's parameter count (its vocabulary of 32,128)


def test_counts_at_t5_base_with_eight_tasks_and_the_papers_share():
    config = CONFIGS["t5_base"]
    assert params_lib.backbone_count(config) == BACKBONE_BASE
    for name, trainable in EXPECTED_TRAINABLE.items():
        method = registered()[name].build(config, TASKS_GLUE)
        assert method.parameter_count(config) == trainable - NORM_SCALES, name
        assert params_lib.trainable_count(config, method) == trainable, name
    share = EXPECTED_TRAINABLE["hyperformer_pp"] / TASKS_GLUE / BACKBONE_BASE
    assert round(100 * share, 2) == 0.29  # the paper's "0.29% parameters per task"
    assert EXPECTED_TRAINABLE["hyperformer_pp"] == 5_211_056


def test_report_params_prints_the_three_with_their_per_task_shares(monkeypatch, capsys):
    sizes = {"t5_base": CONFIGS["t5_base"]}
    monkeypatch.setattr(params_lib, "parameter_report",
                        functools.partial(params_lib.parameter_report, configs=sizes))
    assert cli.main(["report", "--params"]) == 0
    out = capsys.readouterr().out
    for label, name in (("Adapters", "adapters"), ("HyperFormer", "hyperformer"),
                        ("HyperFormer++", "hyperformer_pp")):
        row = out[out.index(f"\n  {label} "):].splitlines()[1:5]
        share = EXPECTED_TRAINABLE[name] / TASKS_GLUE / BACKBONE_BASE
        assert f"{100 * share:.2f}%/task" in row[3], (label, row)
    assert "0.29%/task" in out[out.index("HyperFormer++"):]
