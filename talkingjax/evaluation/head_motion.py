"""Held-out evaluation of the head motion model, with baselines computed by the same code.

Protocol (the paper's use case): for each held-out video, the first `reference_seconds` of
its pose are the target's "short video"; their pattern x drives the prediction of the pose
for the *rest* of the video from its audio, which is compared with the real pose there.

Methods, all scored by `talkingjax.metrics.pose` on the same frames:
- `ours`: D_m(audio, E_m(reference clip)).
- `audio_only`: D_m(audio, 0), the decoder with the pattern zeroed.
- `mean_pose`: the training set's mean pose held still.
- `random_real`: the real pose of another held-out video (a real head, wrong person/speech).
Pattern retrieval: sliding windows of all held-out videos are encoded; a window counts as
retrieved when its nearest other window belongs to the same video (for synthetic data also
the same motion style, one style per video).
"""

from __future__ import annotations

import json
import os

import numpy as np

from talkingjax.data import records, sampling
from talkingjax.errors import InputError
from talkingjax.metrics import pose as pose_metrics
from talkingjax.predict.head_motion import HeadMotionPredictor
from talkingjax.train import checkpoint
from talkingjax.train import head_motion as trainer

METHODS = ("ours", "audio_only", "mean_pose", "random_real")


def _score(pred: np.ndarray, true: np.ndarray, fps: float) -> dict[str, float]:
    hs = pose_metrics.head_similarity(true, pred)
    vel = pose_metrics.velocity_error(pred, true, fps)
    return {
        "hs": hs["overall"],
        "hs_pitch": hs["pitch"],
        "hs_yaw": hs["yaw"],
        "hs_roll": hs["roll"],
        "rot_err_deg": pose_metrics.rotation_error_deg(pred, true),
        "trans_err": pose_metrics.translation_error(pred, true),
        "vel_err_deg_s": vel["angular_deg_per_s"],
    }


def pattern_retrieval(predictor, videos, window: int, stride: int) -> float:
    poses, labels = [], []
    for v in videos:
        for s in range(0, v.pose.shape[0] - window + 1, stride):
            poses.append(v.pose[s : s + window])
            labels.append(v.video_id)
    if len(set(labels)) < 2:
        raise InputError("retrieval needs windows of at least two held-out videos")
    patterns = predictor.encode_patterns(poses, predictor.fps)
    return pose_metrics.retrieval_accuracy(patterns, np.array(labels))


def held_out_videos(test_clips, fps: float, reference_seconds: float):
    """(all videos, the usable ones, reference frames) of the protocol above.

    A usable video has a reference part plus at least `records.MIN_CLIP_SECONDS` to predict.
    """
    videos = sampling.prepare_videos(test_clips, fps)
    ref = int(round(reference_seconds * fps))
    min_target = int(round(records.MIN_CLIP_SECONDS * fps))
    usable = [v for v in videos if v.pose.shape[0] >= ref + min_target]
    if len(usable) < 2:
        raise InputError(
            f"evaluation needs >= 2 held-out videos longer than "
            f"{reference_seconds + records.MIN_CLIP_SECONDS:.0f} s"
        )
    return videos, usable, ref


