"""Builds the default morphable face model from real portraits and talking-face videos.

    python -m experiments.build_default_face --faces=DIR --videos=DIR [--out=PATH]

The model needs no licence-gated scans: MediaPipe's face mesh (468 vertices, `topology`) is
fitted to every portrait and video frame, and the model is learned from those fits:

- shape: portraits' landmarks are similarity-aligned (generalised Procrustes); their mean is the
  mean shape and PCA of their deviations the identity basis;
- expression: every video's frames are rigidly aligned on stable vertices (forehead, nose
  bridge, eye corners) and their deviations from that video's own mean (identity cancels)
  pooled over videos; PCA gives the expression basis. The portraits' own expressions (smiles,
  open mouths) are fitted with that basis and removed before the identity PCA;
- albedo: every portrait's colours are read at the (subdivided) mesh vertices, de-lit with a
  per-image SH light (`talkingjax.render.sh`), and averaged / PCA'd.
Bases are scaled by their component standard deviations (coefficients ~ N(0, 1), as the
BFM's), all data is mirrored (x -> -x with the mesh's left/right vertex correspondence) so the
model is symmetric, and 1 unit is 10 cm (the mean outer-eye-corner distance is fixed to
0.9 units: the BFM / Deep3DFaceRecon scale, their camera is focal 1015 at distance 10).
The mesh is midpoint-subdivided (`levels` times) so eyes and lips have enough vertices for
224-pixel renders; the shape bases are carried over exactly by the subdivision operator.

`build_model` and its helpers are numpy on landmark arrays and images (testable without
MediaPipe); only `images.detect_portraits` / `video_landmarks` run MediaPipe. The bases are
rounded to float16 precision (stored as float32) so the compressed asset stays small
(`round_bits`). Portrait reading and detection live in `talkingjax.face3d.images` (the runtime
uses them too); the command line is `experiments/build_default_face.py`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import zipfile

import numpy as np

from talkingjax.errors import InputError
from talkingjax.face3d import images, topology
from talkingjax.face3d import model as mm

log = logging.getLogger(__name__)

DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "assets", "default_face.npz")

# Vertices that move little with expression (rigid alignment of video frames): forehead,
# nose bridge and the eye corners -- not mouth, jaw, eyelids or brows.
STABLE_VERTICES = (
    10, 151, 9, 8, 109, 67, 103, 338, 297, 332, 108, 69, 337, 299,  # forehead
    168, 6, 197, 195, 5,  # nose bridge
    33, 133, 263, 362,  # eye corners
    127, 356,  # upper face outline, level with the eyes
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """Knobs of the build (the defaults built the shipped asset)."""

    levels: int = 2  # midpoint subdivisions: 468 -> 1833 -> 7257 vertices
    id_variance: float = 0.98
    id_max: int = 60
    exp_variance: float = 0.95
    exp_max: int = 32
    tex_variance: float = 0.95
    tex_max: int = 40
    eye_distance: float = 0.9  # model units (10 cm) between the outer eye corners
    mirror: bool = True
    remove_expression: bool = True  # fit + remove the portraits' expressions before id PCA
    delight_iterations: int = 4
    albedo_eye_px: float = 110.0  # portraits are downsampled to about this eye-corner distance
    min_normal_z: float = 0.15  # vertices facing away more than this get no colour weight
    full_normal_z: float = 0.5  # ... and full weight from here on
    grayscale_saturation: float = 0.02  # below: a black-and-white photo, not used for albedo
    round_bits: int = 10  # bases are rounded to this many mantissa bits (float16's) to shrink
    # the compressed file; 0 keeps full float32
    albedo_exclude: tuple[str, ...] = ()  # portrait file names kept out of the albedo model


# ------------------------------------------------------------------------------------------
# Landmark extraction (MediaPipe)


def video_landmarks(path: str, stride: int = 1) -> tuple[np.ndarray, int]:
    """Landmarks [T, 468, 3] of the frames of a video where a face was found (video mode).

    Returns (landmarks, number of frames read). Raises InputError if the video is unreadable.
    """
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise InputError(f"cannot read video {path}")
    frames, count = [], 0
    try:
        with images.single_face_mesh(static=False) as mesh:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                count += 1
                if (count - 1) % stride:
                    continue
                pts = images.mesh_points(mesh, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                if pts is not None:
                    frames.append(pts)
    finally:
        cap.release()
    if count == 0:
        raise InputError(f"cannot read any frame of video {path}")
    return np.asarray(frames, np.float64).reshape(-1, topology.NUM_VERTICES, 3), count


def detect_videos(videos_dir: str) -> tuple[list[np.ndarray], dict[str, tuple[int, int]]]:
    """`video_landmarks` of every video in `videos_dir`: (arrays, {name: (faces, frames)})."""
    arrays, counts = [], {}
    for path in images.list_files(videos_dir, images.VIDEO_EXTENSIONS, "videos"):
        pts, frames = video_landmarks(path)
        name = os.path.basename(path)
        counts[name] = (len(pts), frames)
        if len(pts) < 2:
            log.warning("fewer than 2 frames with a face in %s; skipped", path)
            continue
        arrays.append(pts)
    if not arrays:
        raise InputError(f"no face found in the frames of any video in {videos_dir}")
    return arrays, counts


# ------------------------------------------------------------------------------------------
# Alignment and PCA


def similarity_fit(src, dst, weights=None, scale: bool = True):
    """(s, R, t) minimising sum_i w_i |s R src_i + t - dst_i|^2 (Umeyama; R a proper rotation).

    src, dst: [N, 3]; weights: [N] or None.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    a, b = src - mu_s, dst - mu_d
    cov = (b * w[:, None]).T @ a
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rot = u @ np.diag(d) @ vt
    s = float((sig * d).sum() / (w @ (a * a).sum(1))) if scale else 1.0
    return s, rot, mu_d - s * rot @ mu_s


