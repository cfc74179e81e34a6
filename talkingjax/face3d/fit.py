"""Fitting morphable-model coefficients to a face image by analysis-by-synthesis.

The loss is the reference reconstruction's (Deep3DFaceRecon, which paper 000 builds on), with
its usual weights as defaults:

    w_lm    * mean_l ||proj(v_l) - p_l||^2            landmarks, in pixels of a 224 image
  + w_photo * sum_px skin * ||render - image||_2 / sum_px mask      photometric
  + w_id ||id||^2 + w_exp ||exp||^2 + w_tex ||tex||^2              coefficient priors
  + w_gamma * mean (gamma_c - mean_c gamma_c)^2                     near-white light

It is optimised with Adam through the differentiable renderer: first landmarks only (pose,
identity, expression), then everything. `crop_to_model` cuts a square crop around detected
landmarks so that the face lands where the model's mean face projects, which is what makes
zero coefficients a good starting point; its (w0, h0, scale, tx, ty) are the `transform_params`
of `talkingjax.face3d.coeffs` files.
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import optax

from talkingjax.errors import InputError
from talkingjax.face3d import camera as camera_lib
from talkingjax.face3d import coeffs as coeffs_lib
from talkingjax.face3d import model as model_lib
from talkingjax.render import face as face_render


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Weights and schedule of `fit_image` (hashable: a jit static argument)."""

    landmark_steps: int = 150
    joint_steps: int = 250
    lr: float = 0.01
    w_lm: float = 1.6e-3
    w_photo: float = 1.92
    # The reference's 3e-4 regularisation weight times its per-part weights (1, 0.8, 1.7e-2).
    w_id: float = 3e-4
    w_exp: float = 3e-4 * 0.8
    w_tex: float = 3e-4 * 1.7e-2
    w_gamma: float = 10.0


def crop_params(
    landmarks: np.ndarray,
    model: model_lib.MorphableModel,
    landmark_vertices: np.ndarray,
    camera: camera_lib.Camera,
    frame_size: tuple[int, int],
) -> np.ndarray:
    """The crop that places detected landmarks where the model's mean face projects.

    Args:
      landmarks: [L, 2] detected pixel positions (x, y) in the frame.
      model: the model; its mean shape is projected with zero pose by `camera`.
      landmark_vertices: [L] model vertices that the landmarks correspond to.
      camera: the fitting camera (its size is the crop size).
      frame_size: (width, height) of the frame.

    Returns:
      transform_params [5] float32 = (w0, h0, scale, tx, ty): crop = scale * frame + (tx, ty)
      in continuous pixel coordinates (centres at +0.5). Least-squares scale and translation,
      no rotation: the fit recovers roll itself.
    """
    target = np.asarray(
        camera_lib.project(camera, jnp.asarray(model.mean_shape)[np.asarray(landmark_vertices)])
    )
    src = np.asarray(landmarks, np.float64)
    sc, tc = src - src.mean(0), target - target.mean(0)
    scale = float(np.sum(sc * tc) / np.sum(sc * sc))
    shift = target.mean(0) - scale * src.mean(0)
    return np.array([frame_size[0], frame_size[1], scale, shift[0], shift[1]], np.float32)


