"""Multi-process start-up through JAX's own runtime (`jax.distributed`), never a launcher.

Every process runs the same command. With `--coordinator_address/--num_processes/--process_id`
(or JAX's own environment variables) it joins that job; on a SLURM allocation with several
tasks, an Open MPI job or a multi-host TPU slice, `jax.distributed.initialize()` reads the
cluster's environment by itself. Otherwise nothing happens: one process, its local devices.
"""

from __future__ import annotations

import os

import jax


def _cluster_detected() -> bool:
    """True inside a multi-process job that jax.distributed can configure on its own."""
    def count(name):
        try:
            return int(os.environ.get(name, "1"))
        except ValueError:
            return 1
    return (count("SLURM_NTASKS") > 1 or count("OMPI_COMM_WORLD_SIZE") > 1
            or "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")
            or "JAX_COORDINATOR_ADDRESS" in os.environ)


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Joins the multi-process job, if there is one. Call before JAX touches a device."""
    explicit = coordinator_address is not None or num_processes is not None
    if not explicit and not _cluster_detected():
        return
    if explicit and None in (coordinator_address, num_processes, process_id):
        raise ValueError("--coordinator_address, --num_processes and --process_id go together "
                         f"(got {coordinator_address!r}, {num_processes!r}, {process_id!r})")
    # CPU processes need a collectives library for cross-process psum; GPUs and TPUs ignore it.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
