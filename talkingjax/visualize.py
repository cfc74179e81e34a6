"""Images, videos and plots the programs write: fit overlays (`render_fit`, `overlay_rows`),
PNGs, mp4s with a speech track (`VideoWriter` streams the frames of `talkingjax.generation` and
of the default inputs; `write_video`), and head-pose curves (`plot_pose`).

All functions take NumPy arrays and write files atomically (temp file + rename), so an
interrupted run never leaves a truncated figure or video behind.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
import wave

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from talkingjax.face3d import camera as camera_lib
from talkingjax.face3d import coeffs as coeffs_lib
from talkingjax.face3d import model as model_lib
from talkingjax.render import face as face_render


@functools.partial(jax.jit, static_argnames=("camera",))
def _render_batch(model, coeffs, camera):
    out = face_render.render_face(model, coeffs, camera, background=1.0)
    return out.image, out.mask


@functools.partial(jax.jit, static_argnames=("camera",))
def _render_weighted_batch(model, coeffs, weights, camera):
    # One rasterization: the shaded colours (on white) and the weight (on 0) as 4 channels.
    face = face_render.pose_face(model, coeffs)
    w = jnp.broadcast_to(weights[:, None], (*face.colors.shape[:-1], 1))
    out = face_render.render_mesh(
        face.vertices,
        model.triangles,
        jnp.concatenate([face.colors, w], axis=-1),
        camera,
        background=jnp.array([1.0, 1.0, 1.0, 0.0]),
    )
    return out.image[..., :3], out.mask, out.image[..., 3]


@functools.partial(jax.jit, static_argnames=("camera",))
def _render_motion_batch(model, coeffs_and_angles, camera):
    coeffs, angles_from = coeffs_and_angles
    verts = model_lib.shape(model, coeffs.id, coeffs.exp)
    to = model_lib.rigid_transform(verts, coeffs.angles, coeffs.trans)
    before = model_lib.rigid_transform(verts, angles_from, coeffs.trans)
    moved = camera_lib.project(camera, before) - camera_lib.project(camera, to)
    out = face_render.render_mesh(to, model.triangles, moved, camera)
    return out.image, out.mask


def _batched(fn, coeffs, batch: int, *args) -> list[np.ndarray]:
    """`fn(coeffs[i:i + batch], *args)` over the frames (`coeffs`: any pytree of arrays with
    the frames first, e.g. `FaceCoeffs`), each output concatenated over them. The last batch
    is padded to `batch` frames, so one compiled program serves every call with the same
    model, batch and camera (module-level jit: nothing re-traces)."""
    total = int(jax.tree.leaves(coeffs)[0].shape[0])
    outs: list[list[np.ndarray]] = []
    for i in range(0, total, batch):
        index = np.minimum(np.arange(i, i + batch), total - 1)
        part = jax.tree.map(lambda x, index=index: jnp.asarray(np.asarray(x)[index]), coeffs)
        n = min(batch, total - i)
        out = fn(part, *args)
        out = out if isinstance(out, tuple) else (out,)
        outs.append([np.asarray(o)[:n] for o in out])
    return [np.concatenate(parts) for parts in zip(*outs, strict=True)]


def render_fit(
    model: model_lib.MorphableModel,
    coeffs: coeffs_lib.FaceCoeffs,
    size: int,
    albedo: np.ndarray | None = None,
    batch: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Renders fitted frames at `size` x `size` (the fit's camera scaled to it).

    Args:
      model: the fitted model. coeffs: batch [T]. size: the side in pixels (e.g. the crops').
      albedo: optional [V, 3] per-vertex albedo (e.g. the detailed albedo) replacing the
        model's albedo; lighting stays the fitted one.
      batch: frames rendered per call.

    Returns:
      (renders [T, S, S, 3] float in [0, 1] on white, masks [T, S, S]).
    """
    camera = camera_lib.Camera().scaled(size)
    images, masks = _batched(
        lambda c: _render_batch(_with_albedo(model, albedo), c, camera), coeffs, batch
    )
    return images, masks


def _with_albedo(model: model_lib.MorphableModel, albedo: np.ndarray | None):
    if albedo is None:
        return model
    return model.replace(
        mean_albedo=jnp.asarray(albedo), albedo_basis=jnp.zeros_like(model.albedo_basis)
    )


