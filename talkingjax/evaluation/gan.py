"""Evaluation of the rendering-to-realistic GAN on held-out frames (paper 000 Sec. V).

For every scored frame t the generator refines the rendered window (r_{t-2}, r_{t-1}, r_t) and
the refined frame o_t is compared with the real frame g_t; the *raw render* r_t (the rendered
face over the real frame's background, the generator's own input) is scored the same way, as
the baseline the GAN must beat. Metrics (`talkingjax.metrics.image`): PSNR, SSIM and L1
against the real frame, CPBD sharpness (no reference; the real frames' CPBD is reported too),
and the attention mask's statistics (Eq. 8: A = 1 keeps the render), inside and outside the
rendered face.

Held-out frames: a fine-tuned run scores its target's frames after `finetune.frames` (the
paper's protocol: tune on the first 300 frames of the short video, judge the rest); a
pretraining-only run scores the `test` split of `data.root`, or synthetic identities it never
saw (another seed). A strip PNG shows rows of render | refined | real.

With a self-ensemble (`eval.ensemble_shift` >= 0, `predict.Refiner`; beyond the paper) the same
generator is scored a second time as the mean of its mirrored and shifted passes, reported next
to the one-pass figures (`refined_self_ensemble`) and shown as a column before the real frame.

    from talkingjax.evaluation import gan as gan_eval
    results = gan_eval.evaluate_workdir(workdir)   # also <workdir>/eval/gan_eval.json
"""

from __future__ import annotations

import os

import numpy as np

from talkingjax import visualize
from talkingjax.data import gan_pairs
from talkingjax.errors import InputError
from talkingjax.metrics import image as image_metrics
from talkingjax.models import gan as gan_models
from talkingjax.predict.gan import Refiner
from talkingjax.train import gan as gan_train
from talkingjax.train import storage


def held_out(config, workdir: str) -> list[tuple[gan_pairs.PairClip, int]]:
    """(clip, first scored frame) pairs for a run's config (see the module docstring)."""
    if config.finetune.clip_id:
        clip = gan_train.target_clip(config)
        if clip.num_frames <= config.finetune.frames:
            raise InputError(
                f"{clip.clip_id} has {clip.num_frames} frames, all used for fine-tuning "
                f"(finetune.frames = {config.finetune.frames}); none is left to evaluate"
            )
        return [(clip, int(config.finetune.frames))]
    if config.data.root:
        return [(c, 0) for c in gan_pairs.load(config.data.root, split="test")]
    clips = gan_pairs.synthetic_pairs(
        2, config.data.synthetic_frames, config.model.size, seed=config.seed + 1, split="test"
    )
    return [(c, 0) for c in clips]


def _frames(start: int, stop: int, limit: int) -> np.ndarray:
    """Scored frame indices: all of [start, stop), or `limit` of them evenly spread."""
    if limit <= 0 or stop - start <= limit:
        return np.arange(start, stop)
    return np.unique(np.linspace(start, stop - 1, limit).round().astype(int))


def _scores(pred: np.ndarray, real: np.ndarray) -> dict:
    return {
        "psnr": image_metrics.psnr(pred, real),
        "ssim": image_metrics.ssim(pred, real),
        "l1": image_metrics.l1(pred, real),
        "cpbd": image_metrics.cpbd(pred),  # mean over the frames
    }


