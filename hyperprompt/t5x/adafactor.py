"""t5x's Adafactor factorisation rules for the logical axis names of the project's
parameters (`hyperprompt/gin/t5x/model.gin`).

t5x's Adafactor needs an explicit rule for every parameter of rank above 2, which the
methods' parameters have (prompts [task, prompt, embed], hypernetworks [.., None, ..]);
with `logical_factor_rules` it derives each rule from the parameter's axis names.
"""

from __future__ import annotations

from collections.abc import Mapping

from flax.core import freeze
from t5x import adafactor

# The axes t5x's standard rules do not name: statistics per task, as per layer
# ('layers' is a batch axis there); prompt positions and unnamed axes are not factored.
PROJECT_RULES = {"task": adafactor.FactorDim.BATCH, "prompt": adafactor.FactorDim.NONE,
                 None: adafactor.FactorDim.NONE}


def logical_factor_rules() -> Mapping:
    """t5x's standard rules plus `PROJECT_RULES`."""
    return freeze({**adafactor.standard_logical_factor_rules(), **PROJECT_RULES})
