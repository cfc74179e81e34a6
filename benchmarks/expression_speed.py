"""Speed of the reference-size audio-to-expression regressor; prints one JSON object.

  python benchmarks/expression_speed.py [--seconds 60] [--chunks 64,256,0] [--steps 3]

- inference: expression (+ pose) for `seconds` of speech at 25 fps (60 s = 1500 frames) with
  `predict_sequence` (the encoder over the frames in chunks, then the LSTM over the whole
  sequence), jitted, after a warm-up call, best of 3, for each encoder chunk size; the real-time
  factor is seconds of speech per second of compute. MFCC extraction is timed separately.
- train: the trainer's own step (`train.loop.make_update` on `train.expression.loss_fn`: Adam
  with betas (0.5, 0.999) on paper 001's Eq. 2, train-mode BatchNorm, jit(shard_map) over a
  one-device `data` mesh with the state donated) at batch 16 x 16 frames; best of `steps`
  after compilation.
- GFLOP per frame (`flops_per_frame`, forward) and the achieved GFLOP/s (a training step
  counts 3x the forward FLOPs of its 256 frames).

Model: reference sizes (convs 64-128-256-256-512, FC 2048/256, LSTM 256 x 3), 64 expression +
6 pose outputs (the 2020 joint model; the 6 extra outputs cost nothing). Parameters are drawn
with NumPy (fan-in scaled) rather than by `init`, whose random-number kernels take longer to
compile than the whole benchmark takes to run; speed does not depend on the values.

Reference point (the issue): PyTorch 2.13 eager on this kind of 2-core machine: 8.7 s for 60 s
of speech (6.9x real time) and 4.5 s per training step; the FLOP count bounds the machine at
~10x real time at ~155 GFLOP/s. What was tried is in the module docstring of
`talkingjax.models.expression` (`conv3x3`, `_conv_plan`, `max_pool3x3`). Timings vary by
+-10% with the machine's state (other processes share the 2 cores); compare runs made close
together.
"""

import argparse
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import quoted
from timing import best_of, time_update, timed

from experiments.configs import expression as expression_config
from talkingjax import audio
from talkingjax.models import (
    ExpressionRegressor,
    build_expression_model,
    expression_windows,
    flops_per_frame,
)
from talkingjax.models import predict_sequence as _predict_sequence
from talkingjax.train import expression as trainer
from talkingjax.train import loop, parallel

FPS = 25.0


def numpy_variables(model, windows_shape, seed=0):
    """Variables of `model` drawn with NumPy (see the module docstring)."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(
        model.init, jax.random.key(0), jax.ShapeDtypeStruct(windows_shape, jnp.float32)
    )

    def fill(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        if name in ("mean", "bias") or name.startswith("b_"):
            return np.zeros(leaf.shape, np.float32)
        if name in ("var", "scale"):
            return np.ones(leaf.shape, np.float32)
        fan_in = int(np.prod(leaf.shape[:-1]))
        return (rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(np.float32)

    return jax.tree.map(jnp.asarray, jax.tree_util.tree_map_with_path(fill, shapes))


def bench_inference(model, variables, seconds: float, chunks, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(int(seconds * audio.SAMPLE_RATE))).astype(np.float32)
    frames = audio.num_video_frames(seconds, FPS)
    windows, features_s = timed(
        lambda: expression_windows(audio.speech_features(wave), FPS, frames)
    )
    windows = jnp.asarray(windows)
    flops = flops_per_frame(model) * frames
    per_chunk = {}
    for chunk in chunks:
        fn = jax.jit(functools.partial(_predict_sequence, model, chunk=chunk))
        _, first = timed(fn, variables, windows)
        best, times = best_of(lambda fn=fn: fn(variables, windows), repeats)
        per_chunk[str(chunk)] = {
            "inference_s": best,
            "runs_s": times,
            "first_call_s": first,
            "real_time_factor": seconds / best,
            "gflop_per_s": flops / best / 1e9,
        }
    best_chunk = min(per_chunk, key=lambda c: per_chunk[c]["inference_s"])
    best = per_chunk[best_chunk]
    return {
        "speech_seconds": seconds,
        "frames": frames,
        "features_s": features_s,
        "inference_s": best["inference_s"],
        "inference_chunk": int(best_chunk),
        "real_time_factor": best["real_time_factor"],
        "real_time_factor_with_features": seconds / (best["inference_s"] + features_s),
        "inference_gflop_per_s": best["gflop_per_s"],
        "inference_by_chunk": per_chunk,
    }


def bench_train(variables, num_exp: int, batch: int, frames: int, steps: int) -> dict:
    """The library's own training step (`train.loop.make_update` on `train.expression.loss_fn`,
    jit(shard_map) over a one-device `data` mesh, state donated) with the paper config."""
    config = expression_config.get_config()
    config.model.num_exp = num_exp
    model = build_expression_model(loop.model_config(config))
    opt = loop.make_optimizer(config.train.lr, config.train.grad_clip, config.train.b1)
    mesh = parallel.make_mesh(1)
    update = parallel.data_parallel(
        loop.make_update(trainer.loss_fn, model, config.loss, opt), mesh
    )
    rng = np.random.default_rng(1)
    b = {
        "windows": (10.0 * rng.standard_normal((batch, frames, 28, 12))).astype(np.float32),
        "exp": rng.standard_normal((batch, frames, num_exp)).astype(np.float32),
        "pose": (0.1 * rng.standard_normal((batch, frames, 6))).astype(np.float32),
    }
    b = parallel.shard_batch(b, mesh)
    # A copy: the update donates its state, which must not be the caller's arrays.
    state = parallel.replicate(loop.init_state(jax.tree.map(jnp.copy, variables), opt), mesh)
    best, times, compile_s, metrics = time_update(update, state, b, steps)
    return {
        "train_step_s": best,
        "train_runs_s": times,
        "train_compile_s": compile_s,
        "train_batch": batch,
        "train_frames": frames,
        "train_gflop_per_s": 3 * flops_per_frame(model) * batch * frames / best / 1e9,
        "train_loss_finite": bool(np.isfinite(float(metrics["loss"]))),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--chunks", default="64,256,0", help="encoder chunk sizes (0 = all)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--num_exp", type=int, default=64)
    p.add_argument("--skip_train", action="store_true")
    p.add_argument("--skip_inference", action="store_true")
    args = p.parse_args()
    model = ExpressionRegressor(num_exp=args.num_exp, with_pose=True)
    variables = numpy_variables(model, (1, args.frames, 28, 12))
    out = {
        "benchmark": "expression_speed",
        "backend": jax.default_backend(),
        "devices": jax.device_count(),
        "jax": jax.__version__,
        "params": int(sum(x.size for x in jax.tree.leaves(variables["params"]))),
        "gflop_per_frame": flops_per_frame(model) / 1e9,
    }
    if not args.skip_inference:
        chunks = [int(c) for c in args.chunks.split(",")]
        out.update(bench_inference(model, variables, args.seconds, chunks, args.repeats))
    if not args.skip_train:
        out.update(bench_train(variables, args.num_exp, args.batch, args.frames, args.steps))
    out["quoted_pytorch_eager"] = {  # not measured by this run
        "source": "issue: PyTorch 2.13 eager on this kind of 2-core machine; machine_bound_*: "
        "the issue's bound from the FLOP count",
        "inference_s_60s_speech": 8.7,
        "real_time_factor": 6.9,
        "train_step_s": 4.5,
        "machine_bound_real_time_factor": 10.0,
        "machine_bound_gflop_per_s": 155.0,
    }
    out["quoted_side_by_side_issue_24"] = quoted.ISSUE_24
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
