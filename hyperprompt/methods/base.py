"""The method contract: what a task-conditioning method is, may declare, and how it is found.

A method is a Flax module that maps per-example task ids to a `Conditioning` (the
backbone's injection points, `models/conditioning.py`). Everything the trainer,
the CLI and the analysis need to know about it is declared on the module
(`Conditioner`), and the registry finds it by name, so a method is one file in
`hyperprompt/methods/` (which registers it) plus one gin file in `gin/methods/`
(which sets `CONDITIONER`):

    class MyMethod(Method):
        num_tasks: int                   # task slots of its per-task parameters
        prompt_length: int = 8

        @nn.compact
        def __call__(self, task_ids, encoder_tokens, embedder, deterministic=True):
            ...                           # task_ids [B] -> Conditioning

        def parameter_count(self, config):
            return self.num_tasks * self.prompt_length * config.emb_dim

    register("my_method", MyMethod)

Its parameters live under `conditioner/` in the model's parameter tree (see
`optim.CONDITIONER`, `optim.BACKBONE` for group patterns).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import flax.linen as nn
import jax

from hyperprompt.models.conditioning import Conditioning
from hyperprompt.models.configs import T5Config
from hyperprompt.models.layers import Embed
from hyperprompt.optim import ParamGroup

Array = jax.Array
Params = Mapping[str, Any]


@runtime_checkable
class Conditioner(Protocol):
    """The contract every method fulfils (`Method` gives defaults for the optional parts)."""

    # Task slots of the per-task parameters (a mixture may not have more tasks); None for a
    # method without per-task parameters. A dataclass field, or a class attribute.
    num_tasks: int | None
    # Whether the Conditioning depends on the task id only (not on the example's input): then
    # a packed row of one task's examples can share it. Packed training needs it.
    per_task: ClassVar[bool]

    def __call__(self, task_ids: Array, encoder_tokens: Array, embedder: Embed,
                 deterministic: bool = True) -> Conditioning:
        """task_ids [B] int, encoder_tokens [B, T] -> the Conditioning of this forward pass.

        Runs once per forward pass (not per layer); `embedder` is the backbone's token
        embedding (`embedder.embedding` [vocab, D], `embedder(tokens)`); `deterministic`
        is False when dropout is on. Values sown into the "intermediates" collection with a
        leading batch axis are averaged per task by `hyperprompt report` (report.json).
        """

    def min_feature_lengths(self) -> Mapping[str, int]:
        """Smallest TASK_FEATURE_LENGTHS the method works with, e.g. {"inputs": 64}."""

    def param_groups(self) -> Sequence[ParamGroup]:
        """Parameters to freeze and groups with their own optimizer settings (path regexes,
        first match wins, after the run's own gin groups)."""

    def parameter_count(self, config: T5Config) -> int:
        """Closed-form count of the method's parameters on a backbone of `config`'s size
        (tests hold it equal to the module's)."""

    def init_from_backbone(self, params: Params, backbone: Params, rng: Array) -> Params:
        """The method's initial parameters given the backbone's as loaded (pretrained or
        random), once, before the first step of a new run; `params` are the method's from
        `init`. Runs under jit."""

    def label(self) -> str:
        """A short name for tables and plots, e.g. "HyperPrompt-Global"."""


class Method(nn.Module):
    """Base of the project's methods: the contract's defaults (task-id conditioning, no
    length needs, no input prompt, no groups, initialisation untouched by the backbone, the
    class name as label)."""

    per_task: ClassVar[bool] = True

    @nn.nowrap
    def min_feature_lengths(self) -> Mapping[str, int]:
        return {}

    @nn.nowrap
    def param_groups(self) -> Sequence[ParamGroup]:
        return ()

    @nn.nowrap
    def init_from_backbone(self, params: Params, backbone: Params, rng: Array) -> Params:
        del backbone, rng
        return params

    @nn.nowrap
    def label(self) -> str:
        return type(self).__name__

    @nn.nowrap
    def value_labels(self) -> Mapping[str, Sequence[str]]:
        """Optional: names of the last axis of values it sows ({sown name: labels}), for
        `hyperprompt report`'s heatmaps (e.g. ATTEMPT's source prompts)."""
        return {}


CONTRACT = ("num_tasks", "per_task", "min_feature_lengths", "param_groups",
            "parameter_count", "init_from_backbone", "label")


@dataclasses.dataclass(frozen=True)
class Registered:
    """A registered method: its class and the fields that make this entry (e.g. a variant)."""

    name: str
    cls: type
    settings: Mapping[str, Any]

    def fields(self) -> list[str]:
        """Settable fields besides `config`, `num_tasks` and this entry's own settings."""
        return [f.name for f in dataclasses.fields(self.cls)
                if f.name not in ("config", "num_tasks", "parent", "name", *self.settings)]

    def build(self, config: T5Config, num_tasks: int, **overrides) -> Conditioner:
        """The method for a backbone of `config`'s size and `num_tasks` tasks; `config` and
        `num_tasks` are passed to the fields of those names where the class has them."""
        declared = {f.name for f in dataclasses.fields(self.cls)}
        given = {k: v for k, v in (("config", config), ("num_tasks", num_tasks))
                 if k in declared}
        return self.cls(**given, **self.settings, **overrides)


# name -> entry: the one registry (module state, as seqio's task registry and gin's).
_REGISTRY: dict[str, Registered] = {}


def check_contract(cls: type) -> None:
    """TypeError naming what `cls` lacks of the contract."""
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else ()
    missing = [m for m in CONTRACT if not hasattr(cls, m) and m not in fields]
    if missing:
        raise TypeError(f"{cls.__name__} does not fulfil the method contract: it lacks "
                        f"{', '.join(missing)}; subclass hyperprompt.methods.base.Method and "
                        f"define them (see that file).")


def register(name: str, cls: type, **settings) -> None:
    """Register `cls` under `name` (settings: fixed field values of this entry)."""
    check_contract(cls)
    known = _REGISTRY.get(name)
    if known is not None and (known.cls.__module__, known.cls.__qualname__) != (
            cls.__module__, cls.__qualname__):
        raise ValueError(f"method name {name!r} is taken by {known.cls.__qualname__}; "
                         f"register {cls.__qualname__} under another name.")
    _REGISTRY[name] = Registered(name, cls, dict(settings))


def registered() -> dict[str, Registered]:
    """Every registered method, after importing each module of `hyperprompt.methods`."""
    import hyperprompt.methods as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    return dict(_REGISTRY)


def conditioner_of(module: nn.Module) -> Conditioner:
    """The network's method; a network without one behaves as vanilla."""
    from hyperprompt.methods.vanilla import Vanilla

    if module.conditioner is None:
        return Vanilla()
    check_contract(type(module.conditioner))
    return module.conditioner
