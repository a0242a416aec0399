"""hyperprompt.adafactor against optax.adafactor: same state, same updates."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hyperprompt import adafactor

SHAPES = {"head": (256, 1000), "embedding": (1000, 256), "layers": (2, 256, 384),
          "small": (64, 96), "bias": (300,), "scale": ()}


@pytest.mark.parametrize("settings", [
    {}, {"weight_decay_rate": 1e-2, "decay_offset": -3},
    {"multiply_by_parameter_scale": False, "clipping_threshold": None}])
def test_state_and_updates_equal_optax(settings):
    rng = np.random.default_rng(0)
    params = {k: jnp.asarray(rng.normal(size=s), jnp.float32) for k, s in SHAPES.items()}
    ours = adafactor.adafactor(learning_rate=1e-2, **settings)
    ref = optax.adafactor(learning_rate=1e-2, **settings)
    state, ref_state = ours.init(params), ref.init(params)
    assert jax.tree.structure(state) == jax.tree.structure(ref_state)
    for step in range(4):
        grads = {k: jnp.asarray(rng.normal(size=s) * 10.0 ** (step - k.count("a")), jnp.float32)
                 for k, s in SHAPES.items()}
        updates, state = jax.jit(ours.update)(grads, state, params)
        ref_updates, ref_state = jax.jit(ref.update)(grads, ref_state, params)
        ours_leaves, ref_leaves = jax.tree.leaves((updates, state)), jax.tree.leaves(
            (ref_updates, ref_state))
        for a, b in zip(ours_leaves, ref_leaves, strict=True):
            assert np.isfinite(b).all()
            np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-6 * np.abs(b).max())
        params = optax.apply_updates(params, updates)
