"""Talking-face videos -> per-frame 3DMM coefficients, head-motion records and quality reports.

One clip (`preprocess_video`): probe the video (`talkingjax.video.tracking.probe_video`; it must
have an audio track) -> speech features of the audio track (checked against the video's
length before anything expensive) -> `talkingjax.video.reconstruct.reconstruct_video` (track the
MediaPipe face mesh, crop every frame around the face, fit the morphable model to the whole
video) -> write, each file atomically (temporary file in the same directory + `os.replace`):

    <out>/coeffs/<clip_id>.mat    `coeff` [T, D] + `transform_params` [T, 5] for all T video
                                  frames (`talkingjax.face3d.coeffs.write_mat`): the raw fit
    <out>/crops/<clip_id>.npz     only with save_crops: `crops` uint8 [T, S, S, 3],
                                  `landmarks` [T, 478, 2] crop px, `detected` [T],
                                  `transform_params` [T, 5]
    <out>/reports/<clip_id>.json  quality report: `VideoFit.report()`, lost tracking frames,
                                  seconds per stage (a failed clip gets one with its reason)
    <out>/clips/<clip_id>.npz     the `talkingjax.data.records` clip (pose [n, 6], mfcc, fps),
                                  plus `exp` [n, K_exp] expression coefficients and the
                                  clip's metadata strings; written LAST

The record's pose is `VideoFit.pose` (optionally smoothed over `pose_sigma` frames, paper 003
Eq. 1), trimmed with its MFCC rows to the frames the audio covers
(`talkingjax.data.coeff257.align_to_audio`, the rule of the 257-d coefficient import).

Resuming. A clip is *finished* iff `clips/<clip_id>.npz` exists. A run (`preprocess`) skips
finished clips, so an interrupted run is resumed by running it again. A clip interrupted
half-way has at most temporary files (removed) and outputs of the earlier attempt
(overwritten, or removed if the clip now fails), so it is simply redone. Failed clips are
retried by default (`retry_failed`).

Short clips (LRW). Head-motion records need at least `records.MIN_CLIP_SECONDS` (4 s) per
clip; an LRW clip is 29 frames (1.16 s). Such clips are still processed completely (the
coefficients, expression and MFCC are what the audio-to-expression network and the rendering
GAN train on, paper 000 Sec. IV) and count as finished, but `manifest.json` lists them under
`short_clips`, not `clips`: `records.load_dataset` (and so the head-motion trainer) reads only
`clips`. Their `report.json` entries say `"head_motion": false` with a note.

Clip discovery (`discover`):

- `folder`: one video file (any extension), or every video (by extension, recursively,
  hidden entries skipped) under a directory. clip_id = video_id = the path relative to the
  directory without extension, '/' -> '__' (`spk1/take2.mp4` -> `spk1__take2`); speaker_id
  = the relative parent directory the same way (`spk1`), or the clip_id for videos at the
  top. All clips get `split` ("train" unless told).
- `lrw`: `lipread_mp4/WORD/{train,val,test}/WORD_NNNNN.mp4` (the `lipread_mp4` directory or
  its parent). clip_id = video_id = `WORD__split__WORD_NNNNN` (the numbers restart in
  every split), split from the directory; LRW does not name its speakers, so speaker_id =
  WORD. Other files (LRW's `.txt` word boundaries) are ignored.
- `coeff`: a directory of 257-d coefficient `.mat` + audio pairs made by other tools
  (`talkingjax.data.coeff257.coeff_dir_to_dataset`: all-or-nothing, needs `fps`, rewrites
  the manifest with just those clips).

Parallelism. `workers` > 1 runs clips in a `ProcessPoolExecutor` (spawn context), each worker
loading JAX, MediaPipe and the face model once (and compiling the fit once: ~30 s on CPU,
then a few seconds per LRW clip); one clip per worker is in flight. A worker that dies (e.g.
out of memory) fails the clips the pool held, and the run continues with a new pool. Ctrl-C
terminates the workers at once (every output is atomic) and still rewrites the manifest and
report from what finished. Every per-clip failure (an `InputError`, or an unexpected
exception, whose traceback goes into the clip's report) becomes a skip reason in
`report.json` instead of aborting. At the end `manifest.json` is rewritten from every
finished clip in `<out>/clips` (also those of earlier runs and other inputs), and
`report.json` lists every clip of this run (ok / done / skipped + reason, timings) with
totals.

From Python::

    from talkingjax.data import preprocess, records
    run = preprocess.preprocess("videos/", "dataset/", workers=2)
    print(run.summary())
    clips = records.load_dataset("dataset/")   # the head-motion records

From the command line: `python -m experiments.preprocess --input videos/ --out dataset/`.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import glob
import json
import multiprocessing
import os
import time
import traceback
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import numpy as np

from talkingjax import audio
from talkingjax import progress as progress_lib
from talkingjax.data import coeff257, records
from talkingjax.errors import InputError

LAYOUTS = ("folder", "lrw", "coeff")
VIDEO_EXTS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv")
LRW_SPLITS = ("train", "val", "test")
REPORT_FORMAT = "talkingjax.preprocess/1"
OUTPUT_DIRS = ("clips", "coeffs", "reports", "crops")
_MAX_LISTED_FRAMES = 200  # lost-frame indices listed in a report; the count is always given


# ------------------------------------------------------------------------------ clip discovery


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    """One video to preprocess and the record metadata it gets."""

    clip_id: str
    video_path: str
    video_id: str
    speaker_id: str
    split: str = "train"


def _id_from_relpath(rel: str) -> str:
    return os.path.splitext(rel)[0].replace(os.sep, "__").replace("/", "__")


def _check_unique(specs: list[ClipSpec], where: str) -> list[ClipSpec]:
    seen: dict[str, str] = {}
    for s in specs:
        if s.clip_id in seen:
            raise InputError(
                f"{where}: videos {seen[s.clip_id]} and {s.video_path} would both be clip "
                f"{s.clip_id!r}; rename one"
            )
        seen[s.clip_id] = s.video_path
    return sorted(specs, key=lambda s: s.clip_id)


def discover_folder(
    path: str | os.PathLike, split: str = "train", exts: Sequence[str] = VIDEO_EXTS
) -> list[ClipSpec]:
    """Clips of the `folder` layout: one video file, or all videos under a directory.

    Raises:
      InputError: a missing path, a directory without videos, or two videos mapping to the
        same clip id (`a.mp4` and `a.mov`).
    """
    path = os.fspath(path)
    if os.path.isfile(path):  # an explicitly named file is taken whatever its extension
        cid = _id_from_relpath(os.path.basename(path))
        return [ClipSpec(cid, path, cid, cid, split)]
    if not os.path.isdir(path):
        raise InputError(f"input not found: {path}")
    exts = tuple(e.lower() for e in exts)
    specs = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(exts):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), path)
            cid = _id_from_relpath(rel)
            parent = os.path.dirname(rel)
            speaker = parent.replace(os.sep, "__") if parent else cid
            specs.append(ClipSpec(cid, os.path.join(dirpath, name), cid, speaker, split))
    if not specs:
        raise InputError(f"{path}: no videos ({', '.join(exts)}) found")
    return _check_unique(specs, path)


def discover_lrw(path: str | os.PathLike, splits: Sequence[str] | None = None) -> list[ClipSpec]:
    """Clips of the `lrw` layout: `lipread_mp4/WORD/{train,val,test}/WORD_NNNNN.mp4`.

    Args:
      path: the `lipread_mp4` directory or the directory holding it.
      splits: only these splits (default all three).

    Raises:
      InputError: a missing directory, unknown split names, or no clip in that structure.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise InputError(f"input not found: {path}")
    if os.path.isdir(os.path.join(path, "lipread_mp4")):
        path = os.path.join(path, "lipread_mp4")
    splits = tuple(LRW_SPLITS if not splits else splits)
    unknown = sorted(set(splits) - set(LRW_SPLITS))
    if unknown:
        raise InputError(f"unknown LRW split(s) {unknown}; LRW has {list(LRW_SPLITS)}")
    specs = []
    for word in sorted(os.listdir(path)):
        if word.startswith(".") or not os.path.isdir(os.path.join(path, word)):
            continue
        for split in splits:
            d = os.path.join(path, word, split)
            if not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                if name.startswith(".") or not name.lower().endswith(".mp4"):
                    continue
                cid = f"{word}__{split}__{os.path.splitext(name)[0]}"
                specs.append(ClipSpec(cid, os.path.join(d, name), cid, word, split))
    if not specs:
        raise InputError(
            f"{path}: no LRW clips (expected WORD/{{{','.join(splits)}}}/WORD_NNNNN.mp4)"
        )
    return _check_unique(specs, path)


