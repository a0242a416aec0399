"""optax's Adafactor, with its two full-size reductions made cheap for XLA:CPU.

Same chain, hyper-parameters, state (`optax`'s `FactoredState`, so checkpoints and t5x
state loading are unchanged) and updates as `optax.adafactor`, equal to float32 rounding
(tests/test_adafactor.py). Two passes differ:
- the factored second moments' row and column means are matrix-vector products; XLA:CPU
  reduces a [d_model, vocab] kernel over its leading axis ~3x slower than a dot does
  (T5 1.1 small's logits kernel: 84 -> 30 ms);
- the parameter-scale RMS is `max(rms(p), 1e-3)` in one pass; optax's `safe_root_mean_squares`
  adds a full-size select and a second pass to keep *its* gradient finite, which an
  optimizer never takes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from optax._src.factorized import FactoredState

Array = jax.Array
MIN_DIM_SIZE_TO_FACTOR = 128  # optax's and t5x's default
EPSILON = 1e-30


def factored_dims(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """(second-largest, largest) axis of a factored statistic, None when not factored
    (optax's rule: rank >= 2 and the second-largest axis >= 128)."""
    if len(shape) < 2:
        return None
    order = np.argsort(shape)
    if shape[order[-2]] < MIN_DIM_SIZE_TO_FACTOR:
        return None
    return int(order[-2]), int(order[-1])


def _mean_over(x: Array, axis: int) -> Array:
    """jnp.mean(x, axis) as a product with a 1/n vector (a dot, not a strided reduce)."""
    weights = jnp.full((x.shape[axis],), 1.0 / x.shape[axis], x.dtype)
    return jnp.tensordot(x, weights, axes=([axis], [0]))


def scale_by_factored_rms(decay_rate: float = 0.8, step_offset: int = 0
                          ) -> optax.GradientTransformation:
    """optax.scale_by_factored_rms (factored, T5's decay 1 - t^-decay_rate)."""
    reference = optax.scale_by_factored_rms(decay_rate=decay_rate, step_offset=step_offset)

    def one(grad: Array, v_row: Array, v_col: Array, v: Array, decay: Array):
        grad_sqr = jnp.square(grad) + EPSILON
        dims = factored_dims(grad.shape)
        if dims is None:
            new_v = (decay * v + (1.0 - decay) * grad_sqr).astype(grad.dtype)
            return grad * new_v ** -0.5, v_row, v_col, new_v
        d1, d0 = dims
        new_v_row = (decay * v_row + (1.0 - decay) * _mean_over(grad_sqr, d0)).astype(grad.dtype)
        new_v_col = (decay * v_col + (1.0 - decay) * _mean_over(grad_sqr, d1)).astype(grad.dtype)
        reduced_d1 = d1 - 1 if d1 > d0 else d1
        row_factor = (new_v_row / jnp.mean(new_v_row, axis=reduced_d1, keepdims=True)) ** -0.5
        update = (grad * jnp.expand_dims(row_factor, d0)
                  * jnp.expand_dims(new_v_col ** -0.5, d1))
        return update, new_v_row, new_v_col, v

    def update(grads, state: FactoredState, params=None):
        step = jnp.asarray(state.count - step_offset + 1, jnp.float32)
        decay = 1.0 - step ** (-decay_rate)
        treedef = jax.tree.structure(grads)
        trees = (grads, state.v_row, state.v_col, state.v)
        out = [one(*leaves, decay) for leaves in zip(
            *(treedef.flatten_up_to(t) for t in trees), strict=True)]
        updates, v_row, v_col, v = (treedef.unflatten([o[i] for o in out]) for i in range(4))
        return updates, FactoredState(optax.safe_increment(state.count), v_row, v_col, v)

    return optax.GradientTransformation(reference.init, update)


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
    """optax.adafactor's chain (momentum off, factored) with the two passes above."""
    chain = [scale_by_factored_rms(decay_rate, decay_offset)]
    if clipping_threshold is not None:
        chain.append(optax.clip_by_block_rms(clipping_threshold))
    chain.append(optax.scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        chain.append(scale_by_param_block_rms())
    if weight_decay_rate is not None:
        chain.append(optax.add_decayed_weights(weight_decay_rate))
    chain.append(optax.scale(-1))
    return optax.chain(*chain)
