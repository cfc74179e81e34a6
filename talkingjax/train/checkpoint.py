"""Orbax checkpointing of a train-state pytree, with resume from the latest step.

Orbax writes each step to a temporary directory and renames it when complete, so a run
killed mid-save leaves the previous checkpoint intact and the partial one is ignored.
A workdir also remembers the config it was created with: resuming with a different model
is refused instead of overwriting that checkpoint.
"""

from __future__ import annotations

import json
import os

import jax
import ml_collections
import orbax.checkpoint as ocp

from talkingjax.errors import InputError
from talkingjax.train import storage

CONFIG_FILE = "config.json"


def manager(workdir: str, keep: int = 1, every: int = 1, read_only: bool = False):
    """A manager saving every `every` steps (and on `force`) and keeping the newest `keep`.

    A training manager removes temporary directories of saves a killed run left behind; a
    `read_only` one (inference, evaluation) must not, since a run may be saving right now.
    A read-only manager neither saves nor deletes, so it gets no saving or keeping options
    (Orbax would reset them, with a warning each).
    """
    if read_only:
        options = ocp.CheckpointManagerOptions(save_interval_steps=0, read_only=True, create=False)
    else:
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=every,
            preservation_policy=ocp.checkpoint_managers.LatestN(keep),
            cleanup_tmp_directories=True,
            create=True,
        )
    # A URI (gs://bucket/run) reaches Orbax untouched; a local path is made absolute.
    return ocp.CheckpointManager(storage.path(workdir) / "checkpoints", options=options)


def restore_or(mngr: ocp.CheckpointManager, state):
    """Returns (state, step): the latest checkpoint restored into `state`'s structure, or
    `state` itself and step 0 when there is none."""
    step = mngr.latest_step()
    if step is None:
        return state, 0
    return mngr.restore(step, args=ocp.args.StandardRestore(state)), int(step)


def _on_first_device(target):
    """`target`'s leaves as abstract arrays on this process's first local device (in a
    multi-host run `jax.devices()[0]` is process 0's, which other hosts cannot address)."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), target)


def latest_step(workdir: str) -> int:
    """The latest checkpoint step of a workdir (`InputError` when it has none)."""
    mngr = manager(workdir, read_only=True)
    try:
        step = mngr.latest_step()
    finally:
        mngr.close()
    if step is None:
        raise InputError(f"{workdir} has no checkpoint")
    return int(step)


def load(workdir: str, target, step: int | None = None):
    """Restores the latest (or given) checkpoint of `workdir` into `target`'s structure,
    read-only (a run may be training in that workdir), onto this process's first local
    device: every host of a multi-host run gets its own copy, so evaluation, inference and
    `finetune.init_from` work on each. `target` may be abstract (`jax.eval_shape`).

    The arrays are placed explicitly: without a sharding Orbax would reuse the one saved with
    the checkpoint, which names the training run's devices (4 GPUs, or 4 faked CPU devices)
    and fails in a process with fewer.
    """
    mngr = manager(workdir, read_only=True)
    try:
        step = mngr.latest_step() if step is None else step
        if step is None:
            raise InputError(f"{workdir} has no checkpoint to load")
        return mngr.restore(step, args=ocp.args.StandardRestore(_on_first_device(target)))
    finally:
        mngr.close()


def save(mngr: ocp.CheckpointManager, step: int, state, force: bool = False) -> None:
    mngr.save(step, args=ocp.args.StandardSave(state), force=force)


def check_workdir_config(workdir: str, config_json: str, keys: tuple[str, ...]) -> None:
    """Refuses to resume a workdir whose recorded config differs in `keys`.

    Args:
      workdir: the run directory (may not exist yet).
      config_json: `config.to_json()` of the run.
      keys: top-level config fields that must match to resume (e.g. model, data).
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not storage.exists(path):
        return
    old = json.loads(storage.read_text(path))
    new = json.loads(config_json)
    changed = [k for k in keys if old.get(k) != new.get(k)]
    if changed:
        raise InputError(
            f"{workdir} holds a run with a different {'/'.join(changed)} config; "
            "use a new --workdir (its checkpoints are left untouched)"
        )


def write_workdir_config(workdir: str, config_json: str) -> None:
    """Records the run's config in the workdir (atomically; only process 0 writes)."""
    if storage.is_writer():
        storage.write_text(os.path.join(workdir, CONFIG_FILE), config_json)


def _tuples(x):
    """JSON lists back to the tuples a config file writes (and flax attributes, which must
    be hashable, need), recursively."""
    if isinstance(x, list):
        return tuple(_tuples(v) for v in x)
    if isinstance(x, dict):
        return {k: _tuples(v) for k, v in x.items()}
    return x


def load_workdir_config(workdir: str):
    """The ConfigDict a workdir was trained with, equal to the one it was made from (JSON's
    lists are read back as tuples)."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not storage.is_file(path):
        raise InputError(f"{workdir} is not a training workdir (no {CONFIG_FILE})")
    return ml_collections.ConfigDict(_tuples(json.loads(storage.read_text(path))))
