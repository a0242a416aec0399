"""Prompt Tuning (Lester et al., 2021): a soft prompt per task before the encoder input.

P_m in R^{P x d} for task m is prepended to the token embeddings of every example
of that task (the mask is extended; relative positions count the prompt). As in
the paper (section 3 and the authors' gin files, google-research/prompt-tuning):

- initialisation 'vocab': each prompt's rows are distinct embeddings drawn from the
  first 5,000 rows of the *loaded* backbone's vocabulary table (sampled without
  replacement; `init_from_backbone`), or 'uniform' in [-0.5, 0.5];
- the backbone is frozen (`freeze_backbone`, gin FREEZE_BACKBONE);
- the prompts train with Adafactor at lr 0.3, decay 0.8, weight decay 1e-5 and no
  parameter scaling, whatever the run's optimizer (`learning_rate=None`: the run's).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from hyperprompt.errors import UsageError
from hyperprompt.methods.base import Method, Params, register
from hyperprompt.models.conditioning import Conditioning
from hyperprompt.models.configs import T5Config
from hyperprompt.optim import BACKBONE, CONDITIONER, ParamGroup

INITS = ("vocab", "uniform")
VOCAB_POPULATION = 5000  # Lester et al.: "the 5,000 most common tokens" (T5's ids 0..4999)
# Lester et al.'s prompt optimizer (prompt-tuning's configs/models/t5_1_1_prompt.gin).
PROMPT_ADAFACTOR = {"name": "adafactor", "decay_rate": 0.8, "weight_decay": 1e-5,
                    "multiply_by_parameter_scale": False, "clipping_threshold": 1.0,
                    "step_offset": 0}


def sample_vocab_rows(embedding: jax.Array, rng: jax.Array, tasks: int, length: int
                      ) -> jax.Array:
    """[tasks, length, D]: per task, `length` distinct rows of the first VOCAB_POPULATION
    rows of `embedding` [vocab, D]."""
    population = min(VOCAB_POPULATION, embedding.shape[0])
    if length > population:
        raise UsageError(f"a prompt of {length} rows cannot be drawn without replacement from "
                         f"{population} vocabulary rows; use prompt_init='uniform'.")
    choose = lambda key: jax.random.choice(key, population, (length,), replace=False)  # noqa: E731
    rows = jax.vmap(choose)(jax.random.split(rng, tasks))  # [tasks, length]
    return jnp.take(embedding, rows, axis=0)


class PromptTuning(Method):
    """`prompts` [tasks, prompt_length, embed]; one prompt per task id."""

    num_tasks: int
    prompt_length: int = 100
    prompt_init: str = "vocab"
    freeze_backbone: bool = True
    learning_rate: float | None = 0.3

    @nn.compact
    def __call__(self, task_ids: jax.Array, encoder_tokens: jax.Array, embedder: nn.Module,
                 deterministic: bool = True) -> Conditioning:
        """task_ids [B] -> Conditioning(input_prompt [B, P, D])."""
        if self.prompt_init not in INITS:
            raise UsageError(f"PromptTuning.prompt_init={self.prompt_init!r}: use one of {INITS}.")

        def init_fn(rng, shape, dtype=jnp.float32):
            if self.prompt_init == "vocab":  # replaced from the loaded table before training
                return sample_vocab_rows(embedder.embedding, rng, *shape[:2]).astype(dtype)
            return jax.random.uniform(rng, shape, dtype, minval=-0.5, maxval=0.5)

        prompts = self.param(
            "prompts", nn.with_logical_partitioning(init_fn, ("task", "prompt", "embed")),
            (self.num_tasks, self.prompt_length, embedder.features))
        return Conditioning(input_prompt=jnp.take(prompts, task_ids, axis=0))

    @nn.nowrap
    def init_from_backbone(self, params: Params, backbone: Params, rng: jax.Array) -> Params:
        if self.prompt_init != "vocab":
            return params
        table = backbone["token_embedder"]["embedding"]
        return {**params, "prompts": sample_vocab_rows(table, rng, self.num_tasks,
                                                       self.prompt_length)}

    @nn.nowrap
    def param_groups(self) -> Sequence[ParamGroup]:
        prompts = ParamGroup(CONDITIONER, optimizer=(
            {} if self.learning_rate is None
            else {**PROMPT_ADAFACTOR, "learning_rate": self.learning_rate}))
        return (prompts, *([ParamGroup(BACKBONE, frozen=True)] if self.freeze_backbone else []))

    @nn.nowrap
    def parameter_count(self, config: T5Config) -> int:
        return self.num_tasks * self.prompt_length * config.emb_dim

    @nn.nowrap
    def label(self) -> str:
        return "Prompt Tuning"


register("prompt_tuning", PromptTuning)
