"""hyperprompt.t5x: the network under t5x's calling conventions, without t5x installed.

`StandInModel` calls the module as t5x's EncoderDecoderModel does (t5x/models.py:
tokens positionally, `encode` then a cache made by `__call__(decode=True)`, then `decode`
one position at a time on beam-expanded rows); the project's own model is the reference.
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperprompt.methods.base import registered
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import T5Config

CONFIG = T5Config(vocab_size=128, emb_dim=32, num_heads=2, num_encoder_layers=1,
                  num_decoder_layers=1, head_dim=16, mlp_dim=64)
EOS = 1


def batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    targets = rng.integers(2, 128, size=(n, 5)).astype(np.int32)
    return {"encoder_input_tokens": rng.integers(2, 128, size=(n, 7)).astype(np.int32),
            "decoder_input_tokens": np.concatenate([np.zeros((n, 1), np.int32),
                                                    targets[:, :-1]], 1),
            "decoder_target_tokens": targets,
            "task_ids": rng.integers(0, 3, size=(n, 1)).astype(np.int32)}  # t5x: [B, 1]


@pytest.mark.parametrize("method", ["hyperprompt_global", "prompt_tuning", "hypergrid_lg"])
def test_t5x_calls_give_the_projects_logits_and_decodes(method):
    from hyperprompt.t5x.model import TaskConditionedModel
    from hyperprompt.t5x.network import TaskBound

    network = TaskBound(CONFIG, registered()[method].build(CONFIG, num_tasks=3))
    t5x_model, ours = TaskConditionedModel(network), EncoderDecoderModel(network)
    b = batch()
    shapes = {k: v.shape for k, v in b.items()}
    params = t5x_model.get_initial_variables(jax.random.PRNGKey(0), shapes)["params"]
    reference = dict(b, task_ids=b["task_ids"][:, 0])
    want = ours.logits(params, reference)
    np.testing.assert_allclose(t5x_model._compute_logits(params, b), want, atol=1e-6)

    tokens, aux = t5x_model.predict_batch_with_aux(params, b, num_decodes=2)
    # each beam row's first step (after BOS) is its example's first teacher-forced position
    np.testing.assert_allclose(aux["first_logits"], np.repeat(want[:, 0], 2, axis=0),
                               atol=1e-5)
    greedy = np.asarray(ours.predict_batch(params, reference, eos_id=EOS))
    # t5x's rows are each example twice (beams); before EOS they match the greedy decode
    for row, expected in zip(np.asarray(tokens)[::2], greedy, strict=True):
        stop = list(expected).index(EOS) + 1 if EOS in expected else len(expected)
        np.testing.assert_array_equal(row[:stop], expected[:stop])
    assert t5x_model.module is network  # the task ids were bound only during the calls


def test_a_call_without_task_ids_names_them():
    from hyperprompt.t5x.network import TaskBound

    network = TaskBound(CONFIG, registered()["prompt_tuning"].build(CONFIG, num_tasks=3))
    tokens = jnp.ones((2, 4), jnp.int32)
    with pytest.raises(ValueError, match="task_ids"):
        network.init(jax.random.PRNGKey(0), tokens, tokens, tokens, enable_dropout=False)


def test_gin_file_builds_t5xs_model_around_the_method():
    import gin

    from hyperprompt import cli, data
    from hyperprompt.methods.hyperprompt import HyperPrompt
    from hyperprompt.t5x.network import TaskBound

    cli.parse_gin(["models/t5_1_1_tiny.gin", "methods/hyperprompt_global.gin",
                   "t5x/model.gin"], [], [])
    gin.parse_config(["NUM_TASKS = 4", "HYPERPROMPT_MIXTURE = 'synthetic_mtl'",
                      "MIXTURE_OR_TASK_NAME = @tasks.with_task_ids()"])
    try:
        model = gin.query_parameter("MODEL/macro.value").scoped_configurable_fn()
        mixture = gin.query_parameter("MIXTURE_OR_TASK_NAME/macro.value").scoped_configurable_fn()
    finally:
        gin.clear_config()
    assert type(model).__name__ == "TaskConditionedModel"
    assert isinstance(model.module, TaskBound) and model.module.config.emb_dim == 128
    assert isinstance(model.module.conditioner, HyperPrompt)
    assert model.module.conditioner.variant == "global"
    assert {k: v for k, v in model.optimizer_settings.items()
            if k != "logical_factor_rules"} == {"decay_rate": 0.8, "step_offset": 0}
    assert model.optimizer_settings["logical_factor_rules"]["task"].name == "BATCH"
    assert mixture == "synthetic_mtl_with_task_ids"
    # t5x's train stops unless the model's vocabularies equal the tasks' (bytes here)
    features = data.get_mixture_or_task("synthetic_mtl").output_features
    assert model.input_vocabulary is features["inputs"].vocabulary
    assert model.output_vocabulary is features["targets"].vocabulary


def test_with_task_ids_adds_each_tasks_id_inside_seqio():
    import seqio

    from hyperprompt import data
    from hyperprompt.t5x.tasks import with_task_ids

    mixture = seqio.get_mixture_or_task(with_task_ids("synthetic_mtl"))
    registry = data.task_registry("synthetic_mtl")
    assert [t.name for t in mixture.tasks] == [f"{n}_with_task_ids" for n in registry]
    for task_id, name in enumerate(registry):
        copy = seqio.get_mixture_or_task(f"{name}_with_task_ids")
        original = seqio.get_mixture_or_task(name)
        got = next(copy.get_dataset(None, split="validation", shuffle=False).as_numpy_iterator())
        want = next(original.get_dataset(None, split="validation",
                                         shuffle=False).as_numpy_iterator())
        assert got["task_ids"].tolist() == [task_id]
        np.testing.assert_array_equal(got["inputs"], want["inputs"])
