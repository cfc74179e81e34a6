"""3DMM reconstruction of a talking-face video (paper 000 Sec. IV-A1, IV-B1).

One identity, albedo and SH light per video; expression and head pose per frame. The fit runs in
stages, each a jit-compiled optax loop, ordered so that the expensive renderer runs on few frames:

1. **identity**: landmarks of `num_keyframes` frames spread over the video, shared identity and
   per-keyframe expression and pose, from zero coefficients;
2. **tracking**: every frame in order, warm-started from the previous frame (`lax.scan`),
   identity fixed, landmark loss + priors + a pull toward the previous frame;
3. **refinement**: all frames jointly with second-difference smoothness of pose and expression
   (non-causal, so the tracking's lag is removed);
4. **colour**: shared albedo and SH light from the photometric loss on the keyframes, with the
   geometry of stages 1-3 held fixed: visibility and barycentrics are rasterized once, so each
   step is an interpolation, not a render;
5. **detailed albedo** (reference-facts.md): per-vertex colours of the most neutral, most frontal
   frame divided by the SH irradiance, for vertices that pass a visibility test.

Landmarks: the 2D MediaPipe points in crop pixels. For the default model (whose first 468
vertices *are* MediaPipe's mesh points) all 468 are used; for other models (BFM) the 68-point
mapping `topology.LANDMARKS_68` <-> `model.landmarks`. Frames where tracking lost the face
(their landmarks are interpolated) count with a small weight and are flagged in the report.
Weights are in units of squared pixels of a 224 crop; the coefficient priors keep the
reference's ratios to its landmark weight (`talkingjax.face3d.fit.FitConfig`).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.ndimage

from talkingjax.errors import InputError
from talkingjax.face3d import camera as camera_lib
from talkingjax.face3d import coeffs as coeffs_lib
from talkingjax.face3d import images, topology
from talkingjax.face3d import model as model_lib
from talkingjax.render import face as face_render
from talkingjax.render import rasterize as raster
from talkingjax.render import sh
from talkingjax.video import tracking

NUM_MESH_POINTS = topology.NUM_VERTICES  # 468 MediaPipe mesh points (478 with the irises)


@dataclasses.dataclass(frozen=True)
class VideoFitConfig:
    """Stages and weights of `fit_video` (hashable: a jit static argument)."""

    num_keyframes: int = 16
    num_color_frames: int = 8
    identity_steps: int = 300
    track_steps: int = 30
    refine_steps: int = 150
    color_steps: int = 100
    # Frame counts are padded to a multiple of this (padding has zero weight), so clips of
    # similar length share compiled programs instead of compiling once per length.
    frame_bucket: int = 32
    lr: float = 0.01
    color_lr: float = 0.02
    # Priors relative to one squared pixel of landmark error: a tenth of the reference's
    # ratios for identity and expression. Measured on the real 24 s video, the reference's
    # ratios leave blinks and wide-open mouths above 2 px (9 of 607 frames, mean 1.54 px);
    # a tenth gives mean 1.10 px, max 1.70 px. Texture and light keep the reference's ratios.
    w_id: float = 3e-4 / 1.6e-3 / 10
    w_exp: float = 3e-4 * 0.8 / 1.6e-3 / 10
    w_tex: float = 3e-4 * 1.7e-2 / 1.92
    w_gamma: float = 10.0 / 1.92
    # Temporal terms: pull toward the previous frame while tracking, second differences after.
    w_track: float = 200.0
    # Measured on the real 8 s video: 4x larger weights pull fast frames above 2 px RMSE;
    # the Gaussian filter of `smooth_pose` is there for smoother curves.
    w_smooth_pose: float = 50.0
    w_smooth_exp: float = 0.05
    lost_weight: float = 0.1
    detailed_albedo: bool = True
    # False: geometry only (stages 1-3; albedo and light stay zero, photometric is NaN, no
    # detailed albedo), for measuring head pose and expression (`evaluation.video`).
    color: bool = True


@dataclasses.dataclass
class VideoFit:
    """The result of `fit_video` (NumPy arrays).

    Attributes:
      coeffs: `FaceCoeffs` with batch [T] (identity, albedo and light repeated per frame).
      pose: [T, 6] float32 angles (x, y, z radians) then translation, in the crop's camera.
      landmark_rmse_px: [T] RMS landmark reprojection error in crop pixels.
      photometric: [T] mean absolute colour error (0-1) over the rendered face.
      detected: [T] bool, False where the face was lost by tracking.
      detailed_albedo: [V, 3] per-vertex albedo read from `reference_frame`, or None.
      reference_frame: the most neutral, most frontal frame.
      crop_size: the crop side in pixels.
    """

    coeffs: coeffs_lib.FaceCoeffs
    pose: np.ndarray
    landmark_rmse_px: np.ndarray
    photometric: np.ndarray
    detected: np.ndarray
    detailed_albedo: np.ndarray | None
    reference_frame: int
    crop_size: int

    def report(self) -> dict:
        """JSON-serialisable quality summary."""
        lost = np.flatnonzero(~self.detected)
        rmse = (
            self.landmark_rmse_px[self.detected] if self.detected.any() else self.landmark_rmse_px
        )
        return {
            "frames": int(len(self.pose)),
            "crop_size": self.crop_size,
            "landmark_rmse_px_mean": float(np.mean(rmse)),
            "landmark_rmse_px_max": float(np.max(rmse)),
            "frames_over_2px": np.flatnonzero(
                (self.landmark_rmse_px > 2.0) & self.detected
            ).tolist(),
            "photometric_mae_mean": float(np.nanmean(self.photometric)),
            "lost_frames": lost.tolist(),
            "reference_frame": int(self.reference_frame),
        }


def smooth_pose(pose: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Gaussian temporal filter of a pose sequence (paper 003 Eq. 1), per column.

    Args:
      pose: [T, D]; sigma_frames: the Gaussian's standard deviation in frames (0: unchanged).
    """
    if sigma_frames <= 0:
        return np.asarray(pose)
    return scipy.ndimage.gaussian_filter1d(
        np.asarray(pose, np.float64), sigma_frames, axis=0, mode="nearest"
    ).astype(np.float32)


