"""seqio tasks and mixtures shipped with hyperprompt (importable as hyperprompt.tasks)."""

from hyperprompt.tasks import synthetic  # noqa: F401  (registers the synthetic mixture)
