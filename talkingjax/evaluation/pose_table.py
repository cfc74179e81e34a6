"""One head-pose table for paper 000 and its peers: same held-out data, same metrics.

    python -m experiments.eval_pose --workdir=A --workdir=B ... --out=DIR

Protocol (that of `talkingjax.evaluation.head_motion`): for each held-out video the first
`eval.reference_seconds` of its pose are the target's "short video" (`reference_pose`); every
method predicts the rest of the video from its audio (MFCC rows from the window start of the
first predicted frame on) and is compared with the real pose there, frame by frame.

Predictor protocol (`talkingjax.predict.peers`: `Yi2022Predictor` for paper 000,
`PeerPredictor` for the peers, `load_predictor` for any pose workdir): attributes `name`, `fps`,
`has_pattern`, and `predict(mfcc, reference_pose, frames, seed=0) -> [frames, 6]`; with
`has_pattern` also `encode_patterns(poses, fps) -> [N, k]` for retrieval.

Rows: one per predictor; "real pose" (the held-out pose scored against itself: distances 0,
HS 1, and the real value of the reference-free metrics); "mean pose" (the training set's mean
pose held still); "random real" (the real pose of another held-out video). Each value is the
mean over held-out videos.

Metrics (columns; `talkingjax.metrics.pose` / `pose_peers` / `pose_classifier`):
- hs: head-pose similarity HS, 1 - normalised W1 of angle histograms, mean of 3 axes (paper 000
  Eq. 11); 1 = same angle distribution.
- d_l: D-L, mean distance of face landmarks posed by pred vs real pose / face width (paper 004
  Sec. 5.2, from MakeItTalk); fraction (0.036 = 3.6 %).
- d_v: D-V, the same for landmark velocities, per second (face widths / s) so frame rates
  compare (paper 004 Sec. 5.2; its per-frame value = d_v / fps).
- d_rot: D-Rot, mean geodesic angle between pred and real head rotation, degrees (paper 004).
- d_pos: D-Pos, mean translation distance / face width (paper 004).
- diversity: std of pitch/yaw/roll over the frames, mean over axes, degrees (SadTalker's
  "Diversity" on HDTF; not in papers 000-004).
- beat_align: AIST++ beat-alignment score of head-motion beats (angular-speed minima) with
  speech onsets, sigma 0.12 s (seen on HDTF, not in papers 000-004). The held-out clips store
  MFCC rows, not waveforms, so the onset envelope is built from MFCC coefficient 0 (the log
  frame energy, 100 rows/s): floored 80 dB (ln 1e8) below the clip's maximum, like
  `pose_peers.onset_envelope`, so digital silence does not swamp speech; its positive first
  difference is the envelope (`audio_kind="envelope"`, 100 Hz), shifted so sample 0 is the
  first predicted frame's time. Onset picking is then `pose_peers.onset_times`.
- retrieval: leave-one-out 1-NN accuracy of motion patterns of sliding windows of all held-out
  videos, same video = hit (paper 000 Sec. IV; `has_pattern` predictors only, else None).
- classifier: paper 003 Sec. 5.3.2 head-pose classifier score, the classifier's confidence in
  the true video's class on windows of the predicted pose. The classifier is trained once per
  evaluation on REAL pose windows of the held-out videos' reference parts (the "short video"
  every method is given), labelled by video id: held-out speakers are not in the training
  split, so a speaker classifier trained there could not name them, and the continuation being
  scored is never seen in training. Windows are `CLASSIFIER_SECONDS` (64 frames at 25 fps,
  not the paper's 256, so several fit in a reference part and in every >= 4 s prediction);
  the "real pose" row is its accuracy-like score on the unseen real continuation.
"""

from __future__ import annotations

import json
import os

import numpy as np

from talkingjax import audio
from talkingjax.data import records
from talkingjax.errors import InputError
from talkingjax.evaluation import head_motion as head_motion_eval
from talkingjax.metrics import pose as pose_metrics
from talkingjax.metrics import pose_classifier, pose_peers
from talkingjax.predict.peers import load_predictor
from talkingjax.train import checkpoint
from talkingjax.train import head_motion as trainer