def apply_similarity(points, s, rot, t):
    """s R p + t for points [..., 3]."""
    return s * np.einsum("ij,...j->...i", rot, points) + t


def generalised_procrustes(shapes, weights=None, reference=None, iterations: int = 20):
    """Similarity-aligns shapes [N, V, 3] to their common mean.

    Each shape is aligned (scale, rotation, translation; weighted by `weights` [V]) to the
    current mean, the mean is recomputed and rescaled to the reference's size, until it stops
    changing. The result is finally expressed in the frame of `reference` [V, 3] (default: the
    first shape): the mean is similarity-aligned to it (same size, pose and position).

    Returns:
      (aligned [N, V, 3], mean [V, 3]).
    """
    shapes = np.asarray(shapes, np.float64)
    ref = shapes[0] if reference is None else np.asarray(reference, np.float64)
    w = np.ones(shapes.shape[1]) if weights is None else np.asarray(weights, np.float64)
    wn = w / w.sum()

    def size(x):
        c = x - wn @ x
        return np.sqrt(wn @ (c * c).sum(1))

    mean = ref.copy()
    aligned = shapes
    for _ in range(iterations):
        aligned = np.stack([apply_similarity(x, *similarity_fit(x, mean, w)) for x in shapes])
        new = aligned.mean(0)
        new = (new - wn @ new) * (size(ref) / size(new)) + wn @ ref
        change = np.sqrt(wn @ ((new - mean) ** 2).sum(1)) / size(ref)
        mean = new
        if change < 1e-9:
            break
    s, rot, t = similarity_fit(mean, ref, w)
    s = size(ref) / size(mean)  # keep the reference's size exactly
    t = wn @ ref - s * rot @ (wn @ mean)
    return apply_similarity(aligned, s, rot, t), apply_similarity(mean, s, rot, t)


@dataclasses.dataclass
class PCA:
    mean: np.ndarray  # [D]
    basis: np.ndarray  # [D, K] unit directions times the component standard deviations
    explained: float  # fraction of the variance the K components explain
    variances: np.ndarray  # [min(N, D)] all component variances, largest first


