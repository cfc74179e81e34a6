"""Synthetic talking-head videos for tests: the default face model rendered with known poses.

MediaPipe's face mesh finds these faces (the default model is MediaPipe's own mesh), and the
projected model vertices 0..467 are the ground truth of its landmarks (about 2-3 px RMSE at
256 px). Rendering is `talkingjax.data.default_inputs.render_faces` (one jitted function per
image size, ~5 s to compile, ~15 ms a frame); results are cached, so tests that share a
motion render it once.

    truth = write_head_video(tmp_path / "head.mp4", num_frames=30)
    truth.frames      # [T, S, S, 3] uint8, as written (before compression)
    truth.landmarks   # [T, 468, 2] projected vertices 0..467, frame pixels (centres at +0.5)
"""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess

import numpy as np

from talkingjax.data import default_inputs
from talkingjax.face3d import coeffs as coeffs_lib
from talkingjax.face3d import default

DISTANCE = -1.5  # trans z: the face ~55% of the image width


@dataclasses.dataclass
class HeadVideo:
    """Ground truth of a rendered clip.

    Attributes:
      frames: [T, S, S, 3] uint8 RGB frames (before any video compression).
      landmarks: [T, 468, 2] float32 pixel positions of model vertices 0..467 (MediaPipe's
        468 points), x right, y down, pixel centres at +0.5.
      angles: [T, 3] pitch, yaw, roll (radians).
      trans: [T, 3] translation (model units).
      fps: frame rate.
    """

    frames: np.ndarray
    landmarks: np.ndarray
    angles: np.ndarray
    trans: np.ndarray
    fps: float


def head_motion(num_frames: int, fps: float = 25.0, seed: int = 0):
    """A smooth head motion: (angles [T, 3], trans [T, 3]) of a few degrees and centimetres."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames)[:, None] / fps
    freq, phase = rng.uniform(0.3, 0.8, (2, 3)), rng.uniform(0, 2 * np.pi, (2, 3))
    angles = np.array([0.1, 0.25, 0.05]) * np.sin(2 * np.pi * freq[0] * t + phase[0])
    trans = np.array([0.1, 0.05, 0.0]) * np.sin(2 * np.pi * freq[1] * t + phase[1])
    trans[:, 2] = DISTANCE
    return angles.astype(np.float32), trans.astype(np.float32)


def background(size: int) -> np.ndarray:
    """A smooth coloured texture [S, S, 3] float32 in [0, 1] (not a flat, unnatural gray)."""
    yy, xx = np.mgrid[0:size, 0:size] * (256.0 / size)
    return np.stack(
        [
            0.4 + 0.1 * np.sin(xx / 9.0),
            0.45 + 0.1 * np.cos(yy / 13.0),
            0.5 + 0.05 * np.sin((xx + yy) / 20.0),
        ],
        axis=-1,
    ).astype(np.float32)


@functools.cache
def _model():
    return default.load_default()


def render_heads(angles, trans, size: int = 256, back: np.ndarray | None = None):
    """Renders one face per frame: (frames [T, S, S, 3] uint8, landmarks [T, 468, 2] float32).

    `back` [S, S, 3] float in [0, 1] or [T, S, S, 3] per frame (default `background`), e.g. a
    previous render's frames / 255 to put a second face into the picture.
    """
    angles, trans = np.asarray(angles, np.float32), np.asarray(trans, np.float32)
    back = background(size) if back is None else np.asarray(back, np.float32)
    model = _model()
    gamma = np.zeros((len(angles), 27), np.float32)
    gamma[:, 1] = 0.2  # a little directional light: visible shading
    c = coeffs_lib.zeros(coeffs_lib.Layout.of(model), (len(angles),))
    c = c.replace(angles=angles, trans=trans, gamma=gamma)
    return default_inputs.render_faces(c, size, back, model)


def write_video(
    path, frames: np.ndarray, fps: float = 25.0, audio: bool | str = False, crf: int = 12
) -> None:
    """Encodes RGB uint8 frames [T, H, W, 3] (H, W even) as H.264 (yuv420p) with ffmpeg.

    `audio`: False (none), True (a 220 Hz sine of the video's duration, AAC) or the path of
    an audio file to mux in (cut to the video's length).
    """
    frames = np.ascontiguousarray(frames, np.uint8)
    t, h, w, _ = frames.shape
    cmd = ["ffmpeg", "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"]
    cmd += ["-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-"]
    if audio is True:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=220:sample_rate=16000:duration={t / fps}"]
    elif audio:
        cmd += ["-i", os.fspath(audio)]
    cmd += ["-map", "0:v"] + (["-map", "1:a", "-c:a", "aac", "-shortest"] if audio else [])
    cmd += ["-c:v", "libx264", "-crf", str(crf), "-pix_fmt", "yuv420p", os.fspath(path)]
    subprocess.run(cmd, input=frames.tobytes(), check=True)


def write_head_video(
    path,
    angles=None,
    trans=None,
    num_frames: int = 30,
    fps: float = 25.0,
    size: int = 256,
    audio: bool | str = True,
    seed: int = 0,
) -> HeadVideo:
    """Renders a head clip (`head_motion` unless angles/trans [T, 3] are given) and writes it
    to `path` (`write_video`). Returns its ground truth (`HeadVideo`)."""
    if angles is None or trans is None:
        angles, trans = head_motion(num_frames, fps, seed)
    frames, landmarks = _cached_render(
        np.asarray(angles, np.float32).tobytes(), np.asarray(trans, np.float32).tobytes(), size
    )
    write_video(path, frames, fps, audio)
    return HeadVideo(frames, landmarks, np.asarray(angles), np.asarray(trans), fps)


@functools.lru_cache(maxsize=8)
def _cached_render(angles: bytes, trans: bytes, size: int):
    a = np.frombuffer(angles, np.float32).reshape(-1, 3)
    t = np.frombuffer(trans, np.float32).reshape(-1, 3)
    frames, landmarks = render_heads(a, t, size)
    frames.flags.writeable = False  # shared between callers of the cache
    landmarks.flags.writeable = False
    return frames, landmarks
