"""Per-frame 3DMM coefficients: the flat vector layout, a pytree of its parts, and .mat files.

Deep3DFaceRecon and the tools built on it describe a face in one frame by a flat vector

    [ identity (K_id) | expression (K_exp) | texture (K_tex) | angles (3) | lighting (27) |
      translation (3) ]

which for the BFM (K_id, K_exp, K_tex) = (80, 64, 80) is the familiar 257-d vector of
`talkingjax.data.coeff257`. `Layout` generalises the sizes to other bases in the same order,
and `FaceCoeffs` holds the six parts as a pytree (any leading batch dims), so jitted code reads
`c.exp` rather than slicing magic numbers. Angles are x, y, z radians (`talkingjax.geometry`),
lighting is 3 x 9 RGB-major SH coefficients (`talkingjax.render.sh`).

Files are MATLAB .mat files with `coeff` [T, D] and, optionally, `transform_params` [T, 5]: the
per-frame crop alignment (w0, h0, scale, tx, ty) that the Deep3DFaceRecon preprocessing saves
so that a face fitted in the 224 x 224 crop can be put back into the original frame.
"""

from __future__ import annotations

import dataclasses
import os
import uuid

import jax
import jax.numpy as jnp
import numpy as np
import scipy.io
from flax import struct

from talkingjax.data import coeff257
from talkingjax.errors import InputError
from talkingjax.render import sh

FIELDS = ("id", "exp", "tex", "angles", "gamma", "trans")
NUM_ANGLES = 3
NUM_GAMMA = sh.NUM_LIGHT
NUM_TRANS = 3
TRANSFORM_KEY = "transform_params"
NUM_TRANSFORM = 5  # w0, h0, scale, tx, ty


@struct.dataclass
class FaceCoeffs:
    """The parts of a coefficient vector; every field has the same leading (batch) dims.

    Attributes:
      id: [..., K_id] identity coefficients.
      exp: [..., K_exp] expression coefficients.
      tex: [..., K_tex] albedo (texture) coefficients.
      angles: [..., 3] rotation x, y, z in radians (R = Rz Ry Rx).
      gamma: [..., 27] SH lighting, RGB-major (3 x 9), without the 0.8 ambient.
      trans: [..., 3] translation.
    """

    id: jax.Array
    exp: jax.Array
    tex: jax.Array
    angles: jax.Array
    gamma: jax.Array
    trans: jax.Array

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.angles.shape[:-1])


