"""t5x's Adafactor state into the run's optimizer state, so fine-tuning continues it as t5x.

t5x checkpoints keep, per parameter, Adafactor's second-moment statistics (`v_row`,
`v_col` where factored, else `v`) and the step count. t5x fine-tunes from them: the
step continues (Adafactor's decay 1 - t^-0.8 is then ~1, a long average, not 0 as at a
fresh start) and so do the statistics. `load_t5x_adafactor_state` fills every optax
`FactoredState` of the run's optimizer from them: the count becomes the checkpoint's
step, each statistic the checkpoint's, stacked over layers where our stack is scanned
(the layer-by-layer optimizer state has a leading layers axis, `optim.layerwise`).
Parameters the checkpoint has no state for (a method's) keep a fresh state.

For unscanned t5x checkpoints (the public ones), t5x factors every 2-D parameter by
the same rule as optax (the two largest dimensions), so the statistics map one to one.
"""

from __future__ import annotations

import dataclasses
import re

import jax
import numpy as np
from optax._src.factorized import FactoredState

from hyperprompt.convert import sources
from hyperprompt.errors import UsageError
from hyperprompt.optim import flat_paths, param_path

SLOTS = ("v_row", "v_col", "v")
_SCANNED = re.compile(r"(encoder|decoder)/\1/(.*)")


@dataclasses.dataclass(frozen=True)
class AdafactorState:
    """A checkpoint's Adafactor statistics: {unscanned parameter path: {slot: tensor}}."""

    step: int
    slots: dict[str, dict[str, sources.Tensor]]


def read_t5x_adafactor_state(path: str) -> AdafactorState | None:
    """The Adafactor state of a t5x checkpoint (legacy or orbax); None for other formats
    (HF, ours) and for t5x checkpoints saved without one."""
    fmt = sources.detect_format(path)
    if fmt == "t5x":
        state = sources.t5x_legacy_tree(path)["optimizer"].get("state")
        tensors = sources.t5x_legacy_tensors(path, state.get("param_states", {})) if state else {}
    elif fmt == "t5x_orbax":
        state = sources.orbax_tree(sources.latest_orbax_step(path)).get("state")
        tensors = {k: sources.Tensor(np.shape(v), lambda v=v: np.asarray(v))
                   for k, v in flat_paths(state.get("param_states", {})).items()} if state else {}
    else:
        return None
    if not state or not tensors:
        return None
    slots: dict[str, dict[str, sources.Tensor]] = {}
    for name, tensor in tensors.items():
        parameter, slot = name.rsplit("/", 1)
        if slot in SLOTS:
            slots.setdefault(parameter, {})[slot] = tensor
    return AdafactorState(int(np.asarray(state["step"])), slots)


def _checkpoint_slot(state: AdafactorState, path: str, slot: str, shape) -> np.ndarray | None:
    """The checkpoint's `slot` of our parameter `path` shaped `shape`: direct, or stacked
    over `layers_i` for a scanned stack (shape [L, ...]); None when it has none."""
    if path in state.slots:
        names = [path]
    elif (match := _SCANNED.fullmatch(path)) and shape:
        stack, rest = match.groups()
        names = [f"{stack}/layers_{i}/{rest}" for i in range(shape[0])]
        if any(name not in state.slots for name in names):
            return None
    else:
        return None
    arrays = [_matching(state.slots[name], slot, shape[1:] if len(names) > 1 else shape, name)
              for name in names]
    return arrays[0] if len(names) == 1 else np.stack(arrays)


def _matching(slots: dict[str, sources.Tensor], slot: str, shape, name: str) -> np.ndarray:
    """Our `slot` of one parameter from its checkpoint slots (factored row/column
    statistics may be stored in either order for non-square matrices)."""
    unused = (1,)  # optax and t5x store an unused slot as a [1] zero
    if tuple(shape) == unused:
        return np.zeros(unused, np.float32)
    candidates = [slot] + [s for s in ("v_row", "v_col") if slot in ("v_row", "v_col") and
                           s != slot]
    for candidate in candidates:
        if candidate in slots and tuple(slots[candidate].shape) == tuple(shape):
            return np.asarray(slots[candidate].load(), np.float32)
    found = {k: list(t.shape) for k, t in slots.items()}
    raise UsageError(f"the checkpoint's Adafactor state of {name} ({found}) does not fit this "
                     f"optimizer's {slot} {list(shape)}; set RESTORE_OPTIMIZER_STATE = False to "
                     f"start Adafactor afresh.")


def load_t5x_adafactor_state(path: str, opt_state):
    """(`opt_state` with every FactoredState filled from the t5x checkpoint at `path`, the
    checkpoint's step); (`opt_state`, None) when it has no Adafactor state.

    Every FactoredState's count becomes the step, also for parameters the checkpoint has
    no statistics for (a method's): t5x has one step for all parameters, so a prompt
    tuned in t5x from a pretrained checkpoint starts Adafactor at the pretrained step too.
    """
    state = read_t5x_adafactor_state(path)
    if state is None:
        return opt_state, None

    def fill(node):
        if not isinstance(node, FactoredState):
            return node

        def one_slot(slot):
            def leaf(keypath, x):
                value = _checkpoint_slot(state, param_path(keypath), slot, x.shape)
                if value is None:
                    return x
                return jax.device_put(value.astype(x.dtype), x.sharding)
            return jax.tree_util.tree_map_with_path(leaf, getattr(node, slot))

        count = jax.tree.map(lambda c: jax.device_put(np.full(c.shape, state.step, c.dtype),
                                                      c.sharding), node.count)
        return FactoredState(count=count, v_row=one_slot("v_row"), v_col=one_slot("v_col"),
                             v=one_slot("v"))

    opt_state = jax.tree.map(fill, opt_state, is_leaf=lambda x: isinstance(x, FactoredState))
    return opt_state, state.step
