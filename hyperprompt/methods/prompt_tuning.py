"""Prompt Tuning (Lester et al., 2021): a soft prompt per task before the encoder input.

P_m in R^{P x d} for task m is prepended to the token embeddings of every example
of that task (the mask is extended; relative positions count the prompt). The
backbone is frozen by the method's gin file (optimizer `frozen` regex); bind
FREEZE_BACKBONE = False there to tune everything. Initialisation: rows of the
vocabulary embedding ('vocab', Lester et al.'s best) or uniform in [-0.5, 0.5].
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from hyperprompt.models.conditioning import Conditioning

INITS = ("vocab", "uniform")


class PromptTuning(nn.Module):
    """`prompts` [tasks, prompt_length, embed]; one prompt per task id."""

    num_tasks: int
    prompt_length: int = 100
    init: str = "vocab"

    @nn.compact
    def __call__(self, task_ids: jax.Array, encoder_tokens: jax.Array, embedder: nn.Module,
                 deterministic: bool = True) -> Conditioning:
        """task_ids [B] -> Conditioning(input_prompt [B, P, D])."""
        if self.init not in INITS:
            raise ValueError(f"PromptTuning.init={self.init!r}: use one of {INITS}.")

        def init_fn(rng, shape, dtype=jnp.float32):
            if self.init == "vocab":  # copies of randomly drawn vocabulary embeddings
                rows = jax.random.randint(rng, shape[:2], 0, embedder.num_embeddings)
                return jnp.take(embedder.embedding, rows, axis=0).astype(dtype)
            return jax.random.uniform(rng, shape, dtype, minval=-0.5, maxval=0.5)

        prompts = self.param(
            "prompts", nn.with_logical_partitioning(init_fn, ("task", "prompt", "embed")),
            (self.num_tasks, self.prompt_length, embedder.features))
        return Conditioning(input_prompt=jnp.take(prompts, task_ids, axis=0))
