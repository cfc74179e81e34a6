"""Tracking + 3DMM fitting throughput on the first frames of a real video; prints JSON.

  python benchmarks/track_fit_speed.py [--video PATH] [--frames 300] [--crop_size 224]

Times `reconstruct.reconstruct_video` (MediaPipe tracking with decoding, stable crops, the staged
fit of `reconstruct.fit_video` with the default model) on the first --frames frames, each time
in a fresh process, so the fit time includes XLA compilation: without the persistent
compilation cache ("no_cache"), with an empty cache that the run fills ("cache_first_use") and
with that cache filled ("cache"; `talkingjax.compilation_cache`, what every entry point uses);
in each, the fit alone once more on the same crops ("fit_seconds_warm": what every further clip
of a similar length costs in one process, programs being cached per 32-frame length bucket).
Targets (issues): 300 frames in <= 60 s on 2 CPU cores (issue C), <= 20 s in a fresh process
(issue 24).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import jax

from talkingjax import compilation_cache
from talkingjax.face3d import default
from talkingjax.video import reconstruct

DEFAULT_VIDEO = os.path.join(
    os.path.dirname(__file__),
    "..",
    "..",
    "shared",
    "data",
    "real",
    "videos",
    "yi2020_target_31.mp4",
)


def measure(args) -> dict:
    """One fresh process's figures (the --child run)."""
    cache = compilation_cache.enable()
    model = default.load_default()
    t0 = time.perf_counter()
    rec = reconstruct.reconstruct_video(args.video, model, args.crop_size, args.frames)
    total = time.perf_counter() - t0
    t1 = time.perf_counter()
    reconstruct.fit_video(model, rec.crops, rec.landmarks, rec.track.detected)
    warm = time.perf_counter() - t1
    n = len(rec.crops)
    report = rec.fit.report()
    out = {
        "benchmark": "track_fit_speed",
        "video": os.path.basename(args.video),
        "frames": n,
        "crop_size": args.crop_size,
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "seconds_total": total,
        "seconds": rec.seconds,
        "frames_per_s": n / total,
        "fit_seconds_warm": warm,
        "frames_per_s_warm": n / (rec.seconds["track"] + rec.seconds["crop"] + warm),
        "landmark_rmse_px_mean": report["landmark_rmse_px_mean"],
        "landmark_rmse_px_max": report["landmark_rmse_px_max"],
        "compilation_cache": cache,
    }
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", default=DEFAULT_VIDEO)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--crop_size", type=int, default=224)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    runs = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, cache in (("no_cache", "off"), ("cache_first_use", folder), ("cache", folder)):
            env = dict(os.environ, **{compilation_cache.ENV: cache})
            cmd = [sys.executable, __file__, "--child", f"--video={args.video}"]
            cmd += [f"--frames={args.frames}", f"--crop_size={args.crop_size}"]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            runs[name] = json.loads(done.stdout.strip().splitlines()[-1])
            runs[name].pop("compilation_cache")
        cache_bytes = sum(
            os.path.getsize(os.path.join(root, f))
            for root, _, files in os.walk(folder)
            for f in files
        )
    out = {
        "benchmark": "track_fit_speed",
        "cpu_count": os.cpu_count(),
        "cache_megabytes": round(cache_bytes / 2**20, 2),
        "seconds_fresh_process": {k: round(v["seconds_total"], 1) for k, v in runs.items()},
        "runs": runs,
        "targets_from_issues": {"seconds_for_300_frames_issue_c": 60, "issue_24": 20},
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
