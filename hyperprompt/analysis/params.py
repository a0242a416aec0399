"""`hyperprompt report --params`: task-conditioning parameters per method at every size.

Counts come from `jax.eval_shape` of the real modules (no memory is allocated,
so T5 XXL costs a trace), and are shown as the share (%) of the backbone's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
from rich.console import Console
from rich.table import Table

from hyperprompt.methods.hyperprompt import VARIANTS, HyperPrompt
from hyperprompt.methods.prompt_tuning import PromptTuning
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import CONFIGS, T5Config
from hyperprompt.models.t5 import Transformer

NUM_TASKS = 8  # GLUE's eight tasks: what the method gin files' parameter notes assume
BACKBONE = "backbone"
PROMPT_TUNING = "prompt_tuning"
METHODS = tuple(f"hyperprompt_{v}" for v in VARIANTS) + (PROMPT_TUNING,)
HEADERS = {**{f"hyperprompt_{v}": f"HyperPrompt\n{v.capitalize()}" for v in VARIANTS},
           PROMPT_TUNING: "Prompt\nTuning"}


def _count(tree) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def backbone_count(config: T5Config) -> int:
    """Parameters of the T5 network alone."""
    # scan_layers: the same parameters, a trace that does not grow with depth.
    model = EncoderDecoderModel(Transformer(dataclasses.replace(config, scan_layers=True)))
    return _count(jax.eval_shape(lambda: nn.unbox(
        model.init(jax.random.PRNGKey(0), 1, 1)["params"])))


def conditioner_count(config: T5Config, conditioner: nn.Module) -> int:
    """Parameters of `conditioner` inside the network (`Transformer.condition` only)."""
    net = Transformer(config, conditioner)
    tokens = jnp.ones((1, 1), jnp.int32)
    shapes = jax.eval_shape(lambda: nn.unbox(net.init(
        jax.random.PRNGKey(0), tokens[:, 0], tokens, False, method=net.condition)["params"]))
    return _count(shapes["conditioner"])


def methods(config: T5Config, num_tasks: int, hyperprompt: Mapping | None = None,
            prompt_tuning: Mapping | None = None) -> dict[str, nn.Module]:
    """The compared conditioners at `config`'s size, each with its settings (else defaults)."""
    out: dict[str, nn.Module] = {
        f"hyperprompt_{v}": HyperPrompt(config, num_tasks, v, **(hyperprompt or {}))
        for v in VARIANTS}
    out[PROMPT_TUNING] = PromptTuning(num_tasks, **(prompt_tuning or {}))
    return out


def describe(num_tasks: int = NUM_TASKS, hyperprompt: Mapping | None = None,
             prompt_tuning: Mapping | None = None) -> str:
    """The settings the counts use, in the papers' letters (a title for the table)."""
    built = methods(CONFIGS["t5_1_1_base"], num_tasks, hyperprompt, prompt_tuning)
    hp, pt = built["hyperprompt_global"], built[PROMPT_TUNING]
    return (f"task-conditioning parameters, {num_tasks} tasks: HyperPrompt l={hp.prompt_length} "
            f"b={hp.bottleneck} t'={hp.task_embed_dim} t={hp.layer_task_dim} "
            f"({hp.placement}), Prompt Tuning {pt.prompt_length} tokens")


def parameter_report(num_tasks: int = NUM_TASKS, hyperprompt: Mapping | None = None,
                     prompt_tuning: Mapping | None = None,
                     configs: Mapping[str, T5Config] = CONFIGS) -> dict[str, dict[str, int]]:
    """{size: {"backbone": n, <method>: n task-conditioning parameters}} for every size.

    `hyperprompt`, `prompt_tuning`: keyword settings of HyperPrompt and PromptTuning.
    """
    report = {}
    for size, config in configs.items():
        row = {BACKBONE: backbone_count(config)}
        for name, module in methods(config, num_tasks, hyperprompt, prompt_tuning).items():
            row[name] = conditioner_count(config, module)
        report[size] = row
    return report


def _short(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"


def print_table(report: Mapping[str, Mapping[str, int]], title: str) -> None:
    """Rows: sizes; cells: the method's parameters over their % of the backbone."""
    table = Table(title=title)
    table.add_column("size", no_wrap=True)
    table.add_column("backbone", justify="right")
    for name in METHODS:
        table.add_column(HEADERS[name], justify="right")
    for size, row in report.items():
        backbone = row[BACKBONE]
        table.add_row(size, _short(backbone), *(
            f"{_short(row[m])}\n{100 * row[m] / backbone:.3f}%" for m in METHODS))
    Console().print(table)