def render_fit_weighted(
    model: model_lib.MorphableModel,
    coeffs: coeffs_lib.FaceCoeffs,
    size: int,
    weights: np.ndarray,
    albedo: np.ndarray | None = None,
    batch: int = 16,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`render_fit` and a per-vertex weight [V] drawn over the same frames in one pass.

    Returns:
      (renders [T, S, S, 3], masks [T, S, S], weights drawn [T, S, S] float: the weight
      interpolated over the visible mesh, 0 off it and in the mesh's holes).
    """
    camera = camera_lib.Camera().scaled(size)
    w = jnp.asarray(weights, jnp.float32)
    m = _with_albedo(model, albedo)
    images, masks, drawn = _batched(
        lambda c: _render_weighted_batch(m, c, w, camera), coeffs, batch
    )
    return images, masks, drawn


def render_motion(
    model: model_lib.MorphableModel,
    coeffs: coeffs_lib.FaceCoeffs,
    size: int,
    angles_from: np.ndarray,
    batch: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of a face drawn at `coeffs` was when the head had `angles_from`.

    The mesh of `coeffs` (identity, expression, translation) is drawn at its own angles with
    the image displacement of each vertex as its attribute: moved from `coeffs.angles` back
    to `angles_from`, in pixels at `size`. A pixel p of the face at the new pose shows the
    point that sat at p + flow[p] in a frame with the old pose (what
    `talkingjax.generation.warp` samples to turn a real head).

    Args:
      coeffs: batch [T]. angles_from: [T, 3] radians, the pose each frame's head had.

    Returns:
      (flow [T, S, S, 2] float32 (dx, dy) pixels, 0 off the mesh; masks [T, S, S]).
    """
    camera = camera_lib.Camera().scaled(size)
    angles = jnp.asarray(angles_from, jnp.float32)
    flow, masks = _batched(
        lambda c: _render_motion_batch(model, c, camera), (coeffs, angles), batch
    )
    return flow, masks


def overlay_rows(crops: np.ndarray, renders: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """[T, S, 3S, 3] float rows: crop | render | render pasted over the crop."""
    crop = crops.astype(np.float32) / 255.0
    pasted = masks[..., None] * renders + (1 - masks[..., None]) * crop
    return np.concatenate([crop, renders, pasted], axis=2)


def png_bytes(image: np.ndarray) -> bytes:
    """RGB float [H, W, 3] in [0, 1] -> the bytes of a PNG file."""
    ok, data = cv2.imencode(".png", (np.clip(image, 0, 1)[..., ::-1] * 255 + 0.5).astype(np.uint8))
    if not ok:
        raise OSError("cannot encode a PNG")
    return data.tobytes()


def write_png(path: str, image: np.ndarray) -> None:
    """RGB float [H, W, 3] in [0, 1] -> PNG, atomically."""
    data = png_bytes(image)
    tmp = path + ".tmp.png"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class VideoWriter:
    """Streams RGB frames into an H.264 mp4 through ffmpeg; the file appears only when done.

    Frames go to a temporary file beside `path`, which `close` renames to `path` and `abort`
    (or an exception inside a `with` block) deletes, so a failed or interrupted run leaves
    no partial video. Frames are written as they come: an hour of video never sits in memory.

        with VideoWriter("out.mp4", fps=25, audio=wave) as w:
            for chunk in chunks:
                w.write(chunk)          # [N, H, W, 3] uint8 or float in [0, 1]

    Args:
      path: the mp4 to write.
      fps: frame rate.
      audio: optional mono float waveform in [-1, 1] at `sample_rate`, muxed as AAC.
      crf: x264 quality (lower is better).
    """

    def __init__(
        self, path: str, fps: float, audio: np.ndarray | None = None, sample_rate: int = 16000,
        crf: int = 20,
    ):  # fmt: skip
        self.path, self.fps, self.crf = os.fspath(path), float(fps), crf
        self.tmp = self.path + ".tmp.mp4"
        self.frames = 0
        self._audio, self._rate = audio, int(sample_rate)
        self._scratch = tempfile.TemporaryDirectory()
        self._proc = None
        self._size = None

    def _start(self, h: int, w: int) -> None:
        cmd = [
            "ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{w}x{h}", "-r", f"{self.fps}", "-i", "-",
        ]  # fmt: skip
        if self._audio is not None:
            wav = os.path.join(self._scratch.name, "speech.wav")
            pcm = (np.clip(np.asarray(self._audio, np.float32), -1, 1) * 32767).astype("<i2")
            with wave.open(wav, "wb") as f:
                f.setnchannels(1)
                f.setsampwidth(2)
                f.setframerate(self._rate)
                f.writeframes(pcm.tobytes())
            cmd += ["-i", wav, "-c:a", "aac", "-b:a", "128k"]
        cmd += [
            "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(self.crf), self.tmp,
        ]  # fmt: skip
        self._size = (h, w)
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)

    def write(self, frames: np.ndarray) -> None:
        """Appends frames [N, H, W, 3] (uint8, or float in [0, 1]) of one fixed size."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.dtype != np.uint8:
            frames = (np.clip(frames, 0, 1) * 255 + 0.5).astype(np.uint8)
        if self._proc is None:
            self._start(*frames.shape[1:3])
        if frames.shape[1:] != (*self._size, 3):
            raise ValueError(f"frame size changed from {self._size} to {frames.shape[1:3]}")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frames).tobytes())
        except BrokenPipeError:
            self.abort()
            raise OSError(f"ffmpeg stopped while writing {self.path}") from None
        self.frames += len(frames)

    def close(self) -> None:
        """Finishes the file and moves it to `path`."""
        if self._proc is None:
            self.abort()
            raise ValueError(f"no frames were written to {self.path}")
        self._proc.stdin.close()
        code = self._proc.wait()
        self._proc = None
        self._scratch.cleanup()
        if code != 0:
            self._remove_tmp()
            raise OSError(f"ffmpeg failed (exit {code}) writing {self.path}")
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Stops ffmpeg and removes everything written so far."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
        self._scratch.cleanup()
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        if os.path.exists(self.tmp):
            os.remove(self.tmp)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(
    path: str, frames: np.ndarray, fps: float, audio: np.ndarray | None = None,
    sample_rate: int = 16000,
) -> None:  # fmt: skip
    """RGB float/uint8 frames [T, H, W, 3] -> H.264 mp4 through ffmpeg, atomically.

    audio: optional mono float waveform in [-1, 1] at `sample_rate`, muxed as AAC (the
    talking-head video's speech). Nothing is left at `path` if encoding fails.
    """
    with VideoWriter(path, fps, audio, sample_rate) as writer:
        writer.write(frames)


def _save_figure(fig, path: str) -> None:
    """A matplotlib figure as a PNG, atomically, then closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def plot_pose(path: str, pose: np.ndarray, fps: float, title: str = "") -> None:
    """Pose curves (angles in degrees, translation in cm) over time, as a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(len(pose)) / fps
    fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    for j, name in enumerate(("pitch (x)", "yaw (y)", "roll (z)")):
        axes[0].plot(t, np.degrees(pose[:, j]), label=name)
    for j, name in enumerate(("x", "y", "z")):
        axes[1].plot(t, 10.0 * pose[:, 3 + j], label=name)  # 1 model unit = 10 cm
    axes[0].set_ylabel("rotation (deg)")
    axes[1].set_ylabel("translation (cm)")
    axes[1].set_xlabel("time (s)")
    for ax in axes:
        ax.legend(loc="upper right", fontsize=8, ncol=3)
        ax.grid(alpha=0.3)
    if title:
        axes[0].set_title(title)
    _save_figure(fig, path)


def plot_pose_curves(
    path: str, curves: dict[str, np.ndarray], fps: float, title: str = "", centred: bool = True
) -> None:
    """Head angles of several pose sequences, one panel per axis, as a PNG, atomically.

    Args:
      curves: name -> [T, >= 3] angles in radians (e.g. "predicted", "output (tracked)",
        "target video (tracked)"); NaN rows (lost frames) leave gaps.
      centred: draw each curve minus its mean (motion, not rest orientation, compared).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 6.5), sharex=True)
    for name, pose in curves.items():
        a = np.degrees(np.asarray(pose, np.float64)[:, :3])
        if centred:
            a = a - np.nanmean(a, axis=0)
        t = np.arange(len(a)) / fps
        for j in range(3):
            axes[j].plot(t, a[:, j], label=name, linewidth=1.2)
    for j, axis in enumerate(("pitch (x)", "yaw (y)", "roll (z)")):
        axes[j].set_ylabel(f"{axis}, deg" + (" - mean" if centred else ""))
        axes[j].grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8, ncol=len(curves))
    axes[-1].set_xlabel("time (s)")
    if title:
        axes[0].set_title(title)
    _save_figure(fig, path)
