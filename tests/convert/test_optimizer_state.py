"""Fine-tuning from a t5x checkpoint continues its Adafactor state and step, as t5x does:
the first step equals T5's Adafactor (an independent numpy implementation) resumed from
the checkpoint's statistics."""

import dataclasses
import functools

import flax.linen as nn
import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from hyperprompt import data, partitioning
from hyperprompt.convert import sources
from hyperprompt.convert.optimizer_state import load_t5x_adafactor_state
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import T5Config
from hyperprompt.models.layout import scan_params, unscan_params
from hyperprompt.models.t5 import Transformer
from hyperprompt.optim import flat_paths, layer_axes, make_optimizer
from hyperprompt.state import abstract_boxed, restore_trained
from hyperprompt.train import train

FIXTURE_CONFIG = T5Config(vocab_size=32128, emb_dim=4, num_heads=2, head_dim=2, mlp_dim=8,
                          num_encoder_layers=2, num_decoder_layers=2, relpos_num_buckets=4,
                          relpos_max_distance=8)
LENGTHS = {"inputs": 24, "targets": 12}


@pytest.mark.parametrize("restore", [True, False])
def test_first_step_from_the_t5x_fixture_continues_its_adafactor_state(
        tmp_path, t5x_checkpoint, t5_adafactor, restore):
    """The fixture (written by t5x, step 3) carries Adafactor's `v` per parameter; with
    RESTORE_OPTIMIZER_STATE the first step is Adafactor's 4th from those statistics,
    without it Adafactor's 1st."""
    model = EncoderDecoderModel(Transformer(FIXTURE_CONFIG))
    train(model=model, model_dir=str(tmp_path), train_steps=1, batch_size=8,
          mixture_or_task_name="synthetic_mtl", task_feature_lengths=LENGTHS,
          optimizer=functools.partial(make_optimizer, learning_rate=0.05), eval_examples=0,
          initial_checkpoint_path=t5x_checkpoint, async_checkpointing=False,
          restore_optimizer_state=restore)
    mesh = partitioning.make_mesh(1)
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        _, trained = restore_trained(model, str(tmp_path), LENGTHS, mesh)

    loaded = {k: t.load() for k, t in sources.read(t5x_checkpoint, "t5x",
                                                   FIXTURE_CONFIG).items()}
    batch = next(data.train_batches("synthetic_mtl", data.task_registry("synthetic_mtl"),
                                    LENGTHS, 8, seed=0))
    params = jax.tree.map(np.asarray, nn.unbox(model.init(jax.random.PRNGKey(0), 4, 4)[
        "params"]))
    params = jax.tree_util.tree_map_with_path(
        lambda p, _: loaded["/".join(k.key for k in p)], params)
    grads = flat_paths(jax.jit(jax.grad(lambda p: model.loss_fn(p, batch)[0]))(params))
    states = sources.t5x_legacy_tree(t5x_checkpoint)["optimizer"]["state"]
    saved_v = {k.rsplit("/", 1)[0]: t.load() for k, t in sources.t5x_legacy_tensors(
        t5x_checkpoint, states["param_states"]).items() if k.endswith("/v")}
    assert int(states["step"]) == 3 and set(saved_v) == set(loaded)
    reference = t5_adafactor(0.05, step=3, v=saved_v) if restore else t5_adafactor(0.05)
    want = reference.step(loaded, grads)
    got = flat_paths(trained)
    for name in loaded:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-7, err_msg=name)


def test_factored_statistics_map_into_a_scanned_layerwise_optimizer(tmp_path, t5_adafactor):
    """A t5x orbax checkpoint (unscanned, factored statistics of >= 128-wide matrices, step
    1000) into a scanned model: every layer's v_row/v_col lands in its slice, and the next
    update equals T5's Adafactor continuing from them."""
    config = T5Config(vocab_size=64, emb_dim=128, num_heads=2, head_dim=64, mlp_dim=256,
                      num_encoder_layers=2, num_decoder_layers=2)
    model = EncoderDecoderModel(Transformer(config))
    params = jax.tree.map(np.asarray, nn.unbox(model.init(jax.random.PRNGKey(0), 4, 4)[
        "params"]))
    rng = np.random.default_rng(0)
    statistics, param_states = {}, {}
    for name, p in flat_paths(params).items():  # positive statistics, t5x's layout
        state = {"m": np.zeros(1, np.float32), "v": np.zeros(1, np.float32),
                 "v_row": np.zeros(1, np.float32), "v_col": np.zeros(1, np.float32)}
        if dims := t5_adafactor.factored_dims(p.shape):
            row, col = dims
            vr = rng.uniform(0.1, 2, np.delete(p.shape, col)).astype(np.float32)
            vc = rng.uniform(0.1, 2, np.delete(p.shape, row)).astype(np.float32)
            state.update(v_row=vr, v_col=vc)
            statistics[name] = (np.expand_dims(vr, col), np.expand_dims(vc, row))
        else:
            state["v"] = rng.uniform(0.1, 2, p.shape).astype(np.float32)
            statistics[name] = state["v"]
        node = param_states
        for key in name.split("/"):
            node = node.setdefault(key, {})
        node.update(state)
    assert sum(isinstance(v, tuple) for v in statistics.values()) >= 16  # factored kernels
    ocp.PyTreeCheckpointer().save(tmp_path / "checkpoint_1000", {
        "target": params, "state": {"step": np.array(1000), "param_states": param_states}})

    scanned = dataclasses.replace(config, scan_layers=True)
    scanned_model = EncoderDecoderModel(Transformer(scanned))
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES):
        tx = make_optimizer(learning_rate=0.05, layer_axes=layer_axes(
            abstract_boxed(scanned_model, LENGTHS)))
    start = scan_params(params, scanned)
    opt_state, step = load_t5x_adafactor_state(str(tmp_path), jax.jit(tx.init)(start))
    assert step == 1000
    grads = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in flat_paths(
        params).items()}
    grad_tree = jax.tree_util.tree_map_with_path(
        lambda p, _: grads["/".join(k.key for k in p)], params)
    updates, _ = jax.jit(tx.update)(scan_params(grad_tree, scanned), opt_state, start)
    got = flat_paths(unscan_params(optax.apply_updates(start, updates), scanned))
    want = t5_adafactor(0.05, step=1000, v=statistics).step(flat_paths(params), grads)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=2e-5, atol=1e-6, err_msg=name)
