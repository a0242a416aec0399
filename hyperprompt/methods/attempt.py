"""ATTEMPT (Asai et al., EMNLP 2022): attentional mixtures of soft prompts.

Frozen source prompts P_1..P_t (prompt tuning on source tasks, read from a prompt bank,
`hyperprompt/prompt_bank.py`), a target prompt P_target per target task, and an attention
module G that mixes them per example (Section 3.2):

  X̂ = max-pool over the input's token embeddings              [B, d]
  H = LayerNorm(W_up SiLU(W_down X̂))                           W_down [d, r], W_up [r, d]
  a_j = softmax_j(P̂_j · H / T), j over the t sources and P_target (P̂: max-pool over length)
  P(X) = P_target + Σ_j a_j P_j                                 prepended to the input

T = d · e (Appendix C.5). Backbone and source prompts are frozen (the sources also get no
gradient: `stop_gradient`). ATTEMPT trains one G per target task (`shared_attention=False`,
G gathered by task id); ATTEMPT-m shares one G over the tasks of a mixture (Section 3.3).

Choices (gin, `gin/methods/_attempt.gin`): `pooling='masked'` max-pools the real tokens only
(padding id 0 left out, the paper's description) or 'unmasked' over every position (the
authors' code pools the padded input); `train_layer_norm` (the paper trains G's LayerNorm;
the authors' code freezes it). Ablations: `target_prompt=False` (P = Σ a_j P_j over the
sources), `attention='uniform'` (a_j = 1/t, no G), one source (`sources`), G's own learning
rate (`attention_learning_rate`, applied as its own optimizer group). Initialisation: the
target prompt from a bank prompt (`target_init`, default MNLI's) or sampled vocabulary
('vocab', as Prompt Tuning); W_down, W_up as torch's nn.Linear (U(±1/sqrt(fan_in)), the
authors' code) or a pretrained G from the bank (`attention_init`, kind "attention").
The weights a are sown as "attention" [B, t (+1)] for `hyperprompt report`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hyperprompt import prompt_bank
from hyperprompt.errors import UsageError
from hyperprompt.methods.adapters import ADAPTER_AXES
from hyperprompt.methods.base import Method, Params, register
from hyperprompt.methods.prompt_tuning import sample_vocab_rows
from hyperprompt.models.conditioning import Conditioning
from hyperprompt.models.configs import T5Config
from hyperprompt.optim import ADAFACTOR_ONLY, BACKBONE, CONDITIONER, ParamGroup, Settings

# The paper's six source tasks (Section 4.1), named as their bank entries (task names).
SOURCE_TASKS = ("glue_mnli", "glue_qnli", "glue_qqp", "glue_sst2", "squad", "super_glue_record")
POOLINGS = ("masked", "unmasked")
ATTENTIONS = ("learned", "uniform")
LAYER_NORM_EPSILON = 1e-5  # torch.nn.LayerNorm's default (the authors' code)
G_PARAMS = ("attention_down", "attention_up", "attention_norm_scale", "attention_norm_bias")
# Adam (Appendix C.5: "optimize ... using Adam", weight decay 1e-5) as a group override that
# holds whatever Adafactor settings the run's optimizer has at their defaults.
ADAM = {"name": "adamw", **{k: getattr(Settings(), k) for k in ADAFACTOR_ONLY}}


def max_pool(embeddings: jax.Array, tokens: jax.Array | None) -> jax.Array:
    """[B, T, d] -> [B, d]: max over positions; with `tokens` [B, T], over the non-padding
    (id != 0) ones only (a row without any gives zeros)."""
    if tokens is None:
        return embeddings.max(axis=1)
    real = (tokens != 0)[..., None]
    pooled = jnp.where(real, embeddings, -jnp.inf).max(axis=1)
    return jnp.where(real.any(axis=1), pooled, 0.0)


def layer_norm(h: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
    """LayerNorm over the last axis (mean and variance, as torch's)."""
    mean = h.mean(axis=-1, keepdims=True)
    var = ((h - mean) ** 2).mean(axis=-1, keepdims=True)
    return (h - mean) / jnp.sqrt(var + LAYER_NORM_EPSILON) * scale + bias


def linear_init(fan_in: int):
    """torch nn.Linear's weight initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return lambda rng, shape, dtype=jnp.float32: jax.random.uniform(
        rng, shape, dtype, -bound, bound)


class Attempt(Method):
    """`source_prompts` [t, m, d] (frozen), `target_prompts` [tasks, m, d], and G's
    `attention_down` [g, d, r], `attention_up` [g, r, d], `attention_norm_{scale,bias}` [g, d]
    with g = 1 (ATTEMPT-m, shared) or `num_tasks` (ATTEMPT, one G per task)."""

    num_tasks: int
    bank_dir: str | None = None
    sources: Sequence[str] = SOURCE_TASKS
    prompt_length: int = 100
    bottleneck: int = 100
    shared_attention: bool = False
    target_init: str = "glue_mnli"
    attention_init: str | None = None
    target_prompt: bool = True
    attention: str = "learned"
    pooling: str = "masked"
    train_layer_norm: bool = True
    temperature: float | None = None  # None: d * e
    prompt_learning_rate: float | None = 0.3
    attention_learning_rate: float | None = 0.3
    weight_decay: float = 1e-5
    freeze_backbone: bool = True

    per_task = False  # G reads each example's input

    @nn.nowrap
    def _check(self) -> None:
        for field, value, allowed in (("pooling", self.pooling, POOLINGS),
                                      ("attention", self.attention, ATTENTIONS)):
            if value not in allowed:
                raise UsageError(f"Attempt.{field}={value!r}: use one of {allowed}.")
        if isinstance(self.sources, str):  # else read as one source per character
            raise UsageError(f"Attempt.sources={self.sources!r} is one name, not a tuple of "
                             f"names; write ({self.sources!r},).")
        if not self.sources:
            raise UsageError("Attempt.sources is empty: name at least one bank prompt.")
        if self.temperature is not None and not self.temperature > 0:
            raise UsageError(f"Attempt.temperature={self.temperature!r} must be > 0 (None: "
                             f"the paper's d * e).")

    @nn.nowrap
    def _bank_prompt(self, name: str, d_model: int) -> np.ndarray:
        return prompt_bank.load_prompt(self.bank_dir, name, self.prompt_length, d_model)

    @nn.compact
    def __call__(self, task_ids: jax.Array, encoder_tokens: jax.Array, embedder: nn.Module,
                 deterministic: bool = True) -> Conditioning:
        """task_ids [B], encoder_tokens [B, T] -> Conditioning(input_prompt [B, m, d])."""
        self._check()
        d, m, t, r = embedder.features, self.prompt_length, len(self.sources), self.bottleneck

        def sources_init(rng, shape, dtype=jnp.float32):
            if self.bank_dir is None:  # shapes only (parameter counts); training refuses it
                return jnp.zeros(shape, dtype)
            return jnp.asarray(np.stack([self._bank_prompt(s, d) for s in self.sources]), dtype)

        def target_init(rng, shape, dtype=jnp.float32):
            if self.target_init == "vocab" or self.bank_dir is None:  # vocab: init_from_backbone
                return sample_vocab_rows(embedder.embedding, rng, *shape[:2]).astype(dtype)
            prompt = self._bank_prompt(self.target_init, d)
            return jnp.broadcast_to(jnp.asarray(prompt, dtype), shape)

        sources = jax.lax.stop_gradient(self.param(
            "source_prompts", nn.with_logical_partitioning(sources_init, (None, "prompt", "embed")),
            (t, m, d)))
        batch = task_ids.shape[0]
        keys = jnp.broadcast_to(sources.max(axis=1), (batch, t, d))  # P̂_j: [B, t, d]
        target = None
        if self.target_prompt:
            targets = self.param("target_prompts", nn.with_logical_partitioning(
                target_init, ("task", "prompt", "embed")), (self.num_tasks, m, d))
            target = jnp.take(targets, task_ids, axis=0)  # [B, m, d]
            keys = jnp.concatenate([keys, target.max(axis=1)[:, None]], axis=1)  # [B, t+1, d]

        if self.attention == "uniform":
            weights = jnp.full((batch, t), 1.0 / t)
        else:
            embedded = embedder(encoder_tokens).astype(jnp.float32)
            pooled = max_pool(embedded, encoder_tokens if self.pooling == "masked" else None)
            h = self._attention_module(task_ids, pooled, d, r)  # [B, d]
            temperature = d * math.e if self.temperature is None else self.temperature
            weights = jax.nn.softmax(jnp.einsum("bd,bkd->bk", h, keys) / temperature, axis=-1)
        self.sow("intermediates", "attention", weights)  # [B, k]
        instance = jnp.einsum("bt,tmd->bmd", weights[:, :t], sources)
        if target is not None:  # P_target + a_target P_target (+ the sources' share)
            own = weights[:, t, None, None] if weights.shape[1] > t else 0.0
            instance = instance + (1.0 + own) * target
        return Conditioning(input_prompt=instance.astype(embedder.dtype))

    @nn.nowrap
    def _slots(self) -> int:
        return 1 if self.shared_attention else self.num_tasks

    def _attention_module(self, task_ids: jax.Array, pooled: jax.Array, d: int, r: int
                          ) -> jax.Array:
        """G: pooled inputs [B, d] -> H [B, d], with the example's task's G (or the shared)."""
        g = self._slots()
        shapes = {"attention_down": (d, r), "attention_up": (r, d),
                  "attention_norm_scale": (d,), "attention_norm_bias": (d,)}
        fresh = {"attention_down": linear_init(d), "attention_up": linear_init(r),
                 "attention_norm_scale": nn.initializers.ones,
                 "attention_norm_bias": nn.initializers.zeros}
        stored = None
        if self.attention_init is not None and self.bank_dir is not None:
            stored, _ = prompt_bank.load(self.bank_dir, self.attention_init, prompt_bank.ATTENTION)

        def init(name):  # [g, ...]: fresh, or the bank's G in every slot
            def fn(rng, shape, dtype=jnp.float32):
                if stored is None:
                    return fresh[name](rng, shape, dtype)
                if stored[name].shape != shapes[name]:
                    raise UsageError(f"attention module {self.attention_init!r} in "
                                     f"{self.bank_dir!r} has {name} of shape "
                                     f"{stored[name].shape}, not {shapes[name]}; use one of "
                                     f"this backbone's size and bottleneck.")
                return jnp.broadcast_to(jnp.asarray(stored[name], dtype), shape)
            # d is `embed` (FSDP splits it over `data`), as an adapter's (ADAPTER_AXES)
            return nn.with_logical_partitioning(
                fn, ("task", *ADAPTER_AXES[name.removeprefix("attention_")]))

        w = {name: self.param(name, init(name), (g, *shapes[name])) for name in G_PARAMS}
        slot = task_ids if g > 1 else jnp.zeros_like(task_ids)
        w = {name: jnp.take(value, slot, axis=0) for name, value in w.items()}
        hidden = nn.silu(jnp.einsum("bd,bdr->br", pooled, w["attention_down"]))
        h = jnp.einsum("br,brd->bd", hidden, w["attention_up"])
        return layer_norm(h, w["attention_norm_scale"], w["attention_norm_bias"])

    @nn.nowrap
    def init_from_backbone(self, params: Params, backbone: Params, rng: jax.Array) -> Params:
        if self.bank_dir is None:
            raise UsageError("ATTEMPT reads its source prompts from a prompt bank: set "
                             "--gin.ATTEMPT_BANK='<folder>' (see the README's ATTEMPT recipe).")
        if not self.target_prompt or self.target_init != "vocab":
            return params
        table = backbone["token_embedder"]["embedding"]
        return {**params, "target_prompts": sample_vocab_rows(
            table, rng, self.num_tasks, self.prompt_length)}

    @nn.nowrap
    def param_groups(self) -> Sequence[ParamGroup]:
        def adam(learning_rate: float | None) -> Mapping:
            return {} if learning_rate is None else {
                **ADAM, "learning_rate": learning_rate, "weight_decay": self.weight_decay}

        frozen = [r"conditioner/source_prompts"]
        if not self.train_layer_norm:
            frozen.append(r"conditioner/attention_norm_(scale|bias)")
        if self.freeze_backbone:
            frozen.append(BACKBONE)
        return (*(ParamGroup(p, frozen=True) for p in frozen),
                ParamGroup(r"conditioner/attention_.*", optimizer=adam(
                    self.attention_learning_rate)),
                ParamGroup(CONDITIONER, optimizer=adam(self.prompt_learning_rate)))

    @nn.nowrap
    def parameter_count(self, config: T5Config) -> int:
        d, m = config.emb_dim, self.prompt_length
        count = len(self.sources) * m * d
        if self.target_prompt:
            count += self.num_tasks * m * d
        if self.attention == "learned":
            count += self._slots() * (2 * d * self.bottleneck + 2 * d)
        return count

    @nn.nowrap
    def value_labels(self) -> Mapping[str, Sequence[str]]:
        return {"attention": [*self.sources, *(["target"] if self.target_prompt
                                               and self.attention == "learned" else [])]}

    @nn.nowrap
    def label(self) -> str:
        return "ATTEMPT-m" if self.shared_attention else "ATTEMPT"


register("attempt", Attempt, shared_attention=False)
register("attempt_m", Attempt, shared_attention=True)
