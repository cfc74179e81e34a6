"""On-disk record format of a head-motion dataset, and loading it.

Layout of a dataset directory::

    <root>/manifest.json          {"format": "talkingjax.headmotion/1", "clips": [entry, ...],
                                   optional "short_clips": [...], "silent_clips": [...]}
    <root>/clips/<clip_id>.npz    one file per clip

Each manifest entry holds `clip_id`, `video_id`, `speaker_id`, `fps`, `num_frames`, `split`
("train", "test", ...) and `file` (path relative to root); the entry of a record without
speech also `"has_audio": false`. `clips` lists the records with speech of at least
`MIN_CLIP_SECONDS` (what `load_dataset` reads), `short_clips` shorter ones with speech (the
preprocessor's; not loaded), `silent_clips` the records without speech, of any length
(loaded only on request: `load_dataset(..., silent=True)`, those of at least
`MIN_CLIP_SECONDS`). Each clip file holds:

- `pose`  float32 [T, 6] at the clip's own fps: Euler angles (x = pitch, y = yaw, z = roll,
  radians, the 257-d coefficient convention) then translation (x, y, z).
- `mfcc`  float32 [N, 13] rows of `talkingjax.audio.speech_features` of the clip's audio
  (100 Hz, padded as `talkingjax.audio.window_starts` expects); [0, 13] without speech.
- `fps`   float scalar.
- `style` float32 [S] (optional) the true motion style parameters of a synthetic clip.
- `exp`   float32 [T, K] (optional) 3DMM expression coefficients per frame (reconstructed
  videos, synthetic expression data), K = the face model's expression size.
- `has_audio` bool scalar (optional, default True). False marks a record *without speech*
  (a video with no audio track, or a silent one): pose and expression of every video frame,
  `mfcc` empty [0, 13]. Such records serve pose-only uses (the head-motion encoder's
  contrastive phase); whatever needs the speech (triplet sampling with audio, expression
  windows, evaluation) refuses them (`require_audio`) rather than train on zeros. Files
  written before this field existed have speech and load as before.

A *video* (`video_id`) may be split into several clips; triplet sampling treats all clips of
one video as one source of windows (two windows of one video vs one of another, paper Eq. 1).
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid

import numpy as np

from talkingjax import audio
from talkingjax.errors import InputError

FORMAT = "talkingjax.headmotion/1"
POSE_DIM = 6
MIN_CLIP_SECONDS = 4.0


@dataclasses.dataclass(frozen=True)
class Clip:
    """One talking clip: head pose at its own fps plus the MFCC rows of its audio."""

    clip_id: str
    video_id: str
    speaker_id: str
    fps: float
    pose: np.ndarray  # [T, 6]
    mfcc: np.ndarray  # [N, 13]
    split: str = "train"
    style: np.ndarray | None = None
    exp: np.ndarray | None = None  # [T, K] 3DMM expression coefficients (reconstructed videos)
    has_audio: bool = True  # False: a record without speech, mfcc [0, 13] (module docstring)

    @property
    def num_frames(self) -> int:
        return int(self.pose.shape[0])

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps


def require_audio(clip: Clip, needed_by: str) -> Clip:
    """Returns `clip` if it has speech; raises `InputError` naming `needed_by` if it does not.

    The guard of every consumer of the MFCC rows: a record without speech (`has_audio`
    False, module docstring) is refused with a clear message instead of being trained on.
    """
    if not clip.has_audio:
        raise InputError(
            f"clip {clip.clip_id} has no speech (a record of a video without usable audio); "
            f"{needed_by} needs the audio: leave records without speech out (load_dataset "
            "reads them only with silent=True)"
        )
    return clip


def check_pose(
    pose: np.ndarray, fps: float, name: str = "pose clip", min_seconds: float = MIN_CLIP_SECONDS
) -> np.ndarray:
    """Validates a [T, 6] pose sequence; returns it as float32 or raises `InputError`."""
    pose = np.asarray(pose)
    if pose.ndim != 2 or pose.shape[1] != POSE_DIM:
        raise InputError(f"{name}: pose must be [frames, 6], got shape {pose.shape}")
    if not np.all(np.isfinite(pose)):
        bad = np.flatnonzero(~np.all(np.isfinite(pose), axis=1))
        raise InputError(f"{name}: pose has NaN/inf values at frames {bad[:10].tolist()}")
    if fps <= 0:
        raise InputError(f"{name}: fps must be positive, got {fps}")
    if pose.shape[0] / fps < min_seconds:
        raise InputError(
            f"{name}: pose clip is {pose.shape[0] / fps:.2f} s long, "
            f"at least {min_seconds} s needed"
        )
    return pose.astype(np.float32)


def resample_pose(pose: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Resamples a [T, 6] pose sequence to another frame rate by linear interpolation in time."""
    if fps_in == fps_out:
        return np.asarray(pose, np.float32)
    n_out = max(int(np.floor(pose.shape[0] * fps_out / fps_in + 1e-6)), 1)
    t_in = np.arange(pose.shape[0]) / fps_in
    t_out = np.arange(n_out) / fps_out
    cols = [np.interp(t_out, t_in, pose[:, j]) for j in range(pose.shape[1])]
    return np.stack(cols, axis=1).astype(np.float32)