def discover(
    path: str | os.PathLike,
    layout: str = "folder",
    split: str = "train",
    splits: Sequence[str] | None = None,
) -> list[ClipSpec]:
    """The clips of `path` in a video layout (`folder` or `lrw`), sorted by clip id."""
    if layout == "folder":
        return discover_folder(path, split=split)
    if layout == "lrw":
        return discover_lrw(path, splits=splits)
    raise InputError(f"unknown layout {layout!r}; expected one of {list(LAYOUTS)}")


# -------------------------------------------------------------------------------- one clip


@dataclasses.dataclass(frozen=True)
class ClipResult:
    """What happened to one clip.

    Attributes:
      clip_id: the clip.
      status: "ok" (processed now), "done" (finished by an earlier run, not redone) or
        "skipped" (failed; `reason` says why).
      reason: the failure (one line), or a note for an ok clip (e.g. too short for
        head-motion training).
      head_motion: the record is long enough for the head-motion manifest.
      video_frames: frames of the video (= rows of the coefficient file).
      record_frames: frames of the record (the video trimmed to the audio).
      fps: the video frame rate.
      timings: seconds per stage ("probe", "audio", "track", "crop", "fit", "write", "total").
      internal: the failure was an unexpected exception (a bug), not bad input.
    """

    clip_id: str
    status: str
    reason: str | None = None
    head_motion: bool | None = None
    video_frames: int | None = None
    record_frames: int | None = None
    fps: float | None = None
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    internal: bool = False

    def to_json(self) -> dict:
        """The report.json entry: the fields that are set (an ok clip's reason as "note")."""
        d = {k: v for k, v in dataclasses.asdict(self).items() if v is not None and v != {}}
        if not self.internal:
            del d["internal"]
        if self.status == "ok" and "reason" in d:
            d["note"] = d.pop("reason")
        return d


