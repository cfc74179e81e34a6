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
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import jax
import optax

from talkingjax.errors import InputError
from talkingjax.train import checkpoint, loop


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
    checkpoint.check_workdir_config(workdir, config.to_json(), trainer.resume_keys)
    model = trainer.build(config)
    phases, variables = trainer.plan(config, workdir)
    checkpoint.write_workdir_config(workdir, config.to_json())
    if variables is None:
        variables = trainer.init(config, model)
    state = loop.init_state(variables, phases[0].optimizer)
    return loop.run_phases(workdir, config, model, phases, state, mesh, stop_after)


def load_variables(trainer: Trainer, workdir: str, step: int | None = None) -> tuple[Any, dict]:
    """(config, {"params", "batch_stats"}) of the latest (or given) checkpoint of a workdir.

    The parameters are `TrainState.avg_params`, the evaluated ones (equal to `params` unless
    the run averaged them); "batch_stats" is the model state (BatchNorm statistics, the GAN
    memory). Read-only, onto one device, whatever devices the run trained on.
    """
    config = checkpoint.load_workdir_config(workdir)
    model = trainer.build(config)
    # Shapes only: restoring needs the structure, not a (compiled) initialisation.
    target = jax.eval_shape(
        lambda: loop.init_state(trainer.init(config, model), trainer.optimizer(config))
    )
    state = checkpoint.load(workdir, target, step)
    return config, {"params": state.avg_params, "batch_stats": state.batch_stats}


def source_variables(trainer: Trainer, source: str, config) -> dict:
    """The variables of another run's workdir (`finetune.init_from`) to start a fine-tune from.

    The source's `model` config must equal `config.model` (else `InputError`), so its
    parameters fit. Fields naming a dropout (`dropout`, `dropout_blocks`, `state_dropout`, ...)
    are exempt: they shape no parameter, and a fine-tune may train without the pretraining's
    dropout.
    """
    source_config, variables = load_variables(trainer, source)
    # Through JSON, so that a list and a tuple of the same values compare equal.
    theirs, ours = (
        {k: v for k, v in json.loads(c.model.to_json()).items() if "dropout" not in k}
        for c in (source_config, config)
    )
    if theirs != ours:
        raise InputError(f"init_from {source} has model {theirs}; this config {ours}")
    return variables
