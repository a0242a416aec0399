"""seqio tasks and mixtures shipped with hyperprompt (importable as hyperprompt.tasks)."""

from hyperprompt.tasks import (  # noqa: F401  (registers)
    dpr,
    few_shot,
    glue,
    mixtures,
    squad,
    super_glue,
    synthetic,
)

# Training task -> the tasks that evaluate it with its task id (default: itself).
EVALUATED_BY = {**glue.EVALUATED_BY, **super_glue.EVALUATED_BY}
