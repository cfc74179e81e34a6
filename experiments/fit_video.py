"""Reconstructs the 3D face of a video and writes what is needed to inspect it.

  python -m experiments.fit_video --video=talk.mp4 --out=runs/fit_talk [--max_frames=300] \
      [--crop_size=224] [--face_model=default|bfm.npz] [--overlay_video]

Writes into --out: `coeffs.mat` (`coeff` [T, D] + `transform_params` [T, 5]), `pose.npy`
([T, 6] at the video's fps), `report.json` (landmark RMSE in crop pixels, photometric error,
lost frames, timings), `overlay.png` (six frames: crop | render with the detailed albedo |
overlay), `pose.png` (pose curves) and, with --overlay_video, `overlay.mp4`.
"""

import json
import os

import numpy as np
from absl import flags

from experiments import cli
from talkingjax import visualize
from talkingjax.errors import InputError
from talkingjax.face3d import coeffs as coeffs_lib
from talkingjax.face3d import default
from talkingjax.face3d import model as model_lib
from talkingjax.video import reconstruct

_VIDEO = flags.DEFINE_string("video", None, "A talking-face video.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_MAX_FRAMES = flags.DEFINE_integer("max_frames", None, "Only the first frames.")
_CROP = flags.DEFINE_integer("crop_size", 224, "Face crop side in pixels.")
_MODEL = flags.DEFINE_string("face_model", "default", "'default' or a model .npz.")
_VIDEO_OUT = flags.DEFINE_bool("overlay_video", False, "Also write overlay.mp4.")
_ROWS = flags.DEFINE_integer("rows", 6, "Frames in overlay.png.")


def load_face_model(name: str) -> model_lib.MorphableModel:
    return default.load_default() if name == "default" else model_lib.load(name)


def write_outputs(rec: reconstruct.Reconstruction, model, out: str, rows: int, video: bool) -> dict:
    """Writes the inspection files of a reconstruction into `out`; returns the report."""
    os.makedirs(out, exist_ok=True)
    result = rec.fit
    coeffs_lib.write_mat(os.path.join(out, "coeffs.mat"), result.coeffs, rec.transform_params)
    tmp = os.path.join(out, "pose.tmp.npy")
    np.save(tmp, result.pose)
    os.replace(tmp, os.path.join(out, "pose.npy"))
    renders, masks = visualize.render_fit(
        model, result.coeffs, rec.crops.shape[1], result.detailed_albedo
    )
    pick = np.unique(np.linspace(0, len(rec.crops) - 1, rows).round().astype(int))
    grid = visualize.overlay_rows(rec.crops[pick], renders[pick], masks[pick])
    visualize.write_png(os.path.join(out, "overlay.png"), np.concatenate(list(grid), axis=0))
    if video:
        frames = visualize.overlay_rows(rec.crops, renders, masks)
        visualize.write_video(os.path.join(out, "overlay.mp4"), frames, rec.track.fps)
    visualize.plot_pose(
        os.path.join(out, "pose.png"), result.pose, rec.track.fps, os.path.basename(_VIDEO.value)
    )
    report = {
        **result.report(),
        "video": os.path.abspath(_VIDEO.value),
        "fps": rec.track.fps,
        "seconds": rec.seconds,
    }
    with open(os.path.join(out, "report.tmp.json"), "w") as f:
        json.dump(report, f, indent=1)
    os.replace(os.path.join(out, "report.tmp.json"), os.path.join(out, "report.json"))
    return report


def main(argv):
    del argv
    if _CROP.value < 64:
        raise InputError(f"--crop_size must be at least 64, got {_CROP.value}")
    model = load_face_model(_MODEL.value)
    rec = reconstruct.reconstruct_video(_VIDEO.value, model, _CROP.value, _MAX_FRAMES.value)
    report = write_outputs(rec, model, _OUT.value, _ROWS.value, _VIDEO_OUT.value)
    keys = ("frames", "landmark_rmse_px_mean", "landmark_rmse_px_max", "photometric_mae_mean")
    print(json.dumps({k: report[k] for k in keys} | {"seconds": report["seconds"]}))


if __name__ == "__main__":
    cli.run(main)
