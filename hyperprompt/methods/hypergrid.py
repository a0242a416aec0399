"""HyperGrid (Tay et al., ICLR 2021): FFN weights gated per example, grid-wise.

A weight W (the kernel [in, out] of an FFN matrix, t5x layout) becomes H(X) ⊙ W, where
X in R^{d_m} represents the example's task prefix. With grid G(X) in R^{d_r x d_c} and
ψ repeating each cell over an (in / d_r) x (out / d_c) block:

  L   (local)         G = σ(U X) as a 1 x out row: one gate per output unit
  L2  (local-local)   G = σ((L_r X)(L_c X)^T)
  LG  (local-global)  G = σ((L_r X) G_c^T), G_c in R^{d_c} learned, shared by all examples

Reading of L (the slides' notation is ambiguous): the slides give U in R^{d_m x d_f} and
write H = σ(U X) 1^T ⊙ W for W in R^{d_m x d_f}, Y = W x. Keeping U's stated shape, U^T X
has d_f entries, one per output unit; in Y = W x an output unit is a row of W ("one gate
per row"), i.e. a column of the [in, out] kernel here. L is the grid with d_r = 1 and
d_c = out. X: `prefix='layer_input'` (default) is the FFN block's input at position 0 of
the layer (after its layer norm), a per-example, per-layer representation of the first
input token, which in T5's text-to-text format is the task prefix: the slides' "prefix
token of the input sequence", with weights generated from "each example". `'embedding'`
uses the first encoder token's embedding (the same X at every layer; per task in T5's
format). Decoder layers need 'embedding': their position 0 is the start token, and an
incremental decode step sees only its own position.

Block-wise, never per-example weights: with ρ(i) = i // (in / d_r) and c(j) = j // (out
/ d_c), for x [B, T, in]

  y[b, t, j] = Σ_i x[b, t, i] W[i, j] G[b, ρ(i), c(j)]
             = Σ_r ψ_c(G)[b, r, j] · (x_r W_r)[b, t, j]

where x_r, W_r are row block r of x's features and of W. So y accumulates d_r partial
products, each gated per output by a [B, out] vector: a scan over r with a [B, T, out]
carry, its body rematerialised in the backward pass so no [B, T, d_r, out] residuals
are kept: activation memory O(B T out), never [B, in, out].

Initialisation (the slides give none; the project's choice): U, L_r, L_c fan-in scaled
N(0, 1/d_m) (pre-activations O(1) for a unit-RMS X), G_c ~ N(0, 1). Grid sizes are the
project's choice too (gin/methods/_hypergrid.gin).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from hyperprompt.errors import UsageError
from hyperprompt.methods.base import Method, register
from hyperprompt.models.conditioning import Conditioning, LayerHook, StackConditioning
from hyperprompt.models.configs import T5Config
from hyperprompt.models.matmul import matmul

VARIANTS = ("l", "l2", "lg")
PREFIXES = ("layer_input", "embedding")
STACKS = ("encoder", "decoder", "both")
MATRICES = ("input", "output", "both")  # wi / wi_0, wi_1; wo; all of them


def grid_gated_matmul(x: jax.Array, kernel: jax.Array, grid: jax.Array) -> jax.Array:
    """x [B, T, in] @ (ψ(grid) ⊙ kernel [in, out]) with grid [B, d_r, d_c] -> [B, T, out],
    block-wise (the identity in the module docstring)."""
    (batch, length, fan_in), (rows, cols), out = x.shape, grid.shape[1:], kernel.shape[1]
    col_gates = jnp.repeat(grid, out // cols, axis=2).astype(x.dtype)  # [B, d_r, out]
    if rows == 1:
        return matmul(x, kernel) * col_gates
    x_blocks = jnp.moveaxis(x.reshape(batch, length, rows, fan_in // rows), 2, 0)
    kernel_blocks = kernel.reshape(rows, fan_in // rows, out)

    @jax.checkpoint
    def add_block(y, block):  # y [B, T, out] += (x_r @ W_r) * gate_r
        x_r, kernel_r, gate_r = block
        return y + matmul(x_r, kernel_r) * gate_r[:, None], None

    y0 = jnp.zeros((batch, length, out), x.dtype)
    y, _ = jax.lax.scan(add_block, y0, (x_blocks, kernel_blocks, jnp.moveaxis(col_gates, 1, 0)))
    return y


def gate_grid(variant: str, params: dict, x: jax.Array) -> jax.Array:
    """G(X) [B, d_r, d_c] from X [B, d_m] and one matrix's generator `params`."""
    if variant == "l":
        return jax.nn.sigmoid(x @ params["U"])[:, None, :]
    rows = x @ params["L_r"]  # [B, d_r]
    cols = x @ params["L_c"] if variant == "l2" else params["G_c"][None]  # [B | 1, d_c]
    return jax.nn.sigmoid(rows[:, :, None] * cols[:, None, :])


