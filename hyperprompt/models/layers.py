"""T5 building blocks with t5x parameter names and logical axis names.

Every parameter is created through `nn.with_logical_partitioning`, so its
logical axes (`vocab`, `embed`, `mlp`, `joined_kv`, `heads`, `relpos_buckets`)
travel with it and t5x-style rules map them onto a mesh.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hyperprompt.models.matmul import matmul

Array = jax.Array
Initializer = Callable[..., Array]

# t5x's initialisers: kernels are fan-in scaled, the embedding is N(0, 1).
default_kernel_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal")
mlp_kernel_init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
embedding_init = nn.initializers.normal(stddev=1.0)
relpos_init = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")


# Every published T5 checkpoint normalises with this epsilon; the backbone uses no other.
LAYER_NORM_EPSILON = 1e-6


def rms_norm(x: Array, scale: Array, eps: float = LAYER_NORM_EPSILON) -> Array:
    """T5's LayerNorm: no mean subtraction, no bias, statistics in float32."""
    x32 = x.astype(jnp.float32)
    var = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
    return (x32 * jax.lax.rsqrt(var + eps) * scale).astype(x.dtype)


class RMSNorm(nn.Module):
    """T5 layer norm; parameter `scale` [embed]."""

    @nn.compact
    def __call__(self, x: Array) -> Array:
        scale = self.param(
            "scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
            (x.shape[-1],), jnp.float32,
        )
        return rms_norm(x, scale)


class Dense(nn.Module):
    """Bias-free projection with a 2-D kernel [in, out] (t5x stores joined_kv flat).

    `kernel_hook(x, kernel) -> y` replaces `x @ kernel` where a method gates the
    weight per example (the FFN-gate injection point); the default is a matmul.
    """

    features: int
    kernel_axes: tuple[str, str]
    kernel_init: Initializer = default_kernel_init
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, kernel_hook: Callable[[Array, Array], Array] | None = None):
        kernel = self.param(
            "kernel", nn.with_logical_partitioning(self.kernel_init, self.kernel_axes),
            (x.shape[-1], self.features), jnp.float32,
        )
        kernel = kernel.astype(self.dtype)
        x = x.astype(self.dtype)
        if kernel_hook is not None:
            return kernel_hook(x, kernel)
        return matmul(x, kernel)


class Embed(nn.Module):
    """Token embedding [vocab, embed]; lookup by gather, `attend` for tied logits."""

    num_embeddings: int
    features: int
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.embedding = self.param(
            "embedding", nn.with_logical_partitioning(embedding_init, ("vocab", "embed")),
            (self.num_embeddings, self.features), jnp.float32,
        )

    def __call__(self, tokens: Array) -> Array:
        """tokens [...] int -> [..., embed]."""
        return jnp.take(self.embedding, tokens, axis=0).astype(self.dtype)

    def attend(self, x: Array) -> Array:
        """x [..., embed] -> logits [..., vocab] against the embedding table."""
        return matmul(x.astype(self.dtype), self.embedding.astype(self.dtype).T)


_ACTIVATIONS = {"relu": nn.relu, "gelu": nn.gelu, "linear": lambda x: x}


class MlpBlock(nn.Module):
    """T5 FFN: `wi` (one activation) or gated `wi_0`, `wi_1`, ... then `wo`."""

    mlp_dim: int
    activations: Sequence[str]
    dropout_rate: float
    deterministic: bool
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array, kernel_hook: Callable[..., Array] | None = None) -> Array:
        """x [B, T, D] -> [B, T, D]. `kernel_hook(x, name, h, kernel)` is the FFN-gate
        injection point: it replaces `h @ kernel` for every matrix (`name` wi / wi_0, wi_1 /
        wo), given the block's input `x`."""

        def hook(name: str):
            if kernel_hook is None:
                return None
            return lambda h, kernel: kernel_hook(x, name, h, kernel)

        hidden = None
        for i, act in enumerate(self.activations):
            name = "wi" if len(self.activations) == 1 else f"wi_{i}"
            h = Dense(self.mlp_dim, ("embed", "mlp"), mlp_kernel_init, self.dtype, name=name)(
                x, hook(name)
            )
            h = _ACTIVATIONS[act](h)
            hidden = h if hidden is None else hidden * h
        hidden = nn.with_logical_constraint(hidden, ("batch", "length", "mlp"))
        hidden = nn.Dropout(self.dropout_rate, broadcast_dims=(-2,))(
            hidden, deterministic=self.deterministic
        )
        return Dense(x.shape[-1], ("mlp", "embed"), mlp_kernel_init, self.dtype, name="wo")(
            hidden, hook("wo"))


def relative_position_bucket(
    relative_position: Array, bidirectional: bool, num_buckets: int, max_distance: int
) -> Array:
    """T5's bucketing of (key - query) distances: half exact, half log-spaced."""
    ret = 0
    n = -relative_position
    if bidirectional:
        num_buckets //= 2
        ret += (n < 0).astype(np.int32) * num_buckets
        n = np.abs(n)
    else:
        n = np.maximum(n, 0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    val_if_large = max_exact + (
        np.log(n.astype(np.float32) / max_exact + np.finfo(np.float32).eps)
        / np.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).astype(np.int32)
    val_if_large = np.minimum(val_if_large, num_buckets - 1)
    return ret + np.where(is_small, n, val_if_large)


class RelativePositionBiases(nn.Module):
    """One per stack: `rel_embedding` [heads, relpos_buckets] -> bias [1, H, Q, K]."""

    num_buckets: int
    max_distance: int
    num_heads: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, qlen: int, klen: int, bidirectional: bool) -> Array:
        context = np.arange(qlen, dtype=np.int32)[:, None]
        memory = np.arange(klen, dtype=np.int32)[None, :]
        buckets = relative_position_bucket(
            memory - context, bidirectional, self.num_buckets, self.max_distance
        )
        table = self.param(
            "rel_embedding",
            nn.with_logical_partitioning(relpos_init, ("heads", "relpos_buckets")),
            (self.num_heads, self.num_buckets), jnp.float32,
        )
        # Gather, not one-hot: [H, Q, K].
        bias = jnp.take(table, jnp.asarray(buckets), axis=1)
        return bias[None].astype(self.dtype)
