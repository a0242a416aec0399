"""Attention mass on prompts and attention entropy against naive computations."""

import dataclasses
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from hyperprompt.analysis.attention import attention_entropy, token_statistics
from hyperprompt.analysis.report import attention_mass, pooled_entropy, real_tokens
from hyperprompt.methods.hyperprompt import HyperPrompt
from hyperprompt.methods.prompt_tuning import PromptTuning
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import T5Config
from hyperprompt.models.layers import RelativePositionBiases
from hyperprompt.models.t5 import Transformer

TASKS, PROMPT = 3, 4
BATCH = {  # mixed tasks, padded inputs and targets
    "encoder_input_tokens": np.array([[5, 6, 7, 1, 0], [8, 9, 1, 0, 0], [3, 4, 5, 6, 1],
                                      [9, 1, 0, 0, 0]], np.int32),
    "decoder_input_tokens": np.array([[0, 10, 11], [0, 12, 0], [0, 13, 14], [0, 15, 16]],
                                     np.int32),
    "decoder_target_tokens": np.array([[10, 11, 1], [12, 1, 0], [13, 14, 1], [15, 16, 1]],
                                      np.int32),
    "task_ids": np.array([2, 0, 2, 1], np.int32),
}
STACKS = (("encoder", "attention", "encoder_input_tokens"),
          ("decoder", "self_attention", "decoder_target_tokens"))


# conftest's tiny_config (module scope here: each model is built and run once)
CONFIG = T5Config(vocab_size=64, emb_dim=16, num_heads=2, num_encoder_layers=2,
                  num_decoder_layers=2, head_dim=8, mlp_dim=32)


class Run(NamedTuple):
    model: EncoderDecoderModel
    params: dict
    stats: dict  # token_statistics(BATCH)
    sown: dict  # the `intermediates` collection of the same forward pass


def run(conditioner, cfg=CONFIG, params=None):
    model = EncoderDecoderModel(Transformer(cfg, conditioner))
    if params is None:  # random normal parameters of the model's shapes: no init to compile
        shapes = jax.eval_shape(lambda: nn.unbox(model.init(jax.random.PRNGKey(0), 5, 3)))
        rng = np.random.default_rng(0)
        params = jax.tree.map(lambda x: rng.normal(0, 0.5, x.shape).astype(np.float32),
                              shapes["params"])

    def forward(p):
        _, state = model.module.apply(
            {"params": p}, BATCH["encoder_input_tokens"], BATCH["decoder_input_tokens"],
            BATCH["decoder_target_tokens"], enable_dropout=False, task_ids=BATCH["task_ids"],
            mutable=["intermediates"])
        return token_statistics(model, p, BATCH), state["intermediates"]

    stats, sown = jax.device_get(jax.jit(forward)(params))
    return Run(model, params, stats, sown)


def hyperprompt_method(cfg=CONFIG):
    return HyperPrompt(cfg, TASKS, "global", "both", PROMPT, 5, 6, 7)


@pytest.fixture(scope="module")
def hyperprompt():
    return run(hyperprompt_method())


@pytest.fixture(scope="module")
def prompt_tuning():
    return run(PromptTuning(TASKS, PROMPT))


def mass_per_task(stats):
    """The analysis path: each task's examples' real tokens, then `attention_mass`."""
    per_task = {}
    for task in range(TASKS):
        rows = np.flatnonzero(BATCH["task_ids"] == task)
        per_task[task] = real_tokens(jax.tree.map(lambda x, r=rows: x[:, r], stats),
                                     {k: v[rows] for k, v in BATCH.items()})
    return attention_mass(per_task)


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def test_encoder_layer_0_mass_equals_softmax_over_prompt_and_keys(hyperprompt):
    """From the embeddings: q, k projections, [prefix; keys], relpos bias, mask, softmax."""
    model, params = hyperprompt.model, hyperprompt.params
    p = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
    layer = p["encoder"]["layers_0"]
    heads, head_dim = CONFIG.num_heads, CONFIG.head_dim
    tokens = BATCH["encoder_input_tokens"]
    x = p["token_embedder"]["embedding"][tokens]
    h = x / np.sqrt(np.mean(x**2, -1, keepdims=True) + 1e-6) * layer["pre_attention_layer_norm"][
        "scale"]
    q = (h @ layer["attention"]["query"]["kernel"]).reshape(*tokens.shape, heads, head_dim)
    k = (h @ layer["attention"]["key"]["kernel"]).reshape(*tokens.shape, heads, head_dim)
    cond = jax.jit(lambda p: model.module.apply({"params": p}, BATCH["task_ids"], tokens, False,
                                                method=model.module.condition))(params)
    prefix = np.asarray(cond.encoder.kv_prefix.key[0], np.float64)  # [B, P, H, Dh]
    relpos = RelativePositionBiases(32, 128, heads)
    bias = np.asarray(relpos.apply({"params": params["encoder"]["relpos_bias"]}, 5, 5, True)[0],
                      np.float64)  # [H, Q, K]
    got = mass_per_task(hyperprompt.stats)["encoder"]
    for task in range(TASKS):
        masses = []
        for b in np.flatnonzero(BATCH["task_ids"] == task):
            real = np.flatnonzero(tokens[b] > 0)
            for head in range(heads):
                for i in real:
                    logits = np.concatenate([
                        prefix[b, :, head] @ q[b, i, head],
                        [q[b, i, head] @ k[b, j, head] + bias[head, i, j] for j in real]])
                    masses.append(softmax(logits)[:PROMPT].sum())
        assert 0.05 < np.mean(masses) < 0.95
        np.testing.assert_allclose(got[task][0], np.mean(masses), rtol=1e-5)


