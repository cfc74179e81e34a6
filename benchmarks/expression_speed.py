"""Speed of the reference-size audio-to-expression regressor; prints one JSON object.

  python benchmarks/expression_speed.py [--seconds 60] [--chunks 64,256,0] [--steps 3]

- inference: expression (+ pose) for `seconds` of speech at 25 fps (60 s = 1500 frames) with
  `predict_sequence` (the encoder over the frames in chunks, then the LSTM over the whole
  sequence), jitted, after a warm-up call, best of 3, for each encoder chunk size; the real-time
  factor is seconds of speech per second of compute. MFCC extraction is timed separately.
- train: one Adam step (betas 0.5, 0.999) on paper 001's Eq. 2 at batch 16 x 16 frames, train-
  mode BatchNorm, jit with the parameters / statistics / optimizer state donated, one device;
  best of `steps` after compilation.
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
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from talkingjax import audio, losses
from talkingjax.models import ExpressionRegressor, expression_windows, flops_per_frame
from talkingjax.models import predict_sequence as _predict_sequence

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


def _best_of(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times), times


def bench_inference(model, variables, seconds: float, chunks, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(int(seconds * audio.SAMPLE_RATE))).astype(np.float32)
    t0 = time.perf_counter()
    feats = audio.speech_features(wave)
    frames = audio.num_video_frames(seconds, FPS)
    windows = expression_windows(feats, FPS, frames)
    features_s = time.perf_counter() - t0
    windows = jnp.asarray(windows)
    flops = flops_per_frame(model) * frames
    per_chunk = {}
    for chunk in chunks:
        fn = jax.jit(functools.partial(_predict_sequence, model, chunk=chunk))
        t0 = time.perf_counter()
        jax.block_until_ready(fn(variables, windows))
        first = time.perf_counter() - t0
        best, times = _best_of(lambda fn=fn: fn(variables, windows), repeats)
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


def bench_train(model, variables, batch: int, frames: int, steps: int) -> dict:
    opt = optax.adam(2e-4, b1=0.5, b2=0.999)
    num_exp = model.num_exp

    def loss_fn(params, stats, b):
        out, upd = model.apply(
            {"params": params, "batch_stats": stats},
            b["windows"],
            train=True,
            mutable=["batch_stats"],
        )
        loss = losses.p001_eq2(out["exp"], b["exp"], out["pose"], b["pose"])
        return loss, upd["batch_stats"]

    @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
    def step(params, stats, opt_state, b):
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, b)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, loss

    rng = np.random.default_rng(1)
    b = {
        "windows": jnp.asarray(10.0 * rng.standard_normal((batch, frames, 28, 12)), jnp.float32),
        "exp": jnp.asarray(rng.standard_normal((batch, frames, num_exp)), jnp.float32),
        "pose": jnp.asarray(0.1 * rng.standard_normal((batch, frames, 6)), jnp.float32),
    }
    # Copies: the donated buffers must not be the caller's.
    state = jax.tree.map(jnp.copy, (variables["params"], variables["batch_stats"]))
    state = (*state, opt.init(state[0]))
    t0 = time.perf_counter()
    compiled = step.lower(*state, b).compile()
    compile_s = time.perf_counter() - t0
    params, stats, opt_state, loss = compiled(*state, b)
    jax.block_until_ready(loss)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        params, stats, opt_state, loss = compiled(params, stats, opt_state, b)
        jax.block_until_ready(loss)
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {
        "train_step_s": best,
        "train_runs_s": times,
        "train_compile_s": compile_s,
        "train_batch": batch,
        "train_frames": frames,
        "train_gflop_per_s": 3 * flops_per_frame(model) * batch * frames / best / 1e9,
        "train_loss_finite": bool(np.isfinite(float(loss))),
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
        out.update(bench_train(model, variables, args.batch, args.frames, args.steps))
    out["reference_pytorch_eager"] = {
        "inference_s_60s_speech": 8.7,
        "real_time_factor": 6.9,
        "train_step_s": 4.5,
        "machine_bound_real_time_factor": 10.0,
        "machine_bound_gflop_per_s": 155.0,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
