"""The held-out protocol of every head-pose model: one table for paper 000, its baselines and
its peers (002-004), on the same held-out clips, with the same metrics.

    python -m experiments.eval_pose --workdir=A --workdir=B ... --out=DIR [--part=test]

Protocol (paper 000's use case): for each held-out clip with speech, the first
`eval.reference_seconds` of its pose are the target's "short video" (the reference part);
every method predicts the rest of the clip from its own audio (MFCC rows from the window start
of the first predicted frame on) and is compared with the real pose there. A clip with less
than `eval.min_target_seconds` left after the reference part is skipped, and so is a record
without speech (it serves retrieval only); `skipped` lists each with its reason (with a split
file, also the part's clips that are not among the records at all: speech shorter than
`records.MIN_CLIP_SECONDS`, the preprocessor's `short_clips`).

Predictor protocol (`talkingjax.predict.peers`: `Yi2022Predictor` for paper 000,
`PeerPredictor` for the peers, `load_predictor` for any pose workdir): attributes `name`, `fps`,
`has_pattern`, and `predict(mfcc, reference_pose, frames, seed=0) -> [frames, 6]`; with
`has_pattern` also `encode_patterns(poses, fps) -> [N, k]` for retrieval.

Rows, all scored by the same code on the same frames:
- one per predictor ("yi2022 (paper 000)" = ours: D_m(audio, E_m(reference part)));
- "<name>, audio only": paper 000's decoder with the pattern zeroed (for every paper-000
  predictor, i.e. one holding a `HeadMotionPredictor` as `.predictor`);
- "<name>, gaussian sigma <s>" (`evaluate_workdirs(..., smooth_sigmas=(s, ...))`, `eval_pose
  --smooth_sigma`): the row's predicted pose through paper 003's Gaussian filter (Eq. 1,
  `video.reconstruct.smooth_pose`, sigma in frames, edges "nearest") at inference
  (`SmoothedPredictor`; no retrieval or audio-only row of its own: the pattern is the same);
- "real pose": the held-out pose scored against itself (distances 0, HS 1, and the real value
  of the reference-free metrics: the real angular speed);
- "replay reference": the reference part replayed over the predicted part, mirrored at each
  end (forward, backward, forward, ...) so the loop has no jump: the speaker's own motion, not
  driven by the audio;
- "static reference mean": the reference part's mean pose held still (the speaker's rest pose;
  HS of a still head is high, see `metrics.pose.head_similarity`);
- "mean pose": the training set's mean pose held still;
- "random real": the real pose of another held-out clip (a real head, another person/speech).

Metrics (columns; `talkingjax.metrics.pose` / `pose_peers` / `pose_classifier`); each value
is the mean over the scored clips:
- hs: head-pose similarity HS, 1 - normalised W1 of angle histograms, mean of 3 axes (paper 000
  Eq. 11); 1 = same angle distribution. With a bootstrap interval over clips
  (`hs_interval`: clips resampled with replacement `eval.bootstrap_samples` times from
  `np.random.default_rng(seed)`, the `eval.interval` percentile interval of the mean) and,
  for the first pattern model, paired intervals of its HS minus each other row's
  (`hs_difference`: the same resamples for both rows).
- d_l: D-L, mean distance of face landmarks posed by pred vs real pose / face width (paper 004
  Sec. 5.2, from MakeItTalk); fraction (0.036 = 3.6 %).
- d_v: D-V, the same for landmark velocities, per second (face widths / s) so frame rates
  compare (paper 004 Sec. 5.2; its per-frame value = d_v / fps).
- d_rot: D-Rot, mean geodesic angle between pred and real head rotation, degrees (paper 004;
  the rotation error).
- d_pos: D-Pos, mean translation distance / face width (paper 004).
- vel_err: mean |angular velocity of pred - of real|, deg/s (`metrics.pose.velocity_error`).
- speed: mean angular speed |d angles / dt|, deg/s (`angular_speed`); speed_ratio: a row's
  speed over the real pose's (ratio of the means over clips; 1 = moves as fast as the real
  heads, jitter included).
- diversity: std of pitch/yaw/roll over the frames, mean over axes, degrees (SadTalker's
  "Diversity" on HDTF; not in papers 000-004).
- beat_align: AIST++ beat-alignment score of head-motion beats (angular-speed minima) with
  speech onsets, sigma 0.12 s (seen on HDTF, not in papers 000-004). The held-out clips store
  MFCC rows, not waveforms, so the onset envelope is built from MFCC coefficient 0 (the log
  frame energy, 100 rows/s): floored 80 dB (ln 1e8) below the clip's maximum, like
  `pose_peers.onset_envelope`, so digital silence does not swamp speech; its positive first
  difference is the envelope (`audio_kind="envelope"`, 100 Hz), shifted so sample 0 is the
  first predicted frame's time. Onset picking is then `pose_peers.onset_times`.
- retrieval: 1-NN retrieval of motion patterns of windows (`eval.retrieval_window_seconds`,
  stride `eval.retrieval_stride_seconds`) of ALL held-out clips, records without speech
  included (`pattern_retrieval`; `has_pattern` predictors only). When some source (speaker)
  has several held-out clips ("groups"): the queries are the windows of those clips, the
  candidates the windows of every OTHER clip, a hit = the nearest is of the same speaker
  (mode "across clips"). Otherwise (the synthetic corpus: one clip per video) the nearest
  other window of any clip, same video = hit (mode "windows"). `retrieval_info` has the
  chance level: the mean over queries of the fraction of candidates that are a hit.
- classifier: paper 003 Sec. 5.3.2 head-pose classifier score, the classifier's confidence in
  the true clip's class on windows of the predicted pose. The classifier is trained once per
  evaluation on REAL pose windows of the held-out clips' reference parts (the "short video"
  every method is given), labelled by video id: held-out speakers are not in the training
  split, so a speaker classifier trained there could not name them, and the continuation being
  scored is never seen in training. Windows are `CLASSIFIER_SECONDS` (64 frames at 25 fps,
  not the paper's 256); it is not trained (None) when the reference part or the shortest
  predicted part is shorter than a window. The "real pose" row is its accuracy-like score on
  the unseen real continuation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from talkingjax import audio
from talkingjax.data import corpus, records, sampling
from talkingjax.errors import InputError
from talkingjax.metrics import pose as pose_metrics
from talkingjax.metrics import pose_classifier, pose_peers
from talkingjax.predict.head_motion import HeadMotionPredictor
from talkingjax.predict.peers import load_predictor
from talkingjax.train import checkpoint, storage
from talkingjax.train import head_motion as trainer
from talkingjax.video.reconstruct import smooth_pose

REAL, MEAN, RANDOM = "real pose", "mean pose", "random real"
REPLAY, STATIC = "replay reference", "static reference mean"
AUDIO_ONLY = "{}, audio only"  # the audio-only row of a paper-000 predictor named {}
BASELINES = (REAL, REPLAY, STATIC, MEAN, RANDOM)
COLUMNS = (
    "hs",
    "d_l",
    "d_v",
    "d_rot",
    "d_pos",
    "vel_err",
    "speed",
    "speed_ratio",
    "diversity",
    "beat_align",
    "retrieval",
    "classifier",
)
# Markdown headers and a display scale (fractions of the face width are shown in percent).
_HEADERS = {
    "hs": ("HS", 1.0),
    "d_l": ("D-L (%)", 100.0),
    "d_v": ("D-V (%/s)", 100.0),
    "d_rot": ("D-Rot (deg)", 1.0),
    "d_pos": ("D-Pos (%)", 100.0),
    "vel_err": ("vel. err. (deg/s)", 1.0),
    "speed": ("speed (deg/s)", 1.0),
    "speed_ratio": ("speed ratio", 1.0),
    "diversity": ("diversity (deg)", 1.0),
    "beat_align": ("beat align", 1.0),
    "retrieval": ("retrieval", 1.0),
    "classifier": ("classifier", 1.0),
}
CLASSIFIER_SECONDS = 2.56  # 64 frames at 25 fps
CLASSIFIER_STEPS = 400
# Log energy (natural log of power) floor below the clip maximum: 80 dB = ln(1e8).
_ENERGY_FLOOR = float(np.log(1e8))
# A 25 ms MFCC frame is centred 12.5 ms after its start.
_MFCC_FRAME_CENTRE = 0.0125


def onset_envelope_from_mfcc(mfcc: np.ndarray) -> np.ndarray:
    """[R] onset envelope at 100 Hz from MFCC rows: positive first difference of the floored
    log frame energy (coefficient 0); sample r belongs to row r."""
    energy = np.asarray(mfcc, np.float64)[:, 0]
    energy = np.maximum(energy, energy.max() - _ENERGY_FLOOR)
    return np.concatenate([[0.0], np.maximum(np.diff(energy), 0.0)])


def _envelope_from(envelope: np.ndarray, seconds: float) -> np.ndarray:
    """The envelope from audio time `seconds` on (sample 0 at that time)."""
    # Row r of `speech_features` is centred at r / 100 + 12.5 ms in the padded audio, which
    # starts PAD_SECONDS before the real one.
    row = int(round((seconds + audio.PAD_SECONDS - _MFCC_FRAME_CENTRE) * audio.ROWS_PER_SECOND))
    return envelope[max(row, 0) :]


# ------------------------------------------------------------------------------------------
# Baselines and measures


def angular_speed(pose, fps: float) -> float:
    """Mean angular speed of a [T, 6] pose (T >= 2): mean over steps of |d angles / dt|
    (Euler-angle differences times fps, L2 over pitch/yaw/roll), degrees per second."""
    pose = np.asarray(pose, np.float64)
    if pose.ndim != 2 or pose.shape[0] < 2 or pose.shape[1] != records.POSE_DIM:
        raise InputError(f"angular speed needs a [frames >= 2, 6] pose, got shape {pose.shape}")
    if not fps > 0:
        raise InputError(f"fps must be positive, got {fps}")
    step = np.linalg.norm(np.diff(pose[:, :3], axis=0), axis=1)
    return float(np.degrees(step.mean() * fps))


def replay(reference, frames: int) -> np.ndarray:
    """The reference pose replayed over `frames` frames, mirrored at each end (forward,
    backward, forward, ...: a loop without a jump). [R, 6] -> [frames, 6]."""
    reference = np.asarray(reference, np.float64)
    n = reference.shape[0]
    if n < 1 or frames < 1:
        raise InputError(f"replay needs a reference and frames, got {n} and {frames}")
    if n == 1:
        return np.repeat(reference, frames, axis=0)
    period = 2 * (n - 1)
    t = np.arange(frames) % period
    return reference[np.where(t < n, t, period - t)]


def bootstrap_indices(num_items: int, samples: int, seed: int) -> np.ndarray:
    """[samples, num_items] int: each row a resample with replacement of range(num_items),
    drawn from `np.random.default_rng(seed)` (one draw, shared by every row of a table)."""
    if num_items < 1 or samples < 1:
        raise InputError(f"a bootstrap needs items and samples, got {num_items}, {samples}")
    return np.random.default_rng(seed).integers(0, num_items, size=(samples, num_items))


def bootstrap_interval(values, indices: np.ndarray, interval: float = 0.95) -> list[float]:
    """The percentile bootstrap interval [lo, hi] of the mean of `values` [N] over the
    resamples `indices` [S, N] (`bootstrap_indices`): the (1 - interval) / 2 and
    (1 + interval) / 2 quantiles (linear interpolation) of the S resampled means."""
    values = np.asarray(values, np.float64)
    if not 0.0 < interval < 1.0:
        raise InputError(f"interval must be in (0, 1), got {interval}")
    means = values[indices].mean(axis=1)
    lo, hi = np.quantile(means, [(1.0 - interval) / 2, (1.0 + interval) / 2])
    return [float(lo), float(hi)]


def pattern_retrieval(predictor, videos: list[sampling.Video], window: int, stride: int) -> dict:
    """Retrieval of motion patterns of pose windows (module docstring, "retrieval").

    Args:
      predictor: has `encode_patterns(poses, fps)` and `fps`.
      videos: the held-out clips at the predictor's fps (`sampling.prepare_videos(...,
        pose_only=True)`: records without speech included); `video_id` is the label.
      window, stride: window length and stride in frames.

    Returns:
      {"accuracy", "chance", "queries", "mode" ("across clips" or "windows"), "groups"
       (labels with several clips), "window_seconds"}.
    """
    poses, labels, clips = [], [], []
    for i, v in enumerate(videos):
        for s in range(0, v.pose.shape[0] - window + 1, stride):
            poses.append(v.pose[s : s + window])
            labels.append(v.video_id)
            clips.append(i)
    if len(set(labels)) < 2:
        raise InputError("retrieval needs windows of at least two held-out sources")
    labels, clips = np.array(labels), np.array(clips)
    clips_of = {}
    for i, v in enumerate(videos):
        if any(clips == i):
            clips_of.setdefault(v.video_id, set()).add(i)
    groups = sorted(k for k, c in clips_of.items() if len(c) > 1)
    x = np.asarray(predictor.encode_patterns(poses, predictor.fps), np.float64)
    d2 = np.square(x[:, None, :] - x[None, :, :]).sum(axis=-1)
    if groups:
        queries = np.flatnonzero(np.isin(labels, groups))
        allowed = clips[None, :] != clips[queries, None]  # other clips only
        mode = "across clips"
    else:
        queries = np.arange(len(labels))
        allowed = np.ones((len(labels), len(labels)), bool)
        allowed[queries, queries] = False  # never one's own window
        mode = "windows"
    d = np.where(allowed, d2[queries], np.inf)
    same = labels[None, :] == labels[queries, None]
    hits = same[np.arange(len(queries)), np.argmin(d, axis=1)]
    chance = (same & allowed).sum(axis=1) / allowed.sum(axis=1)
    return {
        "accuracy": float(hits.mean()),
        "chance": float(chance.mean()),
        "queries": int(len(queries)),
        "mode": mode,
        "groups": groups,
        "window_seconds": window / predictor.fps,
    }


# ------------------------------------------------------------------------------------------
# The protocol


def held_out_clips(
    test_clips, fps: float, reference_seconds: float, min_target_seconds: float
) -> tuple[list[sampling.Video], list[sampling.Video], list[dict], int]:
    """(all held-out clips pose-only, the scored ones, skipped [{"clip_id", "reason"}],
    reference frames) of the protocol (module docstring)."""
    ref = int(round(reference_seconds * fps))
    min_target = int(round(min_target_seconds * fps))
    if ref < 2 or min_target < 2:
        raise InputError(
            f"reference ({reference_seconds} s) and target ({min_target_seconds} s) need 2 frames"
        )
    everything = sampling.prepare_videos(test_clips, fps, pose_only=True)
    speech = [c for c in test_clips if c.has_audio]
    usable, skipped = [], []
    for c in test_clips:
        if not c.has_audio:
            skipped.append({"clip_id": c.clip_id, "reason": "no speech (retrieval only)"})
    for v in sampling.prepare_videos(speech, fps):
        if v.pose.shape[0] >= ref + min_target:
            usable.append(v)
        else:
            skipped.append(
                {
                    "clip_id": v.clip_id,
                    "reason": f"{v.pose.shape[0] / fps:.2f} s with audio < {reference_seconds:g} "
                    f"s reference + {min_target_seconds:g} s to predict",
                }
            )
    if len(usable) < 2:
        raise InputError(
            f"evaluation needs >= 2 held-out clips with speech of at least "
            f"{reference_seconds + min_target_seconds:g} s; got {len(usable)}"
        )
    return everything, usable, skipped, ref


def _other_pose(usable, i: int, frames: int, rng) -> np.ndarray:
    other = usable[(i + 1 + rng.integers(len(usable) - 1)) % len(usable)].pose
    if other.shape[0] < frames:
        return np.resize(other, (frames, records.POSE_DIM))
    return other[:frames]


def _check_prediction(name: str, pred, frames: int) -> np.ndarray:
    pred = np.asarray(pred, np.float64)
    if pred.shape != (frames, records.POSE_DIM):
        raise InputError(f"{name}: predicted shape {pred.shape}, expected ({frames}, 6)")
    if not np.all(np.isfinite(pred)):
        raise InputError(f"{name}: prediction contains NaN or infinite values")
    return pred


class SmoothedPredictor:
    """A predictor whose predicted pose goes through paper 003's Gaussian filter (Eq. 1,
    `smooth_pose`) per pose column: post-processing at inference, the model is unchanged.

    Holds the wrapped predictor as `.inner` (not `.predictor`: no audio-only row of its own)
    and has no pattern of its own (`has_pattern` False: its retrieval is the inner one's).
    """

    has_pattern = False

    def __init__(self, inner, sigma_frames: float, name: str | None = None):
        if sigma_frames <= 0:
            raise InputError(f"Gaussian sigma must be > 0 frames, got {sigma_frames}")
        self.inner = inner
        self.sigma_frames = float(sigma_frames)
        self.name = name or f"{inner.name}, gaussian sigma {sigma_frames:g}"
        self.fps = inner.fps
        stride = getattr(inner, "stride", None)
        if stride is not None:
            self.stride = stride

    def predict(self, mfcc, reference_pose, frames: int, seed: int = 0) -> np.ndarray:
        """[frames, 6]: the inner prediction filtered along time."""
        pred = np.asarray(self.inner.predict(mfcc, reference_pose, frames, seed=seed))
        return smooth_pose(pred, self.sigma_frames)


def smoothed_predictors(predictors: list, sigmas: Sequence[float]) -> list[SmoothedPredictor]:
    """One `SmoothedPredictor` per (predictor, sigma), predictor-major, named after the
    predictors' unique row names ("<row>, gaussian sigma <s>")."""
    names, _ = _row_names(predictors)
    return [
        SmoothedPredictor(p, s, f"{name}, gaussian sigma {float(s):g}")
        for name, p in zip(names, predictors, strict=True)
        for s in sigmas
    ]


def _rows_per_frame(predictor) -> int:
    stride = getattr(predictor, "stride", None)
    if stride is None:
        stride = audio.ROWS_PER_SECOND / predictor.fps
    if int(stride) != stride:
        raise InputError(f"{predictor.name}: fps {predictor.fps} is not 100 / integer")
    return int(stride)


def _pattern_model(predictor) -> HeadMotionPredictor | None:
    """The `HeadMotionPredictor` behind a paper-000 predictor (its audio-only row), or None."""
    inner = getattr(predictor, "predictor", None)
    return inner if isinstance(inner, HeadMotionPredictor) else None


def _score(pred, true, fps, envelope, classifier, label) -> dict:
    vals = {
        "hs": pose_metrics.head_similarity(true, pred)["overall"],
        "d_l": pose_peers.d_l(pred, true),
        "d_v": pose_peers.d_v(pred, true, fps)["per_second"],
        "d_rot": pose_peers.d_rot(pred, true),
        "d_pos": pose_peers.d_pos(pred, true),
        "vel_err": pose_metrics.velocity_error(pred, true, fps)["angular_deg_per_s"],
        "speed": angular_speed(pred, fps),
        "diversity": pose_peers.pose_diversity(pred),
    }
    try:
        vals["beat_align"] = pose_peers.beat_alignment(
            pred, envelope, fps, sample_rate=audio.ROWS_PER_SECOND, audio_kind="envelope"
        )
    except InputError:  # no speech onsets in this segment: the metric is undefined here
        vals["beat_align"] = None
    vals["classifier"] = None
    if classifier is not None:
        stride = max(1, classifier.window // 2)
        windows = pose_classifier.pose_windows(pred, classifier.window, stride)
        vals["classifier"] = pose_classifier.classifier_score(classifier, windows, label)
    return vals


def _mean(values) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _row_names(predictors) -> tuple[list[str], list[str | None]]:
    """Unique row names of the predictors (two runs of one method), and of their audio-only
    rows (None for a predictor without one)."""
    names, audio_only = [], []
    for p in predictors:
        name, k = p.name, 2
        while name in names or name in BASELINES:
            name, k = f"{p.name} ({k})", k + 1
        names.append(name)
        audio_only.append(AUDIO_ONLY.format(name) if _pattern_model(p) is not None else None)
    return names, audio_only


def _classifier(usable, ref: int, fps: float, seed: int):
    """Paper 003's classifier on the real reference parts (module docstring), or None."""
    window = int(round(CLASSIFIER_SECONDS * fps))
    shortest = min(v.pose.shape[0] for v in usable) - ref
    by_video: dict[str, list] = {}
    for v in usable:
        if ref >= window:
            by_video.setdefault(v.video_id, []).append(
                pose_classifier.pose_windows(v.pose[:ref], window, max(1, window // 8))
            )
    if len(by_video) < 2 or shortest < window:
        return None
    return pose_classifier.train_pose_classifier(
        {k: np.concatenate(w) for k, w in by_video.items()}, seed=seed, steps=CLASSIFIER_STEPS
    )


def evaluate_predictors(predictors: list, train_clips, test_clips, eval_cfg, seed: int = 0):
    """Scores every predictor and the baseline rows on every usable held-out clip.

    Args:
      predictors: objects of the predictor protocol (module docstring), all at one fps.
      train_clips, test_clips: `records.Clip`s (train gives the mean pose only); held-out
        records without speech serve retrieval only.
      eval_cfg: `reference_seconds`, `retrieval_window_seconds`, `retrieval_stride_seconds`;
        optional `min_target_seconds` (default `records.MIN_CLIP_SECONDS`),
        `bootstrap_samples` (1000), `interval` (0.95), `plot_videos` (0).
      seed: the random-real pairing, the classifier, the bootstrap and the predictors'
        sampling.

    Returns:
      {"rows": {row: {column: float or None}}, "columns", "hs_interval": {row: [lo, hi]},
       "hs_difference": {"of": row, "vs": {row: {"mean", "interval"}}} (or None),
       "retrieval_info": {row: `pattern_retrieval` dict}, "num_videos", "clips", "skipped",
       "fps", "reference_seconds", "min_target_seconds", "classifier_window",
       "videos": [{"video_id", "clip_id", "frames", row: {...}}],
       "curves": [{"clip_id", "real", row: [F, 6]}] of the first `plot_videos` clips}
    """
    if not predictors:
        raise InputError("no predictors to evaluate")
    fps = float(predictors[0].fps)
    for p in predictors:
        if float(p.fps) != fps:
            raise InputError(
                f"all methods need one frame rate: {p.name} runs at {p.fps}, not {fps}"
            )
    names, audio_only = _row_names(predictors)
    min_target_seconds = float(eval_cfg.get("min_target_seconds", records.MIN_CLIP_SECONDS))
    everything, usable, skipped, ref = held_out_clips(
        test_clips, fps, eval_cfg.reference_seconds, min_target_seconds
    )
    mean_pose = np.concatenate([c.pose for c in train_clips]).mean(axis=0)
    classifier = _classifier(usable, ref, fps, seed)
    plot = int(eval_cfg.get("plot_videos", 0))

    rng = np.random.default_rng(seed)
    per_video, curves = [], []
    for i, v in enumerate(usable):
        true = v.pose[ref:].astype(np.float64)
        frames = true.shape[0]
        reference = v.pose[:ref].astype(np.float64)
        envelope = _envelope_from(onset_envelope_from_mfcc(v.mfcc), ref / fps)
        preds = {}
        for name, zero_name, p in zip(names, audio_only, predictors, strict=True):
            feats = v.mfcc[ref * _rows_per_frame(p) :]
            out = p.predict(feats, reference, frames, seed=seed)
            preds[name] = _check_prediction(name, out, frames)
            if zero_name is not None:
                model = _pattern_model(p)
                out = model.predict_from_features(feats, np.zeros(model.pattern_dim), frames)
                preds[zero_name] = _check_prediction(zero_name, out, frames)
        preds[REAL] = true
        preds[REPLAY] = replay(reference, frames)
        preds[STATIC] = np.broadcast_to(reference.mean(axis=0), true.shape)
        preds[MEAN] = np.broadcast_to(mean_pose, true.shape)
        preds[RANDOM] = _other_pose(usable, i, frames, rng)
        label = v.video_id if classifier is not None else None
        per_video.append(
            {
                "video_id": v.video_id,
                "clip_id": v.clip_id,
                "frames": frames,
                **{m: _score(p, true, fps, envelope, classifier, label) for m, p in preds.items()},
            }
        )
        if i < plot:
            curves.append({"clip_id": v.clip_id or v.video_id, **preds})

    order = [m for m in per_video[0] if m not in ("video_id", "clip_id", "frames")]
    rows = {}
    for m in order:
        rows[m] = {c: _mean([pv[m].get(c) for pv in per_video]) for c in COLUMNS}
    real_speed = rows[REAL]["speed"]
    for m in order:
        rows[m]["speed_ratio"] = rows[m]["speed"] / real_speed if real_speed > 0 else None

    retrieval = {}
    r_window = int(round(eval_cfg.retrieval_window_seconds * fps))
    r_stride = int(round(eval_cfg.retrieval_stride_seconds * fps))
    for name, p in zip(names, predictors, strict=True):
        if p.has_pattern:
            retrieval[name] = pattern_retrieval(p, everything, r_window, r_stride)
            rows[name]["retrieval"] = retrieval[name]["accuracy"]

    index = bootstrap_indices(len(per_video), int(eval_cfg.get("bootstrap_samples", 1000)), seed)
    level = float(eval_cfg.get("interval", 0.95))
    hs = {m: np.array([pv[m]["hs"] for pv in per_video]) for m in order}
    intervals = {m: bootstrap_interval(hs[m], index, level) for m in order}
    ours = next((n for n, p in zip(names, predictors, strict=True) if p.has_pattern), None)
    difference = None
    if ours is not None:
        difference = {
            "of": ours,
            "vs": {
                m: {
                    "mean": float(np.mean(hs[ours] - hs[m])),
                    "interval": bootstrap_interval(hs[ours] - hs[m], index, level),
                }
                for m in order
                if m not in (ours, REAL)
            },
        }
    return {
        "rows": {m: {c: rows[m][c] for c in COLUMNS} for m in order},
        "columns": list(COLUMNS),
        "hs_interval": intervals,
        "hs_difference": difference,
        "interval": level,
        "bootstrap_samples": int(index.shape[0]),
        "retrieval_info": retrieval,
        "num_videos": len(usable),
        "clips": [v.clip_id or v.video_id for v in usable],
        "skipped": skipped,
        "fps": fps,
        "reference_seconds": float(eval_cfg.reference_seconds),
        "min_target_seconds": min_target_seconds,
        "classifier_window": classifier.window if classifier is not None else None,
        "videos": per_video,
        "curves": curves,
    }


def markdown_table(results: dict) -> str:
    """The rows x columns table of `evaluate_predictors` as markdown ('-' = not defined),
    HS with its bootstrap interval, then retrieval, the paired HS differences and the
    skipped clips."""
    heads = [_HEADERS[c][0] for c in results["columns"]]
    lines = ["| method | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    intervals = results.get("hs_interval", {})
    for m, vals in results["rows"].items():
        cells = []
        for c in results["columns"]:
            v = vals[c]
            cell = "-" if v is None else f"{v * _HEADERS[c][1]:.3f}"
            if c == "hs" and m in intervals:
                lo, hi = intervals[m]
                cell += f" [{lo:.3f}, {hi:.3f}]"
            cells.append(cell)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("")
    window = results.get("classifier_window")
    level = 100 * results.get("interval", 0.95)
    lines.append(
        f"{results['num_videos']} held-out clips; the first {results['reference_seconds']:g} s "
        f"of each are the reference, the rest (at least "
        f"{results.get('min_target_seconds', records.MIN_CLIP_SECONDS):g} s) is predicted at "
        f"{results['fps']:g} fps. HS [{level:g} % percentile bootstrap interval over clips, "
        f"{results.get('bootstrap_samples', 0)} resamples]. "
        + (
            f"Classifier windows: {window} frames."
            if window
            else "Classifier: not trained (too few clips or frames)."
        )
    )
    for name, info in results.get("retrieval_info", {}).items():
        lines.append(
            f"Retrieval ({name}, {info['mode']}, {info['window_seconds']:g} s windows): "
            f"{100 * info['accuracy']:.1f} % of {info['queries']} queries, chance "
            f"{100 * info['chance']:.1f} %"
            + (f"; groups: {', '.join(info['groups'])}." if info["groups"] else ".")
        )
    diff = results.get("hs_difference")
    if diff:
        parts = [
            f"{m} {d['mean']:+.3f} [{d['interval'][0]:+.3f}, {d['interval'][1]:+.3f}]"
            for m, d in diff["vs"].items()
        ]
        lines.append(f"HS of {diff['of']} minus (paired bootstrap): " + "; ".join(parts) + ".")
    if results.get("skipped"):
        lines.append(
            "Skipped: " + "; ".join(f"{s['clip_id']} ({s['reason']})" for s in results["skipped"])
        )
    return "\n".join(lines) + "\n"


def _data_identity(config) -> dict:
    """What decides the clips a workdir trained on (not how it windowed them)."""
    data = config.data
    if data.root:
        identity = {"data.root": os.path.abspath(data.root)}
        if data.get("split_file", ""):
            identity["data.split_file"] = os.path.abspath(data.split_file)
        return identity
    # Without data.root each workdir generated its synthetic corpus from these.
    keys = ("synthetic_videos", "synthetic_test_videos", "synthetic_seconds")
    return {**{f"data.{k}": data.get(k) for k in keys}, "seed": config.get("seed", 0)}


def _check_same_data(workdirs, configs) -> None:
    first = _data_identity(configs[0])
    for workdir, config in zip(workdirs[1:], configs[1:], strict=True):
        data = _data_identity(config)
        diff = sorted(k for k in set(first) | set(data) if first.get(k) != data.get(k))
        if diff:
            raise InputError(
                f"{workdir} was trained on different data than {workdirs[0]}: {', '.join(diff)}"
            )


def _not_in_records(config, part: str, loaded) -> list[dict]:
    """The clips of a split part that are not among the loaded records, with the reason."""
    listed = corpus.read_split_part(config.data.split_file, part)
    have = {c.clip_id for c in loaded}
    reasons = {}
    manifest = os.path.join(config.data.root, "manifest.json")
    if os.path.isfile(manifest):
        with open(manifest) as f:
            m = json.load(f)
        for e in m.get("short_clips", []):
            reasons[e["clip_id"]] = f"speech shorter than {records.MIN_CLIP_SECONDS:g} s"
        for e in m.get("silent_clips", []):
            reasons[e["clip_id"]] = (
                "no speech" + ("" if config.data.get("silent", False) else " (data.silent off)")
                if e["num_frames"] / e["fps"] >= records.MIN_CLIP_SECONDS
                else f"no speech, shorter than {records.MIN_CLIP_SECONDS:g} s"
            )
    return [
        {"clip_id": c["clip_id"], "reason": reasons.get(c["clip_id"], "not among the records")}
        for c in listed
        if c["clip_id"] not in have
    ]


def evaluate_workdirs(
    workdirs: list[str],
    out_dir: str | None = None,
    step: int | None = None,
    part: str | None = None,
    smooth_sigmas: Sequence[float] = (),
) -> dict:
    """Evaluates the predictors of several workdirs on the first one's held-out data.

    Args:
      workdirs: training workdirs (paper 000 and/or peers) trained on the same data.
      out_dir: where `pose_table.md` and `pose_table.json` go (default `<workdirs[0]>/eval`).
      step: checkpoint step (default: the latest).
      part: the held-out part of a split file ("val", "test"; default the first config's
        `data.eval_part`); refused for data without a split file.
      smooth_sigmas: Gaussian sigmas (frames): each adds a `SmoothedPredictor` row per
        workdir after the workdirs' own rows ("<row>, gaussian sigma <s>").

    Returns the `evaluate_predictors` results plus "workdirs" and "part" (all but "curves"
    written to pose_table.json).
    """
    workdirs = list(workdirs)
    if not workdirs:
        raise InputError("no workdirs to evaluate")
    configs = [checkpoint.load_workdir_config(w) for w in workdirs]
    _check_same_data(workdirs, configs)
    config = configs[0]
    split_file = config.data.get("split_file", "")
    if part is not None:
        if part not in corpus.PARTS:
            raise InputError(f"unknown held-out part {part!r}; expected one of {corpus.PARTS}")
        if not split_file:
            raise InputError(f"--part={part} needs data with a split file (data.split_file)")
        config.data.eval_part = part
    part = (config.data.get("eval_part", "val") if split_file else "test") if part is None else part
    train_clips, test_clips = trainer.load_data(config, workdirs[0])
    if not test_clips:
        raise InputError(f"the dataset has no clips in the held-out part {part!r}")
    predictors = [load_predictor(w, step) for w in workdirs]
    predictors += smoothed_predictors(predictors, smooth_sigmas)
    results = evaluate_predictors(
        predictors, train_clips, test_clips, config.eval, seed=config.get("seed", 0)
    )
    if split_file:
        results["skipped"] += _not_in_records(config, part, test_clips)
    results["part"] = part
    results["workdirs"] = [str(storage.path(w)) for w in workdirs]
    out_dir = out_dir or os.path.join(workdirs[0], "eval")
    curves = results.pop("curves")
    if storage.is_writer():  # every process computed the same table; process 0 writes it
        storage.write_json(os.path.join(out_dir, "pose_table.json"), results)
        storage.write_text(os.path.join(out_dir, "pose_table.md"), markdown_table(results))
    results["curves"] = curves
    return results
