"""HyperGrid's FFN vs the plain FFN: activation memory and step time, as ratios in one run.

  python benchmarks/hypergrid.py [--length 128] [--repeats 5]

One T5 1.1 FFN block (wi_0, wi_1 gated-GELU, wo), forward and backward (gradients of all
parameters), at small and base dims, batch 8 and 64. Memory is XLA's own accounting of
the compiled step's temporaries (`memory_analysis().temp_size_in_bytes`, deterministic);
"per-example W" is what one [B, d_m, d_f] float32 tensor would take, the size a
materialised H(X) ⊙ W needs. Imports no TensorFlow, seqio or gin.
"""

from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hyperprompt.methods.hypergrid import HyperGrid
from hyperprompt.models.conditioning import Conditioning
from hyperprompt.models.configs import CONFIGS
from hyperprompt.models.layers import MlpBlock

SIZES = ("t5_1_1_small", "t5_1_1_base")
METHODS = ("vanilla", "l", "l2", "lg")


class Block(nn.Module):
    """An encoder FFN block gated by `method` (None: plain), X = its input at position 0."""

    config: object
    method: str

    @nn.compact
    def __call__(self, x):
        hook = None
        if self.method != "vanilla":
            cond: Conditioning = HyperGrid(self.config, self.method, name="hypergrid")(
                None, None, None)
            gate = jax.tree.map(lambda a: a[0], cond.encoder.ffn_gate)  # layer 0
            hook = lambda x_, name, h, kernel: gate.fn(gate.params, x_, name, h, kernel)  # noqa: E731
        return MlpBlock(self.config.mlp_dim, self.config.mlp_activations, 0.0, True)(x, hook)


def measure(size: str, method: str, batch: int, length: int, repeats: int) -> tuple[int, float]:
    cfg = CONFIGS[size]
    x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, length, cfg.emb_dim)),
                    jnp.float32)
    block = Block(cfg, method)
    params = nn.unbox(block.init(jax.random.PRNGKey(0), x)["params"])
    grad = jax.jit(jax.grad(lambda p, x: jnp.mean(block.apply({"params": p}, x) ** 2)))
    compiled = grad.lower(params, x).compile()
    jax.block_until_ready(compiled(params, x))
    start = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(compiled(params, x))
    return compiled.memory_analysis().temp_size_in_bytes, (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'size':14} {'batch':>5} {'method':>7} {'temp MiB':>9} {'x vanilla':>9} "
          f"{'per-example W MiB':>17} {'step ms':>8} {'x vanilla':>9}")
    for size in SIZES:
        cfg = CONFIGS[size]
        for batch in (8, 64):
            base = None
            for method in METHODS:
                temp, seconds = measure(size, method, batch, args.length, args.repeats)
                base = base or (temp, seconds)
                per_example = batch * cfg.emb_dim * cfg.mlp_dim * 4 / 2**20
                print(f"{size:14} {batch:5} {method:>7} {temp / 2**20:9.1f} "
                      f"{temp / base[0]:9.2f} {per_example:17.0f} {seconds * 1e3:8.1f} "
                      f"{seconds / base[1]:9.2f}", flush=True)


if __name__ == "__main__":
    main()
