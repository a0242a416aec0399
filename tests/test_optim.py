"""Optimizers: parameter groups, T5's Adafactor against an independent implementation, and
layer stacks optimised layer by layer (scanned == unrolled)."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hyperprompt import partitioning
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.layout import scan_params, unscan_params
from hyperprompt.models.t5 import Transformer
from hyperprompt.optim import (
    DEFAULT,
    FROZEN,
    STACKED,
    ParamGroup,
    layer_axes,
    make_optimizer,
    param_labels,
)
from hyperprompt.state import abstract_boxed

PARAMS = {
    "encoder": {"layers_0": {"attention": {"query": {"kernel": jnp.ones((2, 2))}},
                             "pre_mlp_layer_norm": {"scale": jnp.ones((2,))}}},
    "conditioner": {"prompt": jnp.ones((3, 2))},
}


def test_labels_first_match_wins_and_stacked_parameters_are_marked():
    groups = [ParamGroup("encoder/.*/kernel", frozen=True),
              ParamGroup("conditioner/.*", optimizer={"learning_rate": 0.3}),
              ParamGroup(".*", frozen=True)]
    labels = param_labels(PARAMS, groups[:2], {"conditioner/prompt": 0})
    assert labels["encoder"]["layers_0"]["attention"]["query"]["kernel"] == FROZEN
    assert labels["encoder"]["layers_0"]["pre_mlp_layer_norm"]["scale"] == DEFAULT
    assert labels["conditioner"]["prompt"] == "1" + STACKED
    assert param_labels(PARAMS, groups[1:])["conditioner"]["prompt"] == "0"  # before ".*"


def test_frozen_get_no_update_and_groups_get_their_learning_rate():
    tx = make_optimizer("adamw", learning_rate=0.1, frozen=["encoder/.*/kernel"],
                        group_learning_rates={"conditioner/.*": 0.01})
    grads = jax.tree.map(lambda x: x * 0.5, PARAMS)
    updates, _ = tx.update(grads, tx.init(PARAMS), PARAMS)
    # With weight decay 0, an AdamW update is linear in the learning rate.
    ref = optax.adamw(1.0, weight_decay=0.0)
    unit, _ = ref.update(grads, ref.init(PARAMS), PARAMS)
    np.testing.assert_array_equal(
        updates["encoder"]["layers_0"]["attention"]["query"]["kernel"], 0.0)
    np.testing.assert_allclose(updates["encoder"]["layers_0"]["pre_mlp_layer_norm"]["scale"],
                               0.1 * unit["encoder"]["layers_0"]["pre_mlp_layer_norm"]["scale"],
                               rtol=1e-6)
    np.testing.assert_allclose(updates["conditioner"]["prompt"],
                               0.01 * unit["conditioner"]["prompt"], rtol=1e-6)


def test_adafactor_settings_are_rejected_for_adamw():
    with pytest.raises(ValueError, match="multiply_by_parameter_scale are Adafactor settings"):
        make_optimizer("adamw", multiply_by_parameter_scale=False)


@pytest.mark.parametrize("settings", [
    {},  # T5's default
    {"multiply_by_parameter_scale": False, "weight_decay": 1e-2, "decay_rate": 0.5},
    {"step_offset": -1000},  # fine-tuning a checkpoint without Adafactor state (HF) at t=1000
], ids=["t5", "prompt_style", "step_offset"])
def test_adafactor_equals_t5s_algorithm(settings, t5_adafactor):
    rng = np.random.default_rng(0)
    shapes = {"factored": (160, 130), "factored_3d": (3, 140, 150), "matrix": (5, 7),
              "vector": (9,)}
    params = {k: (rng.normal(size=s) * rng.uniform(0.1, 3)).astype(np.float32)
              for k, s in shapes.items()}
    tx = make_optimizer(learning_rate=0.05, **settings)
    reference = t5_adafactor(0.05, settings.get("decay_rate", 0.8),
                            settings.get("multiply_by_parameter_scale", True),
                            weight_decay=settings.get("weight_decay", 0.0),
                            step=-settings.get("step_offset", 0))
    ours, want = {k: jnp.asarray(v) for k, v in params.items()}, params
    state = tx.init(ours)
    for _ in range(4):
        grads = {k: (rng.normal(size=s) * rng.uniform(0.01, 5)).astype(np.float32)
                 for k, s in shapes.items()}
        updates, state = tx.update({k: jnp.asarray(g) for k, g in grads.items()}, state, ours)
        ours = optax.apply_updates(ours, updates)
        want = reference.step(want, grads)
    for name in shapes:
        np.testing.assert_allclose(ours[name], want[name], rtol=2e-5, atol=1e-6, err_msg=name)


LENGTHS = {"inputs": 6, "targets": 4}


@pytest.fixture(scope="module")
def layouts(tiny_config_module):
    """{scanned: (config, params, grads, layer axes)} for unrolled and scanned stacks, from
    the same parameters (layer 1 at three times layer 0's scale, matrices large enough to be
    factored) and the same batch."""
    config = dataclasses.replace(tiny_config_module, emb_dim=128, num_heads=2, head_dim=64,
                                 mlp_dim=256)
    model = EncoderDecoderModel(Transformer(config))
    params = nn.unbox(model.init(jax.random.PRNGKey(0), 6, 4)["params"])
    for stack in ("encoder", "decoder"):
        params[stack]["layers_1"] = jax.tree.map(lambda x: 3.0 * x, params[stack]["layers_1"])
    rng = np.random.default_rng(1)
    targets = rng.integers(2, 64, size=(8, 4)).astype(np.int32)
    batch = {"encoder_input_tokens": rng.integers(2, 64, size=(8, 6)).astype(np.int32),
             "decoder_input_tokens": np.concatenate([np.zeros((8, 1), np.int32),
                                                     targets[:, :-1]], 1),
             "decoder_target_tokens": targets}
    out = {}
    for scanned in (False, True):
        cfg = dataclasses.replace(config, scan_layers=scanned)
        model = EncoderDecoderModel(Transformer(cfg))
        start = scan_params(params, cfg) if scanned else params
        grads = jax.jit(jax.grad(lambda p, m=model: m.loss_fn(p, batch)[0]))(start)
        with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES):
            axes = layer_axes(abstract_boxed(model, LENGTHS))
        out[scanned] = (cfg, start, grads, axes)
    return out


@pytest.mark.parametrize("optimizer_kwargs", [
    {"learning_rate": 0.01},
    {"learning_rate": 0.01, "frozen": ["decoder/.*"]},
    {"name": "adamw", "learning_rate": 0.01, "weight_decay": 0.1},
    {"name": "adamw", "learning_rate": 0.01, "frozen": [".*mlp.*"]},
], ids=["adafactor", "adafactor_frozen", "adamw", "adamw_frozen"])
def test_scanned_layers_train_exactly_as_unrolled(layouts, optimizer_kwargs):
    """One step from the same parameters and gradients: equal updated parameters."""
    updated = {}
    for scanned, (config, params, grads, axes) in layouts.items():
        tx = make_optimizer(layer_axes=axes, **optimizer_kwargs)
        updates, _ = jax.jit(tx.update)(grads, jax.jit(tx.init)(params), params)
        new = optax.apply_updates(params, updates)
        updated[scanned] = unscan_params(new, config) if scanned else new
    assert "encoder/encoder/mlp/wi_0/kernel" in layouts[True][3]  # scanned: [embed, L, mlp]
    before = layouts[False][1]
    leaves = jax.tree_util.tree_flatten_with_path
    for (path, a), (_, b) in zip(leaves(updated[False])[0], leaves(updated[True])[0],
                                 strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, err_msg=jax.tree_util.keystr(path))
    moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(updated[False]),
                                                   jax.tree.leaves(before), strict=True)]
    assert sum(moved) >= len(moved) // 3  # the step did move (unfrozen) parameters
