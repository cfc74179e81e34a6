"""Speed of paper 000's rendering-to-realistic GAN (attention U-Net G + PatchGAN D); prints one
JSON object.

  python benchmarks/gan_speed.py [--repeats 5] [--steps 3] [--quick] [--reference]

- matmul: the machine's float32 GEMM rate, a 2048 x 2048 `jnp.dot`, best of `repeats`; the
  yardstick for the GFLOP/s below.
- inference: G's forward (`train=False`), jitted, best of `repeats` after a warm-up call, at
  256^2 with the paper's 8 levels (batch 1) and at 128^2 with 7 levels (batch 1 and 4);
  s/frame, fps, GFLOP/s (`gan.gflops_per_frame`) and its fraction of the matmul rate; and
  128^2 batch 4 with the test-time self-ensemble (18 passes, `gan.self_ensemble`).
- train: the library's own update (`train.loop.make_update` on Eq. 10,
  `losses.gan.generator_and_discriminator_loss`, dropout on, Adam(1e-4, b1=0.5) over
  {"generator", "discriminator"}, jit(shard_map) over a one-device `data` mesh, state donated)
  at 128^2 batch 4 (7 levels) and 256^2 batch 1 (8 levels); best of `steps` after
  compilation and two warm-up steps.
- `--reference` runs the same with Flax's nn.Conv / nn.ConvTranspose layers (XLA
  convolutions; `gan._REFERENCE_LAYERS`), i.e. the numbers before the GEMM layers.

Parameters are drawn with NumPy (N(0, 0.02) kernels as pix2pix, unit norm scales, zero
biases) rather than by `init`, whose random-number kernels take long to compile; speed does
not depend on the values.

Reference point (the issue): PyTorch 2.13 eager on this kind of 2-core machine: 1.45 s per
G+D training step at 128^2 batch 4, 1.67 s at 256^2 batch 1, 0.308 s per 256^2 frame for G
inference. Timings vary with the machine's state (other processes share the 2 cores).
"""

import argparse
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import quoted
from timing import best_of, time_update, timed

from talkingjax.losses import gan as gan_losses
from talkingjax.models import gan
from talkingjax.train import loop, parallel

QUOTED_PYTORCH_EAGER = {  # not measured by this run
    "source": "issue: PyTorch 2.13 eager on this kind of 2-core machine",
    "train_step_s_128_batch4": 1.45,
    "train_step_s_256_batch1": 1.67,
    "inference_s_per_frame_256": 0.308,
}


def numpy_params(module, *shapes, seed=0):
    """Parameters of `module` for inputs of `shapes`, drawn with NumPy (module docstring)."""
    rng = np.random.default_rng(seed)
    args = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
    abstract = jax.eval_shape(module.init, jax.random.key(0), *args)["params"]

    def fill(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        if name == "scale":
            return np.ones(leaf.shape, np.float32)
        if name == "bias":
            return np.zeros(leaf.shape, np.float32)
        return (0.02 * rng.standard_normal(leaf.shape)).astype(np.float32)

    return jax.tree.map(jnp.asarray, jax.tree_util.tree_map_with_path(fill, abstract))


def matmul_gflops(repeats: int, n: int = 2048) -> float:
    rng = np.random.default_rng(0)
    a, b = (jnp.asarray(rng.standard_normal((n, n)), jnp.float32) for _ in range(2))
    f = jax.jit(jnp.dot)
    timed(f, a, b)
    best, _ = best_of(lambda: f(a, b), repeats)
    return 2 * n**3 / best / 1e9


def bench_inference(
    size: int, depth: int, batch: int, repeats: int, peak: float, ensemble_shift: int = -1
) -> dict:
    features = gan.FEATURES[:depth]
    g = gan.AttentionUNetGenerator(features=features)
    shape = (batch, size, size, gan.WINDOW * gan.FRAME_CHANNELS)
    params = numpy_params(g, shape)
    render = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, shape), jnp.float32)
    passes = 1
    if ensemble_shift == gan.SELF_ENSEMBLE_OFF:
        fn = jax.jit(lambda p, r: g.apply({"params": p}, r)["image"])
    else:
        transforms = gan.self_ensemble_transforms(ensemble_shift)
        passes = len(transforms)
        fn = jax.jit(
            lambda p, r: gan.self_ensemble(lambda x: g.apply({"params": p}, x), r, transforms)[
                "image"
            ]
        )
    _, first = timed(fn, params, render)
    best, times = best_of(lambda: fn(params, render), repeats)
    per_frame = best / batch
    gflop = gan.gflops_per_frame(features, size) * passes
    return {
        "size": size,
        "levels": depth,
        "batch": batch,
        "generator_passes": passes,
        "s_per_frame": per_frame,
        "fps": 1.0 / per_frame,
        "gflop_per_frame": gflop,
        "gflop_per_s": gflop / per_frame,
        "fraction_of_matmul_peak": gflop / per_frame / peak,
        "runs_s": times,
        "first_call_s": first,
    }


