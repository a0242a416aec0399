"""Stand-ins for the parts of t5x that hyperprompt.t5x imports (t5x is not installed).

`StandInModel` calls the module as t5x's EncoderDecoderModel does (t5x/models.py:
tokens positionally, `encode` then a cache made by `__call__(decode=True)`, then `decode`
one position at a time on beam-expanded rows). `t5x.adafactor` has t5x's names: its
`FactorDim` values and `standard_logical_factor_rules()` axis names (t5x/adafactor.py).
"""

import enum
import sys
import types

import jax
import jax.numpy as jnp
import pytest
from flax.core import freeze


class StandInModel:
    """The calls t5x's EncoderDecoderModel makes on its module (greedy, `beams` copies)."""

    def __init__(self, module, input_vocabulary=None, output_vocabulary=None,
                 optimizer_def=None, **_):
        self.module = module
        self.input_vocabulary, self.output_vocabulary = input_vocabulary, output_vocabulary
        self.optimizer_settings = getattr(optimizer_def, "settings", None)

    def get_initial_variables(self, rng, input_shapes, input_types=None):
        types = input_types or {}  # t5x's default type: float32, whatever the feature
        enc, dec = (jnp.ones(input_shapes[k], types.get(k, jnp.float32))
                    for k in ("encoder_input_tokens", "decoder_input_tokens"))
        return self.module.init(rng, enc, dec, dec, decode=False, enable_dropout=False)

    def _compute_logits(self, params, batch, dropout_rng=None, mutable=False,
                        other_variables=None):
        return self.module.apply(
            {"params": params}, batch["encoder_input_tokens"], batch["decoder_input_tokens"],
            batch["decoder_target_tokens"], encoder_segment_ids=None, decoder_segment_ids=None,
            encoder_positions=None, decoder_positions=None, decode=False,
            enable_dropout=False, mutable=mutable)

    def predict_batch_with_aux(self, params, batch, rng=None, decoder_params=None,
                               return_all_decodes=None, num_decodes=1,
                               prompt_with_targets=False):
        enc = batch["encoder_input_tokens"]
        dec = batch["decoder_input_tokens"]
        encoded = self.module.apply({"params": params}, enc, enable_dropout=False,
                                    method=self.module.encode)
        _, variables = self.module.apply(
            {"params": params}, encoder_input_tokens=jnp.ones_like(enc),
            decoder_input_tokens=jnp.ones_like(dec), decoder_target_tokens=jnp.ones_like(dec),
            mutable=["cache"], decode=True, enable_dropout=False)
        cache = jax.tree.map(lambda x: jnp.repeat(x, num_decodes, axis=0)
                             if x.ndim else x, variables["cache"])
        encoded, raw = (jnp.repeat(x, num_decodes, axis=0) for x in (encoded, enc))
        token = jnp.zeros((raw.shape[0], 1), jnp.int32)
        out, first_logits = [], None
        for _ in range(dec.shape[1]):
            logits, new = self.module.apply(
                {"params": params, "cache": cache}, encoded, raw, token, token,
                enable_dropout=False, decode=True, max_decode_length=dec.shape[1],
                mutable=["cache"], method=self.module.decode)
            cache, token = new["cache"], jnp.argmax(logits[:, -1], -1)[:, None].astype(jnp.int32)
            out.append(token[:, 0])
            first_logits = logits[:, -1] if first_logits is None else first_logits
        return jnp.stack(out, 1), {"first_logits": first_logits}


class StandInAdafactor:
    def __init__(self, **settings):
        self.settings = settings


class FactorDim(enum.Enum):
    NONE = None
    BATCH = 1
    ROW = 2
    COLUMN = 3


def standard_logical_factor_rules():
    rules = {"vocab": "COLUMN", "embed": "ROW", "mlp": "COLUMN", "heads": "COLUMN",
             "kv": "COLUMN", "joined_kv": "COLUMN", "relpos_buckets": "NONE",
             "layers": "BATCH", "stack": "BATCH", "q_wi_fused": "COLUMN",
             "o_wo_fused": "COLUMN", "multiquery_heads": "COLUMN", "kv_fused": "COLUMN",
             "layer_norm_scale": "NONE", "mlp_activations": "COLUMN"}
    return freeze({name: FactorDim[dim] for name, dim in rules.items()})


@pytest.fixture(autouse=True)
def stand_in_t5x(monkeypatch):
    """`t5x.models` and `t5x.adafactor` are the stand-ins while a test runs."""
    package = types.ModuleType("t5x")
    package.models = types.ModuleType("t5x.models")
    package.models.EncoderDecoderModel = StandInModel
    package.adafactor = types.ModuleType("t5x.adafactor")
    package.adafactor.Adafactor = StandInAdafactor
    package.adafactor.FactorDim = FactorDim
    package.adafactor.standard_logical_factor_rules = standard_logical_factor_rules
    monkeypatch.setitem(sys.modules, "t5x", package)
    for name in ("models", "adafactor"):
        monkeypatch.setitem(sys.modules, f"t5x.{name}", getattr(package, name))
        monkeypatch.delitem(sys.modules, f"hyperprompt.t5x.{name}", raising=False)
