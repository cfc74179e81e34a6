"""Evaluation of the audio-to-expression regressor, with baselines computed the same way.

Metrics per method, pooled over all evaluated frames and per clip:
- `mse`: mean squared error of the expression coefficients;
- `lmd_px`: mouth landmark distance (the 20 mouth points of the 68, dlib 48-67) between the
  face model applied to predicted and true coefficients (mean identity, frontal, the reference
  224 px camera), in pixels;
- `open_energy_corr`: Pearson correlation of the predicted vertical inner-lip gap (points 62-66)
  with the speech log energy at each frame (the true coefficients' value is reported as
  `truth_open_energy_corr`: the real faces' own r, what a perfect model would reach). Pooled
  over frames, and `clip_mean_open_energy_corr`, the mean of the per-clip r (the pooled r also
  counts loudness and opening differences between clips).
Methods: `ours`; `mean_expression` (the training set's mean coefficients at every frame);
`shuffled_audio` (our model fed the same audio windows in a random frame order: what it
predicts when the timing of speech carries no information).

Bootstrap over clips (held-out sets of several clips): clips are drawn with replacement
(`bootstrap` resamples, seed 0) and the frame-pooled LMD recomputed; `lmd_px_ci` is each
row's 95 % percentile interval, `lmd_diff_ci` that of the paired differences ours - baseline
(the same draw for both rows): "ours beats the baseline" when its upper end is below 0.

Held-out data: with a committed speaker split (`data.split_file`) the clips of the held-out
part (`data.eval_part`, or the `part` argument: "val" to choose settings, "test" once), each
whole clip predicted by the general model; without one, the records' own test split. When the
workdir fine-tuned on a target clip, also that clip's frames after the fine-tuning frames (the
real-video protocol: tune on the first 300 video frames, evaluate on the rest; counted in the
video's own frames, `train.expression.tune_frames` / `heldout_start`).

    python -m experiments.eval_expression --workdir=DIR [--part=test]
"""

from __future__ import annotations

import os

import numpy as np

from talkingjax.data import records, sampling
from talkingjax.errors import InputError
from talkingjax.face3d import default
from talkingjax.face3d import model as model_lib
from talkingjax.metrics.mouth import mouth_opening, mouth_points
from talkingjax.predict.expression import ExpressionPredictor
from talkingjax.train import checkpoint, storage
from talkingjax.train import expression as trainer

METHODS = ("ours", "mean_expression", "shuffled_audio")
BASELINES = ("mean_expression", "shuffled_audio")


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape[0] < 2 or np.std(a) < 1e-12 or np.std(b) < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def bootstrap_pooled(
    sums: np.ndarray, counts: np.ndarray, resamples: int = 2000, seed: int = 0
) -> np.ndarray:
    """Frame-pooled means of clips drawn with replacement.

    Args:
      sums: [M, C] per-clip sums of a per-frame measure for M rows (methods).
      counts: [C] frames per clip.
      resamples: number of draws B.

    Returns:
      [B, M] the pooled mean sum(sums[:, draw]) / sum(counts[draw]) of each draw; every row
      uses the same draws (paired).
    """
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, counts.shape[0], size=(resamples, counts.shape[0]))
    return sums[:, draws].sum(-1).T / counts[draws].sum(-1)[:, None]


def _interval(x: np.ndarray) -> list[float]:
    lo, hi = np.percentile(x, [2.5, 97.5])
    return [float(lo), float(hi)]


