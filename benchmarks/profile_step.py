"""Where the project's CPU train step spends its time, from XLA's compiled programs.

  python -m benchmarks.profile_step [--sizes tiny small] [--repeats 4]

The step (benchmarks/vs_torch.py's configs) is split into parts compiled apart: the
forward loss, its gradient (forward + backward), the optimizer update alone, and the
vocabulary-sized head alone (logits [B, T, 32128] = decoder output @ logits kernel, the
cross entropy, and their gradient). Each part's median time comes from one interleaved run;
from the optimised HLO (`compiled.as_text()`) come the kernels each part launches per step
(instructions of the entry computation: on CPU each fusion, dot or copy is one kernel) and
its fusions, and XLA's flop count (`cost_analysis`). Last, the compile time of the
parameter initialiser (`state.params_initializer`) at T5 1.1 base, unrolled and
scanned (compiled, not run).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from benchmarks.common import interleaved, timed, write_result  # noqa: E402
from benchmarks.vs_torch import SIZES, JaxRunner, random_batch  # noqa: E402
from hyperprompt import partitioning  # noqa: E402
from hyperprompt.model import EncoderDecoderModel, cross_entropy_with_z_loss  # noqa: E402
from hyperprompt.models.configs import CONFIGS  # noqa: E402
from hyperprompt.models.matmul import matmul  # noqa: E402
from hyperprompt.models.t5 import Transformer  # noqa: E402
from hyperprompt.state import params_initializer  # noqa: E402


def hlo_stats(compiled) -> dict:
    """Kernels launched per call (entry-computation instructions other than parameters,
    tuples and constants), fusions among them, dots anywhere, and XLA's flop count."""
    text = compiled.as_text()
    entry = text[text.index("\nENTRY"):].split("\n}")[0].split("\n")[2:]
    skip = ("parameter(", "tuple(", "get-tuple-element(", "constant(", "bitcast(")
    kernels = [line for line in entry if "=" in line and not any(s in line for s in skip)]
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return {"kernels": len(kernels), "fusions": sum(" fusion(" in k for k in kernels),
            "dots": len(re.findall(r"\bdot\(", text)), "gflop": cost.get("flops", 0.0) / 1e9}


def profile(size: str, repeats: int) -> dict:
    config, batch_size = SIZES[size]
    runner = JaxRunner(config, random_batch(batch_size, config.vocab_size), jax.devices()[:1])
    model, tx, batch = runner.model, runner.tx, runner.batch
    params = jax.tree.map(jnp.copy, runner.state["params"])  # the step donates its own
    opt_state = jax.tree.map(jnp.copy, runner.state["opt_state"])
    loss = lambda p: model.loss_fn(p, batch)[0]  # noqa: E731
    grads = jax.jit(jax.grad(loss))(params)
    decoded = jnp.ones((batch_size, batch["decoder_target_tokens"].shape[1], config.emb_dim))
    kernel = params["decoder"]["logits_dense"]["kernel"]

    def head(kernel, x):
        logits = matmul(x, kernel)  # as the model's head (hyperprompt/models/matmul.py)
        return jnp.sum(cross_entropy_with_z_loss(logits, batch["decoder_target_tokens"],
                                                 1e-4)[0])

    parts = {
        "forward": (jax.jit(loss), (params,)),
        "forward+backward": (jax.jit(jax.grad(loss)), (params,)),
        "optimizer": (jax.jit(lambda g, s, p: optax.apply_updates(p, tx.update(g, s, p)[0])),
                      (grads, opt_state, params)),
        "head forward+backward": (jax.jit(jax.grad(head, argnums=(0, 1))), (kernel, decoded)),
    }
    compiled = {name: fn.lower(*args).compile() for name, (fn, args) in parts.items()}
    full = runner.step_fn.lower(runner.state, batch).compile()
    calls = {name: (lambda c=c, a=parts[name][1]: jax.block_until_ready(c(*a)))
             for name, c in compiled.items()}
    times = interleaved({**calls, "train step": runner.step}, repeats)
    rows = {name: {"ms": times[name] * 1e3, **hlo_stats(c)} for name, c in compiled.items()}
    rows["train step"] = {"ms": times["train step"] * 1e3, **hlo_stats(full)}
    return {"batch_size": batch_size, "parts": rows}


def init_compile_s(size: str) -> dict[str, float]:
    """Seconds to compile the parameter initialiser of `size`, unrolled and scanned."""
    seconds = {}
    for layout in ("unrolled", "scanned"):
        config = dataclasses.replace(CONFIGS[size], scan_layers=layout == "scanned")
        model = EncoderDecoderModel(Transformer(config))
        with nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES):
            init = params_initializer(model, {"inputs": 64, "targets": 16})
            key = jax.random.PRNGKey(0)
            seconds[layout] = timed(lambda: init.lower(key).compile())  # noqa: B023
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    results = {}
    for size in args.sizes:
        results[size] = profile(size, args.repeats)
        print(f"{size}: {'part':22s} {'ms':>8s} {'kernels':>8s} {'fusions':>8s} {'GFLOP':>7s}")
        for name, row in results[size]["parts"].items():
            print(f"{'':6s}{name:22s} {row['ms']:8.1f} {row['kernels']:8d} {row['fusions']:8d} "
                  f"{row['gflop']:7.2f}", flush=True)
    init = {size: init_compile_s(size) for size in ("t5_1_1_base",)}
    for size, seconds in init.items():
        print(f"init compile {size}: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    write_result("profile_step", {"repeats": args.repeats, "sizes": results,
                                  "init_compile_s": init})


if __name__ == "__main__":
    main()
