"""The one mapping between a Hugging Face T5 `config.json` and our T5Config.

Fields missing from a config.json take transformers' T5Config defaults, as
transformers itself reads it. The FFN follows transformers' rule:
`feed_forward_proj` is `ACT` or `gated-ACT`, and `gated-gelu` means the tanh
GELU (`gelu_new`), which is our `gelu`. v1.0 ties the logits to the embedding
and scales them by d_model^-0.5 (`tie_word_embeddings`, default true); v1.1
has its own `lm_head`.
"""

from __future__ import annotations

from collections.abc import Mapping

from hyperprompt.errors import UsageError
from hyperprompt.models.configs import T5Config
from hyperprompt.models.layers import LAYER_NORM_EPSILON

# config.json field -> T5Config field, copied as they are; with transformers' defaults.
HF_CONFIG_FIELDS = {
    "vocab_size": "vocab_size", "d_model": "emb_dim", "num_heads": "num_heads",
    "d_kv": "head_dim", "d_ff": "mlp_dim", "num_layers": "num_encoder_layers",
    "num_decoder_layers": "num_decoder_layers",
    "relative_attention_num_buckets": "relpos_num_buckets",
    "relative_attention_max_distance": "relpos_max_distance",
}
HF_DEFAULTS = {
    "vocab_size": 32128, "d_model": 512, "num_heads": 8, "d_kv": 64, "d_ff": 2048,
    "num_layers": 6, "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128, "feed_forward_proj": "relu",
    "tie_word_embeddings": True, "layer_norm_epsilon": 1e-6,
}
# transformers' activation name (after its gated-gelu -> gelu_new rule) -> ours.
HF_ACTIVATIONS = {"relu": "relu", "gelu_new": "gelu"}
MODEL_TYPES = ("t5", "mt5")  # the same network; umt5, longt5, ... differ


def _supported_feed_forward_proj() -> list[str]:
    """Every `feed_forward_proj` value the backbone computes exactly."""
    names = ["gated-gelu"] + [f"{g}{a}" for a in HF_ACTIVATIONS for g in ("", "gated-")]
    return sorted(set(names))


def _mlp_activations(feed_forward_proj: str, origin: str) -> tuple[str, ...]:
    parts = feed_forward_proj.split("-")
    gated = len(parts) == 2 and parts[0] == "gated"
    act = "gelu_new" if feed_forward_proj == "gated-gelu" else parts[-1]
    if len(parts) > 2 or (len(parts) == 2 and not gated) or act not in HF_ACTIVATIONS:
        raise UsageError(f"{origin}: feed_forward_proj={feed_forward_proj!r} is an FFN the "
                         f"backbone lacks; supported: {', '.join(_supported_feed_forward_proj())}.")
    return (HF_ACTIVATIONS[act], "linear") if gated else (HF_ACTIVATIONS[act],)


def t5_config_from_hf(hf_config: Mapping, origin: str = "config.json") -> T5Config:
    """Our T5Config for a transformers T5 config.json (dict); UsageError if we cannot run it."""
    hf = {**HF_DEFAULTS, **hf_config}
    if hf.get("model_type", "t5") not in MODEL_TYPES:
        raise UsageError(f"{origin}: model_type={hf['model_type']!r} is another network; the "
                         f"backbone runs model_type {' or '.join(map(repr, MODEL_TYPES))} only.")
    if float(hf["layer_norm_epsilon"]) != LAYER_NORM_EPSILON:
        raise UsageError(f"{origin}: layer_norm_epsilon={hf['layer_norm_epsilon']} but the "
                         f"backbone's layer norm uses {LAYER_NORM_EPSILON} (as published T5 "
                         f"checkpoints do); other values are not supported.")
    tied = bool(hf["tie_word_embeddings"])
    if bool(hf.get("scale_decoder_outputs", tied)) != tied:
        raise UsageError(f"{origin}: scale_decoder_outputs={hf['scale_decoder_outputs']} with "
                         f"tie_word_embeddings={tied}; the backbone scales logits exactly when "
                         f"they are tied (T5 v1.0), so this checkpoint is not supported.")
    if hf.get("num_decoder_layers") is None:
        hf["num_decoder_layers"] = hf["num_layers"]
    return T5Config(**{ours: int(hf[name]) for name, ours in HF_CONFIG_FIELDS.items()},
                    mlp_activations=_mlp_activations(str(hf["feed_forward_proj"]), origin),
                    logits_via_embedding=tied)


def _feed_forward_proj(config: T5Config) -> str:
    names = {ours: hf for hf, ours in HF_ACTIVATIONS.items()}
    activations = tuple(config.mlp_activations)
    gated = activations[1:] == ("linear",)
    if not (len(activations) == 1 or gated) or activations[0] not in names:
        raise UsageError(f"mlp_activations={activations} has no transformers T5 equivalent; "
                         f"export models with ('relu',) or ('gelu', 'linear').")
    name = names[activations[0]]
    return ("gated-gelu" if name == "gelu_new" else f"gated-{name}") if gated else name


def hf_config_for(config: T5Config) -> dict:
    """A transformers T5Config dict for exporting our backbone."""
    return {
        "architectures": ["T5ForConditionalGeneration"], "model_type": "t5",
        **{hf: getattr(config, ours) for hf, ours in HF_CONFIG_FIELDS.items()},
        "feed_forward_proj": _feed_forward_proj(config),
        "tie_word_embeddings": bool(config.logits_via_embedding),
        "layer_norm_epsilon": LAYER_NORM_EPSILON, "dropout_rate": config.dropout_rate,
        "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1,
        "is_encoder_decoder": True,
    }