def evaluate_clips(
    predictor: ExpressionPredictor,
    clips: list[sampling.ExpressionClip],
    train_mean: np.ndarray,
    face_model: model_lib.MorphableModel,
    seed: int = 0,
    bootstrap: int = 2000,
) -> dict:
    """Metrics of ours and the baselines over `clips`: pooled over frames, per clip, and
    (with at least two clips and `bootstrap` > 0) bootstrap intervals of the LMD."""
    if not clips:
        raise InputError("no clip to evaluate")
    rng = np.random.default_rng(seed)
    per_clip, lmd_sums = [], {m: [] for m in METHODS}
    pooled = {m: {"pred": [], "dist": []} for m in METHODS}
    truth_all, energy_all = [], []
    for c in clips:
        preds = {
            "ours": predictor.predict_windows(c.windows)["exp"],
            "mean_expression": np.broadcast_to(train_mean, c.exp.shape),
        }
        order = rng.permutation(c.windows.shape[0])
        preds["shuffled_audio"] = predictor.predict_windows(c.windows[order])["exp"]
        true_mouth = mouth_points(face_model, c.exp)
        entry = {
            "clip_id": c.clip_id,
            "frames": int(c.exp.shape[0]),
            "truth_open_energy_corr": _corr(mouth_opening(face_model, c.exp), c.energy),
        }
        for m, p in preds.items():
            dist = np.mean(np.linalg.norm(mouth_points(face_model, p) - true_mouth, axis=-1), 1)
            pooled[m]["pred"].append(p)
            pooled[m]["dist"].append(dist)
            lmd_sums[m].append(float(dist.sum()))
            entry[m] = {
                "mse": float(np.mean((p - c.exp) ** 2)),
                "lmd_px": float(dist.mean()),
                "open_energy_corr": _corr(mouth_opening(face_model, p), c.energy),
            }
        per_clip.append(entry)
        truth_all.append(c.exp)
        energy_all.append(c.energy)
    truth = np.concatenate(truth_all)
    energy = np.concatenate(energy_all)
    out = {"frames": int(truth.shape[0]), "clips": len(clips)}
    for m in METHODS:
        p = np.concatenate(pooled[m]["pred"])
        out[m] = {
            "mse": float(np.mean((p - truth) ** 2)),
            "lmd_px": float(np.mean(np.concatenate(pooled[m]["dist"]))),
            "open_energy_corr": _corr(mouth_opening(face_model, p), energy),
            "clip_mean_open_energy_corr": float(
                np.mean([e[m]["open_energy_corr"] for e in per_clip])
            ),
        }
    out["truth_open_energy_corr"] = _corr(mouth_opening(face_model, truth), energy)
    out["truth_clip_mean_open_energy_corr"] = float(
        np.mean([e["truth_open_energy_corr"] for e in per_clip])
    )
    if len(clips) >= 2 and bootstrap > 0:
        counts = np.array([e["frames"] for e in per_clip], np.float64)
        sums = np.array([lmd_sums[m] for m in METHODS])
        draws = bootstrap_pooled(sums, counts, bootstrap, seed)
        for i, m in enumerate(METHODS):
            out[m]["lmd_px_ci"] = _interval(draws[:, i])
        out["lmd_diff_ci"] = {
            f"ours-{b}": [
                out["ours"]["lmd_px"] - out[b]["lmd_px"],
                *_interval(draws[:, 0] - draws[:, METHODS.index(b)]),
            ]
            for b in BASELINES
        }
        out["bootstrap"] = {"resamples": int(bootstrap), "seed": int(seed), "unit": "clip"}
    out["per_clip"] = per_clip
    return out


def heldout_config(config, part: str | None = None, root: str | None = None):
    """The workdir's config with the held-out `part` and data `root` overridden (None: as
    trained). `part` needs a split file (`data.split_file`), except "test" without one (the
    records' own test split)."""
    config = config.copy_and_resolve_references()
    split_file = config.data.get("split_file", "")
    if part is not None and part not in ("train", "val", "test"):
        raise InputError(f"part must be 'val' or 'test', got {part!r}")
    if part is not None and split_file:
        config.data.eval_part = part
    elif part not in (None, "test"):
        raise InputError(f"part {part!r} needs a speaker split (data.split_file); none in config")
    if root:
        config.data.root = root
    return config


def part_name(config) -> str:
    """The name of the held-out set `trainer.load_data` returns for `config`."""
    if config.data.get("split_file", ""):
        return "heldout_" + config.data.get("eval_part", "val")
    return "test_split"


def target_heldout(config, target: records.Clip) -> tuple[sampling.ExpressionClip, np.ndarray]:
    """The target clip's held-out frames after its fine-tune frames, and the tune frames' mean.

    `finetune.frames` (and `heldout_frames`) count the target video's frames; the regressor's
    frames of the held-out part start at `trainer.heldout_start` (the first at or after video
    frame `frames`), those of the tuning part are the first `trainer.tune_frames`.
    """
    fps, num_exp = config.model.fps, config.model.num_exp
    whole = sampling.prepare_expression_clips([target], fps, num_exp)[0]
    n = config.finetune.frames
    start = trainer.heldout_start(n, target.fps, fps)
    # heldout_frames > 0 evaluates only the frames right after the tuning ones: a
    # validation slice inside a longer clip, for choosing fine-tune settings.
    held_frames = config.finetune.get("heldout_frames", 0)
    end = trainer.heldout_start(n + held_frames, target.fps, fps) if held_frames > 0 else None
    if whole.exp.shape[0] <= start:
        raise InputError(
            f"clip {target.clip_id} has no frames after its {n} fine-tuning video frames"
        )
    held = sampling.ExpressionClip(
        whole.clip_id + "_heldout", whole.windows[start:end], whole.exp[start:end],
        whole.pose[start:end], whole.energy[start:end],
    )  # fmt: skip
    tune_mean = whole.exp[: trainer.tune_frames(n, target.fps, fps)].mean(axis=0)
    return held, tune_mean


