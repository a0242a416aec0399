"""benchmarks/results/*.json -> benchmarks/results/README.md, the tables the README shows.

  python -m benchmarks.report
"""

from __future__ import annotations

import json
import os

from benchmarks.common import RESULTS


def load(name: str) -> dict | None:
    path = os.path.join(RESULTS, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def vs_torch(result: dict) -> list[str]:
    lines = ["### vs HF transformers T5 (PyTorch, eager), fp32 unless named",
             "", "| size | params | batch | variant | train tok/s | train x torch | decode tok/s "
             "| decode x torch | decoder weights GB/s | compile s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for size, entry in result["sizes"].items():
        for name, row in entry["rows"].items():
            compile_s = "" if row["compile_s"] is None else f"{row['compile_s']:.1f}"
            streamed = row.get("decode_weights_gb_s")
            lines.append(f"| {size} | {entry['parameters']:,} | {entry['batch_size']} | {name} "
                         f"| {row['train_tokens_per_s']:.0f} | {row['train_x_torch']:.2f} "
                         f"| {row['decode_tokens_per_s']:.0f} | {row['decode_x_torch']:.2f} "
                         f"| {'' if streamed is None else f'{streamed:.1f}'} | {compile_s} |")
    lines += ["", f"torch {result['torch']}, {result['torch_threads']} threads, denormals "
              f"flushed; medians of {result['repeats']} interleaved steps; inputs 128, "
              f"targets 32 (decode: 32 greedy tokens, KV cache)."]
    if "copy_gb_s" in result:
        sizes = ", ".join(f"{size} {entry['decoder_weight_bytes'] / 2**20:.0f} MiB"
                          for size, entry in result["sizes"].items())
        needed = ", ".join(f"{size} {2 * entry['rows']['torch']['decode_weights_gb_s']:.1f} GB/s"
                           for size, entry in result["sizes"].items())
        lines += ["", f"Greedy decoding reads every decoder weight once a token ({sizes}, the "
                  f"32128-wide head included); `decoder weights GB/s` is that traffic over the "
                  f"decode time. Decoding at twice HF's speed means streaming weights at "
                  f"{needed}; one pass reading and writing a 256 MiB buffer reaches "
                  f"{result['copy_gb_s']:.1f} GB/s on this machine."]
    return lines


def profile(result: dict) -> list[str]:
    lines = ["### Where the train step's time goes (XLA CPU)", "",
             "| size | part | ms | kernels/call | fusions | GFLOP |", "|---|---|---|---|---|---|"]
    for size, entry in result["sizes"].items():
        for part, row in entry["parts"].items():
            lines.append(f"| {size} | {part} | {row['ms']:.0f} | {row['kernels']} "
                         f"| {row['fusions']} | {row['gflop']:.2f} |")
    if "init_compile_s" in result:  # written by profile_step.py since it measures it
        lines += ["", "Parameter initialiser compile seconds: " + "; ".join(
            f"{size} " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items())
            for size, seconds in result["init_compile_s"].items()) + "."]
    return lines


def overhead(result: dict) -> list[str]:
    sizes = list(result["sizes"])
    lines = ["### Method overhead vs vanilla (train step time x, peak memory x)", "",
             "| method | " + " | ".join(sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    methods = sorted({m for rows in result["sizes"].values() for m in rows})
    for method in methods:
        cells = []
        for size in sizes:
            row = result["sizes"][size].get(method)
            cells.append("" if row is None else
                         f"{row['step_x_vanilla']:.2f} / {row['memory_x_vanilla']:.2f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines + ["", f"Scanned layers, Adafactor, inputs {result['lengths']['inputs']}, "
                    f"targets {result['lengths']['targets']}; medians of {result['repeats']} "
                    f"interleaved steps."]


def trainer(result: dict) -> list[str]:
    return ["### Trainer vs bare step (quickstart config)", "",
            f"Trainer {result['trainer_steps_per_s']:.2f} steps/s, bare jitted step "
            f"{result['bare_steps_per_s']:.2f} steps/s: **{result['trainer_x_bare']:.3f}x** "
            f"({result['steps']} steps, windows of {result['log_period']})."
            + (f" The trainer with its input pipeline replaced by batches held in memory: "
               f"{result['in_memory_x_bare']:.3f}x (the loop's own cost; the rest is the "
               f"pipeline's CPU, on the same cores as the step)."
               if "in_memory_x_bare" in result else "")
            + (f" The input pipeline alone spends {result['pipeline_cpu_ms_per_batch']:.1f} ms "
               f"of host CPU a batch." if "pipeline_cpu_ms_per_batch" in result else "")]


def compile_xxl(result: dict) -> list[str]:
    """Peak GiB per device by method, size and rule set; XXL's parts under FSDP."""
    gib = lambda n: f"{n / 2**30:.2f}"  # noqa: E731
    sizes = result["sizes"]
    columns = [(size, rules) for size in sizes for rules in sizes[size]]
    mesh = result["mesh"]
    lines = [f"### Peak memory per device, one train step compiled for {mesh['data']} x "
             f"{mesh['model']} devices (GiB)", "",
             "| method | " + " | ".join(f"{s} {r}" for s, r in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    methods = sorted({m for rules in sizes.values() for rows in rules.values() for m in rows})
    for method in methods:
        cells = [sizes[s][r].get(method) for s, r in columns]
        lines.append(f"| {method} | " + " | ".join(
            "" if c is None else gib(c["peak"]) for c in cells) + " |")
    lengths = result["lengths"]
    lines += ["", f"Batch {result['batch_size']}, inputs {lengths['inputs']}, targets "
              f"{lengths['targets']}, {result['num_tasks']} tasks; bf16 activations, float32 "
              f"parameters, Adafactor factored, scanned layers, full remat. `1d`: parameters "
              f"split over `model`; `fsdp`: over `data` too. Goal: <= {result['goal_gib']} "
              f"GiB at XXL."]
    fsdp = sizes.get("xxl", {}).get("fsdp")
    if fsdp:
        lines += ["", "XXL under FSDP, by part (GiB): arguments (state, batch) / temporaries / "
                  "outputs not written into donated arguments / compile s", "",
                  "| method | arguments | temporaries | own outputs | compile s |",
                  "|---|---|---|---|---|"]
        lines += [f"| {m} | {gib(r['arguments'])} | {gib(r['temporaries'])} | "
                  f"{gib(r['outputs'] - r['aliased'])} | {r['compile_s']:.0f} |"
                  for m, r in sorted(fsdp.items())]
    return lines


def main() -> None:
    sections, machine = [], None
    for name, render in (("vs_torch", vs_torch), ("profile_step", profile),
                         ("method_overhead", overhead), ("trainer_throughput", trainer),
                         ("compile_xxl", compile_xxl)):
        result = load(name)
        if result is not None:
            machine = machine or result["machine"]
            sections += render(result) + [""]
    header = ["# Benchmark results (`make bench`)", ""]
    if machine:
        header += [f"Machine: {machine['cpu']}, {machine['cores']} cores, jax "
                   f"{machine['jax']} ({machine['backend']}), Python {machine['python']}.", ""]
    path = os.path.join(RESULTS, "README.md")
    with open(path, "w") as f:
        f.write("\n".join(header + sections))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
