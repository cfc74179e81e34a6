"""Data parallelism in the pmap programming model, written with `jax.shard_map`.

Each device runs the per-device update on its slice of the global batch; gradients, batch
statistics and metrics are averaged with `lax.pmean` over the `data` mesh axis, so every
device ends with the same replicated state. This is what `pmap` + `replicate` used to do,
expressed the way JAX 0.10 recommends (pmap itself is now implemented on shard_map).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from talkingjax.errors import InputError

DATA_AXIS = "data"


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    auto: bool = False,
) -> bool:
    """Joins a multi-process (multi-host) run; returns whether it did.

    Must run before JAX is used (the first computation, `jax.devices()`, ...). Every process
    then sees all processes' devices in `jax.devices()`, `make_mesh` spans them, and
    `jax.process_index()` tells the process apart (process 0 writes the workdir's files).

    Args:
      coordinator_address: "host:port" of process 0's coordinator (every process passes the
        same); with `num_processes` and `process_id` the run is set up explicitly.
      num_processes: number of processes (e.g. hosts) in the run.
      process_id: this process's index, 0 .. num_processes - 1.
      auto: join even without a coordinator address, letting JAX find the run itself (Cloud
        TPU VMs, SLURM, Open MPI, or the JAX_COORDINATOR_ADDRESS environment variable).

    Without `coordinator_address` and `auto` nothing happens (a one-process run). CPU
    processes exchange collectives through gloo (`jax_cpu_collectives_implementation`).
    """
    if coordinator_address is None and not auto:
        if num_processes is not None or process_id is not None:
            raise InputError("--num_processes / --process_id need --coordinator_address")
        return False
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return True


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh over all (or the first `num_devices`) devices, axis name `data`."""
    devices = jax.devices()
    n = len(devices) if num_devices is None else num_devices
    return jax.make_mesh((n,), (DATA_AXIS,), devices=devices[:n])


def replicate(tree, mesh):
    """Places a pytree fully replicated on the mesh."""
    return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(batch: dict[str, np.ndarray], mesh) -> dict[str, jax.Array]:
    """Places a global host batch split along its leading axis over the `data` axis.

    Every process holds the same global batch (sampling is a function of the step) and
    contributes the rows of its own devices, which is what multi-host runs need.
    """
    n = mesh.shape[DATA_AXIS]
    lead = next(iter(batch.values())).shape[0]
    if lead % n:
        raise InputError(f"global batch size {lead} is not divisible by {n} devices")
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    per_process = lead // jax.process_count()
    lo = jax.process_index() * per_process
    return {
        k: jax.make_array_from_process_local_data(sharding, v[lo : lo + per_process], v.shape)
        for k, v in batch.items()
    }


def per_device(tree):
    """Marks replicated values as per-device inside `shard_map` (pmap's view of its inputs).

    Gradients with respect to the result are then each device's own, to be combined with an
    explicit `lax.pmean`, instead of being summed over devices implicitly.
    """
    return jax.tree.map(lambda x: jax.lax.pcast(x, (DATA_AXIS,), to="varying"), tree)


def data_parallel(per_device_fn: Callable, mesh, donate_state: bool = True) -> Callable:
    """jit(shard_map(fn)) for `fn(state, batch) -> (state, metrics)`.

    `state` and the returned values are replicated (P()); `batch` is split over `data`.
    `per_device_fn` must `pmean` what it returns over `DATA_AXIS`.
    """
    mapped = jax.shard_map(
        per_device_fn, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=(P(), P())
    )
    return jax.jit(mapped, donate_argnums=(0,) if donate_state else ())
