"""Reading portraits and finding the MediaPipe face mesh in them (run time and model build).

- `read_image`: an image file as RGB float32 [H, W, 3] in [0, 1];
- `detect_portrait` / `detect_portraits`: one photo / a directory of photos -> `Portrait`s with
  the 468 MediaPipe face-mesh landmarks in image pixels, in the y-up model frame of
  `to_model_frame`;
- `sample_bilinear`: bilinear colour samples at continuous pixel coordinates (per-vertex colours);
- `list_files`: the image / video files of an input directory, sorted.

Only `detect_portrait(s)` run MediaPipe (through `talkingjax.video.tracking`); everything else is
numpy. The default model is built from these portraits by `talkingjax.face3d.build_default`.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from talkingjax.errors import InputError
from talkingjax.face3d import topology
from talkingjax.video import tracking

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")


@dataclasses.dataclass
class Portrait:
    name: str
    image: np.ndarray  # [H, W, 3] RGB float32 in [0, 1]
    points: np.ndarray  # [468, 3] MediaPipe landmarks in pixels: x right, y up, z to the camera


def to_model_frame(normalized: np.ndarray, width: int, height: int) -> np.ndarray:
    """MediaPipe's normalised landmarks [N, 3] -> pixels with y up and z toward the camera.

    MediaPipe gives x, y in [0, 1] of the image width / height (y down) and z in units of the
    image width, smaller = closer. The result is (x W, -y H, -z W): right-handed, y up, the
    face looking down +z like the model; column = x, row = -y.
    """
    p = np.asarray(normalized, np.float64)
    return np.stack([p[:, 0] * width, -p[:, 1] * height, -p[:, 2] * width], axis=1)


def single_face_mesh(static: bool):
    """A MediaPipe face mesh for one face without iris refinement (a context manager)."""
    return tracking.face_mesh(static, max_faces=1, refine=False)


def mesh_points(mesh, rgb: np.ndarray) -> np.ndarray | None:
    """The 468 landmarks [468, 3] (`to_model_frame`) of the first face MediaPipe finds in the
    uint8 RGB image [H, W, 3], or None if there is none."""
    faces = tracking.detect_faces(mesh, rgb)
    if not faces:
        return None
    return to_model_frame(faces[0][: topology.NUM_VERTICES], rgb.shape[1], rgb.shape[0])


def list_files(directory: str, extensions: tuple[str, ...], what: str) -> list[str]:
    """Paths of the files of `directory` ending in `extensions` (case-insensitive), sorted.

    Raises:
      InputError: the directory is missing or has no such file (`what` names them).
    """
    if not os.path.isdir(directory):
        raise InputError(f"{what} directory not found: {directory}")
    names = sorted(f for f in os.listdir(directory) if f.lower().endswith(extensions))
    if not names:
        raise InputError(f"no {what} ({', '.join(extensions)}) in {directory}")
    return [os.path.join(directory, f) for f in names]


def read_image(path: str) -> np.ndarray:
    """An image file as RGB float32 [H, W, 3] in [0, 1]; InputError if unreadable."""
    import cv2

    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def detect_portrait(path: str) -> Portrait:
    """MediaPipe face-mesh landmarks of one photo; InputError if unreadable or faceless."""
    image = read_image(path)
    with single_face_mesh(static=True) as mesh:
        points = mesh_points(mesh, (image * 255).round().astype(np.uint8))
    if points is None:
        raise InputError(f"no face found in {path}")
    return Portrait(os.path.basename(path), image, points)


def detect_portraits(faces_dir: str) -> tuple[list[Portrait], list[str]]:
    """MediaPipe face-mesh landmarks of every image in `faces_dir` (static-image mode).

    Returns:
      (portraits with a face, names of the images where none was found -- logged, skipped).

    Raises:
      InputError: missing/empty directory, an unreadable image, or no face in any image.
    """
    paths = list_files(faces_dir, IMAGE_EXTENSIONS, "face images")
    images = [read_image(path) for path in paths]  # all readable before any detection
    portraits, skipped = [], []
    with single_face_mesh(static=True) as mesh:
        for path, image in zip(paths, images, strict=True):
            points = mesh_points(mesh, (image * 255).round().astype(np.uint8))
            name = os.path.basename(path)
            if points is None:
                log.warning("no face found in %s; skipped", path)
                skipped.append(name)
            else:
                portraits.append(Portrait(name, image, points))
    if not portraits:
        raise InputError(f"no face found in any of the {len(paths)} images in {faces_dir}")
    return portraits, skipped


def sample_bilinear(image: np.ndarray, cols: np.ndarray, rows: np.ndarray):
    """Bilinear samples [N, C] of image [H, W, C] at continuous pixel coordinates, where pixel
    (i, j) covers [j, j + 1) x [i, i + 1); also returns [N] bool "inside the image"."""
    h, w = image.shape[:2]
    x, y = np.asarray(cols) - 0.5, np.asarray(rows) - 0.5
    inside = (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)
    x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
    x0, y0 = np.minimum(np.floor(x).astype(int), w - 2), np.minimum(np.floor(y).astype(int), h - 2)
    x0, y0 = np.maximum(x0, 0), np.maximum(y0, 0)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy, inside
