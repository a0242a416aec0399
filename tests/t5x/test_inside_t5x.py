"""What a real t5x run needs of hyperprompt.t5x beyond the calls (found by running
`python -m t5x.train`, README "Inside real t5x"), checked without t5x installed."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from flax.linen import partitioning as flax_partitioning

from hyperprompt.methods.base import registered
from hyperprompt.models.configs import T5Config

CONFIG = T5Config(vocab_size=128, emb_dim=32, num_heads=2, num_encoder_layers=1,
                  num_decoder_layers=1, head_dim=16, mlp_dim=64)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHAPES = {"encoder_input_tokens": (2, 7), "decoder_input_tokens": (2, 5)}


def t5x_variables(method: str):
    from hyperprompt.t5x.model import TaskConditionedModel
    from hyperprompt.t5x.network import TaskBound

    network = TaskBound(CONFIG, registered()[method].build(CONFIG, num_tasks=3))
    return network, TaskConditionedModel(network).get_initial_variables(
        jax.random.PRNGKey(0), SHAPES)


@pytest.mark.parametrize("method", ["hyperprompt_global", "adapters", "hyperformer_pp"])
def test_initial_variables_are_plain_params_with_t5xs_params_axes(method):
    import flax.linen as nn

    network, variables = t5x_variables(method)
    tokens = jnp.ones((2, 7), jnp.int32), jnp.ones((2, 5), jnp.int32)
    boxed = network.init(jax.random.PRNGKey(0), tokens[0], tokens[1], tokens[1],
                         task_ids=jnp.zeros((2,), jnp.int32), enable_dropout=False)["params"]
    params = traverse_util.flatten_dict(variables["params"])
    want = traverse_util.flatten_dict(boxed, is_leaf=lambda _, x: isinstance(x, nn.Partitioned))
    # t5x's train state takes plain arrays: the same values, unboxed
    assert params.keys() == want.keys()
    for path, box in want.items():
        np.testing.assert_array_equal(params[path], nn.unbox(box))
    # ... and reads each one's axis names from `params_axes` (flax's get_axis_names, as
    # t5x's train_state does), one PartitionSpec per parameter, the names it was boxed with
    axes = traverse_util.flatten_dict(
        flax_partitioning.get_axis_names(variables["params_axes"]),
        is_leaf=lambda _, x: isinstance(x, jax.sharding.PartitionSpec))
    # (a parameter created without axis names has None for each dimension: t5x's
    # Adafactor wants one rule entry per dimension)
    assert axes == {path: jax.sharding.PartitionSpec(*box.names) if isinstance(box, nn.Partitioned)
                    else jax.sharding.PartitionSpec(*[None] * box.ndim)
                    for path, box in want.items()}
    assert all(len(axes[path]) == np.ndim(value) for path, value in params.items())


def test_every_parameters_axes_have_adafactor_rules():
    """t5x's Adafactor derives a rule for each parameter from its axis names (rank > 2
    needs one) and fails on a name its rules lack."""
    from hyperprompt.t5x.adafactor import logical_factor_rules

    rules = logical_factor_rules()
    for method in registered():
        variables = jax.eval_shape(lambda m=method: t5x_variables(m)[1])  # names, no values
        specs = jax.tree.leaves(flax_partitioning.get_axis_names(variables["params_axes"]),
                                is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
        missing = {name for spec in specs for name in spec} - set(rules)
        assert not missing, f"{method}: no factor rule for axes {missing}"
    assert rules["task"].name == "BATCH" and rules["embed"].name == "ROW"


def test_the_converter_needs_no_task_ids_length():
    """t5x passes TASK_FEATURE_LENGTHS (text features only) to the model's converter."""
    import tensorflow as tf

    from hyperprompt.data import TaskIdFeatureConverter

    examples = tf.data.Dataset.from_tensors({
        "inputs": tf.constant([5, 6, 1]), "targets": tf.constant([7, 1]),
        "task_ids": tf.constant([3])})
    lengths = {"inputs": 4, "targets": 3}
    got = next(TaskIdFeatureConverter()(examples, lengths).as_numpy_iterator())
    want = next(TaskIdFeatureConverter()(examples, {**lengths, "task_ids": 1})
                .as_numpy_iterator())
    assert got.keys() == want.keys() and got["task_ids"].tolist() == [3]
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])


# A fresh interpreter: t5x parses the gin files, locks gin, then calls what they name.
LOCKED_GIN = textwrap.dedent("""
    import json, sys, types
    import gin
    package = types.ModuleType("t5x")
    for name in ("models", "adafactor"):
        setattr(package, name, types.ModuleType("t5x." + name))
        sys.modules["t5x." + name] = getattr(package, name)
    sys.modules["t5x"] = package
    class Model:
        def __init__(self, module, input_vocabulary, output_vocabulary, **_):
            self.vocabularies = input_vocabulary, output_vocabulary
    package.models.EncoderDecoderModel = Model
    package.adafactor.Adafactor = lambda **settings: settings
    package.adafactor.FactorDim = types.SimpleNamespace(BATCH="batch", NONE="none")
    package.adafactor.standard_logical_factor_rules = dict
    gin.add_config_file_search_path(sys.argv[1])
    gin.parse_config_files_and_bindings(
        ["models/t5_1_1_tiny.gin", "methods/hyperprompt_global.gin", "t5x/model.gin"],
        ["NUM_TASKS = 4", "HYPERPROMPT_MIXTURE = 'synthetic_mtl'",
         "MIXTURE_OR_TASK_NAME = @tasks.with_task_ids()"], finalize_config=True)
    model = gin.query_parameter("MODEL/macro.value").scoped_configurable_fn()
    mixture = gin.query_parameter("MIXTURE_OR_TASK_NAME/macro.value").scoped_configurable_fn()
    print(json.dumps([type(v).__name__ for v in model.vocabularies] + [mixture]))
""")


def test_model_gin_builds_after_gin_is_locked():
    """Everything model.gin names is registered while gin parses (t5x locks gin before it
    builds the model and reads the mixture)."""
    gin_folder = os.path.join(REPO, "hyperprompt", "gin")
    run = subprocess.run([sys.executable, "-c", LOCKED_GIN, gin_folder],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.splitlines()[-1]) == [
        "ByteVocabulary", "ByteVocabulary", "synthetic_mtl_with_task_ids"]
