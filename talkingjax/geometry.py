"""Rotation conventions shared by the pose model, losses, metrics and (later) the renderer.

Euler angles follow the Deep3DFaceRecon / 257-d coefficient convention: angles (x, y, z) in
radians, R = Rz(z) @ Ry(y) @ Rx(x) applied to column vectors (x first, then y, then z).
x is pitch (nod), y is yaw (turn), z is roll (tilt).
"""

import jax.numpy as jnp


def euler_to_rotation(angles: jnp.ndarray) -> jnp.ndarray:
    """Rotation matrices from Euler angles.

    Args:
      angles: [..., 3] (x, y, z) radians.

    Returns:
      [..., 3, 3] R = Rz(z) Ry(y) Rx(x).
    """
    x, y, z = angles[..., 0], angles[..., 1], angles[..., 2]
    cx, sx, cy, sy, cz, sz = jnp.cos(x), jnp.sin(x), jnp.cos(y), jnp.sin(y), jnp.cos(z), jnp.sin(z)
    # Rows of the product Rz @ Ry @ Rx written out, so no [..., 3, 3] temporaries are built.
    r0 = jnp.stack([cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx], axis=-1)
    r1 = jnp.stack([sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx], axis=-1)
    r2 = jnp.stack([-sy, cy * sx, cy * cx], axis=-1)
    return jnp.stack([r0, r1, r2], axis=-2)
