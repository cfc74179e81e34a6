"""The training loop every trainer shares: explicit train state, data-parallel update
functions, phases with a fresh optimizer each, Orbax checkpoints, JSONL metrics.

A trainer supplies its model's loss functions and a batch sampler; `run_phases` does the rest:

    state = loop.run_phases(workdir, config, resume_keys, mesh, phases, init_state, sample)

One update is data-parallel: every device computes gradients on its shard of the batch, `pmean`
over the `data` mesh axis averages them, and the replicated state is updated identically
everywhere (the pmap programming model, written with `jax.shard_map`). Batches are a pure
function of the step, so a resumed run sees exactly the batches an uninterrupted run would.
Each phase starts with a fresh optimizer state, as a separate run would. A non-finite loss
stops the run before a checkpoint could be overwritten.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from talkingjax.train import checkpoint, parallel
from talkingjax.train.metric_writer import MetricWriter


@flax.struct.dataclass
class TrainState:
    """Everything a step reads and writes; checkpointed as one pytree."""

    step: jnp.ndarray  # int32 scalar: number of updates done
    params: Any
    batch_stats: Any
    opt_state: Any


def make_optimizer(
    lr: float, grad_clip: float = 0.0, b1: float = 0.9
) -> optax.GradientTransformation:
    """Adam (both papers' optimizer), optionally after global-norm clipping (grad_clip > 0)."""
    # Every phase uses the same chain, so their states share one structure (one checkpoint).
    clip = optax.clip_by_global_norm(grad_clip) if grad_clip > 0 else optax.identity()
    return optax.chain(clip, optax.adam(lr, b1=b1))


def make_update(loss_fn, model, loss_cfg, optimizer):
    """The per-device update `(state, local_batch) -> (state, metrics)` for `loss_fn`.

    `loss_fn(params, batch_stats, batch, model, loss_cfg) -> (loss, (metrics, batch_stats))`.
    """

    def update(state: TrainState, batch):
        # Differentiate a per-device (varying) copy of the replicated parameters: shard_map
        # would otherwise sum gradients of invariant inputs over devices by itself. Here each
        # device's gradient is of its own shard's mean loss, averaged explicitly below.
        params, stats = parallel.per_device((state.params, state.batch_stats))
        grad_fn = jax.grad(loss_fn, has_aux=True)
        grads, (metrics, batch_stats) = grad_fn(params, stats, batch, model, loss_cfg)
        grads = jax.lax.pmean(grads, parallel.DATA_AXIS)
        metrics = jax.lax.pmean(metrics, parallel.DATA_AXIS)
        # BatchNorm already averaged its statistics over the axis; pmean makes that explicit
        # to shard_map's replication check and is a no-op on equal values.
        batch_stats = jax.lax.pmean(batch_stats, parallel.DATA_AXIS)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics["grad_norm"] = optax.tree.norm(grads)
        return state.replace(
            step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state
        ), metrics

    return update


def init_state(variables, optimizer) -> TrainState:
    """A step-0 state from `model.init` variables and the first phase's optimizer."""
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=optimizer.init(params),
    )


@dataclasses.dataclass(frozen=True)
class Phase:
    """A stretch of training with one loss and a fresh optimizer.

    Attributes:
      name: logged with every metrics line.
      steps: number of updates.
      loss_fn: see `make_update`.
      optimizer: its state is created fresh when the phase starts.
      sample: `(step, batch_size) -> batch` of host arrays (a pure function of the step).
    """

    name: str
    steps: int
    loss_fn: Callable
    optimizer: optax.GradientTransformation
    sample: Callable[[int, int], dict]


def run_phases(
    workdir: str,
    config,
    model,
    phases: list[Phase],
    state: TrainState,
    mesh=None,
    stop_after: int | None = None,
) -> TrainState:
    """Runs (or resumes) the phases in order; returns the final state.

    Args:
      workdir: checkpoints and metrics.jsonl go here; an existing run resumes.
      config: needs `train.batch_size`, `train.log_every`, `train.keep_checkpoints`,
        `train.checkpoint_every` and `loss` (passed to the loss functions).
      model: the flax module the loss functions apply.
      phases: at least one `Phase`; `state` must use the first phase's optimizer structure.
      state: the initial (step-0) state, used when the workdir has no checkpoint.
      mesh: defaults to all devices on one `data` axis.
      stop_after: stop once this many steps are done (for tests and benchmarks).
    """
    mesh = mesh or parallel.make_mesh()
    starts = np.cumsum([0] + [p.steps for p in phases])
    total = int(starts[-1])
    updates = [
        parallel.data_parallel(make_update(p.loss_fn, model, config.loss, p.optimizer), mesh)
        for p in phases
    ]
    mngr = checkpoint.manager(workdir, config.train.keep_checkpoints, config.train.checkpoint_every)
    state, step = checkpoint.restore_or(mngr, state)
    state = parallel.replicate(state, mesh)
    writer = MetricWriter(workdir, total)
    end = total if stop_after is None else min(total, stop_after)
    while step < end:
        index = int(np.searchsorted(starts, step, side="right") - 1)
        phase = phases[index]
        if step == starts[index] and index > 0:  # a fresh optimizer, as a separate run would
            state = state.replace(
                opt_state=parallel.replicate(phase.optimizer.init(state.params), mesh)
            )
        batch = parallel.shard_batch(phase.sample(step, config.train.batch_size), mesh)
        state, metrics = updates[index](state, batch)
        step += 1
        saving = mngr.should_save(step) or step == end
        # Checked before every save, so a diverged run never overwrites a good checkpoint.
        if saving or step % config.train.log_every == 0:
            metrics = jax.device_get(metrics)
            if not all(np.isfinite(v) for v in metrics.values()):
                raise FloatingPointError(f"non-finite loss at step {step}: {metrics}")
            writer.write(step, {"phase": phase.name, **metrics})
        if saving:
            checkpoint.save(mngr, step, state, force=True)
    mngr.wait_until_finished()
    mngr.close()
    return state
