"""End-to-end generation speed, stage by stage; prints JSON.

  python benchmarks/generate_speed.py [--video PATH] [--speech PATH] [--seconds 20] \
      [--cache DIR] [--gan_model WORKDIR]

Personalises the target video (fit, motion pattern, expression and GAN fine-tunes; cached
under --cache, so a second run measures generation alone), then generates --seconds of the
speech (looped if shorter) twice in one process: the first run includes XLA compilation, the
second is what every further utterance costs. Reports seconds per stage and the frames/s of
the render + GAN + paste-back + encode stage, which is linear in the speech length. Without
--video / --speech it uses the embedded default inputs (made under --cache).
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np

from talkingjax import audio, generation
from talkingjax.data import default_inputs
from talkingjax.progress import Progress


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--video")
    parser.add_argument("--speech")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--cache", default=os.path.join("runs", "bench_cache"))
    parser.add_argument("--gan_model")
    args = parser.parse_args()
    if not (args.video and args.speech):
        made = default_inputs.make_default_inputs(os.path.join(args.cache, "default_inputs"))
        args.video, args.speech = args.video or made["target"], args.speech or made["speech"]
    models = generation.Models.with_defaults(gan=args.gan_model)
    t0 = time.perf_counter()
    progress = Progress(quiet=True)
    target = generation.personalize(args.video, models, args.cache, progress=progress)
    personalize_s = time.perf_counter() - t0
    wave = audio.load_audio(args.speech)
    n = int(args.seconds * audio.SAMPLE_RATE)
    wave = np.resize(wave, n)  # repeats the speech up to the length asked for
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(2):
            stages = Progress(quiet=True)
            t = time.perf_counter()
            result = generation.generate(
                wave, target, models, os.path.join(tmp, f"{i}.mp4"), progress=stages
            )
            total = time.perf_counter() - t
            frame_stage = stages.times[generation.compose.FRAMES_STAGE]
            runs.append(
                {
                    "seconds": round(total, 2),
                    "stages": {k: round(v, 2) for k, v in stages.times.items()},
                    "frames": result.num_frames,
                    "frames_per_second": round(result.num_frames / frame_stage, 2),
                    "real_time_factor": round(args.seconds / total, 3),
                }
            )
    print(
        json.dumps(
            {
                "video": args.video,
                "speech_seconds": args.seconds,
                "gan_size": int(generation.gan_size(target.gan)),
                "personalize_seconds": round(personalize_s, 1),
                "personalize_stages": {k: round(v, 1) for k, v in progress.times.items()},
                "first_run_with_compile": runs[0],
                "second_run": runs[1],
            }
        )
    )


if __name__ == "__main__":
    main()
