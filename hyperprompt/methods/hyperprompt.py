"""HyperPrompt (He et al., ICML 2022): hypernetwork-generated prompts for self-attention K, V.

Global prompts P_m in R^{l x d} per task m. At every layer j two local
hypernetworks h_k^j, h_v^j map P_m to hyper-prompts

    P^j_{k,m} = U^j_k ReLU(D^j_k P_m),   P^j_{v,m} = U^j_v ReLU(D^j_v P_m)

(D: d -> b, U: b -> H*Dh), split into heads and prepended to the keys and values
of self-attention (queries unchanged). U maps to the joined K/V width H*Dh,
which equals d for the paper's models (T5 base/large/XL/XXL) but not for every
T5 1.1 size. No biases (the paper's D and U are matrices). Variants:

  share   one (D, U) pair per layer and K/V, shared by all tasks
  sep     each task its own (D, U) per layer and K/V
  global  layer-aware task embedding I^j_m = h_t([k_m; z_j]) (two-layer ReLU MLP,
          k_m, z_j in R^{t'}, I in R^t) feeds global hypernetworks H_k, H_v that
          emit D^j_m = reshape(W^D I^j_m) and U^j_m = reshape(W^U I^j_m)

Everything is generated for all layers and all tasks at once (one batched
einsum), then gathered per example, never recomputed per example.

Initialisation (the paper gives none; the project's choice): P_m and the local
hypernetworks D, U of Share and Sep ~ N(0, 0.02^2), so the initial hyper-prompts are
small (RMS 0.02^3 sqrt(b d / 2), 6e-4 at T5 Base) and a model starts close to its
backbone. Global generates its D, U and must start them at that same scale: by
"hyperfan-in" (Chang et al., "Principled Weight Initialization for Hypernetworks", ICLR
2020, section 4) the generator's output layer gets Var(W) = Var(target) / (t E[I^2]),
with the embedding made unit-scale: k_m, z_j ~ N(0, 1) and h_t's two layers He (ReLU) and
fan-in scaled, so E[(I^j_m)^2] = 1 and Var(W^D) = Var(W^U) = 0.02^2 / t. (With
N(0, 0.02^2) for every Global parameter too, its initial hyper-prompts were ~1e-9.)

Global's chained weights (h_t's two layers, W^D, W^U) are stored N(0, 1) and multiplied
by those scales in the forward pass (the "scaled" parametrisation of NTK/muP): same
initial function, but Adam's per-element step (~lr whatever a parameter's size) then
moves a generated weight by ~lr * 0.02 * sqrt(t) E|I| rather than lr * t E|I| (265x less
at t = 28), which at AdamW 2e-2 made Global diverge (tests/methods/
test_hyperprompt_integration.py). Adafactor with parameter scaling (T5's recipe) scales
steps by each parameter's RMS and trains both parametrisations alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from hyperprompt.errors import UsageError
from hyperprompt.methods.base import Method, register
from hyperprompt.models.conditioning import Conditioning, KVPrefix, StackConditioning
from hyperprompt.models.configs import T5Config

VARIANTS = ("share", "sep", "global")
PLACEMENTS = ("encoder", "decoder", "both")
STD = 0.02  # P_m and the local hypernetworks D, U (and what Global generates)


def _param(module, name, shape, axes, std):
    init = nn.initializers.normal(stddev=std)
    return module.param(name, nn.with_logical_partitioning(init, axes), shape)


def _scaled_param(module, name, shape, axes, scale):
    """A weight stored N(0, 1) and used times `scale` (so it acts as N(0, scale^2))."""
    return _param(module, name, shape, axes, 1.0) * scale


class HyperPrompt(Method):
    """task_ids [B] -> per-layer K/V prefixes [L, B, l, H, Dh] for the chosen stacks."""

    config: T5Config  # the backbone's (depths, heads); gin binds the model's T5Config
    num_tasks: int
    variant: str = "global"
    placement: str = "both"
    prompt_length: int = 16
    bottleneck: int = 16
    task_embed_dim: int = 32  # t' (task and layer embeddings)
    layer_task_dim: int = 28  # t  (I^j_m, the global hypernetworks' input); gin default too

    @nn.nowrap
    def stack_depths(self) -> dict[str, int]:
        if self.variant not in VARIANTS or self.placement not in PLACEMENTS:
            raise UsageError(f"HyperPrompt variant={self.variant!r}, placement="
                             f"{self.placement!r}: use {VARIANTS} and {PLACEMENTS}.")
        depths = {"encoder": self.config.num_encoder_layers,
                  "decoder": self.config.num_decoder_layers}
        return {k: v for k, v in depths.items() if self.placement in (k, "both")}

    @nn.compact
    def __call__(self, task_ids: jax.Array, encoder_tokens: jax.Array, embedder: nn.Module,
                 deterministic: bool = True) -> Conditioning:
        d = embedder.features
        prompts = _param(self, "prompts", (self.num_tasks, self.prompt_length, d),
                         ("task", "prompt", "embed"), STD)  # P_m
        task_emb = None
        if self.variant == "global":  # k_m, shared by the stacks
            task_emb = _param(self, "task_embedding", (self.num_tasks, self.task_embed_dim),
                              ("task", None), 1.0)
        stacks = {}
        for stack, depth in self.stack_depths().items():
            per_task = self._hyper_prompts(stack, depth, prompts, task_emb)  # [2, L, T, l, HDh]
            per_example = jnp.take(per_task, task_ids, axis=2)  # [2, L, B, l, H*Dh]
            kv = per_example.reshape(*per_example.shape[:-1], self.config.num_heads,
                                     self.config.head_dim)
            stacks[stack] = StackConditioning(kv_prefix=KVPrefix(key=kv[0], value=kv[1]))
        return Conditioning(**stacks)

    def _hyper_prompts(self, stack: str, depth: int, prompts, task_emb):
        """P^j_{k|v,m} for every layer j and task m: [2 (k, v), L, T, l, H*Dh]."""
        d, b, hd = prompts.shape[-1], self.bottleneck, self.config.num_heads * self.config.head_dim
        tasks = self.num_tasks
        if self.variant == "share":  # one (D, U) per layer: no task axis
            down = _param(self, f"{stack}_down", (2, depth, d, b), (None, "layers", "embed", None),
                          STD)
            up = _param(self, f"{stack}_up", (2, depth, b, hd), (None, "layers", None, "joined_kv"),
                        STD)
            hidden = nn.relu(jnp.einsum("tpd,kldb->kltpb", prompts, down))
            return jnp.einsum("kltpb,klbh->kltph", hidden, up)
        if self.variant == "sep":
            down = _param(self, f"{stack}_down", (2, depth, tasks, d, b),
                          (None, "layers", "task", "embed", None), STD)
            up = _param(self, f"{stack}_up", (2, depth, tasks, b, hd),
                        (None, "layers", "task", None, "joined_kv"), STD)
        else:
            down, up = self._global_hypernetworks(stack, depth, d, task_emb)
        hidden = nn.relu(jnp.einsum("tpd,kltdb->kltpb", prompts, down))
        return jnp.einsum("kltpb,kltbh->kltph", hidden, up)

    def _global_hypernetworks(self, stack: str, depth: int, d: int, task_emb):
        """HyperPrompt-Global: D [2, L, T, d, b] and U [2, L, T, b, H*Dh] from I^j_m."""
        b, hd, t_in, t = (self.bottleneck, self.config.num_heads * self.config.head_dim,
                          self.task_embed_dim, self.layer_task_dim)
        layer_emb = _param(self, f"{stack}_layer_embedding", (depth, t_in), ("layers", None), 1.0)
        w1 = _scaled_param(self, f"{stack}_h_t_hidden", (2 * t_in, t), (None, None),
                           t_in ** -0.5)  # He: sqrt(2 / fan_in), fan_in = 2t'
        w2 = _scaled_param(self, f"{stack}_h_t_out", (t, t), (None, None), t ** -0.5)
        pairs = jnp.concatenate([  # [L, T, 2t'] = [k_m; z_j] for every layer and task
            jnp.broadcast_to(task_emb[None], (depth, self.num_tasks, t_in)),
            jnp.broadcast_to(layer_emb[:, None], (depth, self.num_tasks, t_in))], axis=-1)
        layer_task = nn.relu(pairs @ w1) @ w2  # I^j_m [L, T, t]
        # H_k, H_v hold each generated matrix's own axes (named like the local D, U), so
        # FSDP splits them and XLA never reshapes through a split axis.
        w_down = _scaled_param(self, f"{stack}_global_down", (2, t, d, b),
                               (None, None, "embed", None), STD * t ** -0.5)
        w_up = _scaled_param(self, f"{stack}_global_up", (2, t, b, hd),
                             (None, None, None, "joined_kv"), STD * t ** -0.5)
        return (jnp.einsum("ltc,kcdb->kltdb", layer_task, w_down),
                jnp.einsum("ltc,kcbh->kltbh", layer_task, w_up))

    @nn.nowrap
    def parameter_count(self, config: T5Config) -> int:
        depths = {"encoder": config.num_encoder_layers, "decoder": config.num_decoder_layers}
        return parameter_count(
            self.variant, self.num_tasks, config.emb_dim, config.num_heads * config.head_dim,
            [depths[stack] for stack in self.stack_depths()], self.prompt_length, self.bottleneck,
            self.task_embed_dim, self.layer_task_dim)

    @nn.nowrap
    def label(self) -> str:
        return f"HyperPrompt-{self.variant.capitalize()}"


def parameter_count(variant: str, num_tasks: int, d: int, joined_kv: int,
                    depths: Sequence[int], prompt_length: int, bottleneck: int,
                    task_embed_dim: int, layer_task_dim: int) -> int:
    """Closed-form count of HyperPrompt's parameters with prompted stacks of `depths` layers
    (the stacks share the prompts P_m and, in Global, the task embeddings k_m)."""
    b, t_in, t = bottleneck, task_embed_dim, layer_task_dim
    total = num_tasks * prompt_length * d
    local = [2 * depth * (d * b + b * joined_kv) for depth in depths]  # D, U for K and V
    if variant == "share":
        return total + sum(local)
    if variant == "sep":
        return total + num_tasks * sum(local)
    global_nets = t_in * 2 * t + t * t + 2 * t * (d * b + b * joined_kv)  # h_t, H_k, H_v
    return total + num_tasks * t_in + sum(depth * t_in + global_nets for depth in depths)


register("hyperprompt_share", HyperPrompt, variant="share")
register("hyperprompt_sep", HyperPrompt, variant="sep")
register("hyperprompt_global", HyperPrompt, variant="global")
