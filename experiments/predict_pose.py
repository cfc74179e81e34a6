"""Predicts a personalized head-pose sequence for a speech file.

  python -m experiments.predict_pose --workdir=/tmp/pose --audio=speech.wav \
      --reference=target_pose.npy --reference_fps=25 --fps=25 --out=pose.npy

The reference (the target's 10-15 s short video, as a [T, 6] pose .npy, a dataset clip .npz
or a 257-d coefficient .mat) gives the motion pattern; the output is a [F, 6] .npy at --fps
(Euler angles in radians, then translation), F = floor(audio seconds * fps).
"""

import os

import numpy as np
from absl import flags

from experiments import cli
from talkingjax import audio
from talkingjax.data import coeff257
from talkingjax.predict.head_motion import HeadMotionPredictor

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained train_pose workdir.", required=True)
_AUDIO = flags.DEFINE_string("audio", None, "Speech: wav/flac/mp3 or a video.", required=True)
_REFERENCE = flags.DEFINE_string("reference", None, "Pose clip of the target.", required=True)
_REFERENCE_FPS = flags.DEFINE_float("reference_fps", None, "Frame rate of the reference.")
_FPS = flags.DEFINE_float("fps", 25.0, "Frame rate of the output pose.")
_OUT = flags.DEFINE_string("out", None, "Output .npy path.", required=True)


def main(argv):
    del argv
    # All inputs are read and checked before the model is loaded or anything is written.
    wave = audio.load_audio(_AUDIO.value)
    pose, ref_fps = coeff257.load_pose_file(_REFERENCE.value, _REFERENCE_FPS.value)
    predictor = HeadMotionPredictor.from_workdir(_WORKDIR.value)
    pattern = predictor.encode_pattern(pose, ref_fps)
    out = predictor.predict_pose(wave, pattern, fps=_FPS.value)
    tmp = _OUT.value + ".tmp.npy"
    np.save(tmp, out.astype(np.float32))
    os.replace(tmp, _OUT.value)
    print(f"wrote {out.shape[0]} frames at {_FPS.value:g} fps to {_OUT.value}")


if __name__ == "__main__":
    cli.run(main)
