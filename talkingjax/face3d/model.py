"""The morphable face model: a container of arrays and pure functions on it.

A `MorphableModel` holds a mean shape and linear identity/expression bases, a mean albedo and
albedo basis, the triangles, the landmark vertices and the per-vertex face lists that vertex
normals need. It is a pytree (`flax.struct.dataclass`), so it can be passed into `jax.jit`
functions as an argument rather than being baked in as constants: a 100 MB BFM then stays
one device buffer instead of being copied into every compiled program.

Conventions (the Deep3DFaceRecon / 257-d coefficient ones, see `talkingjax.face3d.coeffs`):
- model space is right-handed, y up, the face looking down +z, in the BFM's units (the
  shipped default model is scaled to the same face size, so a pose means the same for both);
- a face is posed as `R @ v + t` with `R = Rz(z) Ry(y) Rx(x)` (`talkingjax.geometry`);
- triangles are 0-based and counter-clockwise when the face is seen from the front (+z);
- albedo is RGB in [0, 1].
The camera (projection into pixels) is `talkingjax.face3d.camera`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from talkingjax import geometry
from talkingjax.errors import InputError


@struct.dataclass
class MorphableModel:
    """A linear 3D morphable face model. Shapes use V vertices and F triangles.

    Attributes:
      mean_shape: [V, 3] float32 mean face (model space).
      id_basis: [K_id, V, 3] identity basis (already scaled by its standard deviations):
        id_basis[k] is the k-th deformation field. Component-major so that evaluating the
        model is one [..., K] x [K, 3V] matrix product (6x faster on CPU than contracting
        the minor axis of [V, 3, K], the file layout, which `make_model` takes).
      exp_basis: [K_exp, V, 3] expression basis.
      mean_albedo: [V, 3] mean RGB albedo in [0, 1].
      albedo_basis: [K_tex, V, 3] albedo basis (in [0, 1] units).
      triangles: [F, 3] int32 vertex indices, counter-clockwise seen from the front.
      vertex_faces: [V, M] int32 faces around each vertex, padded with F ("no face"), so
        normals are one gather + sum (the BFM's `point_buf`).
      landmarks: [L] int32 vertex indices of the landmarks (68 for the BFM), may be empty.
      skin_mask: [V] float32, 1 on skin (what photometric losses should weight), else 0.
    """

    mean_shape: jax.Array
    id_basis: jax.Array
    exp_basis: jax.Array
    mean_albedo: jax.Array
    albedo_basis: jax.Array
    triangles: jax.Array
    vertex_faces: jax.Array
    landmarks: jax.Array
    skin_mask: jax.Array

    @property
    def num_vertices(self) -> int:
        return self.mean_shape.shape[0]

    @property
    def num_triangles(self) -> int:
        return self.triangles.shape[0]

    @property
    def sizes(self) -> tuple[int, int, int]:
        """(K_id, K_exp, K_tex): the coefficient sizes this model takes."""
        return self.id_basis.shape[0], self.exp_basis.shape[0], self.albedo_basis.shape[0]


def vertex_faces_from_triangles(triangles: np.ndarray, num_vertices: int) -> np.ndarray:
    """[V, M] faces around each vertex (padded with F), M = the largest vertex valence."""
    triangles = np.asarray(triangles, np.int64)
    num_faces = triangles.shape[0]
    vert = triangles.reshape(-1)
    face = np.repeat(np.arange(num_faces), 3)
    order = np.argsort(vert, kind="stable")
    vert, face = vert[order], face[order]
    counts = np.bincount(vert, minlength=num_vertices)
    width = max(int(counts.max(initial=0)), 1)
    slot = np.arange(vert.size) - np.repeat(np.cumsum(counts) - counts, counts)
    out = np.full((num_vertices, width), num_faces, np.int32)
    out[vert, slot] = face
    return out


def make_model(
    mean_shape,
    id_basis,
    exp_basis,
    mean_albedo,
    albedo_basis,
    triangles,
    landmarks=None,
    vertex_faces=None,
    skin_mask=None,
    name: str = "model",
) -> MorphableModel:
    """Validates numpy arrays and builds a `MorphableModel` (float32 / int32 device arrays).

    Bases come in the file layout [V, 3, K] (column k of the BFM's [3V, K] matrices, reshaped)
    and are stored component-major, [K, V, 3].

    Raises:
      InputError: inconsistent shapes, out-of-range indices or non-finite values, each named.
    """
    mean_shape = np.asarray(mean_shape, np.float32)
    if mean_shape.ndim != 2 or mean_shape.shape[1] != 3 or mean_shape.shape[0] < 3:
        raise InputError(f"{name}: mean shape must be [V, 3], got {mean_shape.shape}")
    num_v = mean_shape.shape[0]
    arrays = {"mean shape": mean_shape}
    for label, basis in (
        ("identity basis", id_basis),
        ("expression basis", exp_basis),
        ("albedo basis", albedo_basis),
    ):
        basis = np.asarray(basis, np.float32)
        if basis.ndim != 3 or basis.shape[:2] != (num_v, 3):
            raise InputError(f"{name}: {label} must be [{num_v}, 3, K], got {basis.shape}")
        arrays[label] = basis
    mean_albedo = np.asarray(mean_albedo, np.float32)
    if mean_albedo.shape != (num_v, 3):
        raise InputError(f"{name}: mean albedo must be [{num_v}, 3], got {mean_albedo.shape}")
    arrays["mean albedo"] = mean_albedo
    for label, arr in arrays.items():
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name}: {label} has NaN/inf values")
    triangles = _indices(triangles, num_v, f"{name}: triangles")
    if triangles.ndim != 2 or triangles.shape[1] != 3 or triangles.shape[0] == 0:
        raise InputError(f"{name}: triangles must be [F, 3], got {triangles.shape}")
    landmarks = _indices(
        np.zeros(0) if landmarks is None else landmarks, num_v, f"{name}: landmarks"
    ).reshape(-1)
    if vertex_faces is None:
        vertex_faces = vertex_faces_from_triangles(triangles, num_v)
    else:
        vertex_faces = _indices(vertex_faces, triangles.shape[0] + 1, f"{name}: vertex faces")
        if vertex_faces.ndim != 2 or vertex_faces.shape[0] != num_v:
            raise InputError(f"{name}: vertex faces must be [{num_v}, M], got {vertex_faces.shape}")
    skin = np.ones(num_v, np.float32) if skin_mask is None else np.asarray(skin_mask, np.float32)
    if skin.shape != (num_v,):
        raise InputError(f"{name}: skin mask must be [{num_v}], got {skin.shape}")
    return MorphableModel(
        mean_shape=jnp.asarray(mean_shape),
        id_basis=jnp.asarray(np.moveaxis(arrays["identity basis"], -1, 0)),
        exp_basis=jnp.asarray(np.moveaxis(arrays["expression basis"], -1, 0)),
        mean_albedo=jnp.asarray(mean_albedo),
        albedo_basis=jnp.asarray(np.moveaxis(arrays["albedo basis"], -1, 0)),
        triangles=jnp.asarray(triangles),
        vertex_faces=jnp.asarray(vertex_faces),
        landmarks=jnp.asarray(landmarks),
        skin_mask=jnp.asarray(skin),
    )


def _indices(values, limit: int, what: str) -> np.ndarray:
    values = np.asarray(values)
    if values.size and not np.issubdtype(values.dtype, np.integer):
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise InputError(f"{what} must be integers")
    values = values.astype(np.int64)
    if values.size and (values.min() < 0 or values.max() >= limit):
        raise InputError(
            f"{what} out of range [0, {limit}): min {values.min()}, max {values.max()}"
        )
    return values.astype(np.int32)


def shape(model: MorphableModel, id_coeff: jax.Array, exp_coeff: jax.Array) -> jax.Array:
    """Face vertices in model space: mean + identity + expression.

    Args:
      model: the morphable model.
      id_coeff: [..., K_id]; exp_coeff: [..., K_exp] (same leading dims).

    Returns:
      [..., V, 3].
    """
    return (
        model.mean_shape + _combine(model.id_basis, id_coeff) + _combine(model.exp_basis, exp_coeff)
    )


def _combine(basis: jax.Array, coeff: jax.Array) -> jax.Array:
    """sum_k coeff[..., k] basis[k]: [..., K] x [K, V, 3] -> [..., V, 3], as one matmul."""
    flat = coeff.reshape(-1, coeff.shape[-1]) @ basis.reshape(basis.shape[0], -1)
    return flat.reshape(*coeff.shape[:-1], *basis.shape[1:])


def albedo(model: MorphableModel, tex_coeff: jax.Array) -> jax.Array:
    """Per-vertex RGB albedo [..., V, 3] from texture coefficients [..., K_tex]."""
    return model.mean_albedo + _combine(model.albedo_basis, tex_coeff)


def face_normals(vertices: jax.Array, triangles: jax.Array) -> jax.Array:
    """Unnormalised face normals [..., F, 3] (length = twice the area), outward for CCW faces."""
    v0, v1, v2 = (jnp.take(vertices, triangles[:, i], axis=-2) for i in range(3))
    return jnp.cross(v1 - v0, v2 - v0)


def vertex_normals(model: MorphableModel, vertices: jax.Array) -> jax.Array:
    """Unit vertex normals [..., V, 3]: the normalised sum of the adjacent unit face normals.

    As in the reference, every adjacent face counts equally (not area-weighted).
    """
    fn = _unit(face_normals(vertices, model.triangles))
    # Index F of `vertex_faces` means "no face": it reads this appended zero row.
    fn = jnp.concatenate([fn, jnp.zeros_like(fn[..., :1, :])], axis=-2)
    summed = jnp.take(fn, model.vertex_faces, axis=-2).sum(axis=-2)
    return _unit(summed)


def _unit(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    # sqrt(max(., eps)) keeps the gradient finite for zero-length vectors (degenerate faces).
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps))


def rigid_transform(vertices: jax.Array, angles: jax.Array, trans: jax.Array) -> jax.Array:
    """`R(angles) @ v + trans` for every vertex: [..., V, 3] with angles, trans [..., 3]."""
    rot = geometry.euler_to_rotation(angles)
    return jnp.einsum("...ij,...vj->...vi", rot, vertices) + trans[..., None, :]


def rotate(vectors: jax.Array, angles: jax.Array) -> jax.Array:
    """`R(angles) @ n` for directions such as normals: [..., V, 3]."""
    return jnp.einsum("...ij,...vj->...vi", geometry.euler_to_rotation(angles), vectors)


def save(model: MorphableModel, path: str, **metadata) -> None:
    """Writes the model as a compressed .npz (what `load` reads); `metadata` strings go along."""
    arrays = {k: np.asarray(getattr(model, k)) for k in _FIELDS}
    for k in ("id_basis", "exp_basis", "albedo_basis"):  # files keep the [V, 3, K] layout
        arrays[k] = np.moveaxis(arrays[k], 0, -1)
    meta = {f"meta_{k}": np.asarray(str(v)) for k, v in metadata.items()}
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays, **meta)


def load(path: str) -> MorphableModel:
    """Reads a model .npz written by `save`.

    Raises:
      InputError: missing/unreadable file or missing/malformed arrays.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if not k.startswith("meta_")}
    except FileNotFoundError:
        raise InputError(f"face model not found: {path}") from None
    except Exception as err:
        raise InputError(f"cannot read face model {path}: {err}") from None
    missing = [k for k in _FIELDS if k not in arrays]
    if missing:
        raise InputError(f"face model {path} lacks arrays {missing}")
    return make_model(**{k: arrays[k] for k in _FIELDS}, name=str(path))


def metadata(path: str) -> dict[str, str]:
    """The `metadata` strings stored by `save`."""
    with np.load(path, allow_pickle=False) as data:
        return {k[5:]: str(data[k]) for k in data.files if k.startswith("meta_")}


_FIELDS = (
    "mean_shape",
    "id_basis",
    "exp_basis",
    "mean_albedo",
    "albedo_basis",
    "triangles",
    "vertex_faces",
    "landmarks",
    "skin_mask",
)
