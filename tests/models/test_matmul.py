"""matmul: jnp's product and gradients, and a kernel gradient that never transposes the
[tokens, f] cotangent on CPU (the layout that made the vocabulary head slow)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperprompt.models.matmul import matmul


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_value_and_gradients_equal_einsum(dtype):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 3, 5)), dtype)
    kernel = jnp.asarray(rng.normal(size=(5, 7)), dtype)
    weights = jnp.asarray(rng.normal(size=(2, 3, 7)), dtype)

    def loss(fn):
        return lambda x, k: jnp.sum(fn(x, k).astype(jnp.float32) ** 2 * weights)

    einsum = lambda x, k: jnp.einsum("...d,df->...f", x, k)  # noqa: E731
    tol = 1e-6 if dtype == jnp.float32 else 2e-2
    np.testing.assert_allclose(np.float32(matmul(x, kernel)), np.float32(einsum(x, kernel)),
                               rtol=tol)
    for ours, ref in zip(jax.grad(loss(matmul), (0, 1))(x, kernel),
                         jax.grad(loss(einsum), (0, 1))(x, kernel), strict=True):
        assert ours.dtype == ref.dtype and ours.shape == ref.shape
        np.testing.assert_allclose(np.float32(ours), np.float32(ref), rtol=tol, atol=tol)


def test_kernel_gradient_does_not_transpose_the_cotangent():
    tokens, d, vocab = 512, 128, 4096
    x, kernel = jnp.ones((tokens, d)), jnp.ones((d, vocab))
    grad = jax.jit(jax.grad(lambda k, x: jnp.sum(jnp.sin(matmul(x, k)))))
    hlo = grad.lower(kernel, x).compile().as_text()
    assert f"f32[{vocab},{tokens}]" not in hlo, "the [f, N] transpose of the cotangent is back"
    assert f"f32[{d},{tokens}]" in hlo  # x's transpose, materialised instead
