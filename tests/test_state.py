"""Parameter initialisation: its program stays the same size at any depth with scanned
layers (so compiling it takes seconds at every size), and grows with depth unrolled."""

import dataclasses

import flax.linen as nn

from hyperprompt import partitioning
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import T5Config
from hyperprompt.models.t5 import Transformer
from hyperprompt.state import params_initializer

SMALL = T5Config(vocab_size=64, emb_dim=16, num_heads=2, head_dim=8, mlp_dim=32)
LENGTHS = {"inputs": 8, "targets": 4}


def init_ops(depth: int, scan_layers: bool) -> int:
    """Operations in the lowered (StableHLO) program of the initialiser init_state runs."""
    config = dataclasses.replace(SMALL, num_encoder_layers=depth, num_decoder_layers=depth,
                                 scan_layers=scan_layers)
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES):
        lowered = params_initializer(EncoderDecoderModel(Transformer(config)), LENGTHS, 0).lower()
    return sum(" = " in line for line in lowered.as_text().splitlines())


def test_init_program_is_flat_in_depth_with_scan():
    assert init_ops(24, scan_layers=True) == init_ops(2, scan_layers=True)


def test_init_program_grows_with_depth_unrolled():
    """The count above does see layers: unrolled, 22 more layers per stack quadruple it."""
    assert init_ops(24, scan_layers=False) > 3 * init_ops(2, scan_layers=False)
