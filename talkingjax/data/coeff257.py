"""Head pose from 257-d 3DMM coefficient files, and turning them into head-motion records.

Also `load_pose_file`, the one reader of a reference pose for inference (a [T, 6] `.npy`, a
`records` clip `.npz` or a coefficient `.mat`). This module builds on `talkingjax.data.records`,
never the other way round.

Deep3DFaceRecon, StyleTalk and many tools built on them store per-frame face coefficients as
a MATLAB file with a `coeff` array of shape [T, 257]:

    identity [0:80] | expression [80:144] | texture [144:224] | angles [224:227] (x, y, z
    radians) | SH lighting [227:254] | translation [254:257]

The angles use the convention of `talkingjax.geometry` (R = Rz Ry Rx; x pitch, y yaw, z roll),
so `angles + translation` is directly the [T, 6] pose of `talkingjax.data.records`.

Some tools save the array with a leading batch axis, (1, T, 257); that is squeezed. Any other
layout (notably the transposed (257, T)) is rejected rather than guessed at, because a wrong
guess would silently produce plausible-looking but meaningless poses.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import scipy.io

from talkingjax import audio
from talkingjax.data import records
from talkingjax.errors import InputError

COEFF_DIM = 257
COEFF_KEY = "coeff"
ID_SLICE = slice(0, 80)
EXP_SLICE = slice(80, 144)
TEX_SLICE = slice(144, 224)
ANGLE_SLICE = slice(224, 227)
LIGHT_SLICE = slice(227, 254)
TRANS_SLICE = slice(254, 257)

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".mp4")
# Pose and audio lengths of one recording differ by a frame or two (codec padding, rounding);
# a larger gap means a wrong file pairing or a wrong fps, which trimming would only hide.
MAX_MISMATCH_SECONDS = 1.0


def load_mat(path: str | os.PathLike, what: str = "coefficient file") -> dict:
    """Reads a .mat file, turning every way it can fail into a one-line `InputError`.

    Args:
      path: .mat file (MATLAB v4/v5/v7; v7.3 HDF5 files are not supported by scipy).
      what: how the messages name the file ("coefficient file", "BFM file", ...).

    Returns:
      The `scipy.io.loadmat` dict.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{what} not found: {path}")
    try:
        return scipy.io.loadmat(path)
    except NotImplementedError:
        raise InputError(
            f"cannot read {path}: MATLAB v7.3 (HDF5) files are not supported; "
            "re-save it with scipy.io.savemat or MATLAB's -v7 flag"
        ) from None
    except Exception as err:  # scipy raises many unrelated types for corrupt files
        raise InputError(f"cannot read {path} as a .mat file: {err}") from None


def coeff_from_mat(mat: dict, path: str | os.PathLike, dim: int = COEFF_DIM) -> np.ndarray:
    """Validates the `coeff` array of a loaded .mat dict (see `load_coeff`)."""
    path = os.fspath(path)
    if COEFF_KEY not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise InputError(f"{path}: no '{COEFF_KEY}' array in the file (it holds {keys})")
    coeff = np.asarray(mat[COEFF_KEY])
    if not np.issubdtype(coeff.dtype, np.number):
        raise InputError(f"{path}: '{COEFF_KEY}' must be numeric, got dtype {coeff.dtype}")
    if coeff.ndim == 3 and coeff.shape[0] == 1:
        coeff = coeff[0]  # (1, T, 257) as written by tools that keep a batch axis
    if coeff.ndim != 2 or coeff.shape[1] != dim:
        hint = ""
        if coeff.ndim == 2 and coeff.shape[0] == dim:
            hint = f" (it looks transposed; save it as [frames, {dim}])"
        raise InputError(
            f"{path}: '{COEFF_KEY}' must be [frames, {dim}] or [1, frames, {dim}], "
            f"got shape {coeff.shape}{hint}"
        )
    if coeff.shape[0] == 0:
        raise InputError(f"{path}: '{COEFF_KEY}' has no frames")
    coeff = coeff.astype(np.float64)
    if not np.all(np.isfinite(coeff)):
        bad = np.flatnonzero(~np.all(np.isfinite(coeff), axis=1))
        raise InputError(f"{path}: '{COEFF_KEY}' has NaN/inf values at frames {bad[:10].tolist()}")
    return coeff