# ------------------------------------------------------------------------------------------
# Landmark stages


def _landmark_model(model, vertices):
    """The model restricted to the landmark vertices (shape only): tiny, so stages 1-3 are cheap."""
    return model.replace(
        mean_shape=model.mean_shape[vertices],
        id_basis=model.id_basis[:, vertices],
        exp_basis=model.exp_basis[:, vertices],
    )


def _project(lm_model, camera, id_, exp, angles, trans):
    verts = model_lib.shape(lm_model, id_, exp)
    return camera_lib.project(camera, model_lib.rigid_transform(verts, angles, trans))


def _landmark_sq(lm_model, camera, points, weight, id_, exp, angles, trans):
    """Per-frame weighted mean squared landmark error in 224-crop pixels^2: [..., ]."""
    proj = _project(lm_model, camera, id_, exp, angles, trans)
    sq = jnp.mean(jnp.sum((proj - points) ** 2, axis=-1), axis=-1)
    return weight * sq * (224.0 / camera.width) ** 2


def _adam_loop(loss_fn, params, steps, lr):
    opt = optax.adam(lr)

    def step(carry, _):
        p, s = carry
        loss, grad = jax.value_and_grad(loss_fn)(p)
        updates, s = opt.update(grad, s, p)
        return (optax.apply_updates(p, updates), s), loss

    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params, losses


