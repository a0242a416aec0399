"""Parameter initialisation: its program is the same size at any depth (so compiling it
takes seconds at every size), and scanned and unrolled models start from the same
parameters; one compiled program serves every seed."""

import dataclasses

import flax.linen as nn
import jax
import numpy as np

from hyperprompt import partitioning
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import T5Config
from hyperprompt.models.layout import scan_params
from hyperprompt.models.t5 import Transformer
from hyperprompt.optim import make_optimizer
from hyperprompt.state import init_state, params_initializer

SMALL = T5Config(vocab_size=64, emb_dim=16, num_heads=2, head_dim=8, mlp_dim=32)
LENGTHS = {"inputs": 8, "targets": 4}


def model_of(depth: int, scan_layers: bool) -> EncoderDecoderModel:
    return EncoderDecoderModel(Transformer(dataclasses.replace(
        SMALL, num_encoder_layers=depth, num_decoder_layers=depth, scan_layers=scan_layers)))


def operations(lowered) -> int:
    """Operations of a lowered (StableHLO) program, constants (slice indices) aside."""
    return sum(" = " in line and "stablehlo.constant" not in line
               for line in lowered.as_text().splitlines())


def init_ops(model: EncoderDecoderModel) -> int:
    """Operations of the initialiser init_state runs."""
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES):
        return operations(params_initializer(model, LENGTHS).lower(jax.random.PRNGKey(0)))


def flax_init_ops(model: EncoderDecoderModel) -> int:
    """The same count for Flax's own `model.init` of the network as it is laid out."""
    fn = jax.jit(lambda: model.init(jax.random.PRNGKey(0), LENGTHS["inputs"],
                                    LENGTHS["targets"]))
    return operations(fn.lower())


def test_init_program_is_flat_in_depth():
    assert init_ops(model_of(12, True)) == init_ops(model_of(2, True))
    # Unrolled: the scanned program plus the split into layers_i (a slice per parameter).
    deep = model_of(12, False)
    leaves = len(jax.tree.leaves(jax.eval_shape(params_initializer(deep, LENGTHS),
                                                  jax.random.PRNGKey(0))))
    assert init_ops(deep) <= init_ops(model_of(12, True)) + 2 * leaves
    # Flax's own unrolled init is not flat: the count sees layers.
    assert flax_init_ops(deep) > 2 * flax_init_ops(model_of(2, False))
    assert flax_init_ops(deep) > init_ops(model_of(12, True)) + 2 * leaves


def test_scanned_and_unrolled_start_equal():
    mesh = partitioning.make_mesh(1, jax.devices()[:1])
    states = {}
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        for scan in (True, False):
            states[scan] = init_state(model_of(3, scan), make_optimizer(), LENGTHS, mesh, 0)
    restacked = scan_params(states[False]["params"], model_of(3, False).module.config)
    jax.tree.map(np.testing.assert_array_equal, restacked, states[True]["params"])
    # Not all one number: the layers differ from each other.
    kernel = states[True]["params"]["encoder"]["encoder"]["mlp"]["wo"]["kernel"]
    assert not np.allclose(kernel[:, 0], kernel[:, 1])


def test_one_initialiser_program_serves_every_seed_and_draws_flaxs_bits():
    """The seed is the program's argument, not a constant in it: a study's second seed or a
    sweep's next run reuses the compiled initialiser. Its draws are Flax's own `init` with
    that key, jitted with the key a constant, bit for bit (so no figure moved)."""
    model = model_of(2, True)
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES):
        init = params_initializer(model, LENGTHS)
        programs = {init.lower(jax.random.PRNGKey(seed)).as_text() for seed in (0, 7)}
        assert len(programs) == 1
        drawn = init(jax.random.PRNGKey(7))
    key = jax.random.PRNGKey(7)
    flax_init = jax.jit(lambda: nn.unbox(model.init(key, LENGTHS["inputs"],
                                                    LENGTHS["targets"])["params"]))()
    jax.tree.map(np.testing.assert_array_equal, drawn, flax_init)
    assert not np.array_equal(jax.tree.leaves(drawn)[0],
                              jax.tree.leaves(init(jax.random.PRNGKey(0)))[0])