def evaluate_clip(
    refine: Refiner,
    clip: gan_pairs.PairClip,
    frames: np.ndarray,
    ensembled: Refiner | None = None,
):
    """Scores of the refined frames and of the raw render, plus images for the strip.

    `ensembled` (the same generator with a self-ensemble) adds "refined_self_ensemble" and
    "psnr_gain_db_self_ensemble": both figures are reported, the one-pass one first.

    Returns:
      (results dict, [raw, refined, (refined self-ensemble,) real] each [N, S, S, 3] float
      in [0, 1]).
    """
    windows = np.stack([gan_pairs.window(clip, int(t)) for t in frames])
    out = refine(windows)
    to01 = lambda x: np.clip((np.asarray(x) + 1.0) / 2.0, 0.0, 1.0)  # noqa: E731
    raw, refined = to01(windows[..., -3:]), to01(out["image"])
    real = clip.real[frames].astype(np.float32) / 255.0
    face = clip.mask[frames] > 127
    attention = out["attention"][..., 0]
    results = {
        "frames": int(len(frames)),
        "first_frame": int(frames[0]),
        "refined": _scores(refined, real),
        "raw_render": _scores(raw, real),
        "real_cpbd": image_metrics.cpbd(real),
        "attention": {
            "mean": float(attention.mean()),
            "face": float(attention[face].mean()) if face.any() else None,
            "background": float(attention[~face].mean()) if (~face).any() else None,
        },
    }
    results["psnr_gain_db"] = results["refined"]["psnr"] - results["raw_render"]["psnr"]
    columns = [raw, refined]
    if ensembled is not None:
        mean = to01(ensembled(windows)["image"])
        results["refined_self_ensemble"] = _scores(mean, real)
        results["self_ensemble"] = {"shift": ensembled.ensemble_shift, "passes": ensembled.passes}
        results["psnr_gain_db_self_ensemble"] = (
            results["refined_self_ensemble"]["psnr"] - results["raw_render"]["psnr"]
        )
        columns.append(mean)
    return results, columns + [real]


def strip(columns: list[np.ndarray], rows: int) -> np.ndarray:
    """[rows * S, len(columns) * S, 3]: the columns (e.g. render | refined | real), each
    [N, S, S, 3], side by side for `rows` frames evenly spread."""
    pick = np.unique(np.linspace(0, len(columns[0]) - 1, max(rows, 1)).round().astype(int))
    return np.concatenate([np.concatenate([c[i] for c in columns], axis=1) for i in pick], 0)


def evaluate_workdir(
    workdir: str,
    max_frames: int | None = None,
    out_dir: str | None = None,
    ensemble_shift: int | None = None,
):
    """Scores a trained workdir's held-out frames; writes `gan_eval.json` and `gan_strip.png`.

    Args:
      workdir: a `talkingjax.train.gan` run.
      max_frames: frames scored per clip (default `config.eval.max_frames`; 0 = all).
      out_dir: default `<workdir>/eval`.
      ensemble_shift: >= 0 also scores the self-ensembled generator (`predict.Refiner`); default
        `config.eval.ensemble_shift` (-1 = one pass only).

    Returns:
      {"clips": {clip_id: results}, "mean": {...}, "files": {"json", "strip"}}.
    """
    refine = Refiner.from_workdir(workdir)
    config = refine.config
    limit = config.eval.max_frames if max_frames is None else max_frames
    if ensemble_shift is None:
        # Runs trained before the option have no such field: one pass, as they were scored.
        ensemble_shift = config.eval.get("ensemble_shift", gan_models.SELF_ENSEMBLE_OFF)
    ensembled = (
        None
        if ensemble_shift == gan_models.SELF_ENSEMBLE_OFF
        else refine.with_ensemble(ensemble_shift)
    )
    results, images = {}, []
    for clip, start in held_out(config, workdir):
        frames = _frames(start, clip.num_frames, limit)
        results[clip.clip_id], columns = evaluate_clip(refine, clip, frames, ensembled)
        images.append(strip(columns, config.eval.strip_frames))
    keys = ("psnr", "ssim", "l1", "cpbd")
    kinds = ("refined", "raw_render") + (("refined_self_ensemble",) if ensembled else ())
    mean = {
        kind: {k: float(np.mean([r[kind][k] for r in results.values()])) for k in keys}
        for kind in kinds
    }
    mean["psnr_gain_db"] = mean["refined"]["psnr"] - mean["raw_render"]["psnr"]
    if ensembled:
        mean["psnr_gain_db_self_ensemble"] = (
            mean["refined_self_ensemble"]["psnr"] - mean["raw_render"]["psnr"]
        )
    out_dir = out_dir or os.path.join(workdir, "eval")
    files = {
        "json": os.path.join(out_dir, "gan_eval.json"),
        "strip": os.path.join(out_dir, "gan_strip.png"),
    }
    body = {"clips": results, "mean": mean, "files": files}
    if storage.is_writer():  # every process computed the same results; process 0 writes them
        png = visualize.png_bytes(np.concatenate(images, axis=0))
        storage.atomic_write(files["strip"], lambda f: f.write(png), "wb")
        storage.write_json(files["json"], body)
    return body
