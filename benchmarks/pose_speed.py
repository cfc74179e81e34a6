"""Speed of the paper-size head motion model on this machine; prints one JSON object.

  python benchmarks/pose_speed.py [--steps 3] [--batch 16] [--frames 300] [--speech_seconds 60]

- train: joint-phase update (Eq. 2, encoder on the 3 clips of each triplet, decoder with 3
  patterns) at batch 16 x 300 frames, the data-parallel update function used by the trainer
  on a 1-device mesh, with float32 and with bfloat16 products (`model.matmul_dtype`); best
  step time after compilation, the compile time, XLA's FLOP count of the step and the rate it
  reaches, beside the machine's 2048^2 matmul rate in both precisions (`matmul_gflop_per_s`).
- inference: pattern of a 12 s pose clip + pose for `speech_seconds` of speech through
  `HeadMotionPredictor` (bucketed jit), after a warm-up call; real-time factor = seconds of
  speech per second of compute.
PyTorch on the same shapes, in the same run: `benchmarks/side_by_side.py`.
"""

import json

import jax
import numpy as np
import pose_shapes
import quoted
from timing import best_of, matmul_rates, time_update, timed

from experiments.configs import pose as pose_config
from talkingjax import audio
from talkingjax.models import build_model, rows_for_frames
from talkingjax.predict.head_motion import HeadMotionPredictor
from talkingjax.train import head_motion, loop, parallel


def train_flops(config) -> float:
    """Multiply-add FLOPs of one joint step: 3 x the forward products (backward = 2 x forward).

    Forward: the encoder LSTM over the 3 clips of each triplet, the decoder LSTM over the MFCC
    rows, the window convolution, the head on the audio once and on three patterns, the MLP.
    Element-wise work (gates, BatchNorm, losses, Adam) is not counted.
    """
    m = config.model
    b, t = config.train.batch_size, head_motion.window_frames(config)
    rows = rows_for_frames(t, 4)

    def lstm(steps, d_in, hidden, layers):
        per = sum(2 * ((d_in if i == 0 else hidden) + hidden) * 4 * hidden for i in range(layers))
        return steps * per

    widths = [2 * m.encoder_layers * m.encoder_hidden, *m.encoder_mlp, m.pattern_dim]
    h0, h1 = m.head_features
    fwd = (
        3 * b * lstm(t, 6, m.encoder_hidden, m.encoder_layers)
        + 3 * b * sum(2 * a * c for a, c in zip(widths[:-1], widths[1:], strict=True))
        + b * lstm(rows, 13, m.decoder_hidden, m.decoder_layers)
        + b * t * 2 * 28 * m.decoder_hidden * m.window_features
        + b * t * 2 * 3 * m.window_features * h0
        + 3 * b * t * 2 * (3 * m.pattern_dim * h0 + 3 * h0 * h1 + h1 * 6)
    )
    return 3.0 * fwd


def bench_train(config, steps: int) -> dict:
    mesh = parallel.make_mesh(1)
    model = build_model(loop.model_config(config))
    opt = loop.make_optimizer(config.train.joint_lr, config.train.grad_clip)
    update = parallel.data_parallel(
        loop.make_update(head_motion.joint_loss, model, config.loss, opt), mesh
    )
    variables = head_motion.init_variables(config, model)
    state = parallel.replicate(loop.init_state(variables, opt), mesh)
    b, t = config.train.batch_size, head_motion.window_frames(config)
    rng = np.random.default_rng(0)
    batch = {
        "pose": 0.1 * rng.standard_normal((b, 3, t, 6), np.float32),
        "mfcc": rng.standard_normal((b, rows_for_frames(t, 4), 13), np.float32),
    }
    batch = parallel.shard_batch(batch, mesh)
    step_s, times, compile_s, _ = time_update(update, state, batch, steps)
    flops = train_flops(config)
    params = sum(x.size for x in jax.tree.leaves(state.params))
    return {
        "matmul_dtype": config.model.matmul_dtype,
        "train_step_s": step_s,
        "train_step_times_s": times,
        "train_steps_per_s": 1 / step_s,
        "train_compile_s": compile_s,
        "train_gflop_per_step": flops / 1e9,
        "train_gflop_per_s": flops / 1e9 / step_s,
        "params": int(params),
        "batch": b,
        "frames": t,
    }


def bench_inference(config, speech_seconds: float) -> dict:
    model = build_model(config.model)
    t = head_motion.window_frames(config)
    variables = model.init(
        jax.random.key(0),
        np.zeros((1, t, 6), np.float32),
        np.zeros((1, rows_for_frames(t, 4), 13), np.float32),
    )
    predictor = HeadMotionPredictor(model, variables, config.model.fps)
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(int(speech_seconds * audio.SAMPLE_RATE))).astype(np.float32)
    ref = 0.1 * rng.standard_normal((t, 6)).astype(np.float32)

    def run():
        return predictor.predict_pose(wave, predictor.encode_pattern(ref, config.model.fps))

    _, first_s = timed(run)
    best, _ = best_of(run, 3)
    return {
        "inference_s": best,
        "inference_first_call_s": first_s,
        "speech_seconds": speech_seconds,
        "real_time_factor": speech_seconds / best,
    }


def main():
    p = pose_shapes.parser(__doc__.splitlines()[0])
    p.add_argument("--matmul_dtype", action="append", help="float32 and/or bfloat16 (both)")
    args = p.parse_args()
    args.matmul_dtype = args.matmul_dtype or ["float32", "bfloat16"]
    config = pose_config.get_config()
    config.train.batch_size = args.batch
    config.data.window_seconds = args.frames / config.model.fps
    out = {
        "benchmark": "pose_speed",
        "backend": jax.default_backend(),
        "devices": jax.device_count(),
        "jax": jax.__version__,
    }
    out["matmul_gflop_per_s"] = matmul_rates()
    for dtype in args.matmul_dtype:
        config.model.matmul_dtype = dtype
        out[f"train_{dtype}"] = bench_train(config, args.steps)
    out.update(bench_inference(config, args.speech_seconds))
    out["quoted_side_by_side_issue_24"] = quoted.ISSUE_24
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