@functools.partial(jax.jit, static_argnames=("camera", "cfg"))
def _fit_landmarks(lm_model, points, weight, keyframes, camera, cfg):
    k_exp = lm_model.exp_basis.shape[0]
    t = points.shape[0]

    # 1. identity from keyframes.
    def key_loss(p):
        sq = _landmark_sq(
            lm_model, camera, points[keyframes], weight[keyframes], p["id"], p["exp"],
            p["angles"], p["trans"],
        )  # fmt: skip
        return (
            jnp.mean(sq)
            + cfg.w_id * jnp.sum(p["id"] ** 2)
            + cfg.w_exp * jnp.mean(jnp.sum(p["exp"] ** 2, -1))
        )

    nk = keyframes.shape[0]
    init = {
        "id": jnp.zeros(lm_model.id_basis.shape[0]),
        "exp": jnp.zeros((nk, k_exp)),
        "angles": jnp.zeros((nk, 3)),
        "trans": jnp.zeros((nk, 3)),
    }
    key, _ = _adam_loop(key_loss, init, cfg.identity_steps, cfg.lr)
    id_ = key["id"]

    # 2. frame-to-frame tracking, warm-started, identity fixed.
    def track(prev, frame):
        pts, w = frame

        def loss(p):
            sq = _landmark_sq(lm_model, camera, pts, w, id_, p["exp"], p["angles"], p["trans"])
            pull = (
                jnp.sum((p["angles"] - prev["angles"]) ** 2)
                + jnp.sum((p["trans"] - prev["trans"]) ** 2)
                + 1e-3 * jnp.sum((p["exp"] - prev["exp"]) ** 2)
            )
            return sq + cfg.w_exp * jnp.sum(p["exp"] ** 2) + cfg.w_track * pull

        p, _ = _adam_loop(loss, prev, cfg.track_steps, cfg.lr)
        return p, p

    first = {k: key[k][0] for k in ("exp", "angles", "trans")}
    _, seq = jax.lax.scan(track, first, (points, weight))

    # 3. joint refinement with second-difference smoothness.
    def second_diff(x):
        return jnp.sum((x[2:] - 2 * x[1:-1] + x[:-2]) ** 2) / max(t - 2, 1)

    def refine_loss(p):
        sq = _landmark_sq(lm_model, camera, points, weight, id_, p["exp"], p["angles"], p["trans"])
        return (
            jnp.mean(sq)
            + cfg.w_exp * jnp.mean(jnp.sum(p["exp"] ** 2, -1))
            + cfg.w_smooth_pose * (second_diff(p["angles"]) + second_diff(p["trans"]))
            + cfg.w_smooth_exp * second_diff(p["exp"])
        )

    seq, _ = _adam_loop(refine_loss, seq, cfg.refine_steps, cfg.lr)
    proj = _project(lm_model, camera, id_, seq["exp"], seq["angles"], seq["trans"])
    rmse = jnp.sqrt(jnp.mean(jnp.sum((proj - points) ** 2, axis=-1), axis=-1))
    return id_, seq, rmse


# ------------------------------------------------------------------------------------------
# Colour stage


@functools.partial(jax.jit, static_argnames=("camera", "cfg"))
def _fit_color(model, coeffs, images, camera, cfg):
    """Shared albedo and light on frames whose geometry is fixed (one rasterization)."""
    posed = face_render.pose_face(model, coeffs)
    pos_h = camera_lib.to_homogeneous(camera, posed.vertices)
    tri = raster.rasterize(pos_h, model.triangles, camera.height, camera.width,
                           near=camera.near, far=camera.far)  # fmt: skip
    bary, _ = raster.barycentrics(pos_h, model.triangles, tri)
    mask = (tri >= 0).astype(jnp.float32)
    skin = raster.interpolate(model.skin_mask[:, None], model.triangles, tri, bary)[..., 0]
    weight = mask * jnp.clip(skin, 0.0, 1.0)
    normals = posed.normals

    def loss(p):
        alb = model_lib.albedo(model, p["tex"])
        colors = alb * sh.irradiance(
            normals, jnp.broadcast_to(p["gamma"], (*normals.shape[:-2], 27))
        )
        image = raster.interpolate(colors, model.triangles, tri, bary)
        err = jnp.sqrt(jnp.maximum(jnp.sum((image - images) ** 2, axis=-1), 1e-10))
        photo = jnp.sum(weight * err) / jnp.maximum(jnp.sum(mask), 1.0)
        gamma = p["gamma"].reshape(3, -1)
        return (
            photo
            + cfg.w_tex * jnp.sum(p["tex"] ** 2)
            + cfg.w_gamma * jnp.mean((gamma - gamma.mean(0)) ** 2)
        )

    init = {"tex": jnp.zeros(model.albedo_basis.shape[0]), "gamma": jnp.zeros(sh.NUM_LIGHT)}
    p, losses = _adam_loop(loss, init, cfg.color_steps, cfg.color_lr)
    return p["tex"], p["gamma"], losses