def evaluate_workdir(
    workdir: str,
    part: str | None = None,
    root: str | None = None,
    bootstrap: int = 2000,
    step: int | None = None,
) -> dict:
    """Evaluates a trained workdir on its held-out speakers (and fine-tune target).

    Args:
      workdir: a `train_expression` workdir.
      part: the split part to evaluate ("val", "test"); None = the config's `data.eval_part`.
      root: the records dataset, if not the config's `data.root`.
      bootstrap: resamples of the interval over clips (0 = none).
      step: a kept checkpoint of the run (None = the latest), e.g. to choose steps on val.

    Writes `<workdir>/eval/metrics[_<part>][_<step>].json` and `.md` (the part's name only
    with a speaker split) and returns the results: {set name: `evaluate_clips` result}.
    """
    config = heldout_config(checkpoint.load_workdir_config(workdir), part, root)
    predictor = ExpressionPredictor.from_workdir(workdir, step)
    fps, num_exp = config.model.fps, config.model.num_exp
    face_model = default.load_default()
    train_clips, test_clips = trainer.load_data(config, trainer.corpus_workdir(config, workdir))
    train_mean = np.concatenate([c.exp for c in train_clips]).mean(axis=0)
    results = {}
    if test_clips:
        prepared = sampling.prepare_expression_clips(test_clips, fps, num_exp)
        results[part_name(config)] = evaluate_clips(
            predictor, prepared, train_mean, face_model, bootstrap=bootstrap
        )
    target = trainer.target_clip(config)
    if target is not None:
        held, tune_mean = target_heldout(config, target)
        results["target_heldout"] = evaluate_clips(predictor, [held], tune_mean, face_model)
    out_dir = os.path.join(workdir, "eval")
    name = "metrics"
    if config.data.get("split_file", ""):
        name += "_" + config.data.get("eval_part", "val")
    if step is not None:
        name += f"_{step}"
    if storage.is_writer():  # every process computed the same results; process 0 writes them
        storage.write_json(os.path.join(out_dir, name + ".json"), results)
        storage.write_text(os.path.join(out_dir, name + ".md"), markdown_table(results))
    return results


def _ci(v) -> str:
    return f" [{v[0]:.2f}, {v[1]:.2f}]" if v else ""


def markdown_table(results: dict) -> str:
    """Per evaluated set: methods x pooled metrics (with the LMD intervals), the paired LMD
    differences, and a per-clip table (LMD and opening/energy r of every row and the truth)."""
    lines = []
    for name, r in results.items():
        lines += [
            f"### {name} ({r.get('clips', 1)} clips, {r['frames']} frames; real faces' own "
            f"opening/energy r: pooled {r['truth_open_energy_corr']:.3f}, mean per clip "
            f"{r.get('truth_clip_mean_open_energy_corr', r['truth_open_energy_corr']):.3f})",
            "",
            "| method | coefficient MSE | mouth LMD (px) [95 % CI over clips] | opening/energy r "
            "(pooled) | r (mean per clip) |",
            "|---|---|---|---|---|",
        ]
        for m in METHODS:
            v = r[m]
            lines.append(
                f"| {m} | {v['mse']:.4f} | {v['lmd_px']:.3f}{_ci(v.get('lmd_px_ci'))} | "
                f"{v['open_energy_corr']:.3f} | "
                f"{v.get('clip_mean_open_energy_corr', v['open_energy_corr']):.3f} |"
            )
        lines.append(
            f"| real faces (truth) | 0 | 0 | {r['truth_open_energy_corr']:.3f} | "
            f"{r.get('truth_clip_mean_open_energy_corr', r['truth_open_energy_corr']):.3f} |"
        )
        lines.append("")
        if "lmd_diff_ci" in r:
            lines += ["| LMD difference (px) | estimate | 95 % CI over clips |", "|---|---|---|"]
            for k, (est, lo, hi) in r["lmd_diff_ci"].items():
                lines.append(f"| {k} | {est:+.3f} | [{lo:+.3f}, {hi:+.3f}] |")
            lines.append("")
        if len(r.get("per_clip", [])) > 1:
            lines += [
                "| clip | frames | LMD ours / mean / shuffled | r ours / mean / shuffled / truth |",
                "|---|---|---|---|",
            ]
            for e in r["per_clip"]:
                lmd = " / ".join(f"{e[m]['lmd_px']:.2f}" for m in METHODS)
                rs = " / ".join(f"{e[m]['open_energy_corr']:.2f}" for m in METHODS)
                lines.append(
                    f"| {e['clip_id']} | {e['frames']} | {lmd} | "
                    f"{rs} / {e['truth_open_energy_corr']:.2f} |"
                )
            lines.append("")
    return "\n".join(lines)
