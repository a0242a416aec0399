"""seqio tasks and mixtures shipped with hyperprompt (importable as hyperprompt.tasks)."""

from hyperprompt.tasks import dpr, glue, mixtures, super_glue, synthetic  # noqa: F401  (registers)

# Training task -> the tasks that evaluate it with its task id (default: itself).
EVALUATED_BY = {**glue.EVALUATED_BY, **super_glue.EVALUATED_BY}
