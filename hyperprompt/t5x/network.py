"""The T5 network with the batch's task ids bound, for callers that do not pass them.

t5x's EncoderDecoderModel calls its module with tokens only (`__call__`, `encode`, and
`decode` one position at a time against the cache, with beams). `TaskBound` holds the
batch's `task_ids` [B] and uses them where a call gives none; for a call on B * beams rows
(t5x repeats each example in place) each id is repeated as t5x repeats its example.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hyperprompt.models.conditioning import Conditioning
from hyperprompt.models.t5 import Transformer


class TaskBound(Transformer):
    """`Transformer` whose calls without `task_ids` use `bound_task_ids` [B] (its
    parameters are the Transformer's, unchanged)."""

    bound_task_ids: jax.Array | None = None

    def condition(self, task_ids: jax.Array | None, encoder_input_tokens: jax.Array,
                  enable_dropout: bool = True) -> Conditioning:
        if task_ids is None and self.bound_task_ids is not None:
            rows, ids = encoder_input_tokens.shape[0], self.bound_task_ids
            task_ids = jnp.repeat(ids, rows // ids.shape[0], axis=0)  # [B * beams]
        return super().condition(task_ids, encoder_input_tokens, enable_dropout)