def clip_arrays(clip: Clip) -> dict[str, np.ndarray]:
    """The arrays of a clip file (`pose`, `mfcc`, `fps`, optional `style` and `exp`)."""
    arrays = {
        "pose": clip.pose.astype(np.float32),
        "mfcc": clip.mfcc.astype(np.float32),
        "fps": np.float32(clip.fps),
    }
    if clip.style is not None:
        arrays["style"] = np.asarray(clip.style, np.float32)
    if clip.exp is not None:
        arrays["exp"] = np.asarray(clip.exp, np.float32)
    if not clip.has_audio:  # only then: files with speech are exactly as before
        arrays["has_audio"] = np.asarray(False)
    return arrays


def manifest_entry(clip: Clip, file: str | None = None) -> dict:
    """The manifest entry of `clip`; `file` defaults to `clips/<clip_id>.npz`."""
    entry = {
        "clip_id": clip.clip_id,
        "video_id": clip.video_id,
        "speaker_id": clip.speaker_id,
        "fps": float(clip.fps),
        "num_frames": clip.num_frames,
        "split": clip.split,
        "file": file or os.path.join("clips", f"{clip.clip_id}.npz"),
    }
    if not clip.has_audio:
        entry["has_audio"] = False
    return entry


def atomic_write(path: str | os.PathLike, write, mode: str = "xb") -> None:
    """Calls `write(file)` on a temporary file in `path`'s directory, then renames it over
    `path`: a failure part-way leaves `path` as it was and no temporary file behind."""
    path = os.fspath(path)
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, mode) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_clip(path: str | os.PathLike, clip: Clip, extra: dict | None = None) -> None:
    """Writes one clip file atomically (temporary file in the same directory + `os.replace`).

    Args:
      path: the `.npz` to write.
      clip: the clip.
      extra: more arrays to store with it (readers of this format ignore unknown keys).
    """
    arrays = {**clip_arrays(clip), **(extra or {})}
    atomic_write(path, lambda f: np.savez(f, **arrays))


def write_manifest(root: str | os.PathLike, entries: list[dict], **extra) -> None:
    """Writes `<root>/manifest.json` atomically; `extra` keys go along (readers ignore them)."""
    root = os.fspath(root)
    tmp = os.path.join(root, f"manifest.json.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump({"format": FORMAT, "clips": entries, **extra}, f, indent=1)
        os.replace(tmp, os.path.join(root, "manifest.json"))
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_dataset(root: str | os.PathLike, clips: list[Clip]) -> None:
    """Writes `clips` and the manifest (the manifest last, so a crash leaves no valid dataset).

    Records without speech go under the manifest's `silent_clips` (module docstring).
    """
    root = os.fspath(root)
    os.makedirs(os.path.join(root, "clips"), exist_ok=True)
    entries, silent = [], []
    for clip in clips:
        entry = manifest_entry(clip)
        save_clip(os.path.join(root, entry["file"]), clip)
        (entries if clip.has_audio else silent).append(entry)
    write_manifest(root, entries, **({"silent_clips": silent} if silent else {}))


def load_dataset(
    root: str | os.PathLike, split: str | None = None, silent: bool = False
) -> list[Clip]:
    """Loads all clips (or those of one split) of a dataset directory, validating each.

    Args:
      root: the dataset directory.
      split: only this split (default all).
      silent: also the records without speech (`silent_clips` of at least
        `MIN_CLIP_SECONDS`; `has_audio` False, empty `mfcc`), after those with speech.
    """
    root = os.fspath(root)
    manifest_path = os.path.join(root, "manifest.json")
    if not os.path.isfile(manifest_path):
        raise InputError(f"no head-motion dataset at {root} (missing manifest.json)")
    with open(manifest_path) as f:
        manifest = json.load(f)
    if manifest.get("format") != FORMAT:
        raise InputError(f"{manifest_path}: unknown format {manifest.get('format')!r}")
    entries = list(manifest["clips"])
    if silent:
        entries += [
            e
            for e in manifest.get("silent_clips", [])
            if e["num_frames"] / e["fps"] >= MIN_CLIP_SECONDS
        ]
    clips = []
    for e in entries:
        if split is not None and e["split"] != split:
            continue
        path = os.path.join(root, e["file"])
        try:
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read clip {path}: {err}") from None
        pose = check_pose(arrays["pose"], float(e["fps"]), name=path)
        mfcc = arrays["mfcc"]
        has_audio = bool(arrays.get("has_audio", True))
        if mfcc.ndim != 2 or mfcc.shape[1] != audio.NUM_CEPSTRA or not np.isfinite(mfcc).all():
            raise InputError(f"{path}: mfcc must be finite [rows, 13], got shape {mfcc.shape}")
        if not has_audio and mfcc.shape[0]:
            raise InputError(f"{path}: a record without speech has mfcc rows {mfcc.shape}")
        exp = arrays.get("exp")
        if exp is not None and (
            exp.ndim != 2 or exp.shape[0] != pose.shape[0] or not np.isfinite(exp).all()
        ):
            raise InputError(
                f"{path}: exp must be finite [{pose.shape[0]} frames, K], got shape {exp.shape}"
            )
        clips.append(
            Clip(
                clip_id=e["clip_id"],
                video_id=e["video_id"],
                speaker_id=e["speaker_id"],
                fps=float(e["fps"]),
                pose=pose,
                mfcc=mfcc.astype(np.float32),
                split=e["split"],
                style=arrays.get("style"),
                exp=None if exp is None else exp.astype(np.float32),
                has_audio=has_audio,
            )
        )
    if not clips:
        raise InputError(f"{root}: no clips" + (f" in split {split!r}" if split else ""))
    return clips
