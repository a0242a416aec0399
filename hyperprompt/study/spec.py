"""A study: which runs it trains (its cells), from a gin file in gin/studies/.

    STUDY = @spec.Study()
    spec.Study:
      base = ['experiments/study_synthetic.gin']          # every run: model, data, budget
      stages = {'backbone': ["MIXTURE_OR_TASK_NAME='synthetic_mtl'", 'TRAIN_STEPS=1500']}
      bindings = ["INITIAL_CHECKPOINT_PATH='{root}/stages/backbone'"]   # every grid run
      methods = {'vanilla': ['methods/vanilla.gin'], 'hyperprompt_global': [...]}
      seeds = [0, 1, 2]
      single_tasks = ['synthetic_up', 'synthetic_down']   # trained alone, with `reference`

An entry of a list is a gin file, a 'NAME=VALUE' binding, or 'then: COMMAND FLAGS' — a
`hyperprompt` command run with the cell's gin flags once it has trained (e.g. 'then: bank
--bank_dir={root}/bank' exports a prompt-tuning stage's prompts for ATTEMPT); '{root}' is
the study's folder. A list inside an entry's list is spliced in (gin macros of shared
entries). Stages train once (seed 0), in order, before the grid; the grid is every method
x seed, plus every single task x seed with the reference method's files (the
no-interference reference). Each cell trains into ROOT/<cell name>.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence

from hyperprompt.errors import UsageError

STAGES, SINGLE = "stages", "single"


@dataclasses.dataclass(frozen=True)
class Cell:
    """One training run of the study."""

    name: str                  # its folder under the study root, e.g. 'vanilla/seed_1'
    gin_files: tuple[str, ...]
    bindings: tuple[str, ...]  # 'NAME=VALUE', applied in order after the files
    method: str | None = None  # the methods entry (None for a stage)
    task: str | None = None    # the single task it trains alone
    seed: int | None = None
    then: tuple[str, ...] = ()  # 'COMMAND FLAGS' run with the cell's gin flags after training


THEN = "then:"


def is_binding(entry: str) -> bool:
    """'NAME=VALUE' (a macro or parameter binding), not a gin file path."""
    return (not entry.strip().endswith(".gin")
            and re.fullmatch(r"\s*[A-Za-z_][\w./]*\s*=.*", entry, re.S) is not None)


@dataclasses.dataclass(frozen=True)
class Study:
    """The grid of a study; see the module docstring."""

    base: Sequence[str]
    methods: Mapping[str, Sequence[str]]
    seeds: Sequence[int] = (0, 1, 2)
    single_tasks: Sequence[str] = ()
    reference: str = "vanilla"  # the method single tasks train with and gains are taken over
    stages: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)
    bindings: Sequence[str] = ()

    def __post_init__(self):
        if self.reference not in self.methods:
            raise UsageError(f"the study's reference method {self.reference!r} is not among "
                             f"its methods ({', '.join(self.methods)}); add it to "
                             f"Study.methods or set Study.reference.")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise UsageError(f"Study.seeds={list(self.seeds)}: give one or more distinct "
                             f"seeds, e.g. [0, 1, 2].")
        for name in (*self.methods, *self.stages):
            if not re.fullmatch(r"[\w.-]+", name) or name in (STAGES, SINGLE):
                raise UsageError(f"study entry name {name!r}: use letters, digits, '_', '.', "
                                 f"'-' (it names a folder), not {STAGES!r} or {SINGLE!r}.")

    def cells(self, root: str) -> list[Cell]:
        """Stages first (in order), then methods x seeds, then single tasks x seeds."""
        cells = [self._cell(root, f"{STAGES}/{name}", (*self.base, *entries), seed=0)
                 for name, entries in self.stages.items()]
        for method, entries in self.methods.items():
            cells += [self._cell(root, f"{method}/seed_{seed}",
                                 (*self.base, *self.bindings, *entries), seed, method)
                      for seed in self.seeds]
        for task in self.single_tasks:
            entries = (*self.base, *self.bindings, *self.methods[self.reference],
                       f"MIXTURE_OR_TASK_NAME='{task}'")
            cells += [self._cell(root, f"{SINGLE}/{task}/seed_{seed}", entries, seed,
                                 self.reference, task) for seed in self.seeds]
        return cells

    @staticmethod
    def _cell(root: str, name: str, entries: Sequence[str], seed: int,
              method: str | None = None, task: str | None = None) -> Cell:
        entries = [e.replace("{root}", root) for e in _spliced(entries)]
        then = tuple(e.removeprefix(THEN).strip() for e in entries if e.startswith(THEN))
        entries = [e for e in entries if not e.startswith(THEN)]
        return Cell(name, tuple(e for e in entries if not is_binding(e)),
                    tuple([*(e for e in entries if is_binding(e)), f"SEED={seed}"]),
                    method, task, None if method is None else seed, then)


def _spliced(entries: Sequence) -> list[str]:
    """Entries with nested lists spliced in: ['a', ['b', 'c']] -> ['a', 'b', 'c']."""
    return [e for entry in entries for e in (
        [entry] if isinstance(entry, str) else _spliced(entry))]


def cell_dir(root: str, cell: Cell) -> str:
    return os.path.join(root, cell.name)
