"""Multi-process start-up: `jax.distributed` from flags or from the cluster's environment.

One process per host (TPU VM, or a GPU node) or per GPU (SLURM); every process runs the
same command. On CPU the processes exchange data through gloo.
"""

from __future__ import annotations

import jax

from hyperprompt.errors import UsageError


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, detect: bool = False) -> bool:
    """Join the run's processes; True when it did (several processes), False otherwise.

    `detect`: find the three settings in the environment (TPU pods, SLURM, Open MPI,
    JAX_COORDINATOR_ADDRESS; jax's cluster detection); otherwise all three must be given.
    """
    explicit = (coordinator_address, num_processes, process_id)
    if not detect and all(v is None for v in explicit):
        return False
    if not detect and any(v is None for v in explicit):
        raise UsageError("multi-process runs need --coordinator_address=HOST:PORT, "
                         "--num_processes=N and --process_id=I together (or --multiprocess "
                         "to read them from the cluster's environment).")
    if num_processes is not None and not 0 <= (process_id or 0) < num_processes:
        raise UsageError(f"--process_id={process_id} is not in [0, {num_processes}); number "
                         f"the processes 0 .. num_processes - 1.")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
    except ValueError as e:  # nothing detected: jax names the missing setting
        raise UsageError(f"cannot start a multi-process run ({e}); pass --coordinator_address, "
                         f"--num_processes and --process_id.") from None
    return True