@dataclasses.dataclass(frozen=True)
class Layout:
    """Basis sizes, which fix where each part sits in the flat vector (`dim` values)."""

    id: int
    exp: int
    tex: int

    def __post_init__(self):
        for name in ("id", "exp", "tex"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise InputError(
                    f"coefficient layout: {name} size must be an int >= 0, got {value!r}"
                )

    @classmethod
    def of(cls, model) -> Layout:
        """The layout a `MorphableModel` takes (its `sizes`)."""
        return cls(*(int(k) for k in model.sizes))

    @property
    def sizes(self) -> tuple[int, ...]:
        """Sizes of the six parts, in `FIELDS` order."""
        return (self.id, self.exp, self.tex, NUM_ANGLES, NUM_GAMMA, NUM_TRANS)

    @property
    def dim(self) -> int:
        return sum(self.sizes)

    @property
    def slices(self) -> dict[str, slice]:
        """Where each part sits in the flat vector, by field name."""
        ends = np.cumsum(self.sizes).tolist()
        starts = [0, *ends[:-1]]
        return {f: slice(a, b) for f, a, b in zip(FIELDS, starts, ends, strict=True)}


def _width(s: slice) -> int:
    return s.stop - s.start


# Derived from the 257-d constants rather than restated, so the two cannot drift apart.
BFM = Layout(_width(coeff257.ID_SLICE), _width(coeff257.EXP_SLICE), _width(coeff257.TEX_SLICE))


def from_vector(vec: jax.Array, layout: Layout = BFM, name: str = "coefficients") -> FaceCoeffs:
    """Splits flat vectors [..., D] into `FaceCoeffs` (views of `vec`, same array type).

    Only the shape is checked (so this works under `jax.jit`); `check_vector` also checks values.

    Raises:
      InputError: the last dimension is not `layout.dim`.
    """
    _check_dim(vec.shape, layout, name)
    return FaceCoeffs(**{f: vec[..., s] for f, s in layout.slices.items()})


def to_vector(coeffs: FaceCoeffs) -> jax.Array:
    """`FaceCoeffs` -> flat vectors [..., D] in `FIELDS` order (the inverse of `from_vector`)."""
    return jnp.concatenate([getattr(coeffs, f) for f in FIELDS], axis=-1)


def zeros(layout: Layout = BFM, batch_shape: tuple[int, ...] = (), dtype=jnp.float32) -> FaceCoeffs:
    """All-zero coefficients: the mean face, frontal, at the origin, under the ambient light."""
    batch_shape = tuple(batch_shape)
    return FaceCoeffs(
        **{
            f: jnp.zeros((*batch_shape, k), dtype)
            for f, k in zip(FIELDS, layout.sizes, strict=True)
        }
    )


def layout_of(coeffs: FaceCoeffs, name: str = "coefficients") -> Layout:
    """The layout of `coeffs`, checking the fixed-size parts and that batch dims agree.

    Raises:
      InputError: angles/gamma/trans of the wrong size or fields with different batch dims.
    """
    for f, k in (("angles", NUM_ANGLES), ("gamma", NUM_GAMMA), ("trans", NUM_TRANS)):
        got = np.shape(getattr(coeffs, f))
        if len(got) == 0 or got[-1] != k:
            raise InputError(f"{name}: '{f}' must have {k} values per frame, got shape {got}")
    batch = coeffs.batch_shape
    for f in FIELDS:
        got = np.shape(getattr(coeffs, f))
        if len(got) == 0 or tuple(got[:-1]) != batch:
            raise InputError(
                f"{name}: '{f}' has shape {got}, but the batch dims of 'angles' are {batch}"
            )
    return Layout(*(int(np.shape(getattr(coeffs, f))[-1]) for f in ("id", "exp", "tex")))


def check_vector(vec, layout: Layout = BFM, name: str = "coefficients") -> np.ndarray:
    """Validates concrete flat vectors [..., D]; returns them as a numpy array.

    Raises:
      InputError: wrong last dimension (expected and got) or NaN/inf values.
    """
    vec = np.asarray(vec)
    if not np.issubdtype(vec.dtype, np.number):
        raise InputError(f"{name}: must be numeric, got dtype {vec.dtype}")
    _check_dim(vec.shape, layout, name)
    _check_finite(vec.reshape(-1, layout.dim), name)
    return vec


def check(
    coeffs: FaceCoeffs, layout: Layout | None = None, name: str = "coefficients"
) -> FaceCoeffs:
    """Validates concrete `FaceCoeffs` (sizes, matching batch dims, finite); returns them.

    Args:
      coeffs: the coefficients.
      layout: the expected basis sizes; None accepts any.
      name: what messages call the coefficients (e.g. the file they came from).

    Raises:
      InputError: a part of the wrong size, mismatched batch dims or NaN/inf values.
    """
    got = layout_of(coeffs, name)
    if layout is not None and got != layout:
        raise InputError(
            f"{name}: expected (id, exp, tex) sizes {(layout.id, layout.exp, layout.tex)}, "
            f"got {(got.id, got.exp, got.tex)}"
        )
    _check_finite(_concat_np(coeffs).reshape(-1, got.dim), name)
    return coeffs


def read_mat(path: str | os.PathLike, layout: Layout = BFM) -> tuple[FaceCoeffs, np.ndarray | None]:
    """Reads a coefficient .mat file (`coeff` [T, D], optional `transform_params` [T, 5]).

    Args:
      path: .mat file (MATLAB v4/v5/v7). `coeff` may also be [1, T, D].
      layout: the basis sizes the file was written for (D = layout.dim).

    Returns:
      (FaceCoeffs with float32 numpy fields and batch shape [T],
       float32 [T, 5] transform parameters, or None when the file has none).

    Raises:
      InputError: missing/unreadable file, wrong shapes (expected and got), NaN/inf values.
    """
    path = os.fspath(path)
    mat = coeff257.load_mat(path)
    coeff = coeff257.coeff_from_mat(mat, path, layout.dim).astype(np.float32)
    params = None
    if TRANSFORM_KEY in mat:
        params = _check_transform(mat[TRANSFORM_KEY], coeff.shape[0], path)
    return from_vector(coeff, layout, path), params


def write_mat(path: str | os.PathLike, coeffs: FaceCoeffs, transform_params=None) -> None:
    """Writes `coeff` [T, D] float32 (and `transform_params` [T, 5]) atomically.

    The file is written under a temporary name in the same directory and renamed over `path`,
    so a failure part-way never leaves a truncated file (an existing `path` stays as it was).

    Args:
      path: output .mat file.
      coeffs: FaceCoeffs with batch shape [T] (or [] for a single frame).
      transform_params: optional [T, 5] (w0, h0, scale, tx, ty) per frame.

    Raises:
      InputError: inconsistent or non-finite coefficients or transform parameters, or a
        missing output directory. Nothing is written then.
    """
    path = os.fspath(path)
    check(coeffs, name=f"{path}: coefficients to write")
    vec = _concat_np(coeffs).astype(np.float32)
    if vec.ndim == 1:
        vec = vec[None]  # a single frame is stored as [1, D], as the reference tools do
    if vec.ndim != 2 or vec.shape[0] == 0:
        raise InputError(
            f"{path}: coefficients to write must have batch shape [T] with T >= 1, "
            f"got {coeffs.batch_shape}"
        )
    arrays = {coeff257.COEFF_KEY: vec}
    if transform_params is not None:
        arrays[TRANSFORM_KEY] = _check_transform(transform_params, vec.shape[0], path)
    atomic_savemat(path, arrays)


def atomic_savemat(path: str | os.PathLike, arrays: dict) -> None:
    """`scipy.io.savemat` via a temporary file in the same directory and `os.replace`.

    Raises:
      InputError: the output directory does not exist.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError(f"cannot write {path}: directory {directory} does not exist")
    # Same directory, so os.replace is a rename within one file system (atomic on POSIX).
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "xb") as f:
            scipy.io.savemat(f, arrays, do_compression=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _check_dim(shape: tuple[int, ...], layout: Layout, name: str) -> None:
    got = shape[-1] if len(shape) else None
    if got != layout.dim:
        raise InputError(
            f"{name}: expected {layout.dim} values per frame (layout id={layout.id}, "
            f"exp={layout.exp}, tex={layout.tex}), got {got} (shape {tuple(shape)})"
        )


def _check_finite(rows: np.ndarray, name: str) -> None:
    """rows: [N, D]; reports the first bad rows (frames) by index."""
    ok = np.all(np.isfinite(rows), axis=-1)
    if not np.all(ok):
        bad = np.flatnonzero(~ok)
        raise InputError(f"{name}: NaN/inf values at frames {bad[:10].tolist()}")


def _concat_np(coeffs: FaceCoeffs) -> np.ndarray:
    # numpy rather than `to_vector`: file I/O should not need (or warm up) a JAX device.
    return np.concatenate([np.asarray(getattr(coeffs, f)) for f in FIELDS], axis=-1)


def _check_transform(params, num_frames: int, path: str) -> np.ndarray:
    """Validates transform parameters: [T, 5] (or [1, T, 5]), finite -> float32 [T, 5]."""
    params = np.asarray(params)
    if not np.issubdtype(params.dtype, np.number):
        raise InputError(f"{path}: '{TRANSFORM_KEY}' must be numeric, got dtype {params.dtype}")
    if params.ndim == 3 and params.shape[0] == 1:
        params = params[0]
    if params.shape != (num_frames, NUM_TRANSFORM):
        raise InputError(
            f"{path}: '{TRANSFORM_KEY}' must be [{num_frames}, {NUM_TRANSFORM}] "
            f"(one w0, h0, scale, tx, ty row per frame), got shape {params.shape}"
        )
    params = params.astype(np.float32)
    ok = np.all(np.isfinite(params), axis=-1)
    if not np.all(ok):
        raise InputError(
            f"{path}: '{TRANSFORM_KEY}' has NaN/inf values at frames "
            f"{np.flatnonzero(~ok)[:10].tolist()}"
        )
    return params