def evaluate(
    predictor: HeadMotionPredictor, train_clips, test_clips, eval_cfg, seed: int = 0
) -> dict:
    """Scores every method on every held-out video.

    Returns:
      {"methods": {method: {metric: mean over videos}}, "retrieval_accuracy": float,
       "videos": [{"video_id", "frames", method: {metric: value}}...],
       "curves": [{"video_id", "real", method: [F, 6]}...] for plotting}
    """
    fps = predictor.fps
    videos, usable, ref = held_out_videos(test_clips, fps, eval_cfg.reference_seconds)
    mean_pose = np.concatenate([c.pose for c in train_clips]).mean(axis=0)
    rng = np.random.default_rng(seed)
    per_video, curves = [], []
    for i, v in enumerate(usable):
        true = v.pose[ref:]
        frames = true.shape[0]
        x = predictor.encode_pattern(v.pose[:ref], fps)
        # Rows from the window start of frame `ref` on: predict_from_features expects the
        # slice to start where frame 0's window would.
        feats = v.mfcc[ref * predictor.stride :]
        both = predictor.predict_from_features(feats, np.stack([x, np.zeros_like(x)]), frames)
        other = usable[(i + 1 + rng.integers(len(usable) - 1)) % len(usable)].pose
        other = (
            np.resize(other, (frames, records.POSE_DIM))
            if other.shape[0] < frames
            else other[:frames]
        )
        preds = {
            "ours": both[0],
            "audio_only": both[1],
            "mean_pose": np.broadcast_to(mean_pose, true.shape),
            "random_real": other,
        }
        per_video.append(
            {
                "video_id": v.video_id,
                "frames": frames,
                **{m: _score(p, true, fps) for m, p in preds.items()},
            }
        )
        if i < eval_cfg.plot_videos:
            curves.append(
                {
                    "video_id": v.video_id,
                    "real": true,
                    "ours": preds["ours"],
                    "audio_only": preds["audio_only"],
                }
            )
    methods = {
        m: {k: float(np.mean([pv[m][k] for pv in per_video])) for k in per_video[0][m]}
        for m in METHODS
    }
    window = int(round(eval_cfg.retrieval_window_seconds * fps))
    stride = int(round(eval_cfg.retrieval_stride_seconds * fps))
    return {
        "methods": methods,
        "retrieval_accuracy": pattern_retrieval(predictor, videos, window, stride),
        "num_videos": len(usable),
        "reference_seconds": eval_cfg.reference_seconds,
        "videos": per_video,
        "curves": curves,
    }


def markdown_table(results: dict) -> str:
    """The methods x metrics table of `evaluate` as markdown."""
    cols = ["hs", "hs_pitch", "hs_yaw", "hs_roll", "rot_err_deg", "trans_err", "vel_err_deg_s"]
    lines = ["| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for m, vals in results["methods"].items():
        lines.append(f"| {m} | " + " | ".join(f"{vals[c]:.3f}" for c in cols) + " |")
    lines.append("")
    lines.append(
        f"Pattern retrieval accuracy (nearest window from the same video/style): "
        f"{100 * results['retrieval_accuracy']:.1f} % over {results['num_videos']} "
        "held-out videos."
    )
    return "\n".join(lines) + "\n"


def plot_curves(curves: list[dict], fps: float, path: str) -> None:
    """PNG of real vs predicted pitch/yaw/roll (degrees) for a few held-out videos."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(curves), 3, figsize=(13, 2.6 * len(curves)), squeeze=False)
    styles = {
        "real": ("k", "real"),
        "ours": ("tab:blue", "ours (pattern of reference clip)"),
        "audio_only": ("tab:orange", "audio only (pattern zeroed)"),
    }
    for r, c in enumerate(curves):
        t = np.arange(c["real"].shape[0]) / fps
        for a, name in enumerate(pose_metrics.AXES):
            ax = axes[r, a]
            for key, (color, label) in styles.items():
                ax.plot(t, np.degrees(c[key][:, a]), color=color, lw=1, label=label)
            ax.set_title(f"{c['video_id']} {name}", fontsize=9)
            ax.set_xlabel("s", fontsize=8)
            ax.set_ylabel("deg", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_results(results: dict, out_dir: str, fps: float) -> None:
    """Writes metrics.json, metrics.md and pose_curves.png into `out_dir` (atomically each)."""
    os.makedirs(out_dir, exist_ok=True)
    summary = {k: v for k, v in results.items() if k != "curves"}
    for name, text in (
        ("metrics.json", json.dumps(summary, indent=1)),
        ("metrics.md", markdown_table(results)),
    ):
        tmp = os.path.join(out_dir, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(out_dir, name))
    if results["curves"]:
        tmp = os.path.join(out_dir, "pose_curves.tmp.png")
        plot_curves(results["curves"], fps, tmp)
        os.replace(tmp, os.path.join(out_dir, "pose_curves.png"))


def evaluate_workdir(workdir: str, step: int | None = None) -> dict:
    """Evaluates a `train_pose` workdir on its test split; writes `<workdir>/eval/`."""
    config = checkpoint.load_workdir_config(workdir)
    predictor = HeadMotionPredictor.from_workdir(workdir, step)
    train_clips, test_clips = trainer.load_data(config, workdir)
    if not test_clips:
        raise InputError("the dataset has no clips with split 'test' to evaluate on")
    results = evaluate(predictor, train_clips, test_clips, config.eval, seed=config.seed)
    write_results(results, os.path.join(workdir, "eval"), predictor.fps)
    return results
