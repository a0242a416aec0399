"""Vanilla multi-task learning: no conditioning (the task prefix is in the text)."""

from __future__ import annotations

import flax.linen as nn
import jax

from hyperprompt.methods.base import Method, register
from hyperprompt.models.conditioning import Conditioning
from hyperprompt.models.configs import T5Config


class Vanilla(Method):
    """Returns an empty Conditioning: the backbone runs bit-identical to no conditioner."""

    num_tasks = None  # no per-task parameters: any number of tasks

    @nn.compact
    def __call__(self, task_ids: jax.Array, encoder_tokens: jax.Array, embedder: nn.Module,
                 deterministic: bool = True) -> Conditioning:
        del task_ids, encoder_tokens, embedder, deterministic
        return Conditioning()

    @nn.nowrap
    def parameter_count(self, config: T5Config) -> int:
        return 0


register("vanilla", Vanilla)
