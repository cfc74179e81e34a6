"""The trainer contract: what a trainer supplies (`Trainer`), the one function that trains any
trainer (`train`), and the one that restores what it trained (`load_variables`).

A trainer module (`head_motion`, `expression`, `gan`, `peers`) defines a `Trainer` and nothing
of the run itself; `train` checks the workdir, builds, plans the phases, records the config,
initialises and hands over to the engine (`loop.run_phases`: data-parallel updates, Orbax
checkpoints, resume, metrics):

    state = runner.train(head_motion.TRAINER, config, workdir)      # or head_motion.train(...)
    config, variables = runner.load_variables(head_motion.TRAINER, workdir)

`load_variables` is what every predictor (`talkingjax.predict`) and every fine-tune's
`init_from` restores: the evaluated parameters (`TrainState.avg_params`) and the model state.
It also reads an *exported* workdir (`export`: config.json + `EXPORT_FILE`, the evaluated
variables without the optimizer state, optionally in float16): a shipped model a quarter of the
checkpoint's size, which predicts and starts fine-tunes like the workdir it came from.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import Any

import flax
import jax
import ml_collections
import numpy as np
import optax

from talkingjax.errors import InputError
from talkingjax.train import checkpoint, loop, parallel, storage

EXPORT_FILE = "variables.msgpack"
EXPORT_DTYPES = ("float32", "float16", "bfloat16")


@dataclasses.dataclass(frozen=True)
class Trainer:
    """What one trainer supplies; every field is a function of the run's config.

    Attributes:
      resume_keys: top-level config fields that must not change when a workdir is resumed
        (checked before anything is read or written; `checkpoint.check_workdir_config`).
      build: `config -> model`, what the phases' loss functions get as `model` (a flax module,
        or a tuple / dataclass of them). Raises `InputError` for a model config it cannot
        take, before any data is read.
      plan: `(config, workdir) -> (phases, variables)`: reads the data and returns the phases
        (`loop.Phase`, at least one) and the variables to start from (another run's, for
        `finetune.init_from`: `source_variables`), or None to start from `init`. Raises
        `InputError` on bad input; nothing has been written to the workdir yet.
      init: `(config, model) -> variables` ({"params", optionally "batch_stats"}) at step 0,
        from `fold_in(key(config.seed), 0)`.
      optimizer: `config -> optimizer` with the state structure every phase's optimizer has
        (what a checkpoint holds), so `load_variables` can rebuild it from the config alone.
    """

    resume_keys: tuple[str, ...]
    build: Callable[[Any], Any]
    plan: Callable[[Any, str], tuple[list[loop.Phase], dict | None]]
    init: Callable[[Any, Any], dict]
    optimizer: Callable[[Any], optax.GradientTransformation]


def train(
    trainer: Trainer, config, workdir: str, mesh=None, stop_after: int | None = None
) -> loop.TrainState:
    """Trains (or resumes) a trainer's phases; returns the final state.

    Args:
      trainer: the trainer's `Trainer` (e.g. `talkingjax.train.head_motion.TRAINER`).
      config: the run's config (experiments/configs/).
      workdir: checkpoints, config.json and metrics.jsonl go here; an existing run resumes
        (refused when it was made with different `trainer.resume_keys`).
      mesh: defaults to all devices on one `data` axis.
      stop_after: stop once this many steps are done (for tests and benchmarks).
    """
    # Checked before anything is written; recorded only once the data loaded, so bad input
    # leaves no half-made workdir behind.
    check_batch_size(config.train.batch_size, mesh)
    checkpoint.check_workdir_config(workdir, config.to_json(), trainer.resume_keys)
    model = trainer.build(config)
    phases, variables = trainer.plan(config, workdir)
    checkpoint.write_workdir_config(workdir, config.to_json())
    if variables is None:
        variables = trainer.init(config, model)
    state = loop.init_state(variables, phases[0].optimizer)
    return loop.run_phases(workdir, config, model, phases, state, mesh, stop_after)


def check_batch_size(batch_size: int, mesh=None) -> None:
    """`InputError` unless the global batch splits evenly over the mesh's devices.

    `config.train.batch_size` is the global batch: each of the D devices on the `data` axis
    (all devices of all processes by default) trains on batch_size / D examples of it, so it
    must be a multiple of D (the paper GAN's batch of 1 runs on one device only).
    """
    devices = jax.device_count() if mesh is None else mesh.shape[parallel.DATA_AXIS]
    if batch_size < 1 or batch_size % devices:
        raise InputError(
            f"train.batch_size {batch_size} is the global batch, split over {devices} devices: "
            f"it must be a multiple of {devices} (e.g. --config.train.batch_size="
            f"{max(1, -(-batch_size // devices)) * devices}), or run on fewer devices"
        )


def load_variables(trainer: Trainer, workdir: str, step: int | None = None) -> tuple[Any, dict]:
    """(config, {"params", "batch_stats"}) of the latest (or given) checkpoint of a workdir,
    or of an exported workdir (`export`; `step` must then be None or the exported step).

    The parameters are `TrainState.avg_params`, the evaluated ones (equal to `params` unless
    the run averaged them); "batch_stats" is the model state (BatchNorm statistics, the GAN
    memory). Read-only, onto this process's first local device, whatever devices the run
    trained on (in a multi-host run every host loads its own copy).
    """
    if is_exported(workdir):
        return _load_exported(trainer, workdir, step)
    config = checkpoint.load_workdir_config(workdir)
    model = trainer.build(config)
    # Shapes only: restoring needs the structure, not a (compiled) initialisation.
    target = jax.eval_shape(
        lambda: loop.init_state(trainer.init(config, model), trainer.optimizer(config))
    )
    state = checkpoint.load(workdir, target, step)
    return config, {"params": state.avg_params, "batch_stats": state.batch_stats}


def is_exported(workdir: str) -> bool:
    """Whether `workdir` is an exported one (`EXPORT_FILE`, no checkpoints/)."""
    return storage.is_file(os.path.join(workdir, EXPORT_FILE)) and not storage.is_dir(
        os.path.join(workdir, "checkpoints")
    )


def export(
    trainer: Trainer, workdir: str, out_dir: str, step: int | None = None, dtype: str = "float32"
) -> ml_collections.ConfigDict:
    """Writes a workdir's evaluated variables (no optimizer state) to `out_dir`.

    `out_dir` (local or a URI; written by process 0) gets config.json (the run's config, with
    `exported_step` and `exported_dtype`) and `EXPORT_FILE` (`flax.serialization` msgpack
    of {"params", "batch_stats"}; floating leaves in `dtype`, read back as float32).
    Returns the written config.
    """
    if dtype not in EXPORT_DTYPES:
        raise InputError(f"dtype must be one of {EXPORT_DTYPES}, got {dtype!r}")
    config, variables = load_variables(trainer, workdir, step)
    cast = jax.numpy.dtype(dtype)

    def to_host(x):
        x = np.asarray(x)
        return x.astype(cast) if np.issubdtype(x.dtype, np.floating) else x

    variables = jax.tree.map(to_host, variables)
    data = flax.serialization.msgpack_serialize(flax.serialization.to_state_dict(variables))
    if storage.is_writer():
        storage.atomic_write(os.path.join(out_dir, EXPORT_FILE), lambda f: f.write(data), "wb")
    config = ml_collections.ConfigDict(config.to_dict())
    config.exported_step = int(checkpoint.latest_step(workdir) if step is None else step)
    config.exported_dtype = dtype
    checkpoint.write_workdir_config(out_dir, config.to_json())
    return config


def _load_exported(trainer: Trainer, directory: str, step: int | None) -> tuple[Any, dict]:
    config = checkpoint.load_workdir_config(directory)
    if step is not None and step != config.get("exported_step"):
        raise InputError(f"{directory} holds step {config.get('exported_step')}, not {step}")
    model = trainer.build(config)
    target = jax.eval_shape(lambda: trainer.init(config, model))
    target = {"params": target["params"], "batch_stats": target.get("batch_stats", {})}
    return config, read_msgpack_like(os.path.join(directory, EXPORT_FILE), target)


def read_msgpack_like(path: str, target) -> Any:
    """A `flax.serialization` msgpack file restored onto `target`'s structure, shapes and
    dtypes (e.g. `jax.eval_shape` of an init); `InputError` if it does not match."""
    state = flax.serialization.msgpack_restore(storage.read_bytes(path))
    folder = os.path.dirname(path) or "."
    try:
        restored = flax.serialization.from_state_dict(target, state)
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path} does not match the model of {folder}/config.json") from err
    same = jax.tree.map(lambda a, b: np.shape(a) == tuple(b.shape), restored, target)
    if not all(jax.tree.leaves(same)):
        raise InputError(f"{path} does not match the model of {folder}/config.json")
    return jax.tree.map(lambda x, t: np.asarray(x, t.dtype), restored, target)


def parameter_shaping(model_config) -> dict:
    """The fields of a `config.model` that shape parameters, as plain JSON values.

    Left out: fields naming a dropout (`dropout`, `dropout_blocks`, `state_dropout`, ...) and
    `matmul_dtype` (compute settings). Through JSON, so that a list and a tuple of the same
    values compare equal.
    """
    return {
        k: v
        for k, v in json.loads(model_config.to_json()).items()
        if "dropout" not in k and k != "matmul_dtype"
    }


def source_variables(trainer: Trainer, source: str, config) -> dict:
    """The variables of another run's workdir (`finetune.init_from`) to start a fine-tune from.

    The source's `model` config must equal `config.model` in the fields that shape
    parameters (`parameter_shaping`; else `InputError`): a fine-tune may train without the
    pretraining's dropout or in another precision.
    """
    source_config, variables = load_variables(trainer, source)
    theirs, ours = (parameter_shaping(c.model) for c in (source_config, config))
    if theirs != ours:
        raise InputError(f"init_from {source} has model {theirs}; this config {ours}")
    return variables