def pca(data, max_components: int, variance: float, sample_weights=None, mean=None) -> PCA:
    """PCA of rows of `data` [N, D]; the basis columns are scaled by their std (N - 1 norm).

    Keeps the fewest components that explain `variance` of the total, at most
    `max_components`. Every column's largest-magnitude entry is made positive (deterministic
    signs). `sample_weights` [N] weigh the rows (normalised to sum N); `mean` overrides the
    (weighted) data mean.
    """
    x = np.asarray(data, np.float64)
    n = len(x)
    if n < 2:
        raise InputError(f"PCA needs at least 2 samples, got {n}")
    w = np.ones(n) if sample_weights is None else np.asarray(sample_weights, np.float64)
    w = w * (n / w.sum())
    mu = (w @ x) / n if mean is None else np.asarray(mean, np.float64)
    centred = (x - mu) * np.sqrt(w)[:, None]
    _, sig, vt = np.linalg.svd(centred, full_matrices=False)
    var = sig**2 / (n - 1)
    total = var.sum()
    if total <= 0:
        k, explained = 0, 1.0
    else:
        cum = np.cumsum(var) / total
        k = int(min(np.searchsorted(cum, variance - 1e-12) + 1, max_components, len(var)))
        explained = float(cum[k - 1])
    dirs = vt[:k].T
    flip = np.sign(dirs[np.abs(dirs).argmax(0), np.arange(k)])
    basis = dirs * flip * np.sqrt(var[:k])
    return PCA(mu, basis, explained, var)


def mirror_shapes(shapes, perm):
    """Mirror images [..., V, 3] of shapes (x -> -x, vertex v takes its mirror vertex's place)."""
    return np.asarray(shapes)[..., perm, :] * np.array([-1.0, 1.0, 1.0])


def symmetry_rotation(shape, perm) -> np.ndarray:
    """The smallest rotation taking the shape's symmetry-plane normal to +x."""
    shape = np.asarray(shape, np.float64)
    d = shape - shape[perm]
    evals, evecs = np.linalg.eigh(d.T @ d)
    n = evecs[:, -1] * np.sign(evecs[0, -1] or 1.0)
    return _rotation_between(n, np.array([1.0, 0.0, 0.0]))


def _rotation_between(a, b) -> np.ndarray:
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1.0 + c)


def _mean_rotation(rotations) -> np.ndarray:
    u, _, vt = np.linalg.svd(np.sum(rotations, axis=0))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    return u @ d @ vt


def canonical_mean(shapes: np.ndarray, eye_distance: float):
    """Aligns portrait shapes [N, 468, 3] (image frame) into the model frame.

    GPA, then the mean is turned to the portraits' average orientation relative to their
    cameras (a frontal photo is the rest pose), its symmetry plane rotated onto x = 0, scaled
    to `eye_distance` between the outer eye corners and centred.

    Returns:
      (aligned [N, V, 3], mean [V, 3], mirror permutation [V]).
    """
    aligned, mean = generalised_procrustes(shapes)
    rots = [similarity_fit(mean, x)[1] for x in shapes]
    mean = (mean - mean.mean(0)) @ _mean_rotation(rots).T
    mean = mean @ symmetry_rotation(mean, _rough_mirror(mean)).T
    perm = topology.mirror_permutation(mean - mean.mean(0))
    mean = mean @ symmetry_rotation(mean, perm).T
    eye = np.linalg.norm(mean[topology.LEFT_EYE_OUTER] - mean[topology.RIGHT_EYE_OUTER])
    mean = (mean - mean.mean(0)) * (eye_distance / eye)
    aligned, mean = generalised_procrustes(shapes, reference=mean)
    return aligned, mean, perm


def _rough_mirror(shape) -> np.ndarray:
    """A mirror matching good enough to find the symmetry plane of a shape turned up to ~30 deg.

    Uses x-centred coordinates of a shape whose yaw is first removed with the eye corners.
    """
    axis = shape[topology.LEFT_EYE_OUTER] - shape[topology.RIGHT_EYE_OUTER]
    flat = (shape - shape.mean(0)) @ _rotation_between(axis, np.array([1.0, 0, 0])).T
    return topology.mirror_permutation(flat, tol=0.5)


# ------------------------------------------------------------------------------------------
# Expression


def expression_residuals(video: np.ndarray, target_mean: np.ndarray, stable=STABLE_VERTICES):
    """One video's frames [T, V, 3] -> deviations from its own mean, in the model frame.

    Frames are similarity-aligned to their mean using the `stable` vertices only; the residual
    of each frame is aligned frame - video mean (so the identity cancels); residuals are then
    rotated and scaled by the similarity taking the video's mean onto `target_mean` (model
    frame and units), fitted on the same stable vertices.
    """
    w = np.zeros(video.shape[1])
    w[list(stable)] = 1.0
    aligned, mean = generalised_procrustes(video, weights=w)
    s, rot, _ = similarity_fit(mean, target_mean, w)
    return s * np.einsum("ij,tvj->tvi", rot, aligned - mean)


