"""hyperprompt: task-conditioned multi-task learning on T5 (JAX/Flax)."""

__version__ = "0.1.0"