def load_coeff(path: str | os.PathLike, dim: int = COEFF_DIM) -> np.ndarray:
    """Loads and validates the `coeff` array of a 257-d coefficient .mat file.

    Args:
      path: .mat file (MATLAB v4/v5/v7; v7.3 HDF5 files are not supported by scipy).
      dim: values per frame; 257 for the BFM layout, other sizes for other bases
        (`talkingjax.face3d.coeffs.Layout`).

    Returns:
      float64 [T, dim], T >= 1, all finite.

    Raises:
      InputError: missing or unreadable file, no `coeff` entry, bad shape, NaN/inf values.
    """
    return coeff_from_mat(load_mat(path), path, dim)


def coeff_to_pose(coeff: np.ndarray) -> np.ndarray:
    """[T, 257] coefficients -> float32 [T, 6] pose (angles x, y, z radians, then translation)."""
    return np.concatenate([coeff[:, ANGLE_SLICE], coeff[:, TRANS_SLICE]], axis=1).astype(np.float32)


def load_coeff_pose(path: str | os.PathLike) -> np.ndarray:
    """Head pose of a 257-d coefficient .mat file.

    Args:
      path: .mat file with `coeff` [T, 257] (or [1, T, 257]).

    Returns:
      float32 [T, 6]: angles [224:227] (radians) then translation [254:257].

    Raises:
      InputError: see `load_coeff`.
    """
    return coeff_to_pose(load_coeff(path))


