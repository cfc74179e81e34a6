"""Rendering a morphable face from its coefficients (stage 2 of paper 000).

`render_face` is the whole reference pipeline as one differentiable function:

    shape(id, exp) -> R(angles) v + trans -> camera -> rasterize
    albedo(tex) * SH irradiance(R n, gamma) per vertex -> interpolated per pixel

Colours are computed per vertex and interpolated (Gouraud shading), as in the reference.
Gradients reach every coefficient through the vertex positions (barycentrics) and colours;
which triangle is visible at a pixel is discrete and has no gradient. `render_mesh` is the
same for any mesh with per-vertex colours.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from talkingjax.errors import InputError
from talkingjax.face3d import camera as camera_lib
from talkingjax.face3d import model as model_lib
from talkingjax.face3d.coeffs import FaceCoeffs
from talkingjax.render import rasterize as raster
from talkingjax.render import sh


@struct.dataclass
class Rendering:
    """What `render_face` / `render_mesh` return; leading batch dims as the input.

    Attributes:
      image: [..., H, W, 3] RGB, the background where nothing is drawn.
      mask: [..., H, W] float32, 1 where the mesh is visible.
      depth: [..., H, W] camera-space depth, 0 on background.
      triangle: [..., H, W] int32 visible triangle, -1 on background.
      bary: [..., H, W, 3] perspective-correct barycentrics of the visible triangle.
    """

    image: jax.Array
    mask: jax.Array
    depth: jax.Array
    triangle: jax.Array
    bary: jax.Array


@struct.dataclass
class PosedFace:
    """A face mesh in camera-ready world space, before rasterization.

    Attributes:
      vertices: [..., V, 3] posed vertices R v + t.
      normals: [..., V, 3] rotated unit vertex normals.
      albedo: [..., V, 3] per-vertex albedo.
      colors: [..., V, 3] lit per-vertex colours, albedo * irradiance.
    """

    vertices: jax.Array
    normals: jax.Array
    albedo: jax.Array
    colors: jax.Array


def pose_face(model: model_lib.MorphableModel, coeffs: FaceCoeffs) -> PosedFace:
    """Shape, pose, normals and SH-lit vertex colours of a face (no rasterization).

    Raises:
      InputError: coefficient sizes that do not match the model (checked on shapes, so it
        works under jit).
    """
    check_sizes(model, coeffs)
    verts = model_lib.shape(model, coeffs.id, coeffs.exp)
    normals = model_lib.rotate(model_lib.vertex_normals(model, verts), coeffs.angles)
    posed = model_lib.rigid_transform(verts, coeffs.angles, coeffs.trans)
    albedo = model_lib.albedo(model, coeffs.tex)
    colors = albedo * sh.irradiance(normals, coeffs.gamma)
    return PosedFace(vertices=posed, normals=normals, albedo=albedo, colors=colors)


def check_sizes(model: model_lib.MorphableModel, coeffs: FaceCoeffs) -> None:
    """Raises InputError unless `coeffs` has the model's sizes, matching batch dims and (when
    called outside jit) finite values."""
    want = dict(zip(("id", "exp", "tex"), model.sizes, strict=True))
    want.update(angles=3, gamma=sh.NUM_LIGHT, trans=3)
    batch = coeffs.id.shape[:-1]
    for name, size in want.items():
        value = getattr(coeffs, name)
        if value.shape[-1:] != (size,) or value.shape[:-1] != batch:
            raise InputError(
                f"coefficient '{name}' has shape {value.shape}; this model needs [..., {size}] "
                f"with the same batch dims {batch} as 'id'"
            )
        # Values can only be checked outside jit; traced calls rely on the caller's checks
        # (`coeffs.read_mat`, `fit.fit_image` check what they read).
        if not isinstance(value, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(value))):
            raise InputError(f"coefficient '{name}' has NaN/inf values")


def landmarks_2d(
    model: model_lib.MorphableModel,
    posed_vertices: jax.Array,
    camera: camera_lib.Camera,
    which: slice | np.ndarray = slice(None),
) -> jax.Array:
    """Pixel positions [..., L, 2] of the model's landmark vertices `model.landmarks[which]`.

    Args:
      model: the morphable model; `model.landmarks` [68] are its landmark vertex indices.
      posed_vertices: [..., V, 3] vertices in world space (`pose_face`, or an unposed shape).
      camera: the projection (`talkingjax.face3d.camera.project`).
      which: the landmarks to project (default all; e.g. `slice(48, 68)`, the mouth).
    """
    return camera_lib.project(camera, jnp.take(posed_vertices, model.landmarks[which], axis=-2))


def render_mesh(
    vertices: jax.Array,
    triangles: jax.Array,
    colors: jax.Array,
    camera: camera_lib.Camera,
    background: jax.Array | float = 0.0,
    cull_backfaces: bool = False,
    frames_per_pass: int | None = None,
) -> Rendering:
    """Renders a mesh with per-vertex colours.

    Args:
      vertices: [..., V, 3] world-space vertices (the camera looks down -z from +distance).
      triangles: [F, 3] vertex indices.
      colors: [..., V, C] per-vertex colours (or any attributes).
      camera: intrinsics and image size (`talkingjax.face3d.camera.Camera`).
      background: scalar or [..., H, W, C] image shown where the mesh is not.
      cull_backfaces: skip triangles facing away from the camera.
      frames_per_pass: see `talkingjax.render.rasterize.rasterize`.

    Returns:
      `Rendering`; the near/far planes are the camera's.
    """
    pos_h = camera_lib.to_homogeneous(camera, vertices)
    triangle = raster.rasterize(
        pos_h,
        triangles,
        camera.height,
        camera.width,
        near=camera.near,
        far=camera.far,
        cull_backfaces=cull_backfaces,
        frames_per_pass=frames_per_pass,
    )
    bary, depth = raster.barycentrics(pos_h, triangles, triangle)
    mask = (triangle >= 0).astype(colors.dtype)
    image = raster.interpolate(colors, triangles, triangle, bary)
    image = image + (1.0 - mask[..., None]) * background
    return Rendering(image=image, mask=mask, depth=depth, triangle=triangle, bary=bary)


def render_face(
    model: model_lib.MorphableModel,
    coeffs: FaceCoeffs,
    camera: camera_lib.Camera | None = None,
    background: jax.Array | float = 0.0,
    cull_backfaces: bool = False,
    frames_per_pass: int | None = None,
) -> Rendering:
    """Renders faces from coefficients (differentiable w.r.t. every coefficient).

    Args:
      model: the morphable model (an argument, not a constant, so jit does not embed it).
      coeffs: `FaceCoeffs` with any leading batch dims, sizes matching `model.sizes`.
      camera: defaults to the reference camera (224 x 224, focal 1015, distance 10).
      background, cull_backfaces, frames_per_pass: as in `render_mesh`.

    Returns:
      `Rendering` with image [..., H, W, 3] in the albedo's [0, 1] units.
    """
    camera = camera_lib.Camera() if camera is None else camera
    face = pose_face(model, coeffs)
    return render_mesh(
        face.vertices,
        model.triangles,
        face.colors,
        camera,
        background=background,
        cull_backfaces=cull_backfaces,
        frames_per_pass=frames_per_pass,
    )