def remove_expressions(shapes, exp_basis, iterations: int = 3):
    """Shapes [N, D] minus their MAP fit in the expression basis [D, K] (coefficients ~ N(0,1)).

    Alternates: mean = average of the de-expressed shapes; coefficients = ridge fit of
    shape - mean with the identity variation per coordinate as the noise variance.
    Returns (de-expressed shapes [N, D], coefficients [N, K]).
    """
    x = np.asarray(shapes, np.float64)
    e = np.asarray(exp_basis, np.float64)
    coeffs = np.zeros((len(x), e.shape[1]))
    gram = e.T @ e
    for _ in range(iterations):
        clean = x - coeffs @ e.T
        mean = clean.mean(0)
        noise = max(float(((clean - mean) ** 2).mean()), 1e-12)
        coeffs = np.linalg.solve(gram + noise * np.eye(len(gram)), e.T @ (x - mean).T).T
    return x - coeffs @ e.T, coeffs


# ------------------------------------------------------------------------------------------
# Albedo


def vertex_normals_np(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unit vertex normals [V, 3]: the normalised sum of the adjacent unit face normals
    (the rule of `model.vertex_normals`, in numpy)."""
    v = np.asarray(vertices, np.float64)
    t = np.asarray(triangles, np.int64)
    fn = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    fn /= np.maximum(np.linalg.norm(fn, axis=-1, keepdims=True), 1e-12)
    out = np.zeros_like(v)
    for i in range(3):
        np.add.at(out, t[:, i], fn)
    return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)


def portrait_colors(portrait: images.Portrait, subdivision, triangles, config: BuildConfig):
    """Colours [V, 3], visibility weights [V] and normals [V, 3] of a portrait at the
    subdivided vertices (projection = the landmarks' own x, y; normals of the fitted mesh)."""
    import cv2

    points = subdivision @ portrait.points
    normals = vertex_normals_np(points, triangles)
    image = portrait.image
    eye = np.linalg.norm(
        portrait.points[topology.LEFT_EYE_OUTER, :2] - portrait.points[topology.RIGHT_EYE_OUTER, :2]
    )
    factor = config.albedo_eye_px / max(eye, 1e-6)
    if factor < 1.0:  # area-average big images down so each vertex sees a vertex-sized patch
        size = (
            max(int(round(image.shape[1] * factor)), 2),
            max(int(round(image.shape[0] * factor)), 2),
        )
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        points = points * np.array(
            [size[0] / portrait.image.shape[1], size[1] / portrait.image.shape[0], 1.0]
        )
    colors, inside = images.sample_bilinear(image, points[:, 0], -points[:, 1])
    span = config.full_normal_z - config.min_normal_z
    weights = np.clip((normals[:, 2] - config.min_normal_z) / span, 0.0, 1.0) * inside
    return colors, weights, normals


def _sh_np(normals: np.ndarray) -> np.ndarray:
    from talkingjax.render import sh

    return np.asarray(sh.sh_basis(np.asarray(normals, np.float32)), np.float64)


def fit_gray_light(colors, albedo, weights, basis, ridge: float = 0.05):
    """Least-squares gray SH light L [9] with colours ~ albedo * (basis @ L).

    The light is normalised so the weighted mean irradiance over the vertices is 1 (the light
    only explains how shading varies over the face; the overall level stays in the albedo) and
    its other 8 coefficients are ridge-regularised (`ridge` per unit weight) toward a uniform
    light, which keeps them from fitting albedo differences with wild light shapes.

    colors, albedo: [V, 3]; weights: [V]; basis: [V, 9] (`sh.sh_basis` of the normals).
    """
    w = np.asarray(weights, np.float64)
    f = (w @ basis) / max(w.sum(), 1e-12)  # mean SH row: f . L = 1
    # L0 = (1 - f[1:] . L[1:]) / f[0]: substitute and solve for the other 8.
    design = basis[:, 1:] - np.outer(basis[:, 0], f[1:] / f[0])  # [V, 8]
    offset = basis[:, 0] / f[0]  # [V]
    x = albedo[:, :, None] * design[:, None, :]  # [V, 3, 8]
    y = colors - albedo * offset[:, None]
    w3 = np.repeat(w[:, None], 3, axis=1).reshape(-1)
    x, y = x.reshape(-1, 8), y.reshape(-1)
    lhs = (x * w3[:, None]).T @ x + ridge * w3.sum() * np.eye(8)
    rest = np.linalg.solve(lhs, (x * w3[:, None]).T @ y)
    return np.concatenate([[(1.0 - f[1:] @ rest) / f[0]], rest])


def light_to_gamma(light: np.ndarray) -> np.ndarray:
    """A gray SH light [9] -> the 27 coefficients `sh.irradiance` takes (0.8 ambient removed)."""
    from talkingjax.render import sh

    gamma = np.asarray(light, np.float64).copy()
    gamma[0] -= sh.AMBIENT
    return np.tile(gamma, 3)


def delight(
    colors, weights, normals, light_mask=None, iterations=4, min_irradiance=0.25, ridge=0.05
):
    """Joint de-lighting of several images of (different) faces on the same mesh.

    Alternating least squares: per-image gray SH light fitted against the current mean albedo
    (on the `light_mask` vertices), then the mean albedo fitted to all images given their
    lights; per-image albedo = colour / irradiance.
    The light is gray and its mean irradiance over the face is fixed to 1: a single photo cannot
    tell skin tone and exposure from light colour and strength, so those stay in the albedo.

    Args:
      colors: [N, V, 3] in [0, 1]; weights: [N, V] visibility; normals: [N, V, 3] unit, in the
        camera frame (y up, z toward the camera); light_mask: [V] bool, vertices for the light fit;
        ridge: `fit_gray_light`'s regularisation.

    Returns:
      (albedos [N, V, 3] (unclipped), gammas [N, 27], mean albedo [V, 3]).
    """
    colors = np.asarray(colors, np.float64)
    weights = np.asarray(weights, np.float64)
    n, v, _ = colors.shape
    mask = np.ones(v, bool) if light_mask is None else np.asarray(light_mask, bool)
    bases = np.stack([_sh_np(nr) for nr in normals])  # [N, V, 9]
    # Start from a uniform albedo (the mean colour), so the shading goes into the lights.
    flat = (weights[..., None] * colors).sum((0, 1)) / weights.sum()
    mean = np.broadcast_to(flat, (v, 3)).copy()
    lights = np.zeros((n, 9))
    albedos = colors
    for _ in range(iterations):
        for i in range(n):
            lights[i] = fit_gray_light(
                colors[i][mask], mean[mask], weights[i][mask], bases[i][mask], ridge
            )
        irr = np.maximum(np.einsum("nvk,nk->nv", bases, lights), min_irradiance)
        albedos = colors / irr[..., None]
        # Least-squares mean albedo given the lights (so every step lowers the residual).
        wi = (weights * irr)[..., None]
        mean = (wi * colors).sum(0) / np.maximum((wi * irr[..., None]).sum(0), 1e-12)
    gammas = np.stack([light_to_gamma(lt) for lt in lights])
    return albedos, gammas, mean


def inpaint(values, confidence, triangles, iterations: int = 200) -> np.ndarray:
    """Per-vertex values [V, C] with low-`confidence` [V] (in [0, 1]) vertices filled in from
    their mesh neighbours: x = c x0 + (1 - c) mean of the neighbours' x, iterated."""
    import scipy.sparse

    t = np.asarray(triangles, np.int64)
    nv = len(values)
    rows = np.concatenate([t[:, 0], t[:, 1], t[:, 2], t[:, 1], t[:, 2], t[:, 0]])
    cols = np.concatenate([t[:, 1], t[:, 2], t[:, 0], t[:, 0], t[:, 1], t[:, 2]])
    adj = scipy.sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(nv, nv))
    adj.data[:] = 1.0  # duplicates (an edge in two faces) summed: count each neighbour once
    degree = np.maximum(np.asarray(adj.sum(1)).reshape(-1), 1.0)
    c = np.asarray(confidence, np.float64)[:, None]
    x0 = np.asarray(values, np.float64)
    x = x0.copy()
    for _ in range(iterations):
        x = c * x0 + (1 - c) * (adj @ x) / degree[:, None]
    return x


def fill_unseen(albedos, weights, perm, mean):
    """Completes per-image albedo [N, V, 3] where the visibility weight [N, V] is below 1:
    blended with the mirrored vertex of the same image (if that one is seen) and the mean."""
    w = np.clip(weights, 0, 1)[..., None]
    wm = w[:, perm]
    other = wm * albedos[:, perm] + (1 - wm) * mean
    return w * albedos + (1 - w) * other


def grayscale_images(albedos, weights, skin, threshold: float) -> np.ndarray:
    """[N] bool: images whose seen skin has (median) saturation max - min below `threshold`,
    i.e. black-and-white photos, which say nothing about skin colour."""
    out = np.zeros(len(albedos), bool)
    for i, (a, w) in enumerate(zip(albedos, weights, strict=True)):
        sel = skin & (w > 0.5)
        if sel.any():
            out[i] = np.median(a[sel].max(1) - a[sel].min(1)) < threshold
    return out


# ------------------------------------------------------------------------------------------
# Assembly


@dataclasses.dataclass
class Built:
    model: mm.MorphableModel
    metadata: dict


def _region_masks(triangles0: np.ndarray, fills: dict) -> np.ndarray:
    """[F0] bool: level-0 triangles that are not skin: the eyes (the filled openings), the
    lips and mouth (everything inside the outer lip contour) and the eyebrows."""
    regions = topology.region_vertices()
    index = {tuple(sorted(t)): k for k, t in enumerate(triangles0.tolist())}
    nonskin = np.zeros(len(triangles0), bool)
    for f in fills.values():
        nonskin[[index[tuple(sorted(t))] for t in f.tolist()]] = True
    if "mouth" in fills:
        inner = np.unique(fills["mouth"])
        outer = np.setdiff1d(regions["lips"], inner)
        seeds = [index[tuple(sorted(t))] for t in fills["mouth"].tolist()]
        nonskin |= topology.flood_triangles(triangles0, seeds, outer)
    for name in ("left_eyebrow", "right_eyebrow"):
        nonskin |= np.isin(triangles0, regions[name]).all(1)
    return nonskin


def _round_mantissa(x: np.ndarray, bits: int) -> np.ndarray:
    """float32 values rounded to `bits` mantissa bits (the rest zero, so they compress)."""
    x = np.asarray(x, np.float32)
    if bits <= 0 or bits >= 23:
        return x
    drop = 23 - bits
    i = x.view(np.uint32).astype(np.uint64)
    i = (i + (1 << (drop - 1))) >> drop << drop
    return i.astype(np.uint32).view(np.float32)


def expression_model(videos, mean0, perm, config: BuildConfig) -> PCA:
    """Expression PCA (468-vertex, flattened) from the videos' residuals, pooled with equal
    weight per video and mirrored."""
    residuals, sample_w = [], []
    for video in videos:
        r = expression_residuals(video, mean0)
        residuals.append(r)
        sample_w.append(np.full(len(r), 1.0 / len(r)))
    res, sw = np.concatenate(residuals), np.concatenate(sample_w)
    if config.mirror:
        res = np.concatenate([res, mirror_shapes(res, perm)])
        sw = np.concatenate([sw, sw])
    flat = res.reshape(len(res), -1)
    return pca(flat, config.exp_max, config.exp_variance, sw, mean=np.zeros(flat.shape[1]))


def identity_model(aligned, perm, exp: PCA, config: BuildConfig) -> PCA:
    """Identity PCA of the aligned portrait shapes [N, 468, 3] (mirrored, with their fitted
    expressions removed), rescaled -- expression basis too -- so the mean keeps the
    eye-corner anchor exactly."""
    flat = aligned.reshape(len(aligned), -1)
    if config.mirror:
        flat = np.concatenate([flat, mirror_shapes(aligned, perm).reshape(len(aligned), -1)])
    if config.remove_expression and exp.basis.shape[1]:
        flat, _ = remove_expressions(flat, exp.basis)
    ident = pca(flat, config.id_max, config.id_variance)
    mean = ident.mean.reshape(-1, 3)
    k = config.eye_distance / np.linalg.norm(
        mean[topology.LEFT_EYE_OUTER] - mean[topology.RIGHT_EYE_OUTER]
    )
    ident.mean, ident.basis, exp.basis = ident.mean * k, ident.basis * k, exp.basis * k
    return ident


def skin_mask(mesh: dict, triangles, parent) -> np.ndarray:
    """[V] bool on the subdivided mesh: vertices all of whose triangles are skin."""
    nonskin = _region_masks(mesh["triangles"], mesh["fill"])[parent]
    touches = np.zeros(int(np.max(triangles)) + 1, bool)
    touches[np.asarray(triangles)[nonskin].reshape(-1)] = True
    return ~touches


def albedo_model(portraits, sub, triangles, skin, perm_sub, config: BuildConfig):
    """Albedo PCA at the subdivided vertices from the de-lit portraits.

    Returns (PCA with mean [3V] and basis [3V, K], usable [N] bool, reasons [N] str).
    """
    colors, weights, normals = (
        np.stack(a)
        for a in zip(*(portrait_colors(p, sub, triangles, config) for p in portraits), strict=True)
    )
    usable = np.ones(len(portraits), bool)
    reasons = [""] * len(portraits)
    albedos, _, _ = delight(colors, weights, normals, skin, config.delight_iterations)
    for i in np.flatnonzero(grayscale_images(albedos, weights, skin, config.grayscale_saturation)):
        usable[i], reasons[i] = False, "grayscale"
    unknown = set(config.albedo_exclude) - {p.name for p in portraits}
    if unknown:
        log.warning("albedo_exclude names no portrait with a face: %s", sorted(unknown))
    for i, p in enumerate(portraits):
        if p.name in config.albedo_exclude and usable[i]:
            usable[i], reasons[i] = False, "excluded by --albedo-exclude"
    if usable.sum() < 2:
        raise InputError("fewer than 2 portraits usable for the albedo model")
    # De-light again without the unusable images (they would bias the lights' reference).
    colors, weights, normals = colors[usable], weights[usable], normals[usable]
    albedos, _, _ = delight(colors, weights, normals, skin, config.delight_iterations)
    albedos = np.clip(albedos, 0.0, 1.0)
    if config.mirror:
        albedos = np.concatenate([albedos, albedos[:, perm_sub]])
        weights = np.concatenate([weights, weights[:, perm_sub]])
    wsum = weights.sum(0)
    mean = (weights[..., None] * albedos).sum(0) / np.maximum(wsum, 1e-9)[:, None]
    # Vertices almost never seen (folds at the mouth corners) take their neighbours' colour.
    confidence = np.clip(wsum / (0.1 * np.median(wsum)), 0.0, 1.0)
    mean = np.clip(inpaint(mean, confidence, triangles), 0.0, 1.0)
    filled = fill_unseen(albedos, weights, perm_sub, mean)
    tex = pca(
        filled.reshape(len(filled), -1), config.tex_max, config.tex_variance, mean=mean.reshape(-1)
    )
    return tex, usable, reasons


def build_model(portraits: list[images.Portrait], videos: list[np.ndarray], config=BuildConfig()):
    """The default model from portrait landmarks + images and video landmark sequences.

    Args:
      portraits: faces with their MediaPipe landmarks in image pixels (`images.to_model_frame`).
      videos: per video, landmarks [T, 468, 3] of its frames (same frame convention).

    Returns:
      `Built` (the validated model and its metadata strings).
    """
    if len(portraits) < 3:
        raise InputError(f"need at least 3 portraits with a face, got {len(portraits)}")
    if not videos:
        raise InputError("need at least one video with a face")
    nv = topology.NUM_VERTICES
    shapes = np.stack([p.points for p in portraits])

    # Model frame and units, symmetric topology, subdivision.
    aligned, mean0, perm = canonical_mean(shapes, config.eye_distance)
    mesh = topology.face_mesh(reference_vertices=mean0, mirror=perm)
    sub, tris, parent = topology.subdivide_times(mesh["triangles"], nv, config.levels)
    perm_sub = topology.mirror_subdivided(perm, mesh["triangles"], config.levels)
    vs = sub.shape[0]

    exp = expression_model(videos, mean0, perm, config)
    ident = identity_model(aligned, perm, exp, config)

    def upsample(basis):  # [3 * 468, K] -> [V, 3, K], exactly (S is linear)
        b = basis.reshape(nv, 3 * basis.shape[1])
        return (sub @ b).reshape(vs, 3, basis.shape[1])

    mean_shape = sub @ ident.mean.reshape(nv, 3)
    mean_shape -= mean_shape.mean(0)  # centred on the (subdivided) mean's centroid

    skin = skin_mask(mesh, tris, parent)
    tex, usable, reasons = albedo_model(portraits, sub, tris, skin, perm_sub, config)

    bits = config.round_bits
    model = mm.make_model(
        mean_shape=mean_shape,
        id_basis=_round_mantissa(upsample(ident.basis), bits),
        exp_basis=_round_mantissa(upsample(exp.basis), bits),
        mean_albedo=tex.mean.reshape(vs, 3),
        albedo_basis=_round_mantissa(tex.basis.reshape(vs, 3, -1), bits),
        triangles=tris,
        landmarks=np.asarray(topology.LANDMARKS_68),
        skin_mask=skin.astype(np.float32),
        name="default face model",
    )
    names = [p.name for p in portraits]
    excluded = [f"{names[i]} ({reasons[i]})" for i in np.flatnonzero(~usable)]
    eye = np.linalg.norm(mean_shape[topology.LEFT_EYE_OUTER] - mean_shape[topology.RIGHT_EYE_OUTER])
    metadata = {
        "description": (
            "talkingjax default face model: MediaPipe 468-vertex face mesh (eye and mouth "
            f"openings filled, {config.levels}x midpoint-subdivided), identity from portraits, "
            "expression from talking-face videos, albedo from de-lit portraits"
        ),
        "units": "1 unit = 10 cm; y up, face looking down +z, centred on the mean's centroid",
        "scale_anchor": f"mean outer-eye-corner distance (vertices 33-263) = {eye:.4f} units",
        "portraits_used": str(len(portraits)),
        "portrait_names": ",".join(names),
        "albedo_portraits_used": str(int(usable.sum())),
        "albedo_excluded": ";".join(excluded),
        "video_frames_used": ",".join(str(len(v)) for v in videos),
        "id_components": str(ident.basis.shape[1]),
        "id_variance_explained": f"{ident.explained:.4f}",
        "exp_components": str(exp.basis.shape[1]),
        "exp_variance_explained": f"{exp.explained:.4f}",
        "tex_components": str(tex.basis.shape[1]),
        "tex_variance_explained": f"{tex.explained:.4f}",
        "mirrored": str(config.mirror),
        "expression_removed_from_identity": str(config.remove_expression),
        "basis_rounding": f"{bits} mantissa bits" if 0 < bits < 23 else "none",
        "lighting": "per-portrait gray SH light, mean irradiance over the face fixed to 1",
        "config": repr(config),
    }
    log.info(
        "built: %d vertices; components id %s (%s of the variance), exp %s (%s), tex %s (%s)",
        vs,
        *(
            metadata[f"{k}_{w}"]
            for k in ("id", "exp", "tex")
            for w in ("components", "variance_explained")
        ),
    )
    return Built(model, metadata)


def write_model(built: Built, path: str) -> None:
    """Atomically writes the model (temp file + os.replace) as a byte-reproducible .npz."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=directory)
    os.close(fd)
    try:
        mm.save(built.model, tmp, **built.metadata)
        _normalise_zip(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _normalise_zip(path: str) -> None:
    """Rewrites a zip with fixed timestamps and attributes, so equal contents = equal bytes."""
    with zipfile.ZipFile(path) as src:
        entries = [(info.filename, src.read(info)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w") as dst:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, data, compresslevel=9)


def build(faces_dir: str, videos_dir: str, out: str, config=BuildConfig()) -> Built:
    """Detects landmarks in the inputs, builds the model and writes it to `out`."""
    # Fail fast, before any detection.
    images.list_files(videos_dir, images.VIDEO_EXTENSIONS, "videos")
    portraits, skipped = images.detect_portraits(faces_dir)
    videos, counts = detect_videos(videos_dir)
    built = build_model(portraits, videos, config)
    built.metadata.update(
        portraits_found=f"{len(portraits)} of {len(portraits) + len(skipped)} images",
        portraits_skipped_no_face=",".join(skipped),
        videos=";".join(f"{k}: face in {a} of {b} frames" for k, (a, b) in counts.items()),
    )
    write_model(built, out)
    return built