@functools.partial(jax.jit, static_argnames=("camera",))
def _photometric(model, coeffs, images, camera):
    out = face_render.render_face(model, coeffs, camera)
    err = jnp.sum(out.mask[..., None] * jnp.abs(out.image - images), axis=(-3, -2, -1))
    return err / jnp.maximum(3 * jnp.sum(out.mask, axis=(-2, -1)), 1.0)


def _batched_photometric(model, frames, images, camera, batch: int) -> np.ndarray:
    """`_photometric` over fixed-size batches (one compiled program), padded at the end."""
    num = images.shape[0]
    pad = -num % batch
    frames = jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]), frames)
    images = np.concatenate([images, np.repeat(images[-1:], pad, axis=0)])
    out = [
        np.asarray(
            _photometric(
                model,
                jax.tree.map(lambda x, i=i: x[i : i + batch], frames),
                jnp.asarray(images[i : i + batch]),
                camera,
            )
        )
        for i in range(0, num + pad, batch)
    ]
    return np.concatenate(out)[:num]


def detailed_albedo(
    model: model_lib.MorphableModel,
    coeffs: coeffs_lib.FaceCoeffs,
    image: np.ndarray,
    camera: camera_lib.Camera,
) -> np.ndarray:
    """Per-vertex albedo read from one frame (reference-facts.md, with a visibility test).

    Each vertex takes the frame's colour at its projection divided by its SH irradiance; a
    vertex counts as visible when the rasterized depth at its pixel is within 1 % of its own
    depth and its normal faces the camera. Others keep the model albedo of `coeffs.tex`.

    Args:
      coeffs: unbatched coefficients of that frame. image: [H, W, 3] in [0, 1].

    Returns:
      [V, 3] float32 in [0, 1].
    """
    posed = face_render.pose_face(model, coeffs)
    out = face_render.render_face(model, coeffs, camera)
    uv = np.asarray(camera_lib.project(camera, posed.vertices))
    depth = camera.distance - np.asarray(posed.vertices)[:, 2]
    col = np.clip(np.floor(uv[:, 0]).astype(int), 0, camera.width - 1)
    row = np.clip(np.floor(uv[:, 1]).astype(int), 0, camera.height - 1)
    zbuf = np.asarray(out.depth)[row, col]
    color, inside = images.sample_bilinear(image, uv[:, 0], uv[:, 1])
    visible = inside & (zbuf > 0) & (np.abs(zbuf - depth) < 0.01 * depth)
    visible &= np.asarray(posed.normals)[:, 2] > 0.1
    irr = np.asarray(sh.irradiance(posed.normals, coeffs.gamma))
    read = color / np.maximum(irr, 1e-3)
    base = np.asarray(posed.albedo)
    return np.clip(np.where(visible[:, None], read, base), 0.0, 1.0).astype(np.float32)


def fit_portrait(
    model: model_lib.MorphableModel, image: np.ndarray, points: np.ndarray
) -> tuple[coeffs_lib.FaceCoeffs, np.ndarray, np.ndarray]:
    """One photo: the reference 224 crop, the fit and its detailed albedo.

    Args:
      model: the morphable model (its first 468 vertices are MediaPipe's mesh points).
      image: [H, W, 3] float in [0, 1].
      points: [>= 468, 2+] MediaPipe landmarks in image pixels, x right and y up, as
        `images.detect_portrait(s)` give them.

    Returns:
      (unbatched coefficients in the 224 crop's camera, detailed albedo [V, 3], crop
      transform [5] = (w0, h0, scale, tx, ty) of that crop).
    """
    from talkingjax.face3d import fit as fit_lib

    camera = camera_lib.Camera()
    mesh_vertices = np.arange(NUM_MESH_POINTS)
    pixels = np.stack([points[:, 0], -points[:, 1]], axis=1)  # the crop code's y is down
    crop, lm, params = fit_lib.crop_to_model(image, pixels, model, mesh_vertices, camera)
    coeffs, _ = fit_lib.fit_image(model, crop, lm, mesh_vertices, camera)
    return coeffs, detailed_albedo(model, coeffs, crop, camera), params