def clip_paths(out_root: str | os.PathLike, clip_id: str) -> dict[str, str]:
    """Output files of a clip, by kind ("clips", "coeffs", "reports", "crops")."""
    out_root = os.fspath(out_root)
    ext = {"clips": ".npz", "coeffs": ".mat", "reports": ".json", "crops": ".npz"}
    return {k: os.path.join(out_root, k, clip_id + ext[k]) for k in OUTPUT_DIRS}


def is_finished(out_root: str | os.PathLike, clip_id: str) -> bool:
    return os.path.isfile(clip_paths(out_root, clip_id)["clips"])


def _remove_stale_temps(paths: Iterable[str]) -> None:
    """Temporary files an interrupted attempt left next to these outputs."""
    for p in paths:
        for tmp in glob.glob(glob.escape(p) + ".*.tmp"):
            try:
                os.remove(tmp)
            except OSError:
                pass


def _write_json(path: str, obj: dict) -> None:
    records.atomic_write(path, lambda f: json.dump(_jsonable(obj), f, indent=1), mode="x")


def _jsonable(x):
    """numpy scalars/arrays and NaN -> plain JSON values (NaN/inf -> null)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def _load_model(model):
    from talkingjax.face3d import default
    from talkingjax.face3d import model as mm

    if model is None or model == "default":
        return default.load_default()
    if isinstance(model, str | os.PathLike):
        return mm.load(os.fspath(model))
    return model


def preprocess_video(
    video_path: str | os.PathLike,
    out_root: str | os.PathLike,
    clip_id: str,
    video_id: str,
    speaker_id: str,
    split: str,
    model,
    crop_size: int = 224,
    save_crops: bool = False,
    pose_sigma: float | None = None,
    *,
    fit_config=None,
    max_mismatch_seconds: float = coeff257.MAX_MISMATCH_SECONDS,
) -> ClipResult:
    """Preprocesses one talking-face video into `out_root` (see the module docstring).

    Args:
      video_path: the video; it must have an audio track.
      out_root: the dataset directory (created if needed).
      clip_id, video_id, speaker_id, split: record metadata (`talkingjax.data.records`).
      model: a `MorphableModel`, a model `.npz` path, or None / "default" (the shipped one).
      crop_size: side of the square face crops the model is fitted in.
      save_crops: also write `crops/<clip_id>.npz`.
      pose_sigma: Gaussian smoothing (in frames) of the record's pose; None = raw fit. The
        coefficient file always keeps the raw fit.
      fit_config: a `reconstruct.VideoFitConfig` (None = its defaults).
      max_mismatch_seconds: video and audio lengths differing more are rejected.

    Returns:
      `ClipResult` with status "ok"; `head_motion` False for clips shorter than
      `records.MIN_CLIP_SECONDS` (written, but listed under the manifest's `short_clips`).

    Raises:
      InputError: not a readable video, no audio track, no trackable face, bad audio, video
        and audio of different lengths. Nothing but temporary files is written before all
        of the work succeeded, and those are removed.
    """
    from talkingjax.video import reconstruct, tracking

    video_path = os.fspath(video_path)
    paths = clip_paths(out_root, clip_id)
    timings: dict[str, float] = {}
    start = clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round(now - clock, 3)
        clock = now

    model = _load_model(model)
    info = tracking.probe_video(video_path)
    if not info.has_audio:
        raise InputError(f"{video_path}: no audio track (the records need the speech)")
    fps = float(np.float32(info.fps))  # as the record stores it, so every length check agrees
    lap("probe")
    # Audio before the expensive stages: silent audio or a length mismatch fails at once.
    feats = audio.speech_features(audio.load_audio(video_path))
    align = lambda pose: coeff257.align_to_audio(
        pose, feats, fps, video_path, video_path, max_mismatch_seconds, min_seconds=0.0
    )
    align(np.zeros((int(info.num_frames), records.POSE_DIM), np.float32))
    lap("audio")
    rec = reconstruct.reconstruct_video(video_path, model, crop_size=crop_size, config=fit_config)
    timings |= {k: round(v, 3) for k, v in rec.seconds.items()}  # track, crop, fit
    clock = time.perf_counter()
    fit, crops = rec.fit, rec.crops
    params = np.asarray(rec.transform_params, np.float32)
    landmarks = np.asarray(rec.landmarks, np.float32)
    detected = np.asarray(rec.track.detected, bool)
    pose = np.asarray(fit.pose, np.float32)
    if pose_sigma:
        pose = np.asarray(reconstruct.smooth_pose(pose, pose_sigma), np.float32)
    pose, mfcc = align(pose)
    n = pose.shape[0]
    head_motion = n / fps >= records.MIN_CLIP_SECONDS
    clip = records.Clip(clip_id, video_id, speaker_id, fps, pose, mfcc, split)

    lost = np.flatnonzero(~detected)
    note = None
    if not head_motion:
        note = (
            f"shorter than {records.MIN_CLIP_SECONDS:g} s ({n / fps:.2f} s): coefficients and "
            "record written, listed under short_clips, not in the head-motion manifest"
        )
    report = {
        "clip_id": clip_id,
        "video": os.path.abspath(video_path),
        "video_id": video_id,
        "speaker_id": speaker_id,
        "split": split,
        "status": "ok",
        "fps": float(info.fps),
        "video_frames": int(detected.shape[0]),
        "record_frames": n,
        "head_motion": bool(head_motion),
        "note": note,
        "frame_size": [int(info.width), int(info.height)],
        "crop_size": crop_size,
        "pose_sigma": pose_sigma,
        "tracking": {
            "lost_frames": int(lost.size),
            "lost_fraction": float(lost.size / max(detected.shape[0], 1)),
            "lost_frame_indices": lost[:_MAX_LISTED_FRAMES].tolist(),
        },
        "fit": fit.report(),
    }

    # Writing: everything but the record first, the record last (it marks the clip finished).
    for kind in OUTPUT_DIRS:
        if kind != "crops" or save_crops:
            os.makedirs(os.path.dirname(paths[kind]), exist_ok=True)
    _remove_stale_temps(paths.values())
    from talkingjax.face3d import coeffs as coeffs_lib

    coeffs_lib.write_mat(paths["coeffs"], fit.coeffs, params)
    if save_crops:
        arrays = {
            "crops": np.asarray(crops, np.uint8),
            "landmarks": landmarks,
            "detected": detected,
            "transform_params": params,
        }
        records.atomic_write(paths["crops"], lambda f: np.savez_compressed(f, **arrays))
    clip = dataclasses.replace(clip, exp=np.asarray(fit.coeffs.exp, np.float32)[:n])
    # The metadata travels with the record, so the manifest can be rebuilt from the files.
    meta = {"clip_id": clip_id, "video_id": video_id, "speaker_id": speaker_id, "split": split}
    extra = {k: np.asarray(str(v)) for k, v in meta.items()}
    lap("write")
    timings["total"] = round(time.perf_counter() - start, 3)
    report["timings"] = timings
    _write_json(paths["reports"], report)
    records.save_clip(paths["clips"], clip, extra=extra)
    return ClipResult(
        clip_id=clip_id,
        status="ok",
        reason=note,
        head_motion=bool(head_motion),
        video_frames=int(detected.shape[0]),
        record_frames=n,
        fps=fps,
        timings=timings,
    )


# ------------------------------------------------------------------------ a run over clips


@dataclasses.dataclass
class RunReport:
    """The outcome of `preprocess`: one result per discovered clip and the totals."""

    out_root: str
    layout: str
    results: list[ClipResult]
    totals: dict[str, Any]

    @property
    def report_path(self) -> str:
        return os.path.join(self.out_root, "report.json")

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.out_root, "manifest.json")

    def failures(self) -> list[ClipResult]:
        return [r for r in self.results if r.status == "skipped"]

    def summary(self) -> str:
        t = self.totals
        line = (
            f"{t['clips']} clip(s): {t['ok']} processed, {t['done']} already done, "
            f"{t['skipped']} skipped"
        )
        if t.get("internal_errors"):
            line += f" ({t['internal_errors']} internal errors)"
        line += (
            f"; manifest: {t['manifest_clips']} head-motion clip(s)"
            f", {t['manifest_short_clips']} short; report: {self.report_path}"
        )
        return line


def _run_clip(spec: ClipSpec, out_root: str, model, options: dict) -> ClipResult:
    """`preprocess_video` with every failure turned into a "skipped" result (+ its report)."""
    start = time.perf_counter()
    try:
        return preprocess_video(
            spec.video_path,
            out_root,
            spec.clip_id,
            spec.video_id,
            spec.speaker_id,
            spec.split,
            model,
            **options,
        )
    except InputError as err:
        reason, internal, tb = (str(err).splitlines() or ["?"])[0], False, None
    except Exception as err:  # a bug, or a library failing on odd input: keep going
        reason = f"internal error: {type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
        internal, tb = True, traceback.format_exc()
    seconds = round(time.perf_counter() - start, 3)
    paths = clip_paths(out_root, spec.clip_id)
    if not os.path.exists(paths["clips"]):  # outputs of an earlier, interrupted attempt
        _remove_stale_temps(paths.values())
        for kind in ("coeffs", "crops"):
            try:
                os.remove(paths[kind])
            except OSError:
                pass
    report = {"clip_id": spec.clip_id, "video": os.path.abspath(spec.video_path)}
    report |= {"status": "skipped", "reason": reason, "timings": {"total": seconds}}
    if tb:
        report["traceback"] = tb
    try:
        os.makedirs(os.path.dirname(paths["reports"]), exist_ok=True)
        _write_json(paths["reports"], report)
    except OSError:
        pass
    return ClipResult(
        spec.clip_id, "skipped", reason, timings={"total": seconds}, internal=internal
    )


_WORKER_MODEL = None


def _init_worker(model_spec) -> None:
    global _WORKER_MODEL
    _WORKER_MODEL = _load_model(model_spec)


def _worker_run(spec: ClipSpec, out_root: str, options: dict) -> ClipResult:
    return _run_clip(spec, out_root, _WORKER_MODEL, options)


def _run_parallel(
    todo: list[ClipSpec], out_root: str, model_spec, options: dict, workers: int, on_result
) -> None:
    """Runs clips on `workers` spawned processes, one clip per worker in flight.

    A pool whose worker died (`BrokenProcessPool`) fails the clips it held (few, as only one
    per worker is submitted at a time); the rest run on a new pool.
    """
    ctx = multiprocessing.get_context("spawn")
    pending = list(reversed(todo))
    while pending:
        pool = cf.ProcessPoolExecutor(
            workers, ctx, initializer=_init_worker, initargs=(model_spec,)
        )
        running: dict[cf.Future, ClipSpec] = {}
        try:
            while pending or running:
                while pending and len(running) < workers:
                    spec = pending[-1]
                    running[pool.submit(_worker_run, spec, out_root, options)] = spec
                    pending.pop()
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    on_result(fut.result())
                    del running[fut]
        except cf.process.BrokenProcessPool:
            for spec in running.values():
                on_result(_crashed(spec))
        except BaseException:  # Ctrl-C: stop our workers now; their outputs are atomic
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def _crashed(spec: ClipSpec) -> ClipResult:
    return ClipResult(
        spec.clip_id,
        "skipped",
        "a worker process died while this clip was running (out of memory?)",
        internal=True,
    )


def _model_spec_for_workers(model):
    """What the worker initializer receives: a path/None, or the model's arrays as numpy."""
    if model is None or isinstance(model, str | os.PathLike):
        return model
    import jax

    return jax.tree.map(np.asarray, model)


def preprocess(
    inputs: str | os.PathLike,
    out_root: str | os.PathLike,
    layout: str = "folder",
    model=None,
    workers: int = 1,
    crop_size: int = 224,
    save_crops: bool = False,
    pose_sigma: float | None = None,
    split: str = "train",
    splits: Sequence[str] | None = None,
    fps: float | None = None,
    retry_failed: bool = True,
    fit_config=None,
    progress: TextIO | None | bool = None,
) -> RunReport:
    """Preprocesses every clip of `inputs` into the dataset `out_root` (module docstring).

    Args:
      inputs: a video file or directory (`folder`), an LRW `lipread_mp4` directory (`lrw`),
        or a directory of coefficient .mat + audio pairs (`coeff`).
      out_root: the dataset directory (created if needed); may already hold finished clips.
      layout: "folder", "lrw" or "coeff".
      model: None / "default" (shipped model), a model .npz path, or a `MorphableModel`.
      workers: processes working on clips in parallel (1 = in this process).
      crop_size, save_crops, pose_sigma, fit_config: see `preprocess_video`.
      split: split of all `folder` clips (and of `coeff` clips).
      splits: LRW splits to process (default all).
      fps: frame rate of the coefficient files (`coeff` layout only; required there).
      retry_failed: also rerun clips whose last attempt failed (their report says so).
      progress: stream for the progress line; None = stderr, False = none.

    Returns:
      `RunReport`; also written as `<out_root>/report.json`.

    Raises:
      InputError: missing input, unknown layout, no clips found, an unreadable face model, or
        (`coeff` layout) any unusable pair. Failures of single video clips do not raise.
    """
    inputs, out_root = os.fspath(inputs), os.fspath(out_root)
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; expected one of {list(LAYOUTS)}")
    if layout == "coeff":
        return _import_coeff(inputs, out_root, fps, split)
    if fps is not None:
        raise InputError("fps is only for the coeff layout (videos carry their frame rate)")
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    if not crop_size >= 32:
        raise InputError(f"crop size must be at least 32 pixels, got {crop_size}")
    if pose_sigma is not None and not pose_sigma >= 0:
        raise InputError(f"pose_sigma must be >= 0 frames, got {pose_sigma}")
    specs = discover(inputs, layout, split=split, splits=splits)
    loaded = _load_model(model)  # fails fast on a bad model path, before any clip runs
    os.makedirs(out_root, exist_ok=True)
    options = {
        "crop_size": crop_size,
        "save_crops": save_crops,
        "pose_sigma": pose_sigma,
        "fit_config": fit_config,
    }

    results: dict[str, ClipResult] = {}
    todo = []
    for spec in specs:
        if is_finished(out_root, spec.clip_id):
            results[spec.clip_id] = ClipResult(spec.clip_id, "done")
        elif not retry_failed and (prev := _previous_failure(out_root, spec.clip_id)):
            results[spec.clip_id] = ClipResult(spec.clip_id, "skipped", prev)
        else:
            todo.append(spec)
    bar = progress_lib.Progress(quiet=progress is False, stream=progress or None).bar(
        "preprocess", len(todo), every=1.0, failures=True
    )

    def on_result(result: ClipResult) -> None:
        results[result.clip_id] = result
        bar.advance(failed=result.status == "skipped")

    start = time.perf_counter()
    try:
        if workers == 1 or len(todo) <= 1:
            for spec in todo:
                on_result(_run_clip(spec, out_root, loaded, options))
        else:
            spec_for_workers = _model_spec_for_workers(model)
            _run_parallel(todo, out_root, spec_for_workers, options, workers, on_result)
    finally:  # also after Ctrl-C: what finished so far is in the manifest
        ordered = [results[s.clip_id] for s in specs if s.clip_id in results]
        run = _finish(out_root, layout, ordered, len(specs), time.perf_counter() - start)
    return run


def _previous_failure(out_root: str, clip_id: str) -> str | None:
    try:
        with open(clip_paths(out_root, clip_id)["reports"]) as f:
            report = json.load(f)
    except (OSError, ValueError):
        return None
    if report.get("status") == "skipped":
        return f"failed in an earlier run: {report.get('reason')}"
    return None


def _finish(
    out_root: str, layout: str, results: list[ClipResult], num_clips: int, seconds: float
) -> RunReport:
    entries, short = rebuild_manifest(out_root, fresh={r.clip_id for r in results})
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "done", "skipped")}
    totals = {
        "clips": num_clips,
        **counts,
        "not_run": num_clips - len(results),
        "internal_errors": sum(r.internal for r in results),
        "manifest_clips": len(entries),
        "manifest_short_clips": len(short),
        "seconds": round(seconds, 3),
    }
    run = RunReport(out_root, layout, results, totals)
    report = {
        "format": REPORT_FORMAT,
        "layout": layout,
        "totals": totals,
        "clips": [r.to_json() for r in results],
    }
    _write_json(run.report_path, report)
    return run


