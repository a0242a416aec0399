"""Attention against a naive numpy softmax over [prefix; keys]."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from hyperprompt.models.attention import MultiHeadAttention
from hyperprompt.models.conditioning import KVPrefix

B, Q, H, DH, D, P = 2, 5, 2, 4, 8, 3


def naive_attention(params, x, mask, bias, prefix_k=None, prefix_v=None):
    """Explicit per-head softmax(q k^T + bias) v, keys = [prefix; x W_k]."""
    p = {k: np.asarray(v["kernel"], np.float64) for k, v in params.items()}
    x = np.asarray(x, np.float64)
    q = (x @ p["query"]).reshape(B, Q, H, DH)
    k = (x @ p["key"]).reshape(B, Q, H, DH)
    v = (x @ p["value"]).reshape(B, Q, H, DH)
    if prefix_k is not None:
        k = np.concatenate([prefix_k, k], axis=1)
        v = np.concatenate([prefix_v, v], axis=1)
        mask = np.concatenate([np.ones((B, 1, Q, P), bool), mask], axis=-1)
        bias = np.concatenate([np.zeros((1, H, Q, P)), bias], axis=-1)
    out = np.zeros((B, Q, H, DH))
    for b in range(B):
        for h in range(H):
            logits = q[b, :, h] @ k[b, :, h].T + bias[0, h]
            logits = np.where(mask[b, 0], logits, -1e10)
            w = np.exp(logits - logits.max(-1, keepdims=True))
            w /= w.sum(-1, keepdims=True)
            out[b, :, h] = w @ v[b, :, h]
    return out.reshape(B, Q, H * DH) @ p["out"]


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(B, Q, D)), jnp.float32)
    valid = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], bool)
    causal = np.tril(np.ones((Q, Q), bool))
    mask = (valid[:, :, None] & valid[:, None, :] & causal)[:, None]
    bias = rng.normal(size=(1, H, Q, Q)).astype(np.float32)
    module = MultiHeadAttention(num_heads=H, head_dim=DH)
    params = nn.unbox(module.init(jax.random.PRNGKey(0), x, x, mask, bias))["params"]
    return module, params, x, mask, bias, rng


def test_prefix_attention_equals_naive_softmax_over_concatenated_keys(setup):
    module, params, x, mask, bias, rng = setup
    pk = rng.normal(size=(B, P, H, DH)).astype(np.float32)
    pv = rng.normal(size=(B, P, H, DH)).astype(np.float32)
    got = module.apply({"params": params}, x, x, mask, bias, KVPrefix(pk, pv))
    want = naive_attention(params, x, mask, bias, pk, pv)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_no_prefix_equals_naive(setup):
    module, params, x, mask, bias, _ = setup
    got = module.apply({"params": params}, x, x, mask, bias)
    np.testing.assert_allclose(got, naive_attention(params, x, mask, bias), atol=1e-5)


def test_zero_length_prefix_is_bit_identical_to_no_prefix(setup):
    module, params, x, mask, bias, _ = setup
    empty = KVPrefix(jnp.zeros((B, 0, H, DH)), jnp.zeros((B, 0, H, DH)))
    plain = module.apply({"params": params}, x, x, mask, bias)
    prefixed = module.apply({"params": params}, x, x, mask, bias, empty)
    assert np.array_equal(np.asarray(plain), np.asarray(prefixed))


def test_fully_masked_query_still_sees_prefix(setup):
    """Queries attend to the prompt even where every key is masked (decoder row 0)."""
    module, params, x, mask, bias, rng = setup
    pk = rng.normal(size=(B, P, H, DH)).astype(np.float32)
    pv = rng.normal(size=(B, P, H, DH)).astype(np.float32)
    none = np.zeros_like(mask)
    got = module.apply({"params": params}, x, x, none, bias, KVPrefix(pk, pv))
    want = naive_attention(params, x, none, bias, pk, pv)
    np.testing.assert_allclose(got, want, atol=1e-5)
