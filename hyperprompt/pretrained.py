"""Pretrained T5 from Python: a checkpoint -> (model, params) on one device.

    model, params = pretrained.load("google-t5/t5-small")   # hub id, HF folder, ...
    batch = pretrained.teacher_forced_batch(inputs, targets)
    model.logits(params, batch)          # [B, T, vocab]
    model.score_batch(params, batch)     # log-likelihood of each target, [B]
    model.predict_batch(params, {"encoder_input_tokens": inputs,
                                 "decoder_input_tokens": np.zeros((B, T), np.int32)}, eos_id=1)

The README's "Python API" section is this, end to end, with a vocabulary.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import numpy as np

from hyperprompt.convert import hub, restore, sources
from hyperprompt.errors import UsageError
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import T5Config
from hyperprompt.models.t5 import Transformer


def load(src: str, config: T5Config | None = None, fmt: str = "auto"
         ) -> tuple[EncoderDecoderModel, Any]:
    """The backbone and its parameters from a Hugging Face hub id or folder, a converted
    folder, a t5x checkpoint or a training run (format detected unless `fmt`).

    The config comes from the checkpoint where it carries one (HF config.json, a
    converted folder's model_config.json); t5x checkpoints and runs carry none: pass
    `config` (e.g. `configs.CONFIGS["t5_1_1_base"]`). A given config is checked against
    the checkpoint's.
    """
    path = hub.local_path(src, argument="the source")
    fmt = sources.resolve_format(path, fmt)
    config = config or sources.stored_config(path, fmt)
    if config is None:
        raise UsageError(f"{src} carries no model config; pass config=, e.g. "
                         f"hyperprompt.models.configs.CONFIGS['t5_1_1_base'].")
    model = EncoderDecoderModel(Transformer(config))
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    shapes = jax.eval_shape(lambda: nn.unbox(model.init(jax.random.PRNGKey(0), 1, 1)["params"]))
    target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device),
                          shapes)
    return model, restore.load_pretrained(path, fmt, config, target)


def teacher_forced_batch(inputs: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """The batch `logits` and `score_batch` read: encoder tokens, targets, and the decoder
    inputs (targets shifted right behind the start token 0). Token ids [B, T], 0 = pad."""
    targets = np.asarray(targets, np.int32)
    decoder_inputs = np.zeros_like(targets)
    decoder_inputs[:, 1:] = targets[:, :-1]
    return {"encoder_input_tokens": np.asarray(inputs, np.int32),
            "decoder_input_tokens": decoder_inputs, "decoder_target_tokens": targets}
