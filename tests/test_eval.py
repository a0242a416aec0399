"""Evaluation decodes every example whole, as t5x evaluates (`task_feature_lengths=None`)."""

import flax.linen as nn
import jax
import numpy as np

from hyperprompt import partitioning
from hyperprompt.eval import Evaluator, eval_lengths
from hyperprompt.methods.prompt_tuning import PromptTuning
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import T5Config
from hyperprompt.models.t5 import Transformer
from hyperprompt.tasks import synthetic

TASK = "synthetic_reverse"
EXAMPLES = 16
# Training lengths shorter than every example: "reverse: " + 3 to 10 letters + EOS.
TRAIN_LENGTHS = {"inputs": 8, "targets": 2}
CONFIG = T5Config(vocab_size=384, emb_dim=16, num_heads=2, num_encoder_layers=1,
                  num_decoder_layers=1, head_dim=8, mlp_dim=32)
BATCH = 8  # the 8 CPU devices of the data axis


def test_eval_lengths_round_up_only_what_does_not_fit():
    examples = [{"inputs": np.ones(n), "targets": np.ones(3)} for n in (5, 20)]
    assert eval_lengths(examples, {"inputs": 8, "targets": 4}) == {"inputs": 32, "targets": 4}
    assert eval_lengths(examples, {"inputs": 20, "targets": 2}) == {"inputs": 20, "targets": 4}
    assert eval_lengths([{"inputs": np.ones(33)}], {"inputs": 8}) == {"inputs": 64}


def expected_tokens(texts: list[str]) -> np.ndarray:
    """Byte tokens + EOS of each text, padded to the next power of two (independent of eval)."""
    ids = [synthetic.VOCABULARY.encode(t) + [synthetic.VOCABULARY.eos_id] for t in texts]
    width = 1 << (max(map(len, ids)) - 1).bit_length()
    return np.array([row + [0] * (width - len(row)) for row in ids], np.int32)


def test_examples_longer_than_the_training_lengths_are_evaluated_whole():
    """With a prompt method (its prompt prepended inside the model, on top of the lengths)."""
    strings = synthetic.letter_strings("validation")[:EXAMPLES]
    inputs = expected_tokens([f"reverse: {s}" for s in strings])
    targets = expected_tokens([s[::-1] for s in strings])
    assert inputs.shape[1] > TRAIN_LENGTHS["inputs"] and targets.shape[1] > 2
    model = EncoderDecoderModel(Transformer(CONFIG, conditioner=PromptTuning(1, 3)))
    # Any weights will do; N(0, 1) from numpy skips compiling an init.
    shapes = jax.eval_shape(lambda: nn.unbox(model.init(jax.random.PRNGKey(0), 8, 2)["params"]))
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(s.dtype), shapes)
    mesh = partitioning.make_mesh(1)
    with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES), jax.set_mesh(mesh):
        evaluator = Evaluator(model, [TASK], TRAIN_LENGTHS, BATCH, mesh, "validation",
                              EXAMPLES)
        batches = evaluator.sets[TASK].batches
        np.testing.assert_array_equal(
            np.concatenate([b["encoder_input_tokens"] for b in batches]), inputs)
        np.testing.assert_array_equal(
            np.concatenate([b["decoder_target_tokens"] for b in batches]), targets)
        predictions = evaluator.decode(params, evaluator.tasks[0])
    # Each example decoded by the model itself (rows are independent), with room to spare
    # in the encoder: the same text as the evaluator's, and not all the same text.
    direct = {"encoder_input_tokens": np.pad(inputs, ((0, 0), (0, 64))),
              "decoder_input_tokens": np.zeros(targets.shape, np.int32),
              "task_ids": np.zeros(EXAMPLES, np.int32)}
    tokens = jax.jit(model.predict_batch, static_argnums=2)(params, direct,
                                                          synthetic.VOCABULARY.eos_id)
    assert predictions == [synthetic.VOCABULARY.decode(row) for row in np.asarray(tokens).tolist()]
    assert len(set(predictions)) > EXAMPLES // 2
