"""`hyperprompt report --params`: each registered method's parameters at every size.

Counts come from `jax.eval_shape` of the real modules (no memory is allocated,
so T5 XXL costs a trace), and are shown as the share (%) of the backbone's:
the method's own parameters (task conditioning) and everything it trains (its
parameters plus the backbone parameters its groups do not freeze).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
from rich import box
from rich.console import Console
from rich.table import Table

from hyperprompt.methods.base import Conditioner, registered
from hyperprompt.model import EncoderDecoderModel
from hyperprompt.models.configs import CONFIGS, T5Config
from hyperprompt.models.t5 import Transformer
from hyperprompt.optim import flat_paths

NUM_TASKS = 8  # GLUE's eight tasks: what the method gin files' parameter notes assume
BACKBONE = "backbone"
METHOD, TRAINABLE = "method", "trainable"
Settings = Mapping[str, Mapping[str, object]]  # method name -> field overrides


def _shapes(net: Transformer):
    """{path: shape} of the network's parameters (abstract; scanned for a flat trace)."""
    model = EncoderDecoderModel(net.clone(config=dataclasses.replace(net.config,
                                                                     scan_layers=True)))
    tree = jax.eval_shape(lambda: nn.unbox(model.init(jax.random.PRNGKey(0), 1, 1)["params"]))
    return {k: v.shape for k, v in flat_paths(tree).items()}


def _count(shapes: Mapping[str, tuple]) -> int:
    return sum(math.prod(s) for s in shapes.values())


def backbone_count(config: T5Config) -> int:
    """Parameters of the T5 network alone."""
    return _count(_shapes(Transformer(config)))


def _conditioner_shapes(config: T5Config, conditioner: nn.Module) -> dict[str, tuple]:
    """{"conditioner/...": shape} of `conditioner` inside the network, from a trace of
    `Transformer.condition` alone."""
    net = Transformer(config, conditioner)
    tokens = jnp.ones((1, 1), jnp.int32)
    shapes = jax.eval_shape(lambda: nn.unbox(net.init(  # vanilla's creates no "params"
        jax.random.PRNGKey(0), tokens[:, 0], tokens, False, method=net.condition)
    ).get("params", {}).get("conditioner", {}))
    return {f"conditioner/{k}": v.shape for k, v in flat_paths(shapes).items()}


def conditioner_count(config: T5Config, conditioner: nn.Module) -> int:
    """Parameters of `conditioner` inside the network (`Transformer.condition` only)."""
    return _count(_conditioner_shapes(config, conditioner))


def trainable_count(config: T5Config, conditioner: Conditioner,
                    backbone: Mapping[str, tuple] | None = None) -> int:
    """Parameters the method trains: those no frozen group of its `param_groups` matches
    first (first match wins, as in the optimizer).

    A method's network holds the backbone's parameters, unchanged, plus its conditioner's
    (the Conditioning contract; tests/analysis/test_params.py), so the two traces give
    them all: the backbone's {path: shape} (`backbone`, from `_shapes` of the bare network
    when None; scanned paths match the same patterns) and the conditioner's alone.
    """
    groups = [(re.compile(g.pattern), g.frozen) for g in conditioner.param_groups()]

    def trained(path: str) -> bool:
        return not next((frozen for r, frozen in groups if r.fullmatch(path)), False)

    backbone = _shapes(Transformer(config)) if backbone is None else backbone
    shapes = {**backbone, **_conditioner_shapes(config, conditioner)}
    return _count({p: s for p, s in shapes.items() if trained(p)})


def methods(config: T5Config, num_tasks: int, settings: Settings | None = None
            ) -> dict[str, Conditioner]:
    """Every registered method with task-conditioning parameters, built at `config`'s size
    with its settings (else its defaults)."""
    settings = settings or {}
    return {name: entry.build(config, num_tasks, **settings.get(name, {}))
            for name, entry in sorted(registered().items()) if name != "vanilla"}


def describe(num_tasks: int = NUM_TASKS, settings: Settings | None = None) -> str:
    """The settings the counts use (a title for the table)."""
    lines = [f"parameters per method, {num_tasks} tasks"]
    for method in methods(CONFIGS["t5_1_1_base"], num_tasks, settings).values():
        fields = [f for f in dataclasses.fields(method)
                  if f.name not in ("config", "num_tasks", "parent", "name")]
        lines.append(f"{method.label()}: " + " ".join(
            f"{f.name}={getattr(method, f.name)}" for f in fields))
    return "\n".join(lines)


def parameter_report(num_tasks: int = NUM_TASKS, settings: Settings | None = None,
                     configs: Mapping[str, T5Config] = CONFIGS) -> dict[str, dict]:
    """{size: {"backbone": n, <method>: {"method": n, "trainable": n}}} for every size."""
    report = {}
    for size, config in configs.items():
        backbone = _shapes(Transformer(config))
        row: dict = {BACKBONE: _count(backbone)}
        for name, module in methods(config, num_tasks, settings).items():
            row[name] = {METHOD: conditioner_count(config, module),
                         TRAINABLE: trainable_count(config, module, backbone)}
        report[size] = row
    return report


def _short(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"


def print_table(report: Mapping[str, Mapping], title: str,
                labels: Mapping[str, str] | None = None, num_tasks: int = NUM_TASKS) -> None:
    """Rows: methods; columns: sizes (as many to a table as the console's width holds);
    cells: the method's parameters, their % of the backbone, the % it trains, and that
    per task (trained / num_tasks / backbone). `labels`: display names."""
    sizes = list(report)
    names = [k for k in report[sizes[0]] if k != BACKBONE]
    labels = labels or {}
    console = Console()
    console.print(title, soft_wrap=True)  # one line per setting, whatever the width
    # Widths as rich lays them out: padding 2 a column, cells up to 10 characters.
    first = max(len("method"), *(len(labels.get(n, n)) for n in names)) + 2
    column = max(10, *(len(size) for size in sizes)) + 3
    sizes_per_table = max(1, (console.width - first) // column)
    for chunk in (sizes[i:i + sizes_per_table] for i in range(0, len(sizes), sizes_per_table)):
        table = Table(box=box.SIMPLE_HEAD, caption="cell: the method's parameters, their % of "
                      "the backbone, % trained (method + unfrozen backbone), that per task")
        table.add_column("method", no_wrap=True)
        for size in chunk:
            table.add_column(f"{size}\n{_short(report[size][BACKBONE])}", justify="right",
                             min_width=len(size), no_wrap=True)
        for name in names:
            cells = []
            for size in chunk:
                backbone, counts = report[size][BACKBONE], report[size][name]
                cells.append(f"{_short(counts[METHOD])}\n"
                             f"{100 * counts[METHOD] / backbone:.3f}%\n"
                             f"{100 * counts[TRAINABLE] / backbone:.3g}%\n"
                             f"{100 * counts[TRAINABLE] / num_tasks / backbone:.2f}%/task")
            table.add_row(labels.get(name, name), *cells)
        console.print(table)