REAL, MEAN, RANDOM = "real pose", "mean pose", "random real"
COLUMNS = (
    "hs",
    "d_l",
    "d_v",
    "d_rot",
    "d_pos",
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


def _rows_per_frame(predictor) -> int:
    stride = getattr(predictor, "stride", None)
    if stride is None:
        stride = audio.ROWS_PER_SECOND / predictor.fps
    if int(stride) != stride:
        raise InputError(f"{predictor.name}: fps {predictor.fps} is not 100 / integer")
    return int(stride)


def _score(pred, true, fps, envelope, classifier, label) -> dict:
    vals = {
        "hs": pose_metrics.head_similarity(true, pred)["overall"],
        "d_l": pose_peers.d_l(pred, true),
        "d_v": pose_peers.d_v(pred, true, fps)["per_second"],
        "d_rot": pose_peers.d_rot(pred, true),
        "d_pos": pose_peers.d_pos(pred, true),
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


def evaluate_predictors(predictors: list, train_clips, test_clips, eval_cfg, seed: int = 0):
    """Scores every predictor and the reference rows on every usable held-out video.

    Args:
      predictors: objects of the predictor protocol (module docstring), all at one fps.
      train_clips, test_clips: `records.Clip`s (train gives the mean pose only).
      eval_cfg: `reference_seconds`, `retrieval_window_seconds`, `retrieval_stride_seconds`.
      seed: the random-real pairing, the classifier and the predictors' sampling.

    Returns:
      {"rows": {row: {column: float or None}}, "columns", "num_videos", "fps",
       "reference_seconds", "classifier_window", "videos": [{"video_id", "frames", row: {...}}]}
    """

    if not predictors:
        raise InputError("no predictors to evaluate")
    fps = float(predictors[0].fps)
    for p in predictors:
        if float(p.fps) != fps:
            raise InputError(
                f"all methods need one frame rate: {p.name} runs at {p.fps}, not {fps}"
            )
    names = []
    for p in predictors:  # unique row names (two runs of one method)
        name, k = p.name, 2
        while name in names or name in (REAL, MEAN, RANDOM):
            name, k = f"{p.name} ({k})", k + 1
        names.append(name)

    videos, usable, ref = head_motion_eval.held_out_videos(
        test_clips, fps, eval_cfg.reference_seconds
    )
    min_target = int(round(records.MIN_CLIP_SECONDS * fps))
    mean_pose = np.concatenate([c.pose for c in train_clips]).mean(axis=0)

    # Classifier on the real reference parts, labelled by video (see the module docstring).
    window = int(round(CLASSIFIER_SECONDS * fps))
    by_video: dict[str, list] = {}
    for v in usable:
        if ref >= window:
            by_video.setdefault(v.video_id, []).append(
                pose_classifier.pose_windows(v.pose[:ref], window, max(1, window // 8))
            )
    classifier = None
    if len(by_video) >= 2 and min_target >= window:
        classifier = pose_classifier.train_pose_classifier(
            {k: np.concatenate(w) for k, w in by_video.items()}, seed=seed, steps=CLASSIFIER_STEPS
        )

    rng = np.random.default_rng(seed)
    per_video = []
    for i, v in enumerate(usable):
        true = v.pose[ref:].astype(np.float64)
        frames = true.shape[0]
        envelope = _envelope_from(onset_envelope_from_mfcc(v.mfcc), ref / fps)
        preds = {}
        for name, p in zip(names, predictors, strict=True):
            feats = v.mfcc[ref * _rows_per_frame(p) :]
            out = p.predict(feats, v.pose[:ref], frames, seed=seed)
            preds[name] = _check_prediction(name, out, frames)
        preds[REAL] = true
        preds[MEAN] = np.broadcast_to(mean_pose, true.shape)
        preds[RANDOM] = _other_pose(usable, i, frames, rng)
        label = v.video_id if classifier is not None else None
        per_video.append(
            {
                "video_id": v.video_id,
                "frames": frames,
                **{m: _score(p, true, fps, envelope, classifier, label) for m, p in preds.items()},
            }
        )

    rows = {}
    for m in [*names, REAL, MEAN, RANDOM]:
        rows[m] = {c: _mean([pv[m][c] for pv in per_video]) for c in COLUMNS if c != "retrieval"}
        rows[m]["retrieval"] = None
    r_window = int(round(eval_cfg.retrieval_window_seconds * fps))
    r_stride = int(round(eval_cfg.retrieval_stride_seconds * fps))
    for name, p in zip(names, predictors, strict=True):
        if p.has_pattern:
            rows[name]["retrieval"] = head_motion_eval.pattern_retrieval(
                p, videos, r_window, r_stride
            )
    return {
        "rows": {m: {c: rows[m][c] for c in COLUMNS} for m in rows},
        "columns": list(COLUMNS),
        "num_videos": len(usable),
        "fps": fps,
        "reference_seconds": float(eval_cfg.reference_seconds),
        "classifier_window": window if classifier is not None else None,
        "videos": per_video,
    }


def markdown_table(results: dict) -> str:
    """The rows x columns table of `evaluate_predictors` as markdown ('-' = not defined)."""
    heads = [_HEADERS[c][0] for c in results["columns"]]
    lines = ["| method | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for m, vals in results["rows"].items():
        cells = []
        for c in results["columns"]:
            v = vals[c]
            cells.append("-" if v is None else f"{v * _HEADERS[c][1]:.3f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("")
    window = results.get("classifier_window")
    lines.append(
        f"{results['num_videos']} held-out videos; the first {results['reference_seconds']:g} s "
        f"of each are the reference, the rest is predicted at {results['fps']:g} fps. "
        + (
            f"Classifier windows: {window} frames."
            if window
            else "Classifier: not trained (too few videos or frames)."
        )
    )
    return "\n".join(lines) + "\n"


def _write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _data_identity(config) -> dict:
    """What decides the clips a workdir trained on (not how it windowed them)."""
    data = config.data
    if data.root:
        return {"data.root": os.path.abspath(data.root)}
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


def evaluate_workdirs(workdirs: list[str], out_dir: str | None = None, step: int | None = None):
    """Evaluates the predictors of several workdirs on the first one's held-out data.

    Writes `<out_dir>/pose_table.md` and `pose_table.json` (default out_dir:
    `<workdirs[0]>/eval`). Returns the `evaluate_predictors` results plus "workdirs".
    """
    workdirs = list(workdirs)
    if not workdirs:
        raise InputError("no workdirs to evaluate")
    configs = [checkpoint.load_workdir_config(w) for w in workdirs]
    _check_same_data(workdirs, configs)
    train_clips, test_clips = trainer.load_data(configs[0], workdirs[0])
    if not test_clips:
        raise InputError("the dataset has no clips with split 'test' to evaluate on")
    predictors = [load_predictor(w, step) for w in workdirs]
    results = evaluate_predictors(
        predictors, train_clips, test_clips, configs[0].eval, seed=configs[0].get("seed", 0)
    )
    results["workdirs"] = [os.path.abspath(w) for w in workdirs]
    out_dir = out_dir or os.path.join(workdirs[0], "eval")
    os.makedirs(out_dir, exist_ok=True)
    _write_atomic(os.path.join(out_dir, "pose_table.json"), json.dumps(results, indent=1))
    _write_atomic(os.path.join(out_dir, "pose_table.md"), markdown_table(results))
    return results