def _gate_fn(variant: str, prefix: str):
    """The ffn_gate hook: (params_l, x, name, h, kernel) -> h @ (H(X) ⊙ kernel) for the
    gated matrices, h @ kernel for the others."""

    def fn(params_l, x, name, h, kernel):
        if name not in params_l["generators"]:
            return matmul(h, kernel)
        prefix_x = x[:, 0] if prefix == "layer_input" else params_l["prefix"]  # [B, d_m]
        grid = gate_grid(variant, params_l["generators"][name], prefix_x.astype(jnp.float32))
        return grid_gated_matmul(h, kernel, grid)

    return fn


def _matrix_shapes(config: T5Config, matrices: str) -> dict[str, tuple[int, int]]:
    """name -> kernel [in, out] of each gated FFN matrix."""
    acts = config.mlp_activations
    names = ["wi"] if len(acts) == 1 else [f"wi_{i}" for i in range(len(acts))]
    shapes = {}
    if matrices in ("input", "both"):
        shapes.update({n: (config.emb_dim, config.mlp_dim) for n in names})
    if matrices in ("output", "both"):
        shapes["wo"] = (config.mlp_dim, config.emb_dim)
    return shapes


class HyperGrid(Method):
    """Per stack and gated matrix, per layer: U [L, d_m, out] (L), or L_r [L, d_m, d_r]
    and L_c [L, d_m, d_c] (L2) or G_c [L, d_c] (LG)."""

    config: T5Config  # the backbone's (depths, FFN shapes); gin binds the model's T5Config
    variant: str = "lg"
    grid_rows: int = 32  # d_r
    grid_cols: int = 32  # d_c
    prefix: str = "layer_input"
    stacks: str = "encoder"
    matrices: str = "input"

    num_tasks: ClassVar[None] = None  # no per-task parameters: X is the example's own input
    per_task: ClassVar[bool] = False

    @nn.nowrap
    def generator_shapes(self, config: T5Config) -> dict[str, dict[str, tuple[int, ...]]]:
        """name -> {generator -> shape without the layers axis} for each gated matrix."""
        self._check(config)
        d = config.emb_dim
        shapes = {}
        for name, (_, out) in _matrix_shapes(config, self.matrices).items():
            if self.variant == "l":
                shapes[name] = {"U": (d, out)}
            else:
                second = {"L_c": (d, self.grid_cols)} if self.variant == "l2" else {
                    "G_c": (self.grid_cols,)}
                shapes[name] = {"L_r": (d, self.grid_rows), **second}
        return shapes

    @nn.nowrap
    def stack_depths(self, config: T5Config) -> dict[str, int]:
        self._check(config)  # else a misspelt `stacks` selects no stack, without a word
        depths = {"encoder": config.num_encoder_layers, "decoder": config.num_decoder_layers}
        return {k: v for k, v in depths.items() if self.stacks in (k, "both")}

    @nn.nowrap
    def _check(self, config: T5Config) -> None:
        for field, value, allowed in (("variant", self.variant, VARIANTS),
                                      ("prefix", self.prefix, PREFIXES),
                                      ("stacks", self.stacks, STACKS),
                                      ("matrices", self.matrices, MATRICES)):
            if value not in allowed:
                raise UsageError(f"HyperGrid.{field}={value!r}: use one of {allowed}.")
        if self.prefix == "layer_input" and self.stacks != "encoder":
            raise UsageError(f"HyperGrid.stacks={self.stacks!r} with prefix='layer_input': a "
                             "decoder layer's position 0 is the start token and a decode step "
                             "sees one position; use prefix='embedding' or stacks='encoder'.")
        if self.variant == "l":
            return
        for name, (fan_in, out) in _matrix_shapes(config, self.matrices).items():
            if fan_in % self.grid_rows or out % self.grid_cols:
                raise UsageError(f"HyperGrid's {self.grid_rows} x {self.grid_cols} grid does not "
                                 f"tile {name}'s [{fan_in}, {out}] kernel; choose grid_rows "
                                 f"dividing {fan_in} and grid_cols dividing {out}.")

    @nn.compact
    def __call__(self, task_ids: jax.Array, encoder_tokens: jax.Array, embedder: nn.Module,
                 deterministic: bool = True) -> Conditioning:
        """-> Conditioning with an ffn_gate hook per chosen stack (task_ids unused: the
        gates come from each example's prefix)."""
        del task_ids, deterministic
        prefix = None
        if self.prefix == "embedding":
            prefix = embedder(encoder_tokens[:, 0]).astype(jnp.float32)  # [B, d_m]
        fn = _gate_fn(self.variant, self.prefix)
        stacks = {}
        for stack, depth in self.stack_depths(self.config).items():
            generators = {
                name: {gen: self.param(f"{stack}_{name}_{gen}", nn.with_logical_partitioning(
                    _init(gen), ("layers", *_generator_axes(name, gen))), (depth, *shape))
                    for gen, shape in gens.items()}
                for name, gens in self.generator_shapes(self.config).items()}
            params = {"generators": generators}
            if prefix is not None:
                params["prefix"] = jnp.broadcast_to(prefix, (depth, *prefix.shape))
            stacks[stack] = StackConditioning(ffn_gate=LayerHook(params, fn))
        return Conditioning(**stacks)

    @nn.nowrap
    def parameter_count(self, config: T5Config) -> int:
        return parameter_count(self.variant, config, self.grid_rows, self.grid_cols,
                               self.matrices, list(self.stack_depths(config).values()))

    @nn.nowrap
    def label(self) -> str:
        return f"HyperGrid-{self.variant.upper()}"