def fit_video(
    model: model_lib.MorphableModel,
    crops: np.ndarray,
    landmarks: np.ndarray,
    detected: np.ndarray | None = None,
    camera: camera_lib.Camera | None = None,
    config: VideoFitConfig | None = None,
) -> VideoFit:
    """Reconstructs a video's faces.

    Args:
      model: the morphable model.
      crops: [T, S, S, 3] uint8 (or float in [0, 1]) face crops (`tracking.crop_video`).
      landmarks: [T, P, 2] MediaPipe points in crop pixels, P >= 468 (478 with irises).
      detected: [T] bool, False where tracking lost the face (default: all True).
      camera: defaults to the reference camera scaled to S.
      config: stages and weights.

    Returns:
      `VideoFit`.

    Raises:
      InputError: mismatched shapes, fewer than 468 points, non-finite landmarks, no frames.
    """
    config = VideoFitConfig() if config is None else config
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.shape[1] != crops.shape[2]:
        raise InputError(f"crops must be [T, S, S, 3], got {crops.shape}")
    num, size = crops.shape[0], crops.shape[1]
    if num == 0:
        raise InputError("no frames to fit")
    camera = camera_lib.Camera().scaled(size) if camera is None else camera
    if (camera.width, camera.height) != (size, size):
        raise InputError(f"crops are {size} px but the camera is {camera.width} px")
    landmarks = np.asarray(landmarks, np.float32)
    if landmarks.shape[0] != num or landmarks.ndim != 3 or landmarks.shape[1] < NUM_MESH_POINTS:
        raise InputError(
            f"landmarks must be [{num}, >= {NUM_MESH_POINTS}, 2], got {landmarks.shape}"
        )
    if not np.all(np.isfinite(landmarks)):
        raise InputError("landmarks contain NaN/inf")
    detected = np.ones(num, bool) if detected is None else np.asarray(detected, bool)
    if detected.shape != (num,):
        raise InputError(f"detected must be [{num}], got {detected.shape}")
    images = (
        crops.astype(np.float32) / 255.0 if crops.dtype == np.uint8 else crops.astype(np.float32)
    )

    mp_idx, verts = tracking.correspondence(model)
    pad = -num % config.frame_bucket
    points = landmarks[:, mp_idx, :2]
    points = jnp.asarray(np.concatenate([points, np.repeat(points[-1:], pad, axis=0)]))
    weight = np.where(detected, 1.0, config.lost_weight).astype(np.float32)
    weight = jnp.asarray(np.concatenate([weight, np.zeros(pad, np.float32)]))
    keyframes = _keyframes(detected, config.num_keyframes)
    lm_model = _landmark_model(model, jnp.asarray(verts))
    id_, seq, rmse = _fit_landmarks(
        lm_model, points, weight, jnp.asarray(keyframes), camera, config
    )
    seq = jax.tree.map(lambda x: x[:num], seq)
    rmse = rmse[:num]

    layout = coeffs_lib.Layout.of(model)
    frames = coeffs_lib.zeros(layout, (num,)).replace(
        id=jnp.broadcast_to(id_, (num, id_.shape[0])),
        exp=seq["exp"],
        angles=seq["angles"],
        trans=seq["trans"],
    )
    photometric = np.full(num, np.nan, np.float32)
    if config.color:
        color_frames = _keyframes(detected, config.num_color_frames)
        key = jax.tree.map(lambda x: x[color_frames], frames)
        tex, gamma, _ = _fit_color(model, key, jnp.asarray(images[color_frames]), camera, config)
        frames = frames.replace(
            tex=jnp.broadcast_to(tex, (num, tex.shape[0])),
            gamma=jnp.broadcast_to(gamma, (num, gamma.shape[0])),
        )
        photometric = _batched_photometric(model, frames, images, camera, config.frame_bucket)
    frames_np = jax.tree.map(np.asarray, frames)
    ref = reference_frame(frames_np, detected)
    albedo = None
    if config.detailed_albedo and config.color:
        albedo = detailed_albedo(model, jax.tree.map(lambda x: x[ref], frames), images[ref], camera)
    pose = np.concatenate([frames_np.angles, frames_np.trans], axis=1).astype(np.float32)
    return VideoFit(
        coeffs=frames_np,
        pose=pose,
        landmark_rmse_px=np.asarray(rmse),
        photometric=photometric,
        detected=detected,
        detailed_albedo=albedo,
        reference_frame=ref,
        crop_size=size,
    )


