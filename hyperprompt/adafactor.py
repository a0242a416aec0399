"""optax's Adafactor with its parameter scale in one pass.

Same chain, hyper-parameters, state (optax's `FactoredState`, so checkpoints and t5x state
loading are unchanged) and updates as `optax.adafactor` (tests/test_adafactor.py), but the
parameter-scale RMS is `max(rms(p), 1e-3)` in one pass. optax's `safe_root_mean_squares`
adds a full-size select and a second pass over every parameter to keep *its own* gradient
finite, which an optimizer never takes: on CPU that was a sixth of the update's time at
T5 1.1 small (`python -m benchmarks.profile_step`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def scale_by_param_block_rms(min_scale: float = 1e-3) -> optax.GradientTransformation:
    """optax.scale_by_param_block_rms: updates times max(rms(param), min_scale)."""

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("Adafactor's parameter scale needs the parameters: call "
                             "update(grads, state, params).")
        return jax.tree.map(lambda u, p: u * jnp.maximum(
            jnp.sqrt(jnp.mean(jnp.square(p))), min_scale), updates, params), state

    return optax.GradientTransformation(optax.init_empty_state, update)


def adafactor(learning_rate: float | optax.Schedule, decay_rate: float = 0.8,
              decay_offset: int = 0, multiply_by_parameter_scale: bool = True,
              clipping_threshold: float | None = 1.0,
              weight_decay_rate: float | None = None) -> optax.GradientTransformation:
    """optax.adafactor's chain (factored, no momentum) with the one-pass parameter scale."""
    chain = [optax.scale_by_factored_rms(decay_rate=decay_rate, step_offset=decay_offset)]
    if clipping_threshold is not None:
        chain.append(optax.clip_by_block_rms(clipping_threshold))
    chain.append(optax.scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        chain.append(scale_by_param_block_rms())
    if weight_decay_rate is not None:
        chain.append(optax.add_decayed_weights(weight_decay_rate))
    chain.append(optax.scale(-1))
    return optax.chain(*chain)