def _generator_axes(matrix: str, generator: str) -> tuple[str | None, ...]:
    """Logical axis names of a generator without its layers axis: d_m is `embed` (split over
    `data` by FSDP, as the backbone's); L's out axis is its gated matrix's (`mlp` for wi,
    left unsplit for wo, whose out is d_m again); grid sizes are never split."""
    if generator == "G_c":
        return (None,)
    if generator == "U":
        return ("embed", None if matrix == "wo" else "mlp")
    return ("embed", None)


def _init(generator: str):
    if generator == "G_c":
        return nn.initializers.normal(stddev=1.0)
    # fan-in d_m (axis 1; axis 0 is the layers axis)
    return nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=1, out_axis=2,
                                            batch_axis=0)


def parameter_count(variant: str, config: T5Config, grid_rows: int, grid_cols: int,
                    matrices: str, depths: Sequence[int]) -> int:
    """Closed form: per gated [in, out] kernel and layer, d_m out (L), d_m (d_r + d_c) (L2)
    or d_m d_r + d_c (LG)."""
    d = config.emb_dim
    per_layer = 0
    for _, out in _matrix_shapes(config, matrices).values():
        per_layer += {"l": d * out, "l2": d * (grid_rows + grid_cols),
                      "lg": d * grid_rows + grid_cols}[variant]
    return per_layer * sum(depths)


register("hypergrid_l", HyperGrid, variant="l")
register("hypergrid_l2", HyperGrid, variant="l2")
register("hypergrid_lg", HyperGrid, variant="lg")
