"""Reading the Basel Face Model as Deep3DFaceRecon ships it (`BFM_model_front.mat`).

The BFM is licence-gated, so it is never part of this repository: users produce
`BFM_model_front.mat` themselves (BUILD.md) and convert it once into the `.npz` that
`talkingjax.face3d.model.load` reads:

    python -m experiments.convert_bfm --src=BFM_model_front.mat --out=bfm.npz

File layout (V vertices, F triangles; all MATLAB arrays, indices 1-based):

    meanshape [1, 3V]   idBase [3V, 80]   exBase [3V, 64]   (x, y, z interleaved per vertex)
    meantex [1, 3V]     texBase [3V, 80]                   (RGB, 0-255 units)
    tri [F, 3]          point_buf [V, 8]  (faces around each vertex; F + 1 = "no face")
    keypoints [1, 68]   skinmask (optional, V values)

Loading converts this to the `MorphableModel` conventions: bases [V, 3, K], albedo in [0, 1],
0-based indices (point_buf's F + 1 becomes F, the model's "no face"), the mean shape re-centred
on its centroid (as the reference does, so that the translation coefficients mean the same),
and triangles counter-clockwise seen from the front (+z). The reference computes face normals
as (v1 - v2) x (v2 - v3), which equals the model's (v2 - v1) x (v3 - v1), so the file's
triangles should already be counter-clockwise. If a file's mean shape is instead wound mostly
clockwise seen from +z (judged by signed projected area), its triangles are flipped (face
indices, and so point_buf, stay valid) rather than letting every normal, and hence the
lighting, point into the head; `convert_bfm` records that in the .npz metadata.
"""

from __future__ import annotations

import os
import uuid

import numpy as np

from talkingjax.data import coeff257
from talkingjax.errors import InputError
from talkingjax.face3d import model as face_model

REQUIRED_FIELDS = (
    "meanshape",
    "idBase",
    "exBase",
    "meantex",
    "texBase",
    "tri",
    "point_buf",
    "keypoints",
)
SKIN_FIELD = "skinmask"


def load_bfm(path: str | os.PathLike, recenter: bool = True) -> face_model.MorphableModel:
    """Loads `BFM_model_front.mat` (Deep3DFaceRecon's front-face BFM 2009) as a model.

    Args:
      path: the .mat file (MATLAB v5/v7; not v7.3).
      recenter: subtract the mean shape's centroid from the mean shape (the reference does).

    Returns:
      A `MorphableModel` with sizes (80, 64, 80) for the standard file.

    Raises:
      InputError: missing, unreadable or v7.3 file, a missing field (named), a field of the
        wrong shape (named, with expected and actual shapes), out-of-range indices or NaN/inf.
    """
    return _load(path, recenter)[0]


def convert_bfm(
    src_mat: str | os.PathLike, out_npz: str | os.PathLike, recenter: bool = True
) -> face_model.MorphableModel:
    """Converts `BFM_model_front.mat` into a model .npz once (read later by `model.load`).

    The .npz is written under a temporary name and renamed, so a failure leaves no partial
    file. Returns the converted model.

    Raises:
      InputError: see `load_bfm`; also a missing output directory.
    """
    src_mat, out_npz = os.fspath(src_mat), os.fspath(out_npz)
    model, flipped = _load(src_mat, recenter)
    directory = os.path.dirname(os.path.abspath(out_npz))
    if not os.path.isdir(directory):
        raise InputError(f"cannot write {out_npz}: directory {directory} does not exist")
    tmp = f"{out_npz}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        face_model.save(
            model,
            tmp,
            source=os.path.basename(src_mat),
            format="BFM_model_front.mat",
            recentered=recenter,
            triangles_flipped=flipped,
        )
        os.replace(tmp, out_npz)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return model


