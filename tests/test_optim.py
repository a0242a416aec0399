"""Freezing and per-group learning rates by parameter-path regex."""

import jax.numpy as jnp
import numpy as np
import optax

from hyperprompt.optim import DEFAULT, FROZEN, make_optimizer, param_labels

PARAMS = {
    "encoder": {"layers_0": {"attention": {"query": {"kernel": jnp.ones((2, 2))}},
                             "pre_mlp_layer_norm": {"scale": jnp.ones((2,))}}},
    "conditioner": {"prompt": jnp.ones((3, 2))},
}
GRADS = {
    "encoder": {"layers_0": {"attention": {"query": {"kernel": jnp.ones((2, 2))}},
                             "pre_mlp_layer_norm": {"scale": jnp.ones((2,))}}},
    "conditioner": {"prompt": jnp.ones((3, 2))},
}


def test_labels_first_match_wins():
    labels = param_labels(PARAMS, frozen=["encoder/.*/kernel"],
                          group_learning_rates={"conditioner/.*": 0.3})
    assert labels["encoder"]["layers_0"]["attention"]["query"]["kernel"] == FROZEN
    assert labels["encoder"]["layers_0"]["pre_mlp_layer_norm"]["scale"] == DEFAULT
    assert labels["conditioner"]["prompt"] == "conditioner/.*"


def test_frozen_get_no_update_and_groups_get_their_learning_rate():
    tx = make_optimizer("adamw", learning_rate=0.1, frozen=["encoder/.*/kernel"],
                        group_learning_rates={"conditioner/.*": 0.01})
    updates, _ = tx.update(GRADS, tx.init(PARAMS), PARAMS)
    # With weight decay 0, an AdamW update is linear in the learning rate.
    ref = optax.adamw(1.0, weight_decay=0.0)
    unit, _ = ref.update(GRADS, ref.init(PARAMS), PARAMS)
    np.testing.assert_array_equal(
        updates["encoder"]["layers_0"]["attention"]["query"]["kernel"], 0.0)
    np.testing.assert_allclose(updates["encoder"]["layers_0"]["pre_mlp_layer_norm"]["scale"],
                               0.1 * unit["encoder"]["layers_0"]["pre_mlp_layer_norm"]["scale"],
                               rtol=1e-6)
    np.testing.assert_allclose(updates["conditioner"]["prompt"],
                               0.01 * unit["conditioner"]["prompt"], rtol=1e-6)


def test_adafactor_is_t5_default():
    tx = make_optimizer()
    ref = optax.adafactor(1e-3, decay_rate=0.8, multiply_by_parameter_scale=True,
                          clipping_threshold=1.0)
    got, _ = tx.update(GRADS, tx.init(PARAMS), PARAMS)
    want, _ = ref.update(GRADS, ref.init(PARAMS), PARAMS)
    for a, b in zip(jnp.asarray(got["conditioner"]["prompt"]).ravel(),
                    jnp.asarray(want["conditioner"]["prompt"]).ravel(), strict=True):
        assert float(a) == float(b)
