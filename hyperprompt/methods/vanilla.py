"""Vanilla multi-task learning: no conditioning (the task prefix is in the text)."""

from __future__ import annotations

import flax.linen as nn
import jax

from hyperprompt.models.conditioning import Conditioning


class Vanilla(nn.Module):
    """Returns an empty Conditioning: the backbone runs bit-identical to no conditioner."""

    @nn.compact
    def __call__(self, task_ids: jax.Array, encoder_tokens: jax.Array, embedder: nn.Module,
                 deterministic: bool = True) -> Conditioning:
        del task_ids, encoder_tokens, embedder, deterministic
        return Conditioning()
