"""Evaluation of the audio-to-expression regressor, with baselines computed the same way.

Metrics per method, over all evaluated frames:
- `mse`: mean squared error of the expression coefficients;
- `lmd_px`: mouth landmark distance (the 20 mouth points of the 68, dlib 48-67) between the
  face model applied to predicted and true coefficients (mean identity, frontal, the reference
  224 px camera), in pixels;
- `open_energy_corr`: Pearson correlation of the predicted vertical inner-lip gap (points 62-66)
  with the speech log energy at each frame (the true coefficients' value is reported as
  `truth_open_energy_corr`, what a perfect model would reach).
Methods: `ours`; `mean_expression` (the training set's mean coefficients at every frame);
`shuffled_audio` (our model fed the same audio windows in a random frame order: what it
predicts when the timing of speech carries no information).

Held-out data: the test split of the general dataset, and, when the workdir fine-tuned on a
target clip, that clip's frames after the fine-tuning frames (the real-video protocol: tune on
the first 12 s, evaluate on the rest).
"""

from __future__ import annotations

import json
import os

import numpy as np

from talkingjax.data import sampling
from talkingjax.face3d import default
from talkingjax.face3d import model as model_lib
from talkingjax.metrics.mouth import mouth_opening, mouth_points
from talkingjax.predict.expression import ExpressionPredictor
from talkingjax.train import checkpoint
from talkingjax.train import expression as trainer


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if np.std(a) < 1e-12 or np.std(b) < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def evaluate_clips(
    predictor: ExpressionPredictor,
    clips: list[sampling.ExpressionClip],
    train_mean: np.ndarray,
    face_model: model_lib.MorphableModel,
    seed: int = 0,
) -> dict:
    """Metrics of ours and the baselines over `clips` (frames pooled)."""
    rng = np.random.default_rng(seed)
    preds = {"ours": [], "mean_expression": [], "shuffled_audio": []}
    truth, energy = [], []
    for c in clips:
        preds["ours"].append(predictor.predict_windows(c.windows)["exp"])
        preds["mean_expression"].append(np.broadcast_to(train_mean, c.exp.shape))
        order = rng.permutation(c.windows.shape[0])
        preds["shuffled_audio"].append(predictor.predict_windows(c.windows[order])["exp"])
        truth.append(c.exp)
        energy.append(c.energy)
    truth = np.concatenate(truth)
    energy = np.concatenate(energy)
    true_mouth = mouth_points(face_model, truth)
    out = {"frames": int(truth.shape[0])}
    for name, p in preds.items():
        p = np.concatenate(p)
        out[name] = {
            "mse": float(np.mean((p - truth) ** 2)),
            "lmd_px": float(
                np.mean(np.linalg.norm(mouth_points(face_model, p) - true_mouth, axis=-1))
            ),
            "open_energy_corr": _corr(mouth_opening(face_model, p), energy),
        }
    out["truth_open_energy_corr"] = _corr(mouth_opening(face_model, truth), energy)
    return out


def evaluate_workdir(workdir: str) -> dict:
    """Evaluates a trained workdir; writes `<workdir>/eval/metrics.json` and `metrics.md`."""
    config = checkpoint.load_workdir_config(workdir)
    predictor = ExpressionPredictor.from_workdir(workdir)
    fps, num_exp = config.model.fps, config.model.num_exp
    face_model = default.load_default()
    train_clips, test_clips = trainer.load_data(config, trainer.corpus_workdir(config, workdir))
    train_mean = np.concatenate([c.exp for c in train_clips]).mean(axis=0)
    results = {}
    if test_clips:
        prepared = sampling.prepare_expression_clips(test_clips, fps, num_exp)
        results["test_split"] = evaluate_clips(predictor, prepared, train_mean, face_model)
    target = trainer.target_clip(config)
    if target is not None:
        whole = sampling.prepare_expression_clips([target], fps, num_exp)[0]
        n = config.finetune.frames
        # heldout_frames > 0 evaluates only the frames right after the tuning ones: a
        # validation slice inside a longer clip, for choosing fine-tune settings.
        held_frames = config.finetune.get("heldout_frames", 0)
        end = n + held_frames if held_frames > 0 else None
        held = sampling.ExpressionClip(
            whole.clip_id + "_heldout", whole.windows[n:end], whole.exp[n:end],
            whole.pose[n:end], whole.energy[n:end],
        )  # fmt: skip
        tune_mean = whole.exp[:n].mean(axis=0)
        results["target_heldout"] = evaluate_clips(predictor, [held], tune_mean, face_model)
    out_dir = os.path.join(workdir, "eval")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "metrics.json.tmp"), "w") as f:
        json.dump(results, f, indent=1)
    os.replace(os.path.join(out_dir, "metrics.json.tmp"), os.path.join(out_dir, "metrics.json"))
    with open(os.path.join(out_dir, "metrics.md.tmp"), "w") as f:
        f.write(markdown_table(results))
    os.replace(os.path.join(out_dir, "metrics.md.tmp"), os.path.join(out_dir, "metrics.md"))
    return results


def markdown_table(results: dict) -> str:
    """One table per evaluated set: methods x metrics."""
    lines = []
    for name, r in results.items():
        lines += [
            f"### {name} ({r['frames']} frames; truth opening/energy corr "
            f"{r['truth_open_energy_corr']:.3f})",
            "",
            "| method | coefficient MSE | mouth LMD (px) | opening/energy corr |",
            "|---|---|---|---|",
        ]
        for m in ("ours", "mean_expression", "shuffled_audio"):
            v = r[m]
            lines.append(
                f"| {m} | {v['mse']:.4f} | {v['lmd_px']:.3f} | {v['open_energy_corr']:.3f} |"
            )
        lines.append("")
    return "\n".join(lines)
