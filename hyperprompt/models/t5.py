"""The T5 encoder-decoder (v1.0 and v1.1) with conditioning injection points.

Parameter paths and the call signature follow t5x (`EncoderDecoder.__call__`,
`encode`, `decode`), plus the keyword `task_ids`. The network knows nothing
about any method: an optional `conditioner` submodule (injected by gin) maps
`task_ids` to a `Conditioning`, and the layers read whichever fields are set.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from hyperprompt.models.attention import MultiHeadAttention
from hyperprompt.models.conditioning import (
    ATTENTION_POSITION,
    MLP_POSITION,
    Conditioning,
    StackConditioning,
    check_num_layers,
    layer_slice,
)
from hyperprompt.models.configs import T5Config
from hyperprompt.models.layers import Dense, Embed, MlpBlock, RelativePositionBiases, RMSNorm
from hyperprompt.models.masks import causal_mask, encoder_valid_mask, pair_mask

Array = jax.Array

_REMAT = {
    "full": None,
    "dots": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


def _adapt(cond: StackConditioning, position: int, y: Array) -> Array:
    """The adapter injection point: a sublayer's output before the residual add."""
    if cond.adapter is None:
        return y
    norm = None
    if cond.adapter_norm is not None:
        norm = (cond.adapter_norm.scale[:, position], cond.adapter_norm.bias[:, position])
    return cond.adapter.fn(cond.adapter.params, position, y, norm)


def _ffn_hook(cond: StackConditioning):
    """The FFN-gate injection point as MlpBlock's `kernel_hook(x, name, h, kernel)`."""
    if cond.ffn_gate is None:
        return None
    gate = cond.ffn_gate
    return lambda x, name, h, kernel: gate.fn(gate.params, x, name, h, kernel)


class EncoderLayer(nn.Module):
    """Pre-norm self-attention + FFN. Scan-shaped: (x, cond_l, mask, bias) -> (x, None)."""

    config: T5Config
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: Array, cond: StackConditioning, mask: Array, bias: Array):
        cfg, dtype = self.config, jnp.dtype(self.config.dtype)
        drop = lambda h: nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))(
            h, deterministic=self.deterministic)
        h = RMSNorm(name="pre_attention_layer_norm")(x)
        h = MultiHeadAttention(cfg.num_heads, cfg.head_dim, cfg.dropout_rate, self.deterministic,
                               dtype=dtype, name="attention")(h, h, mask, bias, cond.kv_prefix)
        x = x + _adapt(cond, ATTENTION_POSITION, drop(h))
        h = RMSNorm(name="pre_mlp_layer_norm")(x)
        h = MlpBlock(cfg.mlp_dim, cfg.mlp_activations, cfg.dropout_rate, self.deterministic,
                     dtype, name="mlp")(h, _ffn_hook(cond))
        x = x + _adapt(cond, MLP_POSITION, drop(h))
        return nn.with_logical_constraint(x, ("batch", "length", "embed")), None


class DecoderLayer(nn.Module):
    """Self-attention (causal, cached), cross-attention, FFN; scan-shaped like EncoderLayer."""

    config: T5Config
    deterministic: bool = True
    decode: bool = False

    @nn.compact
    def __call__(self, y: Array, cond: StackConditioning, encoded: Array, self_mask, self_bias,
                 cross_mask):
        cfg, dtype = self.config, jnp.dtype(self.config.dtype)
        drop = lambda h: nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))(
            h, deterministic=self.deterministic)
        h = RMSNorm(name="pre_self_attention_layer_norm")(y)
        h = MultiHeadAttention(cfg.num_heads, cfg.head_dim, cfg.dropout_rate, self.deterministic,
                               self.decode, dtype, name="self_attention")(
            h, h, self_mask, self_bias, cond.kv_prefix)
        y = y + _adapt(cond, ATTENTION_POSITION, drop(h))
        h = RMSNorm(name="pre_cross_attention_layer_norm")(y)
        h = MultiHeadAttention(cfg.num_heads, cfg.head_dim, cfg.dropout_rate, self.deterministic,
                               dtype=dtype, name="encoder_decoder_attention")(
            h, encoded, cross_mask, None)
        y = y + drop(h)
        h = RMSNorm(name="pre_mlp_layer_norm")(y)
        h = MlpBlock(cfg.mlp_dim, cfg.mlp_activations, cfg.dropout_rate, self.deterministic,
                     dtype, name="mlp")(h, _ffn_hook(cond))
        y = y + _adapt(cond, MLP_POSITION, drop(h))
        return nn.with_logical_constraint(y, ("batch", "length", "embed")), None


