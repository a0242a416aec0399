"""On the 8-device (data=4, model=2) mesh a train step equals the one-device step: every
method under the most split rule set (FSDP, parameters' embed over data, with 2-D
activations: embed over model where it is free), vanilla under each of t5x's rule sets;
parameters initialised in their shardings are the one-device ones; the rules place what they
say."""

import dataclasses

import flax.linen as nn
import jax
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec

from hyperprompt import partitioning
from hyperprompt.errors import UsageError
from hyperprompt.methods.base import registered
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import T5Config
from hyperprompt.models.t5 import Transformer
from hyperprompt.optim import flat_paths, layer_axes, make_optimizer
from hyperprompt.state import abstract_boxed, init_state, state_from_params
from hyperprompt.train import make_train_step

pytestmark = pytest.mark.slow  # conftest: handed out first

CONFIG = T5Config(vocab_size=128, emb_dim=32, num_heads=2, num_encoder_layers=1,
                  num_decoder_layers=1, head_dim=16, mlp_dim=64)
LENGTHS = {"inputs": 8, "targets": 4}
RULE_SETS = [(1, 1), (2, 1), (1, 2), (2, 2)]


def batch(n=8):
    rng = np.random.default_rng(0)
    targets = rng.integers(2, 64, size=(n, 4)).astype(np.int32)
    return {
        "encoder_input_tokens": rng.integers(2, 64, size=(n, 8)).astype(np.int32),
        "decoder_input_tokens": np.concatenate([np.zeros((n, 1), np.int32), targets[:, :-1]], 1),
        "decoder_target_tokens": targets,
        "decoder_loss_weights": np.ones((n, 4), np.int32),
        "task_ids": rng.integers(0, 2, size=(n,)).astype(np.int32),
    }


def train_step(model, mesh, rules, params=None, tx=None):
    """(loss, params as numpy, the sharded state after one step of `tx`, T5's Adafactor by
    default: Adam amplifies tiny reduction-order differences). `params` (numpy): start from
    them, placed by `rules` (else from `init_state` under `rules`)."""
    tx = tx or make_optimizer()
    with nn.logical_axis_rules(rules), jax.set_mesh(mesh):
        if params is None:
            state = init_state(model, tx, LENGTHS, mesh, seed=0)
        else:
            boxed = abstract_boxed(model, LENGTHS)
            placed = jax.device_put(params, partitioning.param_shardings(boxed, mesh))
            state = state_from_params(tx, placed, boxed, mesh)
        step = jax.jit(make_train_step(model, tx, 0, use_dropout=False))
        state, metrics = step(state, partitioning.shard_batch(batch(), mesh))
        return jax.device_get(metrics["loss"]), jax.device_get(state["params"]), state


def initial_params(model, mesh, rules):
    """`init_state`'s parameters under `rules`, as numpy."""
    with nn.logical_axis_rules(rules), jax.set_mesh(mesh):
        return jax.device_get(init_state(model, make_optimizer(), LENGTHS, mesh, 0)["params"])


def random_params(model):
    """Numpy parameters of the model's shapes, none zero (every gradient path is live; no
    initialiser to compile): N(0, 0.1), LayerNorm scales 1 + N(0, 0.1)."""
    rng = np.random.default_rng(1)
    shapes = nn.unbox(abstract_boxed(model, LENGTHS))
    return jax.tree_util.tree_map_with_path(
        lambda path, x: (path[-1].key == "scale") + 0.1 * rng.standard_normal(
            x.shape).astype(x.dtype), shapes)


@pytest.mark.parametrize("method, rule_sets", [
    (name, RULE_SETS if name == "vanilla" else [(2, 2)]) for name in sorted(registered())])