def _clip_entry_from_file(root: str, rel: str) -> dict | None:
    """A manifest entry from a clip file's own arrays (None if unreadable or not ours)."""
    try:
        with np.load(os.path.join(root, rel)) as z:
            meta = {k: str(z[k]) for k in ("clip_id", "video_id", "speaker_id", "split")}
            num_frames = int(z["pose"].shape[0])
            fps = float(z["fps"])
    except (OSError, ValueError, KeyError):
        return None
    return {**meta, "fps": fps, "num_frames": num_frames, "file": rel}


def rebuild_manifest(
    out_root: str | os.PathLike, fresh: Iterable[str] = ()
) -> tuple[list[dict], list[dict]]:
    """Rewrites `<out_root>/manifest.json` from every finished clip in `<out_root>/clips`.

    Entries of the existing manifest are reused for files still present, except for the clip
    ids in `fresh` (just written); other clip files are read for their metadata. Clips of at
    least `records.MIN_CLIP_SECONDS` go to `clips` (what `records.load_dataset` reads),
    shorter ones to `short_clips`.

    Returns:
      (clips entries, short_clips entries), each sorted by clip id.
    """
    out_root, fresh = os.fspath(out_root), set(fresh)
    clip_dir = os.path.join(out_root, "clips")
    files = (
        sorted(f for f in os.listdir(clip_dir) if f.endswith(".npz"))
        if os.path.isdir(clip_dir)
        else []
    )
    known: dict[str, dict] = {}
    try:
        with open(os.path.join(out_root, "manifest.json")) as f:
            old = json.load(f)
        if old.get("format") == records.FORMAT:
            for e in [*old.get("clips", []), *old.get("short_clips", [])]:
                known[e["file"]] = e
    except (OSError, ValueError, KeyError, TypeError):
        pass
    entries, short = [], []
    for name in files:
        rel = os.path.join("clips", name)
        entry = None if name[:-4] in fresh else known.get(rel)
        entry = entry or _clip_entry_from_file(out_root, rel)
        if entry is None:
            continue
        long_enough = entry["num_frames"] / entry["fps"] >= records.MIN_CLIP_SECONDS
        (entries if long_enough else short).append(entry)
    entries.sort(key=lambda e: e["clip_id"])
    short.sort(key=lambda e: e["clip_id"])
    if files or os.path.exists(os.path.join(out_root, "manifest.json")):
        records.write_manifest(out_root, entries, short_clips=short)
    return entries, short


def _import_coeff(inputs: str, out_root: str, fps: float | None, split: str) -> RunReport:
    """The `coeff` layout: `coeff257.coeff_dir_to_dataset`, with a report.json alongside."""
    if fps is None:
        raise InputError("the coeff layout needs the frame rate of the coefficient files (fps)")
    if not os.path.isdir(inputs):
        raise InputError(f"input not found: {inputs}")
    start = time.perf_counter()
    clips = coeff257.coeff_dir_to_dataset(inputs, out_root, fps, split=split)
    results = [
        ClipResult(
            c.clip_id,
            "ok",
            head_motion=True,
            record_frames=c.num_frames,
            fps=c.fps,
        )
        for c in clips
    ]
    totals = {
        "clips": len(clips),
        "ok": len(clips),
        "done": 0,
        "skipped": 0,
        "not_run": 0,
        "internal_errors": 0,
        "manifest_clips": len(clips),
        "manifest_short_clips": 0,
        "seconds": round(time.perf_counter() - start, 3),
    }
    run = RunReport(out_root, "coeff", results, totals)
    report = {
        "format": REPORT_FORMAT,
        "layout": "coeff",
        "totals": totals,
        "clips": [r.to_json() for r in results],
    }
    _write_json(run.report_path, report)
    return run
