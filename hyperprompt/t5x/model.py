"""t5x's EncoderDecoderModel for the project's network: every call gets the batch's
`task_ids` (feature converter: `data.TaskIdFeatureConverter`, task_ids [B, 1]).

Used from gin (`hyperprompt/gin/t5x/*.gin`) with t5x installed; t5x's own training,
evaluation and decoding code runs unchanged around it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util
from flax.core import FrozenDict, freeze, unfreeze
from flax.linen import partitioning as flax_partitioning
from t5x import models

from hyperprompt.data import TASK_IDS, TaskIdFeatureConverter

TOKEN_FEATURES = ("encoder_input_tokens", "decoder_input_tokens")


class TaskConditionedModel(models.EncoderDecoderModel):
    """t5x's EncoderDecoderModel; its module must be a `t5x.network.TaskBound`."""

    FEATURE_CONVERTER_CLS = TaskIdFeatureConverter

    @contextlib.contextmanager
    def _bound(self, task_ids):
        """self.module with `task_ids` [B] (or [B, 1]) bound while t5x traces its calls."""
        module = self.module
        self.module = module.clone(bound_task_ids=jnp.reshape(task_ids, (-1,)))
        try:
            yield
        finally:
            self.module = module

    def get_initial_variables(self, rng, input_shapes, input_types=None):
        # t5x's eval and infer give no types, and t5x then makes float32 tokens (its own
        # T5 casts them); the network takes token ids.
        input_types = {**dict.fromkeys(TOKEN_FEATURES, jnp.int32), **(input_types or {})}
        rows = input_shapes["encoder_input_tokens"][0]
        with self._bound(jnp.zeros((rows,), jnp.int32)):
            variables = super().get_initial_variables(rng, input_shapes, input_types)
        return with_params_axes(variables)

    def _compute_logits(self, params, batch, dropout_rng=None, mutable=False,
                        other_variables=None):
        with self._bound(batch[TASK_IDS]):
            return super()._compute_logits(params, batch, dropout_rng, mutable,
                                           other_variables)

    def predict_batch_with_aux(self, params, batch, rng=None, decoder_params=None,
                               return_all_decodes=None, num_decodes=None,
                               prompt_with_targets=False):
        with self._bound(batch[TASK_IDS]):
            return super().predict_batch_with_aux(params, batch, rng, decoder_params,
                                                  return_all_decodes, num_decodes,
                                                  prompt_with_targets)


def with_params_axes(variables: Mapping) -> FrozenDict:
    """t5x's layout of the network's variables: plain `params` plus a `params_axes`
    collection (`NAME_axes`: AxisMetadata, as flax's `param_with_axes` emits), from the
    logical axis names the network boxes its parameters with (unboxed: replicated).

    t5x's train state reads the axes there (its Adafactor factors by them, its
    partitioner shards by them) and rejects boxed parameters.
    """
    variables = unfreeze(variables)
    params = traverse_util.flatten_dict(
        variables["params"], is_leaf=lambda _, x: isinstance(x, nn.Partitioned))
    variables["params_axes"] = traverse_util.unflatten_dict({
        (*path[:-1], f"{path[-1]}_axes"): flax_partitioning.AxisMetadata(names=axis_names(x))
        for path, x in params.items()})
    variables["params"] = nn.unbox(variables["params"])
    return freeze(variables)


def axis_names(param: jax.Array | nn.Partitioned) -> tuple:
    """A parameter's logical axis names, one per dimension (None for each dimension of an
    unboxed parameter: t5x's Adafactor wants a rule of the parameter's rank)."""
    if isinstance(param, nn.Partitioned):
        return tuple(param.names)
    return (None,) * len(param.shape)