def load_pose_file(path: str | os.PathLike, fps: float | None = None) -> tuple[np.ndarray, float]:
    """Reads a pose clip for inference: `.npy` [T, 6], a clip `.npz` of `records` (its own
    fps), or a 257-d coefficient `.mat`. Returns (validated pose, fps).

    Args:
      path: the file.
      fps: frame rate of `.npy`/`.mat` poses (required for those; `.npz` clips carry theirs).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"pose file not found: {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".mat":
        pose = load_coeff_pose(path)
    elif ext in (".npy", ".npz"):
        try:
            loaded = np.load(path)
            if ext == ".npz":
                with loaded as z:
                    pose, fps = z["pose"], float(z["fps"])
            else:
                pose = loaded
        except (OSError, ValueError, KeyError) as err:
            raise InputError(f"cannot read pose file {path}: {err}") from None
    else:
        raise InputError(f"{path}: pose files must be .npy, .npz or .mat")
    if fps is None:
        raise InputError(f"{path}: give the frame rate of this pose file (--reference_fps)")
    return records.check_pose(pose, fps, name=path), fps


def clip_from_coeff(
    mat_path: str | os.PathLike,
    audio_path: str | os.PathLike,
    fps: float,
    video_id: str,
    speaker_id: str,
    split: str = "train",
    clip_id: str | None = None,
    max_mismatch_seconds: float = MAX_MISMATCH_SECONDS,
) -> records.Clip:
    """Builds a head-motion record from a coefficient file and the matching audio.

    The pose is trimmed to the frames the audio covers with a full 280 ms MFCC window, and
    the MFCC rows to exactly the rows those frames use, so that
    `audio.frames_in_features(len(clip.mfcc), fps) == clip.num_frames`.

    Args:
      mat_path: 257-d coefficient .mat file of the video, one row per video frame.
      audio_path: audio of the same video (anything `audio.load_audio` reads, incl. the video).
      fps: frame rate of the video the coefficients were fitted to.
      video_id, speaker_id, split: record metadata (see `talkingjax.data.records`).
      clip_id: defaults to the .mat file name without extension.
      max_mismatch_seconds: larger pose/audio length differences are rejected.

    Returns:
      `records.Clip` with pose [T, 6] float32 and mfcc [N, 13] float32.

    Raises:
      InputError: unusable files, pose and audio lengths differing by more than
        `max_mismatch_seconds`, or a clip shorter than `records.MIN_CLIP_SECONDS`.
    """
    mat_path = os.fspath(mat_path)
    if not fps > 0:
        raise InputError(f"{mat_path}: fps must be positive, got {fps}")
    pose = load_coeff_pose(mat_path)
    feats = audio.speech_features(audio.load_audio(audio_path))
    pose, mfcc = align_to_audio(pose, feats, fps, mat_path, audio_path, max_mismatch_seconds)
    if clip_id is None:
        clip_id = os.path.splitext(os.path.basename(mat_path))[0]
    return records.Clip(
        clip_id=clip_id,
        video_id=video_id,
        speaker_id=speaker_id,
        fps=float(fps),
        pose=pose,
        mfcc=mfcc,
        split=split,
    )


def align_to_audio(
    pose: np.ndarray,
    feats: np.ndarray,
    fps: float,
    name: str | os.PathLike,
    audio_name: str | os.PathLike,
    max_mismatch_seconds: float = MAX_MISMATCH_SECONDS,
    min_seconds: float = records.MIN_CLIP_SECONDS,
) -> tuple[np.ndarray, np.ndarray]:
    """Trims per-frame pose and the MFCC rows of the same recording to each other.

    The pose keeps the frames the audio covers with a full 280 ms window, the MFCC exactly the
    rows those frames use, so `audio.frames_in_features(len(mfcc), fps) == len(pose)`.

    Args:
      pose: [T, 6] per video frame.
      feats: [N, 13] `audio.speech_features` of the recording's audio.
      fps: the video frame rate.
      name, audio_name: how messages name the pose source and the audio.
      max_mismatch_seconds: larger pose/audio length differences are rejected.
      min_seconds: shorter results are rejected (`records.check_pose`).

    Returns:
      (float32 pose [n, 6], float32 mfcc [rows, 13]), n >= 1.

    Raises:
      InputError: lengths differing by more than `max_mismatch_seconds`, NaN/inf poses, a
        result shorter than `min_seconds` or without a single frame.
    """
    name = os.fspath(name)
    audio_frames = audio.frames_in_features(feats.shape[0], fps)
    gap = abs(pose.shape[0] - audio_frames) / fps
    if gap > max_mismatch_seconds:
        raise InputError(
            f"{name}: {pose.shape[0]} pose frames ({pose.shape[0] / fps:.2f} s at {fps} fps) "
            f"but the audio {os.fspath(audio_name)} covers {audio_frames} frames "
            f"({audio_frames / fps:.2f} s); wrong file pairing or wrong fps?"
        )
    n = min(pose.shape[0], audio_frames)
    pose = records.check_pose(pose[:n], fps, name=name, min_seconds=min_seconds)
    if n == 0:
        raise InputError(f"{name}: no frame has a full audio window")
    rows = int(audio.window_starts(n, fps)[-1]) + audio.WINDOW_ROWS
    return pose, feats[:rows].astype(np.float32)


def _find_audio(directory: str, name: str, exts: Sequence[str]) -> str | None:
    for ext in exts:
        candidate = os.path.join(directory, name + ext)
        if os.path.isfile(candidate):
            return candidate
    return None


def coeff_dir_to_dataset(
    coeff_dir: str | os.PathLike,
    out_root: str | os.PathLike,
    fps: float,
    audio_dir: str | os.PathLike | None = None,
    speaker_of: Callable[[str], str] | None = None,
    split: str = "train",
    audio_exts: Sequence[str] = AUDIO_EXTS,
) -> list[records.Clip]:
    """Converts a directory of `<name>.mat` + `<name>.wav` pairs into a head-motion dataset.

    Every `<name>.mat` becomes one clip with clip_id = video_id = `<name>`. Nothing is
    written unless every pair converts, so a bad file cannot leave a half-built dataset.

    Args:
      coeff_dir: directory of 257-d coefficient .mat files (not searched recursively).
      out_root: dataset directory to write (`records.write_dataset`).
      fps: frame rate of all the videos.
      audio_dir: where the audio files are; defaults to `coeff_dir`.
      speaker_of: maps `<name>` to a speaker id; defaults to `<name>` itself (every video its
        own speaker), which is right only if no speaker appears in two videos.
      split: split of all clips.
      audio_exts: audio extensions tried in order for each name.

    Returns:
      The clips written, sorted by name.

    Raises:
      InputError: no .mat files, a .mat file without audio, or any unusable pair.
    """
    coeff_dir = os.fspath(coeff_dir)
    audio_dir = coeff_dir if audio_dir is None else os.fspath(audio_dir)
    if not os.path.isdir(coeff_dir):
        raise InputError(f"coefficient directory not found: {coeff_dir}")
    mat_files = sorted(f for f in os.listdir(coeff_dir) if f.lower().endswith(".mat"))
    names = [os.path.splitext(f)[0] for f in mat_files]
    if not names:
        raise InputError(f"{coeff_dir}: no .mat coefficient files")
    missing = [n for n in names if _find_audio(audio_dir, n, audio_exts) is None]
    if missing:
        raise InputError(
            f"{audio_dir}: no audio ({', '.join(audio_exts)}) for {len(missing)} coefficient "
            f"file(s), e.g. {missing[:5]}"
        )
    clips = []
    for name, mat_file in zip(names, mat_files, strict=True):
        clips.append(
            clip_from_coeff(
                os.path.join(coeff_dir, mat_file),
                _find_audio(audio_dir, name, audio_exts),
                fps,
                video_id=name,
                speaker_id=name if speaker_of is None else str(speaker_of(name)),
                split=split,
                clip_id=name,
            )
        )
    records.write_dataset(out_root, clips)
    return clips
