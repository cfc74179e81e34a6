"""Fits the default face model to portraits and draws input | render | overlay rows.

  python -m experiments.fit_faces --faces=DIR [--videos=DIR] --out=docs/figures/face_fits.png

--videos adds the middle frame of every video in DIR: people whose identity and albedo the
default model never saw (videos only gave it expression residuals, where identity cancels).

Each portrait: MediaPipe face mesh -> `crop_to_model` (224 x 224, the reference framing) ->
`fit_image` (landmarks of all 468 mesh points, then photometric through the renderer) ->
render. Prints one JSON line per face (landmark RMSE in pixels, mean absolute photometric
error on the rendered face) and a summary; writes the PNG and `<out>.json` atomically.
"""

import json
import os
import tempfile

import cv2
import jax
import numpy as np
from absl import flags

from experiments import cli
from talkingjax.errors import InputError
from talkingjax.face3d import camera as camera_lib
from talkingjax.face3d import default, fit
from talkingjax.render import face

_FACES = flags.DEFINE_string("faces", None, "Directory of portrait images.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output .png path.", required=True)
_NUM = flags.DEFINE_integer("num", 6, "How many portraits (in file name order).")
_NAMES = flags.DEFINE_list("names", [], "Portrait file names to use instead of the first --num.")
_VIDEOS = flags.DEFINE_string("videos", None, "Optional directory of videos (middle frames).")


def video_middle_frames(videos_dir: str, out_dir: str) -> list[str]:
    """Writes the middle frame of every video in `videos_dir` as `<name>.png` into `out_dir`."""
    from talkingjax.face3d import images

    names = []
    for path in images.list_files(videos_dir, images.VIDEO_EXTENSIONS, "videos"):
        cap = cv2.VideoCapture(path)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.set(cv2.CAP_PROP_POS_FRAMES, max(count // 2, 0))
        ok, frame = cap.read()
        cap.release()
        if not ok:
            raise InputError(f"cannot read a frame of {path}")
        name = os.path.splitext(os.path.basename(path))[0] + ".png"
        cv2.imwrite(os.path.join(out_dir, name), frame)
        names.append(name)
    return names


def fit_portraits(faces_dir: str, num: int, names=()) -> tuple[list[np.ndarray], list[dict]]:
    """Fits the default model to portraits; returns per-face image rows and metrics."""
    from talkingjax.face3d import images  # MediaPipe is only needed here

    portraits, _ = images.detect_portraits(faces_dir)
    if names:
        portraits = [p for p in portraits if p.name in set(names)]
    portraits = portraits[:num]
    if not portraits:
        raise InputError(f"no portraits with a detectable face in {faces_dir}")
    model = default.load_default()
    camera = camera_lib.Camera()
    mesh_vertices = np.arange(468)  # the default model's first 468 vertices are MediaPipe's
    rows, metrics = [], []
    for p in portraits:
        pixels = np.stack([p.points[:, 0], -p.points[:, 1]], axis=1)
        crop, lm, _ = fit.crop_to_model(p.image, pixels, model, mesh_vertices, camera)
        coeffs, hist = fit.fit_image(model, crop, lm, mesh_vertices, camera)
        out = face.render_face(model, coeffs, camera)
        posed = face.pose_face(model, coeffs)
        proj = np.asarray(camera_lib.project(camera, posed.vertices[mesh_vertices]))
        image, mask = np.asarray(out.image), np.asarray(out.mask)[..., None]
        overlay = mask * image + (1 - mask) * crop
        rows.append(np.concatenate([crop, mask * image + (1 - mask), overlay], axis=1))
        metrics.append(
            {
                "name": p.name,
                "landmark_rmse_px": float(np.sqrt(np.mean(np.sum((proj - lm) ** 2, -1)))),
                "photometric_mae": float(
                    np.sum(mask * np.abs(image - crop)) / (3 * max(mask.sum(), 1))
                ),
                "final_loss": float(hist["loss"][-1]),
            }
        )
        print(json.dumps(metrics[-1]))
    return rows, metrics


def write_figure(rows: list[np.ndarray], metrics: list[dict], out: str) -> None:
    """Stacks the rows (two faces per row) into one PNG plus a JSON summary, atomically."""
    pairs = [
        np.concatenate([rows[i], rows[i + 1] if i + 1 < len(rows) else np.ones_like(rows[i])], 1)
        for i in range(0, len(rows), 2)
    ]
    grid = np.clip(np.concatenate(pairs, axis=0), 0, 1)
    summary = {
        "faces": len(metrics),
        "landmark_rmse_px_mean": float(np.mean([m["landmark_rmse_px"] for m in metrics])),
        "photometric_mae_mean": float(np.mean([m["photometric_mae"] for m in metrics])),
        "per_face": metrics,
        "jax": jax.__version__,
    }
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp.png"
    cv2.imwrite(tmp, (grid[..., ::-1] * 255 + 0.5).astype(np.uint8))
    os.replace(tmp, out)
    with open(out + ".json.tmp", "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(out + ".json.tmp", os.path.splitext(out)[0] + ".json")
    print(json.dumps({k: v for k, v in summary.items() if k != "per_face"}))


def main(argv):
    del argv
    if not _OUT.value.endswith(".png"):
        raise InputError(f"--out must be a .png path, got {_OUT.value}")
    rows, metrics = fit_portraits(_FACES.value, _NUM.value, _NAMES.value)
    if _VIDEOS.value:
        with tempfile.TemporaryDirectory() as tmp:
            names = video_middle_frames(_VIDEOS.value, tmp)
            more_rows, more = fit_portraits(tmp, len(names))
        for m in more:
            m["held_out"] = True
        rows, metrics = rows + more_rows, metrics + more
    write_figure(rows, metrics, _OUT.value)


if __name__ == "__main__":
    cli.run(main)
