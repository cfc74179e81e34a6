"""The training engine every trainer shares: explicit train state, data-parallel update
functions, phases with a fresh optimizer each, Orbax checkpoints, JSONL metrics.

A trainer (`talkingjax.train.runner.Trainer`) supplies its model's loss functions and a batch
sampler per phase; `run_phases` does the rest (`runner.train` calls it):

    phases = [loop.Phase("general", steps, loss_fn, loop.make_optimizer(lr), sampler.sample)]
    state = loop.run_phases(workdir, config, model, phases, loop.init_state(variables, opt))

One update is data-parallel: every device computes gradients on its shard of the batch, `pmean`
over the `data` mesh axis averages them, and the replicated state is updated identically
everywhere (the pmap programming model, written with `jax.shard_map`). Batches are a pure
function of the step, so a resumed run sees exactly the batches an uninterrupted run would.
Each phase starts with a fresh optimizer state, as a separate run would. A non-finite loss
stops the run before a checkpoint could be overwritten.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from talkingjax.data import corpus as corpus_split
from talkingjax.data import records
from talkingjax.train import checkpoint, parallel, storage
from talkingjax.train.metric_writer import MetricWriter


def model_config(config) -> ml_collections.ConfigDict:
    """`config.model` with the mesh axis BatchNorm averages over during training."""
    cfg = ml_collections.ConfigDict(config.model.to_dict())
    cfg.bn_axis_name = parallel.DATA_AXIS
    return cfg


def load_data(
    config, workdir: str, corpus: str, generate: Callable[..., object]
) -> tuple[list[records.Clip], list[records.Clip]]:
    """(train, test) clips of `config.data.root`, or of a synthetic corpus in the workdir.

    Without `data.root`, `generate(root, num_videos=, num_test_videos=, seconds_per_video=,
    fps=, seed=)` writes the corpus once to `workdir/corpus` from `config.data.synthetic_*`;
    later runs (and the evaluation) reuse it. A remote workdir (`gs://...`) keeps it in a
    local cache folder instead (`storage.local_data_dir`), made by each host.

    Optional `config.data` fields (configs written before them behave as without):
      silent: also the records without speech (`records.load_dataset(..., silent=True)`);
        consumers that need the speech leave them out (`records.require_audio`).
      split_file: a committed speaker split (`experiments/corpus/split.json`): clips are placed
        by it (`data.corpus.apply_split`; clips it does not list are left out), "train" trains
        and `eval_part` ("val" to choose settings, "test" once) is the held-out list.
    """
    root = config.data.root
    if not root:
        settings = dict(
            num_videos=config.data.synthetic_videos,
            num_test_videos=config.data.synthetic_test_videos,
            seconds_per_video=config.data.synthetic_seconds,
            fps=config.model.fps,
            seed=config.seed,
        )
        root = storage.local_data_dir(workdir, corpus, settings)
        if not os.path.exists(os.path.join(root, "manifest.json")):
            generate(root, **settings)
    clips = records.load_dataset(root, silent=bool(config.data.get("silent", False)))
    held_out = "test"
    if config.data.get("split_file", ""):
        clips = corpus_split.apply_split(clips, config.data.split_file)
        held_out = config.data.get("eval_part", "val")
    return [c for c in clips if c.split == "train"], [c for c in clips if c.split == held_out]


TRAIN_CLIPS_FILE = "train_clips.json"


def clip_entries(clips: list[records.Clip]) -> list[dict]:
    """One entry per clip for `write_train_clips`: clip and speaker ids, seconds, speech."""
    return [
        {"clip_id": c.clip_id, "speaker_id": c.speaker_id, "seconds": round(c.seconds, 2),
         "speech": bool(c.has_audio)}
        for c in clips
    ]  # fmt: skip


def write_train_clips(workdir: str, root: str, clips: list[dict]) -> None:
    """Writes `<workdir>/train_clips.json` (atomically, on process 0): the data root ("" = a
    synthetic corpus in the workdir) and one entry per clip trained on -- what a trained
    model's README lists (the shipped models inherit their clips' terms)."""
    if storage.is_writer():
        storage.write_json(os.path.join(workdir, TRAIN_CLIPS_FILE), {"root": root, "clips": clips})


@flax.struct.dataclass
class TrainState:
    """Everything a step reads and writes; checkpointed as one pytree.

    `batch_stats` is the model state a step updates apart from the gradient: BatchNorm's
    running statistics, and in the GAN's memory variant (paper 001) also the memory itself
    (`batch_stats["memory"]`, a `talkingjax.models.memory.MemoryState`). The name is
    BatchNorm's because Orbax stores the state's fields by name: renamed, every existing
    checkpoint (those shipped in `talkingjax/assets/models` too) would no longer restore.
    """

    step: jnp.ndarray  # int32 scalar: number of updates done
    params: Any
    batch_stats: Any  # model state: BatchNorm statistics, the GAN memory (see above)
    opt_state: Any
    # The mean of `params` over the averaging tail of the current phase (`Phase.average_from`),
    # else equal to `params`; what a trained model is evaluated and used with.
    avg_params: Any


def make_optimizer(
    lr: float | optax.Schedule,
    grad_clip: float = 0.0,
    b1: float = 0.9,
    frozen: str | tuple[str, ...] = (),
    weight_decay: float | None = None,
) -> optax.GradientTransformation:
    """Adam (every paper's optimizer), optionally after global-norm clipping (grad_clip > 0).

    `lr` may be a schedule of the step. `frozen`: top-level parameter groups (e.g. "encoder"
    or ("encoder", "lstm")) whose gradients are zeroed before clipping and Adam, so they never
    move (their moments stay 0). `weight_decay`: coupled L2 decay (PyTorch's
    `Adam(weight_decay=)`, Audio2Head's optimizer) added to the gradients after clipping; None
    leaves the stage out, a float keeps it (an identity at 0). The stage changes the
    optimizer state's structure, so a trainer passes None always or a float always, and its
    checkpoints can be restored from the config alone.
    """
    # Every phase uses the same chain, so their states share one structure (one checkpoint);
    # the freeze wraps the chain rather than adding a stage to it for the same reason.
    stages = [optax.clip_by_global_norm(grad_clip) if grad_clip > 0 else optax.identity()]
    if weight_decay is not None:
        stages.append(
            optax.add_decayed_weights(weight_decay) if weight_decay > 0 else optax.identity()
        )
    inner = optax.chain(*stages, optax.adam(lr, b1=b1))
    frozen = (frozen,) if isinstance(frozen, str) else tuple(frozen)
    if not frozen:
        return inner

    def update(grads, state, params=None):
        unknown = set(frozen) - set(grads)
        if unknown:
            raise ValueError(f"frozen groups {sorted(unknown)} not among {sorted(grads)}")
        grads = {k: jax.tree.map(jnp.zeros_like, g) if k in frozen else g for k, g in grads.items()}
        return inner.update(grads, state, params)

    return optax.GradientTransformation(inner.init, update)


def make_update(loss_fn, model, loss_cfg, optimizer, average_start: int | None = None):
    """The per-device update `(state, local_batch) -> (state, metrics)` for `loss_fn`.

    `loss_fn(params, batch_stats, batch, model, loss_cfg) -> (loss, (metrics, batch_stats))`.
    From the global step `average_start` on, `avg_params` is the running mean of the
    parameters after each update (stochastic weight averaging); before it, and without it,
    `avg_params` is the parameters.
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
        # Model state is equal on all devices (BatchNorm averaged its statistics over the axis;
        # a GAN memory was updated with the gathered batch): pmean / pmax make that explicit
        # to shard_map's replication check and are no-ops on equal values (pmax keeps ints).
        batch_stats = jax.tree.map(_replicated, batch_stats)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics["grad_norm"] = optax.tree.norm(grads)
        avg = params
        if average_start is not None:
            # k-th averaged iterate: avg += (params - avg) / k; k <= 1 restarts from params.
            k = jnp.maximum(state.step + 1 - average_start, 1).astype(jnp.float32)
            avg = jax.tree.map(lambda a, p: a + (p - a) / k, state.avg_params, params)
        return state.replace(
            step=state.step + 1,
            params=params,
            batch_stats=batch_stats,
            opt_state=opt_state,
            avg_params=avg,
        ), metrics

    return update


def _replicated(x):
    if jnp.issubdtype(x.dtype, jnp.floating):
        return jax.lax.pmean(x, parallel.DATA_AXIS)
    return jax.lax.pmax(x, parallel.DATA_AXIS)


def init_state(variables, optimizer) -> TrainState:
    """A step-0 state from `model.init` variables and the first phase's optimizer."""
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=optimizer.init(params),
        # A copy: the update donates the state, and one buffer must not be donated twice.
        avg_params=jax.tree.map(jnp.copy, params),
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
      average_from: after this many of the phase's steps, `TrainState.avg_params` averages
        the parameters of the remaining steps (None: no averaging).
      finish: optional `TrainState -> TrainState` on host arrays, applied once after the
        phase's last update and before that step's checkpoint (e.g. a closed-form refit of
        an output layer); a resumed run restores the finished state instead of redoing it.
    """

    name: str
    steps: int
    loss_fn: Callable
    optimizer: optax.GradientTransformation
    sample: Callable[[int, int], dict]
    average_from: int | None = None
    finish: Callable[[TrainState], TrainState] | None = None


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
        parallel.data_parallel(
            make_update(
                p.loss_fn,
                model,
                config.loss,
                p.optimizer,
                None if p.average_from is None else int(start) + p.average_from,
            ),
            mesh,
        )
        for p, start in zip(phases, starts, strict=False)
    ]
    mngr = checkpoint.manager(workdir, config.train.keep_checkpoints, config.train.checkpoint_every)
    # Restored straight onto the mesh (replicated): in a multi-host run a restored array on one
    # host's device could not be moved onto the others'.
    state, step = checkpoint.restore_or(mngr, parallel.replicate(state, mesh))
    writer = MetricWriter(workdir, total, resume_step=step)
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
        if phase.finish is not None and step == starts[index + 1]:
            state = parallel.replicate(phase.finish(jax.device_get(state)), mesh)
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