def _load(path, recenter: bool) -> tuple[face_model.MorphableModel, bool]:
    """The model and whether the file's triangles had to be flipped."""
    path = os.fspath(path)
    mat = coeff257.load_mat(path, what="BFM file")
    missing = [k for k in REQUIRED_FIELDS if k not in mat]
    if missing:
        raise InputError(
            f"{path}: missing field(s) {missing}; a BFM_model_front.mat file has "
            f"{list(REQUIRED_FIELDS)}"
        )
    field = lambda name: _numeric(mat, name, path)

    # float64 for the two means: the centroid and the /255 are then exact before float32.
    meanshape = field("meanshape").astype(np.float64)
    if (
        meanshape.ndim != 2
        or meanshape.shape[0] != 1
        or meanshape.shape[1] % 3
        or (meanshape.shape[1] < 9)
    ):
        raise InputError(
            f"{path}: 'meanshape' must be [1, 3V] (x, y, z per vertex, V >= 3), "
            f"got shape {meanshape.shape}"
        )
    num_v = meanshape.shape[1] // 3
    meantex = field("meantex").astype(np.float64)
    _expect(meantex, (1, 3 * num_v), "meantex", path)
    bases = {}
    for name in ("idBase", "exBase", "texBase"):
        basis = field(name)
        if basis.ndim != 2 or basis.shape[0] != 3 * num_v:
            raise InputError(
                f"{path}: '{name}' must be [{3 * num_v}, K] (3V rows for V = {num_v} vertices), "
                f"got shape {basis.shape}"
            )
        bases[name] = basis
    for name, arr in (("meanshape", meanshape), ("meantex", meantex), *bases.items()):
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{path}: '{name}' has NaN/inf values")

    tri = field("tri")
    if tri.ndim != 2 or tri.shape[1] != 3 or tri.shape[0] == 0:
        raise InputError(f"{path}: 'tri' must be [F, 3], got shape {tri.shape}")
    num_f = tri.shape[0]
    tri = _one_based(tri, num_v, "tri", path)
    point_buf = field("point_buf")
    if point_buf.ndim != 2 or point_buf.shape[0] != num_v or point_buf.shape[1] == 0:
        raise InputError(
            f"{path}: 'point_buf' must be [{num_v}, M] (faces around each of the {num_v} "
            f"vertices), got shape {point_buf.shape}"
        )
    # F + 1 ("no face") becomes F after the shift, which is the model's own padding index.
    point_buf = _one_based(point_buf, num_f + 1, "point_buf", path)
    keypoints = field("keypoints")
    if keypoints.ndim != 2 or keypoints.shape[0] != 1:
        raise InputError(f"{path}: 'keypoints' must be [1, L], got shape {keypoints.shape}")
    keypoints = _one_based(keypoints.reshape(-1), num_v, "keypoints", path)

    mean_shape = meanshape.reshape(num_v, 3)
    if recenter:
        mean_shape = mean_shape - mean_shape.mean(axis=0, keepdims=True)
    tri, flipped = _front_facing(mean_shape, tri)
    return (
        face_model.make_model(
            mean_shape=mean_shape,
            id_basis=bases["idBase"].reshape(num_v, 3, -1),
            exp_basis=bases["exBase"].reshape(num_v, 3, -1),
            mean_albedo=meantex.reshape(num_v, 3) / 255.0,
            albedo_basis=bases["texBase"].reshape(num_v, 3, -1) / 255.0,
            triangles=tri,
            landmarks=keypoints,
            vertex_faces=point_buf,
            skin_mask=_skin_mask(mat, num_v, path),
            name=path,
        ),
        flipped,
    )


def _numeric(mat: dict, name: str, path: str) -> np.ndarray:
    arr = np.asarray(mat[name])
    if arr.dtype == np.bool_:
        return arr.astype(np.float64)  # MATLAB logical arrays, e.g. a skin mask
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{path}: '{name}' must be numeric, got dtype {arr.dtype}")
    return arr


def _expect(arr: np.ndarray, shape: tuple[int, ...], name: str, path: str) -> None:
    if arr.shape != shape:
        raise InputError(f"{path}: '{name}' must have shape {list(shape)}, got {arr.shape}")


def _one_based(values: np.ndarray, count: int, name: str, path: str) -> np.ndarray:
    """1-based indices in [1, count] -> int64 0-based indices in [0, count)."""
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        raise InputError(f"{path}: '{name}' must hold integer indices (found NaN or fractions)")
    if values.size and (values.min() < 1 or values.max() > count):
        hint = " (the file's indices must be 1-based)" if values.min() == 0 else ""
        raise InputError(
            f"{path}: '{name}' indices must be in [1, {count}], got min {int(values.min())}, "
            f"max {int(values.max())}{hint}"
        )
    return values.astype(np.int64) - 1


def _front_facing(mean_shape: np.ndarray, tri: np.ndarray) -> tuple[np.ndarray, bool]:
    """Triangles made counter-clockwise seen from +z, and whether they had to be flipped.

    The z component of the summed (area-weighted) face normals is twice the signed area of the
    mesh projected onto the xy plane: positive when the front of the face is wound CCW. Area
    weighting makes the vote robust to the many tiny, near-edge-on triangles at the border.
    """
    v0, v1, v2 = (mean_shape[tri[:, i]] for i in range(3))
    signed_area = np.cross(v1 - v0, v2 - v0)[:, 2].sum()
    if signed_area < 0:
        return tri[:, [0, 2, 1]], True
    return tri, False


def _skin_mask(mat: dict, num_v: int, path: str) -> np.ndarray | None:
    """The file's skin mask when it has one per vertex; None (all skin) otherwise.

    Some conversions store `skinmask` for another vertex set (the full, not the front, model);
    such a mask cannot be indexed per vertex, so it is ignored rather than rejected.
    """
    if SKIN_FIELD not in mat:
        return None
    mask = _numeric(mat, SKIN_FIELD, path)
    if mask.size != num_v:
        return None
    if not np.all(np.isfinite(mask)):
        raise InputError(f"{path}: '{SKIN_FIELD}' has NaN/inf values")
    return mask.reshape(num_v)