def apply_crop(image: np.ndarray, params: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Cuts the crop `params` (`crop_params`) of size (width, height) out of `image`."""
    scale, tx, ty = (float(x) for x in params[2:5])
    # warpAffine maps pixel centres at integers; ours are at +0.5.
    offset = 0.5 * (scale - 1)
    affine = np.array([[scale, 0.0, tx + offset], [0.0, scale, ty + offset]])
    return cv2.warpAffine(
        np.ascontiguousarray(image),
        affine,
        size,
        flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def to_crop(points: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Frame pixel positions [..., 2] -> crop pixel positions (`crop_params`)."""
    return (np.asarray(points) * params[2] + params[3:5]).astype(np.float32)


def crop_to_model(
    image: np.ndarray,
    landmarks: np.ndarray,
    model: model_lib.MorphableModel,
    landmark_vertices: np.ndarray,
    camera: camera_lib.Camera,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`crop_params` + `apply_crop` for one image.

    Returns:
      crop [camera.height, camera.width, 3] (same dtype), landmarks [L, 2] in crop pixels, and
      transform_params [5] = (w0, h0, scale, tx, ty).
    """
    size = (image.shape[1], image.shape[0])
    params = crop_params(landmarks, model, landmark_vertices, camera, size)
    crop = apply_crop(image, params, (camera.width, camera.height))
    return crop, to_crop(landmarks, params), params


def _losses(coeffs, model, image, landmarks, landmark_vertices, camera, cfg, photo_weight):
    out = face_render.render_face(model, coeffs, camera)
    posed = face_render.pose_face(model, coeffs)
    proj = camera_lib.project(camera, posed.vertices[landmark_vertices])
    # Pixel distances rescaled to a 224 image, so the weight does not depend on the size.
    lm = jnp.mean(jnp.sum((proj - landmarks) ** 2, axis=-1)) * (224.0 / camera.width) ** 2
    skin = jnp.clip(
        face_render.raster.interpolate(
            model.skin_mask[:, None], model.triangles, out.triangle, out.bary
        )[..., 0],
        0.0,
        1.0,
    )
    weight = out.mask * skin
    # sqrt(max(., eps)): the L2 norm of a zero residual has an infinite gradient otherwise.
    err = jnp.sqrt(jnp.maximum(jnp.sum((out.image - image) ** 2, axis=-1), 1e-10))
    photo = jnp.sum(weight * err) / jnp.maximum(jnp.sum(out.mask), 1.0)
    gamma = coeffs.gamma.reshape(3, -1)
    terms = {
        "landmark": lm,
        "photometric": photo,
        "id_prior": jnp.sum(coeffs.id**2),
        "exp_prior": jnp.sum(coeffs.exp**2),
        "tex_prior": jnp.sum(coeffs.tex**2),
        "gamma_prior": jnp.mean((gamma - gamma.mean(0)) ** 2),
    }
    total = (
        cfg.w_lm * lm
        + photo_weight * cfg.w_photo * photo
        + cfg.w_id * terms["id_prior"]
        + cfg.w_exp * terms["exp_prior"]
        + cfg.w_tex * terms["tex_prior"]
        + cfg.w_gamma * terms["gamma_prior"]
    )
    return total, terms


@functools.partial(jax.jit, static_argnames=("camera", "cfg"))
def _fit(model, image, landmarks, landmark_vertices, init, camera, cfg):
    opt = optax.adam(cfg.lr)

    def stage(coeffs, steps, photo_weight, frozen):
        state = opt.init(coeffs)

        def step(carry, _):
            c, s = carry
            (loss, terms), grad = jax.value_and_grad(_losses, has_aux=True)(
                c, model, image, landmarks, landmark_vertices, camera, cfg, photo_weight
            )
            # Landmarks say nothing about albedo or light: keep them at their start.
            grad = grad.replace(**{k: jnp.zeros_like(getattr(grad, k)) for k in frozen})
            updates, s = opt.update(grad, s, c)
            return (optax.apply_updates(c, updates), s), {"loss": loss, **terms}

        (coeffs, _), hist = jax.lax.scan(step, (coeffs, state), None, length=steps)
        return coeffs, hist

    coeffs, h1 = stage(init, cfg.landmark_steps, 0.0, ("tex", "gamma"))
    coeffs, h2 = stage(coeffs, cfg.joint_steps, 1.0, ())
    return coeffs, jax.tree.map(lambda a, b: jnp.concatenate([a, b]), h1, h2)


def fit_image(
    model: model_lib.MorphableModel,
    image: np.ndarray,
    landmarks: np.ndarray,
    landmark_vertices: np.ndarray,
    camera: camera_lib.Camera | None = None,
    config: FitConfig | None = None,
    init: coeffs_lib.FaceCoeffs | None = None,
) -> tuple[coeffs_lib.FaceCoeffs, dict[str, np.ndarray]]:
    """Fits coefficients to one face image.

    Args:
      model: the morphable model.
      image: [H, W, 3] RGB in [0, 1], the size of `camera` (e.g. from `crop_to_model`).
      landmarks: [L, 2] pixel positions (x, y) of the landmarks in `image`.
      landmark_vertices: [L] model vertex of each landmark.
      camera: defaults to the reference 224 x 224 camera.
      config: weights and steps (`FitConfig`).
      init: starting coefficients (default zeros: mean face, frontal, centred).

    Returns:
      (coeffs, history): fitted `FaceCoeffs` and per-step loss terms, each [steps].

    Raises:
      InputError: wrong image size or landmark shapes, non-finite input.
    """
    camera = camera_lib.Camera() if camera is None else camera
    config = FitConfig() if config is None else config
    image = np.asarray(image, np.float32)
    if image.shape != (camera.height, camera.width, 3):
        raise InputError(
            f"image is {image.shape}; the camera needs ({camera.height}, {camera.width}, 3)"
        )
    landmarks = np.asarray(landmarks, np.float32)
    landmark_vertices = np.asarray(landmark_vertices, np.int32)
    if landmarks.shape != (len(landmark_vertices), 2):
        raise InputError(
            f"landmarks are {landmarks.shape}; expected ({len(landmark_vertices)}, 2), "
            "one per landmark vertex"
        )
    if not (np.all(np.isfinite(image)) and np.all(np.isfinite(landmarks))):
        raise InputError("image or landmarks contain NaN/inf")
    if init is None:
        init = coeffs_lib.zeros(coeffs_lib.Layout.of(model))
    coeffs, hist = _fit(model, image, landmarks, landmark_vertices, init, camera, config)
    return coeffs, {k: np.asarray(v) for k, v in hist.items()}
