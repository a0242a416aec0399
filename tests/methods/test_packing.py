"""Packed training is exact: for vanilla and every method file that conditions on the task
id only (`per_task`), the loss of each example in a packed row (from the real data path)
equals its loss alone, unpacked; for one that conditions on each example's input
(HyperGrid) it does not, which is why such a method trains unpacked."""

import os

import flax.linen as nn
import gin
import jax
import numpy as np
import pytest

from hyperprompt import cli, data
from hyperprompt.model import cross_entropy_with_z_loss

pytestmark = pytest.mark.slow  # conftest: handed out first

LENGTHS = {"inputs": 64, "targets": 24}
ROWS = 2
TASK = "synthetic_reverse"
# Every method file a user passes (`_*.gin` are only included).
METHODS = sorted(name[:-4] for name in os.listdir(os.path.join(cli.gin_root(), "methods"))
                 if name.endswith(".gin") and not name.startswith("_"))


def build(method: str):
    """(model, params, the method's input prompt length) for quickstart + `method`, tiny."""
    bindings = ["MODEL_DIR='/tmp/unused'"]
    if method.startswith(("prompt_tuning", "attempt")):  # 100 slots: one example a row
        bindings.append("PROMPT_LENGTH=5")
    cli.parse_gin(["experiments/quickstart.gin", f"methods/{method}.gin"], bindings, [])
    try:
        model = cli._macro("MODEL").scoped_configurable_fn()
    finally:
        gin.clear_config()
    params = nn.unbox(model.init(jax.random.PRNGKey(0), 8, 4)["params"])
    return model, params, model.input_prompt_length()


def packed_batch(prompt_length: int) -> dict[str, np.ndarray]:
    rows = data.packed_task_rows(TASK, 1, LENGTHS, seed=0, prompt_length=prompt_length)
    return next(rows.batch(ROWS).as_numpy_iterator())


def unpacked_examples(packed: dict, prompt_length: int) -> dict[str, np.ndarray]:
    """Each segment of `packed` as its own unpacked row (placeholder slots dropped), as the
    unpacked converter pads it: one row per example, in row-major segment order."""
    def pad(tokens, length):
        return np.pad(tokens, (0, length - len(tokens)))

    out = {k: [] for k in ("encoder_input_tokens", "decoder_target_tokens",
                           "decoder_input_tokens", "task_ids")}
    for row in range(ROWS):
        enc_seg, dec_seg = packed["encoder_segment_ids"][row], packed["decoder_segment_ids"][row]
        for seg in range(1, dec_seg.max() + 1):
            inputs = packed["encoder_input_tokens"][row][enc_seg == seg][prompt_length:]
            targets = packed["decoder_target_tokens"][row][dec_seg == seg]
            out["encoder_input_tokens"].append(pad(inputs, LENGTHS["inputs"]))
            out["decoder_target_tokens"].append(pad(targets, LENGTHS["targets"]))
            out["decoder_input_tokens"].append(pad(np.r_[0, targets[:-1]], LENGTHS["targets"]))
            out["task_ids"].append(packed["task_ids"][row])
    return {k: np.stack(v).astype(np.int32) for k, v in out.items()}


def segment_losses(model, params, batch) -> np.ndarray:
    """Summed token loss of each segment (an unpacked row is one segment), row-major."""
    logits = model.logits(params, batch)
    targets = batch["decoder_target_tokens"]
    token_loss = np.asarray(cross_entropy_with_z_loss(logits, targets, model.z_loss)[0])
    segments = batch.get("decoder_segment_ids", (targets > 0).astype(np.int32))
    return np.array([token_loss[row][segments[row] == seg].sum()
                     for row in range(len(targets)) for seg in range(1, segments[row].max() + 1)])


@pytest.mark.parametrize("method", METHODS)
def test_packed_losses_equal_unpacked(method):
    model, params, prompt_length = build(method)
    packed = packed_batch(prompt_length)
    assert packed["encoder_input_tokens"].shape == (ROWS, LENGTHS["inputs"] + prompt_length)
    assert (packed["decoder_segment_ids"].max(axis=1) > 1).all()  # rows hold > 1 example
    if prompt_length:  # each example's reserved slots, in front of it
        slots = packed["encoder_positions"] < prompt_length
        assert (packed["encoder_input_tokens"][slots & (packed["encoder_segment_ids"] > 0)]
                == data.PROMPT_PLACEHOLDER_ID).all()
    unpacked = unpacked_examples(packed, prompt_length)
    want = segment_losses(model, params, unpacked)
    got = segment_losses(model, params, packed)
    if model.module.conditioner.per_task:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    else:  # a row's later examples get its first example's conditioning (ATTEMPT without
        # a bank has zero sources: only a_target varies, so its losses move ~5e-4)
        assert np.abs(got - want).max() > 1e-4