def _keyframes(detected: np.ndarray, count: int) -> np.ndarray:
    """Up to `count` detected frames spread evenly over the video, always including the first."""
    good = np.flatnonzero(detected)
    if good.size == 0:
        good = np.arange(detected.size)
    pick = np.unique(np.round(np.linspace(0, good.size - 1, min(count, good.size))).astype(int))
    return good[pick]


def reference_frame(coeffs: coeffs_lib.FaceCoeffs, detected: np.ndarray) -> int:
    """The most neutral (smallest expression), most frontal (smallest rotation) detected frame."""
    exp = np.sum(np.asarray(coeffs.exp) ** 2, axis=-1)
    rot = np.sum(np.asarray(coeffs.angles) ** 2, axis=-1)
    score = exp / max(float(np.median(exp)), 1e-6) + rot / max(float(np.median(rot)), 1e-6)
    score = np.where(detected, score, np.inf)
    return int(np.argmin(score))


@dataclasses.dataclass
class Reconstruction:
    """Everything `reconstruct_video` computed for one video.

    Attributes:
      track: the MediaPipe track (`tracking.Track`, frame pixels).
      transform_params: [T, 5] crop transforms (w0, h0, scale, tx, ty) per frame.
      crops: [T, S, S, 3] uint8 face crops.
      landmarks: [T, 478, 2] landmarks in crop pixels.
      fit: the `VideoFit`.
      seconds: wall time per step ("track", "crop", "fit").
    """

    track: tracking.Track
    transform_params: np.ndarray
    crops: np.ndarray
    landmarks: np.ndarray
    fit: VideoFit
    seconds: dict


def reconstruct_video(
    path: str,
    model: model_lib.MorphableModel,
    crop_size: int = 224,
    max_frames: int | None = None,
    config: VideoFitConfig | None = None,
) -> Reconstruction:
    """Track -> stable crop -> fit: the whole per-video reconstruction.

    Args:
      path: a video file.
      model: the morphable model to fit.
      crop_size: side of the face crops (the reference camera is scaled to it).
      max_frames: only the first frames (default: all).
      config: fitting stages and weights.

    Raises:
      InputError: an unusable video or track (`tracking.track_video`), see `fit_video`.
    """
    import time

    t0 = time.perf_counter()
    frames = tracking.read_frames(path, count=max_frames)
    track = tracking.track_video(path, frames=frames)
    t1 = time.perf_counter()
    params = tracking.crop_track(track, model, size=crop_size)
    crops = tracking.crop_video(path, params, crop_size)
    landmarks = tracking.landmarks_in_crop(track, params)
    t2 = time.perf_counter()
    result = fit_video(model, crops, landmarks, track.detected, config=config)
    t3 = time.perf_counter()
    return Reconstruction(
        track=track,
        transform_params=params,
        crops=crops,
        landmarks=landmarks,
        fit=result,
        seconds={"track": t1 - t0, "crop": t2 - t1, "fit": t3 - t2},
    )
