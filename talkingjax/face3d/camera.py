"""The pinhole camera of the reference: posed vertices -> homogeneous pixel coordinates.

The camera sits at distance `distance` on +z looking down -z, so the camera-space depth of a
vertex is `distance - z`; image y points down. A vertex (x, y, z) maps to the pixel

    u = cx + focal * x / depth,      v = cy - focal * y / depth.

Pixel (row i, column j) covers [j, j + 1) x [i, i + 1); its centre is (j + 0.5, i + 0.5), so
the default principal point (112, 112) is the centre of a 224 x 224 image. (The reference code
treats integer coordinates as pixel centres, i.e. it is half a pixel off from this; landmark
coordinates read from it should have 0.5 added.)

The rasterizer takes *homogeneous* pixel coordinates (u * depth, v * depth, depth), which are
linear in the vertex and stay meaningful for vertices behind the camera (depth <= 0), where
u and v themselves are not.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Camera:
    """Intrinsics and the image size (static: hashable, so it can be a jit static argument)."""

    focal: float = 1015.0
    cx: float = 112.0
    cy: float = 112.0
    width: int = 224
    height: int = 224
    distance: float = 10.0
    near: float = 5.0
    far: float = 15.0

    def scaled(self, width: int, height: int | None = None) -> Camera:
        """The same view at another image size (focal and principal point scale with it)."""
        height = width if height is None else height
        if width * self.height != height * self.width:
            raise ValueError(
                f"cannot scale a {self.width}x{self.height} camera to {width}x{height}: "
                "the aspect ratio would change"
            )
        s = width / self.width
        return dataclasses.replace(
            self, focal=self.focal * s, cx=self.cx * s, cy=self.cy * s, width=width, height=height
        )


def to_homogeneous(camera: Camera, vertices: jax.Array) -> jax.Array:
    """Posed vertices [..., V, 3] -> homogeneous pixel coordinates [..., V, 3] (u w, v w, w)."""
    x, y, z = vertices[..., 0], vertices[..., 1], vertices[..., 2]
    depth = camera.distance - z
    return jnp.stack(
        [camera.cx * depth + camera.focal * x, camera.cy * depth - camera.focal * y, depth],
        axis=-1,
    )


def project(camera: Camera, vertices: jax.Array) -> jax.Array:
    """Posed vertices [..., V, 3] -> pixel coordinates [..., V, 2] (u, v); needs depth > 0."""
    h = to_homogeneous(camera, vertices)
    return h[..., :2] / h[..., 2:]