def run_layer_stack(layer_cls: type[nn.Module], cfg: T5Config, num_layers: int,
                    layer_kwargs: dict, scan_name: str, x: Array, cond: StackConditioning,
                    *broadcast) -> Array:
    """`num_layers` copies of `layer_cls`, unrolled (`layers_i`) or scanned (`scan_name`).

    Called inside a compact module, so the layers are that module's children.
    Per-layer conditioning enters the scan as a scanned input; everything else
    (masks, biases, encoder output) is broadcast.
    """
    check_num_layers(cond, num_layers, scan_name)
    if cfg.remat_policy != "none":
        layer_cls = nn.remat(layer_cls, policy=_REMAT[cfg.remat_policy],
                             prevent_cse=not cfg.scan_layers)
    if cfg.scan_layers:
        scanned = nn.scan(
            layer_cls,
            variable_axes={"params": cfg.param_scan_axis, "cache": 0, "intermediates": 0},
            split_rngs={"params": True, "dropout": True},
            in_axes=(0,) + (nn.broadcast,) * len(broadcast),
            length=num_layers,
            metadata_params={nn.PARTITION_NAME: "layers"},
        )
        x, _ = scanned(cfg, name=scan_name, **layer_kwargs)(x, cond, *broadcast)
        return x
    for i in range(num_layers):
        x, _ = layer_cls(cfg, name=f"layers_{i}", **layer_kwargs)(x, layer_slice(cond, i),
                                                                   *broadcast)
    return x


def embed_inputs(embedded: Array, input_prompt: Array | None, positions: Array | None,
                 segment_ids: Array | None) -> Array:
    """Token embeddings [B, T, D] with the input prompt [B, P, D] placed -> [B, P + T, D].

    Unpacked, the prompt is prepended. Packed (`positions` given), the data reserved P
    placeholder slots in front of each example (`data.PROMPT_PLACEHOLDER_ID`): a slot at
    position p < P takes prompt row p, so each segment sees its own copy right before its
    tokens, at the same relative distances as unpacked; nothing is prepended ([B, T, D]).
    """
    if input_prompt is None:
        return embedded
    prompt = input_prompt.astype(embedded.dtype)
    if positions is None:
        if segment_ids is not None:
            raise ValueError("Packed inputs with an input prompt need encoder_positions (its "
                             "slots are where position < prompt length); pass them.")
        return jnp.concatenate([prompt, embedded], axis=1)
    plen = prompt.shape[1]
    rows = jnp.take_along_axis(prompt, jnp.minimum(positions, plen - 1)[..., None], axis=1)
    in_prompt = positions < plen
    if segment_ids is not None:
        in_prompt = in_prompt & (segment_ids > 0)
    return jnp.where(in_prompt[..., None], rows, embedded)