def test_sharded_step_equals_one_device(method, rule_sets):
    """Each sharded step starts from the same random parameters as the one-device step
    (initialising under the rules is `test_sharded_init_equals_one_device`'s). Vanilla takes
    a step of T5's Adafactor under each rule set (the optimizer's statistics and their
    reductions split as the parameters); a method takes one of SGD at rate 1, so its
    parameters move by exactly their gradients (an adapter gradient 0.1% off when sharded
    put 23% of a kernel past the tolerance, 0.05% after Adafactor's normalised update;
    Adafactor also doubled each case's compile time), under (2, 2) only: it splits every
    parameter that (1, 2) splits (embed over model where that is free, else over data) and
    the activations too."""
    conditioner = registered()[method].build(CONFIG, num_tasks=2)
    model = EncoderDecoderModel(Transformer(CONFIG, conditioner))
    tx = make_optimizer() if method == "vanilla" else optax.sgd(1.0)
    one_device = partitioning.make_mesh(1, jax.devices()[:1])
    initial = random_params(model)
    loss_1, params_1, _ = train_step(model, one_device, partitioning.LOGICAL_AXIS_RULES,
                                     initial, tx)
    for dims in rule_sets:
        rules = partitioning.standard_logical_axis_rules(*dims)
        loss_8, params_8, _ = train_step(model, partitioning.make_mesh(2), rules, initial, tx)
        np.testing.assert_allclose(loss_8, loss_1, rtol=1e-6, err_msg=str(dims))
        for a, b in zip(jax.tree.leaves(params_8), jax.tree.leaves(params_1), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6, err_msg=str(dims))


@pytest.mark.parametrize("method, rule_sets", [
    ("vanilla", RULE_SETS), ("prompt_tuning", [(2, 2)]), ("attempt", [(2, 2)]),
    ("hyperformer_pp", [(2, 2)]), ("hyperprompt_global", [(2, 2)])])
def test_sharded_init_equals_one_device(method, rule_sets):
    """Parameters initialised in their shardings (`init_state`: each created where it lives)
    are the one-device ones, bit for bit: the backbone under each rule set, and under the
    most split one, prompts drawn from the (sharded) vocabulary table (prompt tuning,
    ATTEMPT) and two methods' hypernetworks."""
    model = EncoderDecoderModel(Transformer(CONFIG, registered()[method].build(CONFIG, 2)))
    one = initial_params(model, partitioning.make_mesh(1, jax.devices()[:1]),
                         partitioning.LOGICAL_AXIS_RULES)
    for dims in rule_sets:
        sharded = initial_params(model, partitioning.make_mesh(2),
                                 partitioning.standard_logical_axis_rules(*dims))
        for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(one), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=str(dims))


def test_fsdp_splits_parameters_and_optimizer_state_over_data():
    model = EncoderDecoderModel(Transformer(CONFIG))
    fsdp = partitioning.standard_logical_axis_rules(parameter_partitioning_dims=2)
    _, _, state = train_step(model, partitioning.make_mesh(2), fsdp)
    wi = ("encoder", "layers_0", "mlp", "wi_0", "kernel")  # (embed, mlp)

    def at(tree, path):
        for key in path:
            tree = tree[key]
        return tree

    assert at(state["params"], wi).sharding.spec == PartitionSpec("data", "model")
    # Adafactor's second moment of that kernel (unfactored below 128) lives where it does.
    moments = [leaf for leaf in jax.tree.leaves(state["opt_state"])
               if leaf.shape == at(state["params"], wi).shape]
    assert moments and all(m.sharding.spec == PartitionSpec("data", "model") for m in moments)
    assert {s.data.shape for s in moments[0].addressable_shards} == {(8, 32)}  # (32/4, 64/2)
    embedding = state["params"]["token_embedder"]["embedding"]  # (vocab, embed)
    assert embedding.sharding.spec == PartitionSpec("model", "data")


