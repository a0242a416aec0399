"""Where the project's CPU train step spends its time, from XLA's compiled programs.

  python -m benchmarks.profile_step [--sizes tiny small] [--repeats 6]

The step (benchmarks/vs_torch.py's configs) is split into parts compiled apart: the
forward loss, its gradient (forward + backward), the optimizer update alone, and the
vocabulary-sized head alone (logits [B, T, 32128] = decoder output @ logits kernel, the
cross entropy, and their gradient). Each part's median time comes from one interleaved run;
from the optimised HLO (`compiled.as_text()`) come the kernels each part launches per step
(instructions of the entry computation: on CPU each fusion, dot or copy is one kernel) and
its fusions, and XLA's flop count (`cost_analysis`).
"""

from __future__ import annotations

import argparse
import os
import re

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from benchmarks.common import interleaved, write_result  # noqa: E402
from benchmarks.vs_torch import SIZES, JaxRunner, random_batch  # noqa: E402
from hyperprompt.model import cross_entropy_with_z_loss  # noqa: E402


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
        logits = jnp.einsum("btd,dv->btv", x, kernel)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args()
    results = {}
    for size in args.sizes:
        results[size] = profile(size, args.repeats)
        print(f"{size}: {'part':22s} {'ms':>8s} {'kernels':>8s} {'fusions':>8s} {'GFLOP':>7s}")
        for name, row in results[size]["parts"].items():
            print(f"{'':6s}{name:22s} {row['ms']:8.1f} {row['kernels']:8d} {row['fusions']:8d} "
                  f"{row['gflop']:7.2f}", flush=True)
    write_result("profile_step", {"repeats": args.repeats, "sizes": results})


if __name__ == "__main__":
    main()
