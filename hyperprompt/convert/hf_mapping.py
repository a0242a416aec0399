"""The one table between Hugging Face T5 state-dict names and our (t5x) parameter paths.

HF stores torch `Linear` weights as [out, in]; t5x kernels are [in, out], so every
projection is transposed. Neither side scales queries at run time: t5x folds
1/sqrt(d_kv) into the query *initialiser* and Mesh TF / HF T5 fold it into the
trained weights, so pretrained query kernels copy over unchanged. The relative
attention bias lives in layer 0 of each HF stack ([buckets, heads]); t5x keeps one
per stack ([heads, buckets]). v1.0 ties `lm_head` to `shared` (logits scaled by
d_model^-0.5 on both sides); v1.1 has its own `lm_head` -> `logits_dense`.
The config.json fields are mapped in `hf_config.py`.
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