class Encoder(nn.Module):
    config: T5Config
    shared_embedding: Embed

    @nn.compact
    def __call__(self, encoder_input_tokens: Array, cond: Conditioning,
                 deterministic: bool = True, segment_ids: Array | None = None,
                 positions: Array | None = None) -> Array:
        """tokens [B, T] -> encoded [B, P + T, D] (P = prepended input prompt length: 0 if
        none, or packed, where the prompt fills its reserved slots)."""
        cfg = self.config
        drop = nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))
        x = embed_inputs(self.shared_embedding(encoder_input_tokens), cond.input_prompt,
                         positions, segment_ids)
        valid = encoder_valid_mask(encoder_input_tokens, x.shape[1] - encoder_input_tokens.shape[1])
        x = drop(x, deterministic=deterministic)
        x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
        length = x.shape[1]
        # Bias from row indices, as t5x: within a packed segment (contiguous) index
        # differences are position differences, and other segments are masked out.
        bias = RelativePositionBiases(cfg.relpos_num_buckets, cfg.relpos_max_distance,
                                      cfg.num_heads, name="relpos_bias")(length, length, True)
        x = run_layer_stack(EncoderLayer, cfg, cfg.num_encoder_layers,
                            {"deterministic": deterministic}, "encoder",
                            x, cond.encoder, pair_mask(valid, valid, segment_ids, segment_ids),
                            bias)
        return drop(RMSNorm(name="encoder_norm")(x), deterministic=deterministic)


class Decoder(nn.Module):
    config: T5Config
    shared_embedding: Embed

    @nn.compact
    def __call__(self, encoded: Array, encoder_valid: Array, decoder_input_tokens: Array,
                 decoder_target_tokens: Array | None, cond: StackConditioning,
                 deterministic: bool = True, decode: bool = False,
                 max_decode_length: int | None = None, encoder_segment_ids: Array | None = None,
                 decoder_segment_ids: Array | None = None) -> Array:
        """encoded [B, S, D], tokens [B, T] -> logits [B, T, vocab] (float32); segment ids
        [B, S], [B, T] when packed."""
        cfg = self.config
        drop = nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))
        y = drop(self.shared_embedding(decoder_input_tokens), deterministic=deterministic)
        y = nn.with_logical_constraint(y, ("batch", "length", "embed"))
        relpos = RelativePositionBiases(cfg.relpos_num_buckets, cfg.relpos_max_distance,
                                        cfg.num_heads, name="relpos_bias")
        if decode:
            if decoder_segment_ids is not None:
                raise ValueError("decode=True runs unpacked; drop the segment ids.")
            # The attention slices the row of the current step out of the full bias.
            length = max_decode_length or y.shape[1]
            self_bias, self_mask = relpos(length, length, False), None
            q_valid = jnp.ones(decoder_input_tokens.shape, bool)
        else:
            length = y.shape[1]
            self_bias = relpos(length, length, False)  # row indices: see Encoder
            q_valid = (jnp.ones(decoder_input_tokens.shape, bool) if decoder_target_tokens is None
                       else decoder_target_tokens > 0)
            self_mask = causal_mask(q_valid, decoder_segment_ids)
        cross_mask = pair_mask(q_valid, encoder_valid, decoder_segment_ids, encoder_segment_ids)
        y = run_layer_stack(DecoderLayer, cfg, cfg.num_decoder_layers,
                            {"deterministic": deterministic, "decode": decode}, "decoder",
                            y, cond, encoded, self_mask, self_bias, cross_mask)
        y = drop(RMSNorm(name="decoder_norm")(y), deterministic=deterministic)
        if cfg.logits_via_embedding:
            logits = self.shared_embedding.attend(y) / jnp.sqrt(y.shape[-1]).astype(y.dtype)
        else:
            logits = Dense(cfg.vocab_size, ("embed", "vocab"), nn.initializers.variance_scaling(
                1.0, "fan_in", "truncated_normal"), jnp.dtype(cfg.dtype), name="logits_dense")(y)
        logits = logits.astype(jnp.float32)
        return nn.with_logical_constraint(logits, ("batch", "length", "vocab"))


