"""hyperprompt.argmax against jnp.argmax: ties, -inf rows, widths off the block."""

import jax.numpy as jnp
import numpy as np
import pytest

from hyperprompt.argmax import BLOCK, argmax


@pytest.mark.parametrize("width", [11, BLOCK, 3 * BLOCK, 32128])
def test_first_maximum_as_jnp_argmax(width):
    # Values on a coarse grid tie often, also across blocks; a row of -inf; a late maximum.
    rng = np.random.default_rng(width)
    x = rng.integers(0, 4, size=(64, 3, width)).astype(np.float32)
    x[0, 0] = -np.inf
    x[2, 2, -1] = 9.0
    expected = np.asarray(jnp.argmax(jnp.asarray(x), axis=-1))
    at_max = x == x.max(-1, keepdims=True)
    assert ((at_max.sum(-1) > 1) & (expected > 0)).sum() > 20  # ties argmax breaks late too
    np.testing.assert_array_equal(argmax(jnp.asarray(x)), expected)
