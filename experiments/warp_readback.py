"""How much of a head turned by `talkingjax.generation.warp` the project's tracker reads back.

  python -m experiments.warp_readback --video=TARGET.mp4 [--cache=DIR] [--frames=100] \
      [--degrees=4] [--out=DIR]

Personalises the target (cached), turns the real heads of `--frames` consecutive frames by
smooth known angle offsets (a sine per axis, `--degrees` amplitude, periods 37 / 29 / 43
frames), writes the turned and the original frames as two mp4s, tracks and fits both
(`evaluation.video.analyze_video`) and prints JSON: per axis (pitch, yaw, roll) the slope and
r of the read-back offset (turned minus original fit) against the offset asked for. Slope 1
and r 1 = the tracker sees exactly the turn; the fit's temporal smoothness and MediaPipe's
landmarks read out-of-plane turns smaller than in-plane ones. "gain" is 1 / slope per axis, the
turn gain (`warp.TURN_GAIN`) that makes a warped turn read as far as asked. "tracker_on_fit"
is the slope and r of the original frames' tracked angles on the target's fitted pose
(personalisation's fit; each minus its mean): the units the prediction is in and the ones the
tracker reads a real head's turns in agree when it is 1.
"""

import json
import os
import tempfile

import jax
import numpy as np
from absl import flags

from experiments import cli
from talkingjax import generation, visualize
from talkingjax.data import gan_pairs
from talkingjax.evaluation import video as video_eval
from talkingjax.face3d import default
from talkingjax.generation import warp
from talkingjax.metrics import video as video_metrics

_VIDEO = flags.DEFINE_string("video", None, "The target video.", required=True)
_CACHE = flags.DEFINE_string("cache", generation.DEFAULT_CACHE, "Personalisation cache.")
_FRAMES = flags.DEFINE_integer("frames", 100, "Consecutive frames turned (from the middle).")
_DEGREES = flags.DEFINE_float("degrees", 4.0, "Amplitude of the turns, degrees.")
_OUT = flags.DEFINE_string("out", None, "Keep the two mp4s here (default: a temp dir).")
_PERIODS = np.array([37.0, 29.0, 43.0])  # frames, pitch / yaw / roll


def main(argv):
    del argv
    models = generation.Models.with_defaults(None, None, None)
    target = generation.personalize(_VIDEO.value, models, _CACHE.value)
    model = default.load_default()
    frames = target.frames()
    n = min(_FRAMES.value, len(frames))
    start = (len(frames) - n) // 2
    idx = np.arange(start, start + n)
    t = np.arange(n)[:, None]
    delta = np.radians(_DEGREES.value * np.sin(2 * np.pi * t / _PERIODS + [0.0, 1.0, 2.0]))
    own = jax.tree.map(lambda x: np.asarray(x)[idx], target.coeffs)
    turned_to = own.replace(angles=(np.asarray(own.angles) + delta).astype(np.float32))
    size = generation.gan_size(target.gan)
    params = gan_pairs.scaled_transform(target.params, target.crop_size, size)
    with warp.PersonMasks() as people:
        turned = warp.turn_heads(
            model, turned_to, own.angles, [frames[i] for i in idx], params[idx], size,
            person_of=lambda k: people(int(idx[k]), frames[idx[k]]),
        )  # fmt: skip
    folder = _OUT.value or tempfile.mkdtemp()
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, n) for n in ("turned.mp4", "original.mp4")]
    visualize.write_video(paths[0], np.stack(turned), target.fps)
    visualize.write_video(paths[1], np.stack([frames[i] for i in idx]), target.fps)
    a, b = (video_eval.analyze_video(p, model) for p in paths)
    read = np.degrees(a.pose[:, :3] - b.pose[:, :3])
    report = {
        "video": _VIDEO.value,
        "frames": int(n),
        "degrees": _DEGREES.value,
        "edge": warp.EDGE,
        "smooth": warp.SMOOTH,
        "readback": video_metrics.readback(np.degrees(delta), read),
    }
    report["gain"] = {k: round(1.0 / v["slope"], 3) for k, v in report["readback"].items()}
    fitted = np.degrees(np.asarray(own.angles, np.float64))
    tracked = np.degrees(b.pose[:, :3])
    report["tracker_on_fit"] = video_metrics.readback(
        fitted - fitted.mean(0), tracked - tracked.mean(0)
    )
    print(json.dumps(report))


if __name__ == "__main__":
    cli.run(main)