def _loss_fn(params, batch_stats, batch, model, loss_cfg):
    """Eq. 10 with dropout keyed by the batch's seed (a function of the step)."""
    del loss_cfg
    g_model, d_model = model
    rngs = {"dropout": jax.random.key(batch["seed"][0])}
    batch = {"render": batch["render"], "real": batch["real"]}
    loss, metrics = gan_losses.generator_and_discriminator_loss(
        g_model, d_model, params, batch, rngs
    )
    return loss, (metrics, batch_stats)


def bench_train(size: int, depth: int, batch: int, steps: int) -> dict:
    features = gan.FEATURES[:depth]
    g = gan.AttentionUNetGenerator(features=features)
    d = gan.PatchDiscriminator()
    render_shape = (batch, size, size, gan.WINDOW * gan.FRAME_CHANNELS)
    frame_shape = (batch, size, size, gan.FRAME_CHANNELS)
    params = {
        "generator": numpy_params(g, render_shape, seed=2),
        "discriminator": numpy_params(d, render_shape, frame_shape, seed=3),
    }
    opt = loop.make_optimizer(1e-4, 0.0, 0.5)
    mesh = parallel.make_mesh(1)
    update = parallel.data_parallel(loop.make_update(_loss_fn, (g, d), None, opt), mesh)
    rng = np.random.default_rng(4)
    b = {
        "render": rng.uniform(-1, 1, render_shape).astype(np.float32),
        "real": rng.uniform(-1, 1, frame_shape).astype(np.float32),
        "seed": np.arange(batch, dtype=np.int32),
    }
    b = parallel.shard_batch(b, mesh)
    state = parallel.replicate(loop.init_state({"params": params}, opt), mesh)
    best, times, compile_s, metrics = time_update(update, state, b, steps)
    g_flop = gan.gflops_per_frame(features, size) * batch
    return {
        "size": size,
        "levels": depth,
        "batch": batch,
        "train_step_s": best,
        "train_runs_s": times,
        "compile_s": compile_s,
        # G forward + backward ~ 3x forward; D's FLOPs are not counted.
        "g_gflop_per_s_lower_bound": 3 * g_flop / best,
        "loss_finite": bool(np.isfinite(float(metrics["loss"]))),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="2 repeats, 2 steps")
    p.add_argument("--reference", action="store_true", help="Flax/XLA convolutions (before)")
    p.add_argument("--skip_train", action="store_true")
    p.add_argument("--skip_inference", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.repeats, args.steps = 2, 2
    gan._REFERENCE_LAYERS = args.reference
    peak = matmul_gflops(max(args.repeats, 5))
    out = {
        "benchmark": "gan_speed",
        "layers": "flax_xla_conv" if args.reference else "gemm",
        "backend": jax.default_backend(),
        "devices": jax.device_count(),
        "jax": jax.__version__,
        "load_average": os.getloadavg(),
        "matmul_gflop_per_s": peak,
        "generator_params_8_levels": gan.num_params(),
        "generator_params_7_levels": gan.num_params(gan.FEATURES[:7]),
        "discriminator_params": int(
            sum(
                x.size
                for x in jax.tree.leaves(
                    jax.eval_shape(
                        gan.PatchDiscriminator().init,
                        jax.random.key(0),
                        jnp.zeros((1, 256, 256, 9)),
                        jnp.zeros((1, 256, 256, 3)),
                    )
                )
            )
        ),
    }
    if not args.skip_inference:
        out["inference"] = {
            "256_levels8_batch1": bench_inference(256, 8, 1, args.repeats, peak),
            "128_levels7_batch1": bench_inference(128, 7, 1, args.repeats, peak),
            "128_levels7_batch4": bench_inference(128, 7, 4, args.repeats, peak),
            # gan.Refiner(ensemble_shift=4): 18 passes (mirror x shifts) averaged.
            "128_levels7_batch4_self_ensemble4": bench_inference(128, 7, 4, 2, peak, 4),
        }
    if not args.skip_train:
        out["train"] = {
            "128_levels7_batch4": bench_train(128, 7, 4, args.steps),
            "256_levels8_batch1": bench_train(256, 8, 1, args.steps),
        }
    out["load_average_end"] = os.getloadavg()
    out["quoted_pytorch_eager"] = QUOTED_PYTORCH_EAGER
    out["quoted_side_by_side_issue_24"] = quoted.ISSUE_24
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
