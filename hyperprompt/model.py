"""Loss, decoding and scoring around a T5 network (t5x's EncoderDecoderModel, reduced).

Batches are dicts of int32 arrays as the feature converter emits them:
`encoder_input_tokens` [B, S], `decoder_input_tokens`, `decoder_target_tokens`,
`decoder_loss_weights` [B, T], and `task_ids` [B]; packed training batches add seqio's
`encoder_segment_ids`, `encoder_positions` [B, S], `decoder_segment_ids`,
`decoder_positions` [B, T].
"""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from hyperprompt.argmax import argmax
from hyperprompt.decoding import greedy_decode

Array = jax.Array
Batch = Mapping[str, Array]
NUM_REAL_TARGET_TOKENS = "NUM_REAL_TARGET_TOKENS"
PACKING_FEATURES = ("encoder_segment_ids", "decoder_segment_ids", "encoder_positions",
                    "decoder_positions")


def cross_entropy_with_z_loss(logits: Array, targets: Array, z_loss: float
                              ) -> tuple[Array, Array]:
    """Per-token cross entropy from integer labels (no one-hot) plus z_loss * logsumexp^2.

    logits [B, T, V] float32, targets [B, T] -> (total [B, T], z_term [B, T]).
    """
    log_z = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    z_term = z_loss * jnp.square(log_z)
    return log_z - target_logit + z_term, z_term


class EncoderDecoderModel:
    """t5x-style model: owns the network, the loss and the decoding loop."""

    def __init__(self, module: nn.Module, z_loss: float = 1e-4,
                 loss_normalizing_factor: float | str | None = NUM_REAL_TARGET_TOKENS):
        if isinstance(loss_normalizing_factor, str) and (
                loss_normalizing_factor != NUM_REAL_TARGET_TOKENS):
            raise ValueError(f"LOSS_NORMALIZING_FACTOR={loss_normalizing_factor!r}: use a number, "
                             f"None (sum) or '{NUM_REAL_TARGET_TOKENS}'.")
        self.module = module
        self.z_loss = z_loss
        self.loss_normalizing_factor = loss_normalizing_factor

    def init(self, rng: Array, encoder_length: int, decoder_length: int, batch_size: int = 1):
        """Variables (boxed with logical axes) for the given feature lengths."""
        enc = jnp.ones((batch_size, encoder_length), jnp.int32)
        dec = jnp.ones((batch_size, decoder_length), jnp.int32)
        return self.module.init(rng, enc, dec, dec, enable_dropout=False,
                                task_ids=jnp.zeros((batch_size,), jnp.int32))

    def input_prompt_length(self) -> int:
        """Positions of the method's input prompt (0: none), read off the shape of its
        Conditioning (traced abstractly: nothing is computed or allocated)."""
        module = self.module
        cond = jax.eval_shape(lambda: module.init_with_output(
            jax.random.PRNGKey(0), jnp.zeros((1,), jnp.int32), jnp.ones((1, 1), jnp.int32),
            False, method=module.condition)[0])
        return 0 if cond.input_prompt is None else cond.input_prompt.shape[1]

    def logits(self, params, batch: Batch, dropout_rng: Array | None = None) -> Array:
        """Teacher-forced logits [B, T, V]; dropout when `dropout_rng` is given."""
        rngs = None if dropout_rng is None else {"dropout": dropout_rng}
        packing = {k: batch[k] for k in PACKING_FEATURES if k in batch}
        return self.module.apply(
            {"params": params}, batch["encoder_input_tokens"], batch["decoder_input_tokens"],
            batch["decoder_target_tokens"], **packing, enable_dropout=dropout_rng is not None,
            task_ids=batch.get("task_ids"), rngs=rngs)

    def loss_fn(self, params, batch: Batch, dropout_rng: Array | None = None
                ) -> tuple[Array, dict[str, Array]]:
        """Summed token loss divided by LOSS_NORMALIZING_FACTOR, and metrics (sums)."""
        logits = self.logits(params, batch, dropout_rng)
        targets = batch["decoder_target_tokens"]
        weights = batch.get("decoder_loss_weights", (targets > 0).astype(jnp.float32))
        weights = weights.astype(jnp.float32)
        token_loss, z_term = cross_entropy_with_z_loss(logits, targets, self.z_loss)
        num_tokens = jnp.sum(weights)
        factor = self.loss_normalizing_factor
        if factor == NUM_REAL_TARGET_TOKENS:
            factor = jnp.maximum(num_tokens, 1.0)
        elif factor is None:
            factor = 1.0
        loss = jnp.sum(token_loss * weights) / factor
        correct = (argmax(logits) == targets).astype(jnp.float32) * weights
        metrics = {
            "loss": loss,
            "cross_ent_loss_per_token": jnp.sum((token_loss - z_term) * weights)
            / jnp.maximum(num_tokens, 1.0),
            "z_loss_per_token": jnp.sum(z_term * weights) / jnp.maximum(num_tokens, 1.0),
            "accuracy": jnp.sum(correct) / jnp.maximum(num_tokens, 1.0),
            "num_tokens": num_tokens,
        }
        return loss, metrics

    def score_batch(self, params, batch: Batch) -> Array:
        """Log-likelihood of each target sequence: [B]."""
        logits = self.logits(params, batch)
        targets = batch["decoder_target_tokens"]
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        token_ll = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
        weights = batch.get("decoder_loss_weights", targets > 0)
        return jnp.sum(token_ll * weights, axis=-1)

    def predict_batch(self, params, batch: Batch, eos_id: int, decode_fn=greedy_decode) -> Array:
        """Decode [B, T] tokens (T = decoder feature length) with a KV cache.

        The method's Conditioning and the encoder run once; each step runs one
        decoder position against the cache.
        """
        enc_tokens = batch["encoder_input_tokens"]
        batch_size, max_len = batch["decoder_input_tokens"].shape
        task_ids = batch.get("task_ids")
        variables = {"params": params}
        cond = self.module.apply(variables, task_ids, enc_tokens, False,
                                 method=self.module.condition)
        encoded = self.module.apply(variables, enc_tokens, enable_dropout=False,
                                    conditioning=cond, method=self.module.encode)

        def decode_step(tokens, cache=None):
            dummy = {"cache": cache} if cache is not None else {}
            return self.module.apply(
                {**variables, **dummy}, encoded, enc_tokens, tokens, None,
                enable_dropout=False, decode=True, max_decode_length=max_len,
                conditioning=cond, method=self.module.decode, mutable=["cache"])

        cache_shapes = jax.eval_shape(
            lambda: decode_step(jnp.zeros((batch_size, max_len), jnp.int32))[1]["cache"])
        cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), cache_shapes)

        def tokens_to_logits(tokens, cache, step):
            logits, new_vars = decode_step(tokens, cache)
            return logits[:, -1], new_vars["cache"]

        return decode_fn(tokens_to_logits, cache, batch_size, max_len, eos_id)
