"""Inference: decode a split of every task in MODEL_DIR's registry to JSONL files."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import flax.linen as nn
import jax

from hyperprompt import partitioning
from hyperprompt.eval import Evaluator, saved_registry
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.optim import make_optimizer
from hyperprompt.state import restore_trained


def infer(
    *,
    model: EncoderDecoderModel,
    model_dir: str,
    task_feature_lengths: Mapping[str, int],
    batch_size: int,
    optimizer=None,
    split: str = "validation",
    num_examples: int | None = None,
    model_parallel: int = 1,
) -> str:
    """Write MODEL_DIR/inference/<split>/<task>.jsonl ({input, prediction}); returns the folder."""
    registry = saved_registry(model_dir)
    mesh = partitioning.make_mesh(model_parallel)
    partitioning.check_batch_size(batch_size, mesh)
    out_dir = os.path.join(model_dir, "inference", split)
    os.makedirs(out_dir, exist_ok=True)
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        step, params = restore_trained(model, optimizer or make_optimizer(), model_dir,
                                       task_feature_lengths, mesh)
        evaluator = Evaluator(model, registry, task_feature_lengths, batch_size, mesh, split,
                              num_examples)
        for task in evaluator.tasks:
            inputs = evaluator.inputs(task)
            predictions = evaluator.predictions(params, task)
            with open(os.path.join(out_dir, f"{task.name}.jsonl"), "w") as f:
                for text, prediction in zip(inputs, predictions, strict=True):
                    f.write(json.dumps({"step": int(step), "input": text,
                                        "prediction": prediction}) + "\n")
    return out_dir