class Transformer(nn.Module):
    """T5 EncoderDecoder; `conditioner(task_ids, encoder_tokens, embedder, deterministic)`.

    Named `Transformer` as in t5x's network modules so gin files read alike.
    """

    config: T5Config
    conditioner: nn.Module | None = None

    def setup(self):
        cfg = self.config
        self.token_embedder = Embed(cfg.vocab_size, cfg.emb_dim, jnp.dtype(cfg.dtype))
        self.encoder = Encoder(cfg, self.token_embedder)
        self.decoder = Decoder(cfg, self.token_embedder)

    def condition(self, task_ids: Array | None, encoder_input_tokens: Array,
                  enable_dropout: bool = True) -> Conditioning:
        """Run the method once per forward pass; no conditioner = empty Conditioning."""
        if self.conditioner is None:
            return Conditioning()
        if task_ids is None:
            raise ValueError("This model has a task conditioner; pass task_ids [batch] (int).")
        return self.conditioner(task_ids, encoder_input_tokens, self.token_embedder,
                                deterministic=not enable_dropout)

    def encode(self, encoder_input_tokens: Array, encoder_segment_ids: Array | None = None,
               enable_dropout: bool = True, task_ids: Array | None = None,
               conditioning: Conditioning | None = None,
               encoder_positions: Array | None = None) -> Array:
        """[B, T] -> [B, P + T, D]; packed (segment ids, positions [B, T]) -> [B, T, D]."""
        if conditioning is None:
            conditioning = self.condition(task_ids, encoder_input_tokens, enable_dropout)
        return self.encoder(encoder_input_tokens, conditioning, not enable_dropout,
                            encoder_segment_ids, encoder_positions)

    def decode(self, encoded: Array, encoder_input_tokens: Array, decoder_input_tokens: Array,
               decoder_target_tokens: Array | None, encoder_segment_ids: Array | None = None,
               decoder_segment_ids: Array | None = None, decoder_positions: Array | None = None,
               enable_dropout: bool = True, decode: bool = False,
               max_decode_length: int | None = None, task_ids: Array | None = None,
               conditioning: Conditioning | None = None) -> Array:
        """Decoder logits [B, T, vocab]; with decode=True one step against the cache.

        `decoder_positions` is unused (t5x's signature): the relative bias counts row indices.
        """
        del decoder_positions
        if conditioning is None:
            conditioning = self.condition(task_ids, encoder_input_tokens, enable_dropout)
        plen = encoded.shape[1] - encoder_input_tokens.shape[1]
        encoder_valid = encoder_valid_mask(encoder_input_tokens, plen)
        return self.decoder(encoded, encoder_valid, decoder_input_tokens, decoder_target_tokens,
                            conditioning.decoder, not enable_dropout, decode, max_decode_length,
                            encoder_segment_ids, decoder_segment_ids)

    def __call__(self, encoder_input_tokens: Array, decoder_input_tokens: Array,
                 decoder_target_tokens: Array | None = None,
                 encoder_segment_ids: Array | None = None,
                 decoder_segment_ids: Array | None = None, encoder_positions: Array | None = None,
                 decoder_positions: Array | None = None, *, enable_dropout: bool = True,
                 decode: bool = False, max_decode_length: int | None = None,
                 task_ids: Array | None = None) -> Array:
        """t5x's signature plus `task_ids` [B]: tokens [B, S], [B, T] -> logits [B, T, vocab].

        Packed rows (segment ids and positions [B, S], [B, T]) hold examples of one task
        each, so `task_ids` stays [B]: see `data.train_batches`.
        """
        conditioning = self.condition(task_ids, encoder_input_tokens, enable_dropout)
        encoded = self.encode(encoder_input_tokens, encoder_segment_ids, enable_dropout,
                              conditioning=conditioning, encoder_positions=encoder_positions)
        return self.decode(encoded, encoder_input_tokens, decoder_input_tokens,
                           decoder_target_tokens, encoder_segment_ids, decoder_segment_ids,
                           decoder_positions, enable_dropout, decode, max_decode_length,
                           conditioning=conditioning)