def naive_mass(weights, tokens, task, num_prompt, query_offset):
    """Mean over the task's real query tokens and all heads of the weight on the prompt keys.

    weights [B, H, Q, K] of one layer.
    """
    values = []
    for b in range(len(tokens)):
        if BATCH["task_ids"][b] != task:
            continue
        for head in range(weights.shape[1]):
            for i in range(tokens.shape[1]):
                if tokens[b, i] > 0:
                    values.append(weights[b, head, query_offset + i, :num_prompt].sum())
    return np.mean(values)


@pytest.mark.parametrize("method", ["hyperprompt", "prompt_tuning"])
def test_mass_every_layer_equals_naive_average_of_sown_weights(request, method):
    result = request.getfixturevalue(method)
    prompted = ({"encoder": (PROMPT, 0), "decoder": (PROMPT, 0)} if method == "hyperprompt"
                else {"encoder": (PROMPT, PROMPT)})  # stack: (prompt keys, prompt queries)
    got = mass_per_task(result.stats)
    assert set(got) == set(prompted)
    for stack, attention, feature in STACKS:
        if stack not in prompted:
            continue
        for task in range(TASKS):
            want = [naive_mass(result.sown[stack][f"layers_{layer}"][attention][
                "attention_weights"][0], BATCH[feature], task, *prompted[stack])
                for layer in range(2)]
            assert all(0.0 <= m <= 1.0 for m in got[stack][task])
            np.testing.assert_allclose(got[stack][task], want, rtol=1e-5)
        np.testing.assert_allclose(got[stack]["average"],
                                   np.mean([got[stack][t] for t in range(TASKS)], axis=0))


def test_entropy_equals_scipy_on_the_same_rows(hyperprompt):
    rng = np.random.default_rng(0)
    rows = rng.dirichlet(np.ones(7), size=(3, 5))
    rows[0, 0] = [0.5, 0.5, 0, 0, 0, 0, 0]  # zeros (masked keys) contribute nothing
    np.testing.assert_allclose(attention_entropy(jnp.asarray(rows)),
                               scipy.stats.entropy(rows, axis=-1), rtol=1e-5)

    stats = real_tokens(hyperprompt.stats, BATCH)
    tokens = BATCH["encoder_input_tokens"]
    for layer in range(2):
        weights = np.asarray(hyperprompt.sown["encoder"][f"layers_{layer}"]["attention"][
            "attention_weights"][0], np.float64)  # [B, H, Q, K]
        want = [[scipy.stats.entropy(weights[b, head, i]) for b in range(len(tokens))
                 for i in range(tokens.shape[1]) if tokens[b, i] > 0] for head in range(2)]
        np.testing.assert_allclose(stats["encoder", "entropy"][layer], want, rtol=1e-5)
    assert pooled_entropy({"all": stats})["encoder"].shape == (2, 2, int((tokens > 0).sum()))


def test_scanned_layers_give_the_same_statistics(hyperprompt):
    cfg = dataclasses.replace(CONFIG, scan_layers=True)
    stacked = dict(hyperprompt.params)
    for stack in ("encoder", "decoder"):  # layers_i -> one tree, layers on axis 1 (t5x's)
        layers = {k: v for k, v in stacked[stack].items() if k.startswith("layers_")}
        rest = {k: v for k, v in stacked[stack].items() if k not in layers}
        stacked[stack] = {**rest, stack: jax.tree.map(lambda *xs: jnp.stack(xs, axis=1),
                                                      *(layers[f"layers_{i}"] for i in range(2)))}
    scanned = run(hyperprompt_method(cfg), cfg, stacked)
    assert scanned.sown["encoder"]["encoder"]["attention"]["attention_weights"][0].shape[0] == 2
    for stack, by_name in hyperprompt.stats.items():
        for name, want in by_name.items():
            np.testing.assert_allclose(scanned.stats[stack][name], want, rtol=1e-5, atol=1e-6)
