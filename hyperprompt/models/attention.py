"""Multi-head dot-product attention with a K/V-prefix injection point and a KV cache."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from hyperprompt.models.conditioning import KVPrefix
from hyperprompt.models.layers import Dense, default_kernel_init

Array = jax.Array
NEG_INF = -1e10


def dot_product_attention(
    query: Array, key: Array, value: Array, bias: Array, dropout_fn=None
) -> Array:
    """query [B, Q, H, Dh], key/value [B, K, H, Dh], bias [B|1, H, Q, K] -> [B, Q, H, Dh].

    No 1/sqrt(Dh) here: T5 folds it into the query initialiser. Softmax in float32.
    """
    logits = jnp.einsum("bqhd,bkhd->bhqk", query, key).astype(jnp.float32) + bias
    weights = jax.nn.softmax(logits, axis=-1)
    sow_weights = weights
    if dropout_fn is not None:
        weights = dropout_fn(weights)
    out = jnp.einsum("bhqk,bkhd->bqhd", weights.astype(value.dtype), value)
    return out, sow_weights


def mask_to_bias(mask: Array | None, bias: Array | None) -> Array:
    """Boolean mask [B, 1, Q, K] and additive bias [.., H, Q, K] -> one additive bias."""
    total = jnp.zeros((), jnp.float32) if bias is None else bias.astype(jnp.float32)
    if mask is not None:
        total = total + jnp.where(mask, 0.0, NEG_INF)
    return total


class MultiHeadAttention(nn.Module):
    """t5x-named attention: `query|key|value/kernel` [embed, joined_kv], `out/kernel`.

    With `decode=True` and an initialised `cache` collection, inputs are one
    token; keys/values go into a preallocated cache [B, T, H, Dh] and `bias`
    (full [.., H, T, T]) is sliced at the cache index, as t5x does.
    """

    num_heads: int
    head_dim: int
    dropout_rate: float = 0.0
    deterministic: bool = True
    decode: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(
        self,
        inputs_q: Array,
        inputs_kv: Array,
        mask: Array | None,
        bias: Array | None,
        kv_prefix: KVPrefix | None = None,
    ) -> Array:
        """inputs [B, Q|K, D]; mask [B, 1, Q, K] bool; bias [1, H, Q, K]; prefix [B, P, H, Dh]."""
        joined = self.num_heads * self.head_dim
        depth_scaling = jnp.sqrt(self.head_dim).astype(jnp.float32)

        def query_init(*args):
            return default_kernel_init(*args) / depth_scaling

        def project(name, x, init=default_kernel_init):
            y = Dense(joined, ("embed", "joined_kv"), init, self.dtype, name=name)(x)
            return y.reshape(*x.shape[:-1], self.num_heads, self.head_dim)

        query = project("query", inputs_q, query_init)
        key = project("key", inputs_kv)
        value = project("value", inputs_kv)
        query = nn.with_logical_constraint(query, ("batch", "length", "heads", "kv"))
        key = nn.with_logical_constraint(key, ("batch", "length", "heads", "kv"))
        value = nn.with_logical_constraint(value, ("batch", "length", "heads", "kv"))

        if self.decode:
            key, value, mask, bias = self._update_cache(key, value, mask, bias)

        if kv_prefix is not None:
            key, value, mask, bias = _prepend_prefix(kv_prefix, key, value, mask, bias)

        dropout_fn = None
        if not self.deterministic and self.dropout_rate > 0:
            dropout_fn = lambda w: nn.Dropout(self.dropout_rate)(w, deterministic=False)
        out, weights = dot_product_attention(
            query, key, value, mask_to_bias(mask, bias), dropout_fn
        )
        self.sow("intermediates", "attention_weights", weights)
        out = out.reshape(*out.shape[:-2], joined)
        return Dense(inputs_q.shape[-1], ("joined_kv", "embed"), default_kernel_init, self.dtype,
                     name="out")(out)

    def _update_cache(self, key, value, mask, bias):
        """Write this step's key/value at the cache index; mask the unwritten slots."""
        initialised = self.has_variable("cache", "cached_key")
        cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape, key.dtype)
        cached_value = self.variable("cache", "cached_value", jnp.zeros, value.shape, value.dtype)
        cache_index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
        if not initialised:  # the init call only allocates the cache (full length)
            return key, value, mask, bias
        batch, length, heads, head_dim = cached_key.value.shape
        if key.shape[1] != 1:
            raise ValueError(f"decode=True expects one token per step, got {key.shape[1]}.")
        index = cache_index.value
        cached_key.value = jax.lax.dynamic_update_slice(cached_key.value, key, (0, index, 0, 0))
        cached_value.value = jax.lax.dynamic_update_slice(
            cached_value.value, value, (0, index, 0, 0)
        )
        cache_index.value = index + 1
        step_mask = (jnp.arange(length) <= index)[None, None, None, :]
        mask = step_mask if mask is None else jnp.logical_and(mask, step_mask)
        if bias is not None:
            bias = jax.lax.dynamic_slice_in_dim(bias, index, 1, axis=-2)
        return cached_key.value, cached_value.value, mask, bias


def _prepend_prefix(prefix: KVPrefix, key, value, mask, bias):
    """K, V = [prefix; K], [prefix; V]; every query sees every prefix position (bias 0)."""
    plen = prefix.key.shape[1]
    key = jnp.concatenate([prefix.key.astype(key.dtype), key], axis=1)
    value = jnp.concatenate([prefix.value.astype(value.dtype), value], axis=1)
    if mask is not None:
        mask = jnp.concatenate([jnp.ones((*mask.shape[:-1], plen), bool), mask], axis=-1)
    if bias is not None:
        bias = jnp.concatenate([jnp.zeros((*bias.shape[:-1], plen), bias.dtype), bias], axis=-1)
    return key, value, mask, bias
