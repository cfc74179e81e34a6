"""Mouth measures of expression coefficients on a face model (the expression evaluations').

- `mouth_points`: the 20 mouth landmarks (dlib 48-67 of the 68) of the mean identity with the
  given expressions, frontal, projected by the reference 224 px camera: the landmark distance
  (LMD) of `talkingjax.evaluation.expression` compares them;
- `mouth_opening`: the vertical inner-lip gap (points 62-66) in model units, the measure the
  synthetic expression corpus is driven by and the one correlated with the speech energy.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from talkingjax.data import synthetic_expression
from talkingjax.face3d import camera as camera_lib
from talkingjax.face3d import model as model_lib
from talkingjax.render import face

MOUTH = slice(48, 68)  # the 68 landmarks' mouth points


def mouth_points(
    model: model_lib.MorphableModel, exp: np.ndarray, camera: camera_lib.Camera | None = None
) -> np.ndarray:
    """[T, K] expression -> [T, 20, 2] pixel positions of the mouth landmarks (mean identity).

    The face is unposed (frontal, no translation) and projected by `camera` (default: the
    reference camera, 224 x 224, focal 1015 at distance 10) with `render.face.landmarks_2d`.
    """
    camera = camera or camera_lib.Camera()
    ids = jnp.zeros((exp.shape[0], model.sizes[0]))
    verts = model_lib.shape(model, ids, jnp.asarray(exp))
    return np.asarray(face.landmarks_2d(model, verts, camera, MOUTH))


def mouth_opening(model: model_lib.MorphableModel, exp: np.ndarray) -> np.ndarray:
    """[T] vertical inner-lip gap (model units, 1 = 10 cm) of expressions [T, K], mean identity.

    The same measure the synthetic corpus is driven by (`synthetic_expression.mouth_measures`).
    """
    return synthetic_expression.mouth_measures(model, exp)[0]