@pytest.mark.parametrize("method", sorted(set(registered()) - {"vanilla"}))
def test_fsdp_splits_every_method_parameter_with_a_model_width_axis(method):
    """Method parameters have logical axis names, like the backbone's: an axis of width d is
    `embed`, which FSDP splits over `data` (unnamed, a HyperFormer generator stayed whole
    on every device: 49 GiB of arguments at XXL). d = 96 matches no method's other sizes."""
    config = dataclasses.replace(CONFIG, emb_dim=96)
    model = EncoderDecoderModel(Transformer(config, registered()[method].build(config, 2)))
    fsdp = partitioning.standard_logical_axis_rules(parameter_partitioning_dims=2)
    boxed = abstract_boxed(model, LENGTHS)
    unnamed = [path for path, x in flat_paths(jax.tree.map(
        lambda x: isinstance(x, nn.LogicallyPartitioned), boxed["conditioner"],
        is_leaf=lambda x: isinstance(x, nn.Partitioned))).items() if not x]
    assert not unnamed, unnamed  # every method parameter has logical axis names
    shapes = flat_paths(nn.unbox(boxed)["conditioner"])
    specs = flat_paths(partitioning.param_shardings(boxed, partitioning.make_mesh(2),
                                                    fsdp)["conditioner"])
    assert shapes
    whole = [path for path, x in shapes.items()
             if config.emb_dim in x.shape and "data" not in specs[path].spec]
    assert not whole, whole


@pytest.mark.parametrize("method", ["adapters", "hyperformer", "prompt_tuning"])
def test_fsdp_splits_each_parameters_optimizer_statistics_like_it(method):
    """Unfactored second moments (layer-wise ones lead with the layers axis) hold as many
    numbers a device as their parameter: optax makes them with zeros_like, which XLA left
    whole on every device (at T5 1.1 XL, HyperFormer's 6.2 GiB of generator statistics)."""
    model = EncoderDecoderModel(Transformer(CONFIG, registered()[method].build(CONFIG, 2)))
    fsdp = partitioning.standard_logical_axis_rules(parameter_partitioning_dims=2)
    mesh = partitioning.make_mesh(2)
    with nn.logical_axis_rules(fsdp), jax.set_mesh(mesh):
        boxed = abstract_boxed(model, LENGTHS)
        tx = make_optimizer(groups=model.module.conditioner.param_groups(),
                            layer_axes=layer_axes(boxed))
        state = init_state(model, tx, LENGTHS, mesh, seed=0, boxed=boxed)
    params = flat_paths(state["params"])
    per_device = lambda x: x.addressable_shards[0].data.size  # noqa: E731
    checked = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(state["opt_state"])[0]:
        keys = [k.key for k in path if isinstance(k, jax.tree_util.DictKey)]
        name = next((n for n in ("/".join(keys[i:]) for i in range(len(keys))) if n in params),
                    None)
        if name and name.startswith("conditioner/") and leaf.size == params[name].size > 1:
            assert per_device(leaf) == per_device(params[name]), (name, leaf.sharding)
            checked += 1
    assert checked


def test_one_d_rules_split_the_wide_axes_over_model():
    model = EncoderDecoderModel(Transformer(CONFIG))
    mesh = partitioning.make_mesh(2)
    shardings = partitioning.param_shardings(abstract_boxed(model, LENGTHS), mesh,
                                             partitioning.LOGICAL_AXIS_RULES)
    mlp = shardings["encoder"]["layers_0"]["mlp"]
    assert mlp["wi_0"]["kernel"].spec == PartitionSpec(None, "model")  # (embed, mlp)
    assert mlp["wo"]["kernel"].spec == PartitionSpec("model", None)  # (mlp, embed)


def test_rule_sets_are_t5x_tables():
    one = dict(partitioning.standard_logical_axis_rules())
    assert one["batch"] == "data" and one["mlp"] == "model" and one["embed"] is None
    spec = nn.logical_to_mesh_axes(("batch", "length", "embed"),
                                   partitioning.standard_logical_axis_rules(2, 2))
    assert spec == PartitionSpec("data", None, "model")  # 2-D activations
    with pytest.raises(UsageError, match="parameter_partitioning_dims=3"):
        partitioning.standard_logical_axis_rules(1, 3)
