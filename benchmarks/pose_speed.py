"""Speed of the paper-size head motion model on this machine; prints one JSON object.

  python benchmarks/pose_speed.py [--steps 3] [--batch 16] [--frames 300] [--speech_seconds 60]

- train: joint-phase update (Eq. 2, encoder on the 3 clips of each triplet, decoder with 3
  patterns) at batch 16 x 300 frames, the data-parallel update function used by the trainer
  on a 1-device mesh; steps/s after compilation, and the compile time.
- inference: pattern of a 12 s pose clip + pose for `speech_seconds` of speech through
  `HeadMotionPredictor` (bucketed jit), after a warm-up call; real-time factor = seconds of
  speech per second of compute.
Reference point (the issue): PyTorch 2.13 eager, same architecture and machine kind: 8.1 s
per training step, 0.43 s for pattern + pose of 60 s of speech.
"""

import argparse
import json
import time

import jax
import numpy as np
import quoted
from timing import best_of, timed

from experiments.configs import pose as pose_config
from talkingjax import audio
from talkingjax.models import build_model, rows_for_frames
from talkingjax.predict.head_motion import HeadMotionPredictor
from talkingjax.train import head_motion, loop, parallel


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
    t0 = time.perf_counter()
    compiled = update.lower(state, batch).compile()
    compile_s = time.perf_counter() - t0
    state, m = compiled(state, batch)
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, m = compiled(state, batch)
    jax.block_until_ready(m)
    step_s = (time.perf_counter() - t0) / steps
    params = sum(x.size for x in jax.tree.leaves(state.params))
    return {
        "train_step_s": step_s,
        "train_steps_per_s": 1 / step_s,
        "train_compile_s": compile_s,
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
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--speech_seconds", type=float, default=60.0)
    args = p.parse_args()
    config = pose_config.get_config()
    config.train.batch_size = args.batch
    config.data.window_seconds = args.frames / config.model.fps
    out = {
        "benchmark": "pose_speed",
        "backend": jax.default_backend(),
        "devices": jax.device_count(),
        "jax": jax.__version__,
    }
    out.update(bench_train(config, args.steps))
    out.update(bench_inference(config, args.speech_seconds))
    out["quoted_pytorch_eager"] = {  # not measured by this run
        "source": "issue: PyTorch 2.13 eager, same architecture and machine kind",
        "train_step_s": 8.1,
        "inference_s_60s_speech": 0.43,
    }
    out["quoted_side_by_side_issue_24"] = quoted.ISSUE_24
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
