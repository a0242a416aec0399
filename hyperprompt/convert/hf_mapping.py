"""The one table between Hugging Face T5 state-dict names and our (t5x) parameter paths.

HF stores torch `Linear` weights as [out, in]; t5x kernels are [in, out], so every
projection is transposed. Neither side scales queries at run time: t5x folds
1/sqrt(d_kv) into the query *initialiser* and Mesh TF / HF T5 fold it into the
trained weights, so pretrained query kernels copy over unchanged. The relative
attention bias lives in layer 0 of each HF stack ([buckets, heads]); t5x keeps one
per stack ([heads, buckets]). v1.0 ties `lm_head` to `shared` (logits scaled by
d_model^-0.5 on both sides); v1.1 has its own `lm_head` -> `logits_dense`.
"""

from __future__ import annotations

from collections.abc import Iterator

from hyperprompt.models.configs import T5Config

TRANSPOSE, COPY = "transpose", "copy"

_ATTENTION = {"q": "query", "k": "key", "v": "value", "o": "out"}


def _mlp_names(config: T5Config) -> list[tuple[str, str]]:
    """(hf, ours) FFN input names: `wi` (one activation) or `wi_0`, `wi_1`."""
    if len(config.mlp_activations) == 1:
        return [("wi", "wi")]
    return [(f"wi_{i}", f"wi_{i}") for i in range(len(config.mlp_activations))]


def _attention(hf_prefix: str, ours: str):
    for hf_name, our_name in _ATTENTION.items():
        yield f"{hf_prefix}.{hf_name}.weight", f"{ours}/{our_name}/kernel", TRANSPOSE


def _mlp(hf_prefix: str, ours: str, config: T5Config):
    for hf_name, our_name in _mlp_names(config):
        yield f"{hf_prefix}.DenseReluDense.{hf_name}.weight", f"{ours}/mlp/{our_name}/kernel", \
            TRANSPOSE
    yield f"{hf_prefix}.DenseReluDense.wo.weight", f"{ours}/mlp/wo/kernel", TRANSPOSE


def hf_parameter_map(config: T5Config) -> Iterator[tuple[str, str, str]]:
    """(hf name, our '/'-path, COPY | TRANSPOSE) for every backbone parameter (unscanned)."""
    yield "shared.weight", "token_embedder/embedding", COPY
    for stack, depth in (("encoder", config.num_encoder_layers),
                         ("decoder", config.num_decoder_layers)):
        hf_stack = f"{stack}.block"
        yield (f"{hf_stack}.0.layer.0.SelfAttention.relative_attention_bias.weight",
               f"{stack}/relpos_bias/rel_embedding", TRANSPOSE)
        for i in range(depth):
            hf, ours = f"{hf_stack}.{i}.layer", f"{stack}/layers_{i}"
            if stack == "encoder":
                yield f"{hf}.0.layer_norm.weight", f"{ours}/pre_attention_layer_norm/scale", COPY
                yield from _attention(f"{hf}.0.SelfAttention", f"{ours}/attention")
                yield f"{hf}.1.layer_norm.weight", f"{ours}/pre_mlp_layer_norm/scale", COPY
                yield from _mlp(f"{hf}.1", ours, config)
            else:
                yield (f"{hf}.0.layer_norm.weight", f"{ours}/pre_self_attention_layer_norm/scale",
                       COPY)
                yield from _attention(f"{hf}.0.SelfAttention", f"{ours}/self_attention")
                yield (f"{hf}.1.layer_norm.weight",
                       f"{ours}/pre_cross_attention_layer_norm/scale", COPY)
                yield from _attention(f"{hf}.1.EncDecAttention",
                                      f"{ours}/encoder_decoder_attention")
                yield f"{hf}.2.layer_norm.weight", f"{ours}/pre_mlp_layer_norm/scale", COPY
                yield from _mlp(f"{hf}.2", ours, config)
        yield f"{stack}.final_layer_norm.weight", f"{stack}/{stack}_norm/scale", COPY
    if not config.logits_via_embedding:
        yield "lm_head.weight", "decoder/logits_dense/kernel", TRANSPOSE


# HF config.json field -> T5Config field, for checking a checkpoint against a size gin file.
HF_CONFIG_FIELDS = {
    "vocab_size": "vocab_size", "d_model": "emb_dim", "num_heads": "num_heads",
    "d_kv": "head_dim", "d_ff": "mlp_dim", "num_layers": "num_encoder_layers",
    "num_decoder_layers": "num_decoder_layers",
}


def hf_config_mismatches(hf_config: dict, config: T5Config) -> list[str]:
    """Human-readable differences between a HF config.json and our config."""
    out = [f"{hf}={hf_config[hf]} vs {ours}={getattr(config, ours)}"
           for hf, ours in HF_CONFIG_FIELDS.items()
           if hf in hf_config and hf_config[hf] != getattr(config, ours)]
    gated = "gated" in str(hf_config.get("feed_forward_proj", "relu"))
    if gated != (len(config.mlp_activations) > 1):
        out.append(f"feed_forward_proj={hf_config.get('feed_forward_proj')!r} (T5 "
                   f"{'v1.1' if gated else 'v1.0'}) vs mlp_activations="
                   f"{tuple(config.mlp_activations)} (T5 {'v1.1' if not gated else 'v1.0'})")
    return out


def hf_config_for(config: T5Config) -> dict:
    """A transformers T5Config dict for exporting our backbone."""
    gated = len(config.mlp_activations) > 1
    return {
        "architectures": ["T5ForConditionalGeneration"], "model_type": "t5",
        **{hf: getattr(config, ours) for hf, ours in HF_CONFIG_FIELDS.items()},
        "feed_forward_proj": "gated-gelu" if gated else "relu",
        "tie_word_embeddings": bool(config.logits_via_embedding),
        "relative_attention_num_buckets": config.relpos_num_buckets,
        "relative_attention_max_distance": config.relpos_max_distance,
        "layer_norm_epsilon": 1e-6, "dropout_rate": config.dropout_rate,
        "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1,
        "is_encoder_decoder": True,
    }
