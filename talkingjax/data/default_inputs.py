"""Inputs of the demos: the embedded default's real footage, and a rendered target with speech.

The embedded default (`python -m experiments.generate --default`) animates a real person:
`real_default_inputs` gives the paths of 12 s of a US presidential address (the target) and
8 s of its later speech, vendored in `third_party/obama_weekly_address` (public domain; its
README says why). What follows makes the *synthetic* demo inputs, which tests and benchmarks
use because every frame has a known ground truth.

Why synthetic. The end-to-end generator (paper 000) takes a short video of the target person
and a new speech, and renders the target saying it with personalized head motion. Tests need
inputs with nothing downloaded, no third-party media and a known ground truth, so the project
makes both inputs itself, from its own models:

- `make_target_video`: an mp4 of a *talking head rendered from the shipped default face
  model* (`talkingjax.face3d.default`), with an espeak-ng speech track, whose every frame has
  a known ground truth (pose, expression, identity, albedo, light; `DefaultTarget`);
- `make_speech`: a wav of another espeak-ng voice saying other sentences;
- `make_default_inputs`: both, in one directory, generated once per seed.

The clip is made of the project's synthetic corpora, so that it behaves like their data:

1. Speech: a speaker drawn from `seed` (`synthetic.sample_speaker`) reads the bundled
   sentences with even line numbers (`synthetic.compose_speech`); `make_speech` uses the odd
   ones, so the driving speech never repeats the target's words.
2. Expression: `synthetic_expression.expression_from_speech` in the default model's expression
   basis, with the speaker's style (`speaker_style`): the jaw opens with loudness, the lips
   round and spread with the vowels.
3. Head pose: a personal motion style (`synthetic.sample_style`) driven by the speech's
   prosody (`synthetic.video_from_speech`), exactly as in the head-motion corpus: the
   "corpus pose" [T, 6] (pitch, yaw, roll radians; tx, ty, tz), and the same correlation with
   the speech as the corpus has.
4. Appearance: identity, albedo and SH light coefficients drawn from `seed` with the
   distributions of `gan_pairs.synthetic_pairs` (identity and albedo 0.8 N(0, 1), clipped to
   +-2; light: a slightly tinted ambient plus one light from above-front), over a wall with a
   simple person silhouette (see 6).

5. Pose mapping (corpus pose -> rendered pose). The corpus pose is in the fit's framing: the
   reference camera (`camera.Camera`, focal 1015 at 224 px, centre 10 units away), where the
   default model at zero translation fills the 224 crop, as `reconstruct.VideoFit.pose` is. The
   video is filmed by the same camera scaled to `size` (`Camera().scaled(size)`) from farther
   back, with the head a little above the image centre, so the face covers ~55 % of the width
   and the neck and shoulders show below it:

       pitch, yaw, roll = the corpus's                           (unchanged)
       tx = XY_LIMIT * tanh(k * corpus tx / XY_LIMIT)
       ty = HEAD_RAISE + XY_LIMIT * tanh(k * corpus ty / XY_LIMIT)
       tz = DISTANCE + corpus tz

   with DISTANCE = -1.5 (as tests/synthetic_video.py: 11.5 units from the camera instead of
   10), HEAD_RAISE = 0.1 (1 cm up, ~10 px at 256) and XY_LIMIT = 0.4. So the head turns and
   moves as in the corpus (the translation is the same world motion, 1 unit = 10 cm, seen
   from farther away), except that the sideways and vertical offsets are soft-limited: 0.1 is
   shrunk by 2 %, 0.2 by 8 % (the corpus's rest offsets reach 0.15, its motion adds a few
   hundredths), so that the face never leaves the frame. k is 1 unless the clip would still
   put a vertex of the face within 3 % of the frame border; then it is the largest of 0.8,
   0.6, ... 0 that does not (a framing guard: of seeds 0-59 at 256^2 only seed 48 needed it,
   k = 0.6; the face spans 49-61 % of the width). `DefaultTarget.pose` is exactly the rendered pose,
   `DefaultTarget.corpus_pose` the corpus's (`rendered_pose` maps one to the other).

6. Scene. Behind the face (a mask: the model has no back of the head) a silhouette is drawn
   into the background of each frame: hair (an ellipse fixed to the head: follows it fully,
   rotating with its roll), a neck (its top fixed behind the jaw, its bottom on the torso) and
   shoulders that follow the head's image position only by 30 % sideways and 20 % vertically,
   around where the clip's mean pose puts them -- so the background changes with the head,
   but only partly, as in a real video, and background matching (paper 000 Sec. IV-B2) has
   something to match. The wall is a smooth colour gradient with low-frequency texture.
   Everything is a deterministic function of the arguments.

Rendering is `render.face.render_face` in one jitted function per image size, 16 frames per
call, streamed into the encoder (`visualize.VideoWriter`: H.264 yuv420p, AAC, written to a
temporary name and renamed) while the next batch renders. A 12 s clip at 256^2 took 16-18 s
on 2 cores shared with two training jobs (at nice 15), 9 s of it once compiled.

    from talkingjax.data import default_inputs
    paths = default_inputs.make_default_inputs("runs/default_inputs")
    paths["target"], paths["speech"]   # target.mp4 (12 s, 256^2, 25 fps), speech.wav (8 s)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from talkingjax import audio, visualize
from talkingjax.data import records, synthetic, synthetic_expression
from talkingjax.errors import InputError
from talkingjax.face3d import camera as camera_lib
from talkingjax.face3d import coeffs as coeffs_lib
from talkingjax.face3d import default
from talkingjax.face3d import model as model_lib
from talkingjax.render import face as face_render
from talkingjax.render import sh

TARGET_NAME = "target.mp4"
SPEECH_NAME = "speech.wav"
STAMP_NAME = "default_inputs.json"
STAMP_FORMAT = "talkingjax.default_inputs/1"  # bump when the generated media change
TARGET_SECONDS = 12.0
SPEECH_SECONDS = 8.0
TARGET_SIZE = 256
FPS = 25.0

MIN_SECONDS, MAX_SECONDS = 4.0, 120.0
MIN_SIZE, MAX_SIZE, SIZE_MULTIPLE = 128, 1024, 16
NUM_LANDMARKS = 468  # model vertices 0..467 are MediaPipe's face-mesh points

# Pose mapping (module docstring, 5).
DISTANCE = -1.5
HEAD_RAISE = 0.1
XY_LIMIT = 0.4
_FRAME_MARGIN = 0.03  # of the size: the face's vertices stay this far inside the frame
_GUARD_SCALES = (1.0, 0.8, 0.6, 0.4, 0.2, 0.0)

_BATCH = 16  # frames per render call (fixed: one compile per size)
_CRF = 16  # x264 quality of the target: near-lossless, so trackers see the render
# Random streams: distinct tags keep the target's and the speech's draws independent.
_TARGET_TAG, _SPEECH_TAG = 0xDEF0, 0xDEF1

# Scene (module docstring, 6), in model units (10 cm) relative to the head or the torso.
_HAIR_CENTRE = (0.0, 0.22, -0.45)  # behind the forehead
_HAIR_RADII = (0.80, 0.88)  # across, along the head's up direction
_NECK_TOP = (0.0, -0.5, -0.45)  # behind the jaw
_NECK_HALF_WIDTH = 0.48
_SHOULDER_DROP = 0.45  # shoulders' top below the neck anchor
_SHOULDER_RADII = (2.1, 1.0)  # superellipse half-width and half-height
_COLLAR = 0.2  # the neck shows this far below the shoulders' top
_FOLLOW = (0.3, 0.2)  # fraction of the head's image motion the shoulders follow (x, y)
_HAIR_COLOURS = np.array(
    [
        [0.08, 0.06, 0.05],  # black
        [0.20, 0.13, 0.08],  # dark brown
        [0.38, 0.25, 0.14],  # brown
        [0.45, 0.20, 0.10],  # auburn
        [0.70, 0.58, 0.36],  # blond
        [0.55, 0.55, 0.55],  # grey
    ]
)


@dataclasses.dataclass(frozen=True, eq=False)
class DefaultTarget:
    """Ground truth of a `make_target_video` clip (T frames at `fps`, S x S pixels).

    Attributes:
      frames: [T, S, S, 3] uint8 RGB frames as rendered (before video compression).
      pose: [T, 6] float32 rendered pose: pitch, yaw, roll (radians; x, y, z of
        `geometry.euler_to_rotation`) then translation tx, ty, tz, in the camera
        `Camera().scaled(S)` (the `records` / `reconstruct.VideoFit.pose` convention).
      exp: [T, K_exp] float32 expression coefficients of the default model.
      wave: float32 [ceil(T / fps * 16000)] the 16 kHz speech of the audio track (as muxed).
      fps: frame rate.
      id: [K_id] float32 identity coefficients (constant over the clip).
      tex: [K_tex] float32 albedo coefficients.
      gamma: [27] float32 SH light (RGB-major, without the 0.8 ambient).
      landmarks: [T, 468, 2] float32 pixel positions of model vertices 0..467 (MediaPipe's
        points), x right, y down, pixel centres at +0.5.
      corpus_pose: [T, 6] float32 the synthetic corpus's pose before the mapping to the
        camera (module docstring, 5).
      speaker: the espeak-ng speaker.
      motion_style: the head-motion style (`synthetic.MotionStyle`).
      expression_style: the mouth style (`synthetic_expression.ExpressionStyle`).
    """

    frames: np.ndarray
    pose: np.ndarray
    exp: np.ndarray
    wave: np.ndarray
    fps: float
    id: np.ndarray
    tex: np.ndarray
    gamma: np.ndarray
    landmarks: np.ndarray
    corpus_pose: np.ndarray
    speaker: synthetic.Speaker
    motion_style: synthetic.MotionStyle
    expression_style: synthetic_expression.ExpressionStyle

    @property
    def num_frames(self) -> int:
        return int(self.pose.shape[0])

    @property
    def coeffs(self) -> coeffs_lib.FaceCoeffs:
        """The rendered coefficients as `FaceCoeffs` with batch [T] (numpy arrays)."""
        return _face_coeffs(self.id, self.exp, self.tex, self.gamma, self.pose)


# ----------------------------------------------------------------------------- checks


def _check_seconds(seconds: float) -> float:
    if not (isinstance(seconds, int | float) and math.isfinite(seconds)):
        raise InputError(f"seconds must be a number, got {seconds!r}")
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise InputError(f"seconds must be in [{MIN_SECONDS:g}, {MAX_SECONDS:g}], got {seconds:g}")
    return float(seconds)


def _check_size(size: int) -> int:
    ok = isinstance(size, int | np.integer) and not isinstance(size, bool)
    if not ok or size < MIN_SIZE or size > MAX_SIZE or size % SIZE_MULTIPLE:
        raise InputError(
            f"size must be a multiple of {SIZE_MULTIPLE} in [{MIN_SIZE}, {MAX_SIZE}], got {size!r}"
        )
    return int(size)


def _check_fps(fps: float) -> float:
    if not (isinstance(fps, int | float) and math.isfinite(fps) and 1.0 <= fps <= 120.0):
        raise InputError(f"fps must be in [1, 120], got {fps!r}")
    return float(fps)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be an int >= 0, got {seed!r}")
    return int(seed)


def _check_writable(path: str | os.PathLike) -> str:
    """The absolute path, if a file can be created there (checked before any work)."""
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    if os.path.isdir(path):
        raise InputError(f"cannot write {path}: it is a directory")
    if not os.path.isdir(parent):
        raise InputError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {path}: directory {parent} is not writable")
    return path


# ----------------------------------------------------------------------------- drawing


def _streams(tag: int, seed: int, count: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence([tag, seed]).spawn(count)]


def _sentences(parity: int) -> list[str]:
    """The bundled sentences with even (0, the target) or odd (1, the speech) line numbers."""
    return synthetic.load_sentences()[parity::2]


def sample_appearance(rng: np.random.Generator, layout: coeffs_lib.Layout):
    """(id [K_id], tex [K_tex], gamma [27]) float32 of a plausible person under a plausible
    light (distributions as `gan_pairs.synthetic_pairs`; the light comes from above-front)."""
    ident = np.clip(0.8 * rng.standard_normal(layout.id), -2.0, 2.0)
    tex = np.clip(0.8 * rng.standard_normal(layout.tex), -2.0, 2.0)
    gamma = np.zeros((3, 9))
    gamma[:, 0] = rng.uniform(-0.1, 0.1, 3)  # slightly tinted ambient
    # One light for all colours; sh_basis's band 1 is (-ny, nz, -nx): gamma[1] < 0 lights
    # upward-facing normals, gamma[2] > 0 frontal ones, gamma[3] either side.
    gamma[:, 1:4] = [-rng.uniform(0.05, 0.3), rng.uniform(0.0, 0.3), rng.uniform(-0.3, 0.3)]
    return ident.astype(np.float32), tex.astype(np.float32), gamma.ravel().astype(np.float32)


def _face_coeffs(ident, exp, tex, gamma, pose) -> coeffs_lib.FaceCoeffs:
    t = pose.shape[0]
    return coeffs_lib.FaceCoeffs(
        id=np.broadcast_to(np.asarray(ident, np.float32), (t, len(ident))),
        exp=np.asarray(exp, np.float32),
        tex=np.broadcast_to(np.asarray(tex, np.float32), (t, len(tex))),
        angles=np.asarray(pose[:, :3], np.float32),
        gamma=np.broadcast_to(np.asarray(gamma, np.float32), (t, len(gamma))),
        trans=np.asarray(pose[:, 3:], np.float32),
    )


def rendered_pose(corpus_pose: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Corpus pose [T, 6] -> the rendered pose [T, 6] float32 (module docstring, 5).

    `scale` is the framing guard's k on the sideways/vertical translation.
    """
    p = np.asarray(corpus_pose, np.float64)
    out = p.copy()
    out[:, 3:5] = XY_LIMIT * np.tanh(scale * p[:, 3:5] / XY_LIMIT)
    out[:, 4] += HEAD_RAISE
    out[:, 5] = DISTANCE + p[:, 5]
    return out.astype(np.float32)


@functools.partial(jax.jit, static_argnames="camera")
def _face_extent(model, ident, exp, pose, camera):
    """Pixel bounding box (min [T, 2], max [T, 2]) of all the face's vertices per frame."""
    ids = jnp.broadcast_to(ident, (pose.shape[0], ident.shape[-1]))
    posed = model_lib.rigid_transform(model_lib.shape(model, ids, exp), pose[:, :3], pose[:, 3:])
    uv = camera_lib.project(camera, posed)
    return uv.min(axis=1), uv.max(axis=1)


@functools.partial(jax.jit, static_argnames="camera")
def _anchor_pixels(points, pose, camera):
    """Model-space points [N, 3] fixed to the head, under poses [T, 6]: pixel positions
    [T, N, 2] and pixels per model unit at their depth [T, N]."""
    pts = jnp.broadcast_to(points, (pose.shape[0], *points.shape))
    posed = model_lib.rigid_transform(pts, pose[:, :3], pose[:, 3:])
    return camera_lib.project(camera, posed), camera.focal / (camera.distance - posed[..., 2])


def _framed_pose(model, ident, exp, corpus_pose, size: int) -> np.ndarray:
    """The rendered pose, with the framing guard's largest k that keeps the face inside."""
    camera = camera_lib.Camera().scaled(size)
    lo, hi = _FRAME_MARGIN * size, (1.0 - _FRAME_MARGIN) * size
    for k in _GUARD_SCALES:
        pose = rendered_pose(corpus_pose, k)
        low, high = _face_extent(model, ident, exp, pose, camera)
        if float(jnp.min(low)) >= lo and float(jnp.max(high)) <= hi:
            break
    return pose  # k = 0 (centred) if nothing fits: the extreme angles alone, kept as they are


# ----------------------------------------------------------------------------- scene

# The points fixed to the head that place the silhouette: hair centre, a point above it
# (the head's up direction) and the neck's top.
_ANCHORS = np.array([_HAIR_CENTRE, np.add(_HAIR_CENTRE, (0.0, 0.5, 0.0)), _NECK_TOP], np.float32)


@dataclasses.dataclass(frozen=True)
class _Scene:
    """What the background of every frame is made of (module docstring, 6)."""

    wall: np.ndarray  # [S, S, 3] float32
    colours: np.ndarray  # [3, 3] float32: hair, cloth, lit skin (the neck's)
    rest: np.ndarray  # (3,) float32: neck anchor (u, v) at the clip's mean pose, px per unit
    anchors: np.ndarray  # [T, 3, 2] float32 pixel positions of `_ANCHORS` per frame
    scales: np.ndarray  # [T, 3] float32 pixels per model unit at each anchor


def _wall(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth coloured wall [S, S, 3]: gradient (lighter at the top) and faint texture."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    colour = rng.uniform(0.3, 0.7, 3)
    wall = colour * (1.1 - 0.25 * yy[..., None])
    for _ in range(3):  # three faint plane waves
        freq, angle, phase = rng.uniform(1.0, 4.0), rng.uniform(0, np.pi), rng.uniform(0, 6.3)
        wave = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
        wall = wall + 0.05 * wave[..., None] * rng.uniform(0.5, 1.0, 3)
    return np.clip(wall, 0.0, 1.0).astype(np.float32)


@jax.jit
def _skin_colour(model, tex, gamma):
    """The neck's colour (3,): the face's mean skin albedo lit as a surface facing the camera,
    a little darker (x 0.9: the neck is in the chin's shadow); constant over the clip."""
    albedo = model_lib.albedo(model, tex)
    w = model.skin_mask[:, None]
    mean = (albedo * w).sum(axis=0) / jnp.maximum(w.sum(), 1.0)
    return 0.9 * mean * sh.irradiance(jnp.array([[0.0, 0.0, 1.0]]), gamma)[0]


def _scene(rng, model, tex, gamma, pose, size: int) -> _Scene:
    camera = camera_lib.Camera().scaled(size)
    anchors, scales = _anchor_pixels(jnp.asarray(_ANCHORS), jnp.asarray(pose), camera)
    rest, rest_scale = _anchor_pixels(
        jnp.asarray(_ANCHORS[2:]), jnp.asarray(pose.mean(axis=0, keepdims=True)), camera
    )
    hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.85, 1.15)
    colours = [hair, rng.uniform(0.1, 0.8, 3), np.asarray(_skin_colour(model, tex, gamma))]
    return _Scene(
        wall=_wall(rng, size),
        colours=np.clip(colours, 0.0, 1.0).astype(np.float32),
        rest=np.append(np.asarray(rest)[0, 0], np.asarray(rest_scale)[0, 0]).astype(np.float32),
        anchors=np.asarray(anchors, np.float32),
        scales=np.asarray(scales, np.float32),
    )


def _coverage(signed_px: jax.Array) -> jax.Array:
    """Anti-aliased coverage from a signed distance in pixels (< 0 inside)."""
    return jnp.clip(0.5 - signed_px, 0.0, 1.0)


@jax.jit
def _compose(wall, colours, rest, anchors, scales):
    """Backgrounds [B, S, S, 3] float32: the wall [S, S, 3] with the silhouette drawn for
    anchor pixels [B, 3, 2] and scales [B, 3] (`_Scene`; one compile per size)."""
    size = wall.shape[0]
    yy, xx = jnp.mgrid[0:size, 0:size] + 0.5
    xx, yy = xx[None].astype(jnp.float32), yy[None].astype(jnp.float32)
    b = lambda a: a[:, None, None]  # noqa: E731  [B] -> [B, 1, 1]

    # Hair: an ellipse in the head's frame (up = the projected head up direction), so it
    # follows the head fully and turns with its roll.
    up = anchors[:, 1] - anchors[:, 0]
    up = up / jnp.linalg.norm(up, axis=1, keepdims=True)
    dx, dy = xx - b(anchors[:, 0, 0]), yy - b(anchors[:, 0, 1])
    along = dx * b(up[:, 0]) + dy * b(up[:, 1])
    across = dx * b(up[:, 1]) - dy * b(up[:, 0])
    ra, rb = b(_HAIR_RADII[0] * scales[:, 0]), b(_HAIR_RADII[1] * scales[:, 0])
    q = jnp.sqrt((across / ra) ** 2 + (along / rb) ** 2)
    hair = _coverage((q - 1.0) * jnp.minimum(ra, rb))
    strands = 0.9 + 0.1 * jnp.sin(2 * jnp.pi * across / (0.04 * ra))  # a little texture
    shade_hair = (1.0 - 0.3 * jnp.clip(q, 0, 1) ** 4) * strands

    # Shoulders: a superellipse under the clip's mean neck position that follows the neck
    # anchor's image motion only partly.
    u0, v0, s0 = rest[0], rest[1], rest[2]
    neck_u, neck_v = anchors[:, 2, 0], anchors[:, 2, 1]
    torso_u = u0 + _FOLLOW[0] * (neck_u - u0)
    torso_top = v0 + _SHOULDER_DROP * s0 + _FOLLOW[1] * (neck_v - v0)
    w, h = _SHOULDER_RADII[0] * s0, _SHOULDER_RADII[1] * s0
    tx = jnp.abs(xx - b(torso_u)) / w
    ty = (yy - b(torso_top) - h) / h
    torso = _coverage((jnp.sqrt(tx**4 + ty**2) - 1.0) * h)
    shade_torso = 1.0 - 0.35 * jnp.clip(tx, 0, 1) ** 2

    # Neck: a band from the anchor behind the jaw (follows the head) down to the collar
    # (follows the torso), widening a little.
    bottom = torso_top + _COLLAR * s0
    t = jnp.clip((yy - b(neck_v)) / jnp.maximum(b(bottom - neck_v), 1.0), 0.0, 1.0)
    centre = b(neck_u) + t * b(torso_u - neck_u)
    half = b(_NECK_HALF_WIDTH * scales[:, 2]) * (1.0 + 0.2 * t)
    rows = jnp.minimum(yy - b(neck_v), b(bottom) - yy)  # > 0 between the top and the collar
    neck = _coverage(jnp.maximum(jnp.abs(xx - centre) - half, -rows))
    shade_neck = 0.85 + 0.15 * t  # darker under the chin

    out = jnp.broadcast_to(wall, (anchors.shape[0], *wall.shape))
    for cover, colour, shade in (
        (hair, colours[0], shade_hair),
        (torso, colours[1], shade_torso),
        (neck, colours[2], shade_neck),
    ):
        out = out + cover[..., None] * (colour * shade[..., None] - out)
    return jnp.clip(out, 0.0, 1.0)


def _backgrounds(scene: _Scene, frames: slice) -> np.ndarray:
    """The backgrounds [B, S, S, 3] float32 of frames `frames` (B <= 16, padded to 16 so
    `_compose` compiles once)."""
    anchors, scales = scene.anchors[frames], scene.scales[frames]
    n = anchors.shape[0]
    idx = np.minimum(np.arange(_BATCH), n - 1)
    out = _compose(scene.wall, scene.colours, scene.rest, anchors[idx], scales[idx])
    return np.asarray(out)[:n]


# ----------------------------------------------------------------------------- rendering


@functools.cache
def _model() -> model_lib.MorphableModel:
    return default.load_default()


@functools.cache
def _renderer(size: int):
    """jit(model, coeffs [B], background [B, S, S, 3]) -> (uint8 [B, S, S, 3], [B, 468, 2])."""
    camera = camera_lib.Camera().scaled(size)

    @jax.jit
    def render(model, c, back):
        image = face_render.render_face(model, c, camera, background=back).image
        # Quantized here, so only a quarter of the bytes leave the device.
        frames = jnp.clip(jnp.floor(image * 255.0 + 0.5), 0, 255).astype(jnp.uint8)
        posed = face_render.pose_face(model, c).vertices[..., :NUM_LANDMARKS, :]
        return frames, camera_lib.project(camera, posed)

    return render


def render_batches(coeffs: coeffs_lib.FaceCoeffs, size: int, background, model=None):
    """Renders frames of the default model (or `model`) in batches of 16, one compile per size.

    Args:
      coeffs: `FaceCoeffs` with batch [T].
      size: image side S (the camera is `Camera().scaled(size)`).
      background: [S, S, 3] or [T, S, S, 3] float in [0, 1], or a function of a frame slice
        returning [len, S, S, 3] (so per-frame backgrounds need not all be held at once).
      model: the morphable model (default: the shipped one).

    Yields:
      (frames uint8 [B, S, S, 3], landmarks float32 [B, 468, 2]) per batch, in order: the
      projected vertices 0..467 in pixels (centres at +0.5).
    """
    model = _model() if model is None else model
    render = _renderer(size)
    coeffs = jax.tree.map(lambda x: np.asarray(x, np.float32), coeffs)
    t = int(coeffs.angles.shape[0])
    for start in range(0, t, _BATCH):
        n = min(_BATCH, t - start)
        if callable(background):
            back = background(slice(start, start + n))
        else:
            back = np.asarray(background, np.float32)
            back = back[start : start + n] if back.ndim == 4 else back[None].repeat(n, 0)
        # Pad the last batch (repeating its last frame) so every call has one shape.
        idx = np.minimum(np.arange(_BATCH), n - 1)
        batch = jax.tree.map(lambda x, s=start, i=idx: x[s + i], coeffs)
        frames, points = render(model, batch, np.asarray(back, np.float32)[idx])
        yield np.asarray(frames)[:n], np.asarray(points, np.float32)[:n]


def render_faces(coeffs, size: int, background, model=None) -> tuple[np.ndarray, np.ndarray]:
    """All frames of `render_batches`: (frames uint8 [T, S, S, 3], landmarks [T, 468, 2])."""
    parts = list(render_batches(coeffs, size, background, model))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# ----------------------------------------------------------------------------- outputs


def make_target_video(
    path: str | os.PathLike,
    seconds: float = TARGET_SECONDS,
    size: int = TARGET_SIZE,
    fps: float = FPS,
    seed: int = 0,
) -> DefaultTarget:
    """Writes the talking-head target video (module docstring) and returns its ground truth.

    Args:
      path: the mp4 to write (H.264 yuv420p, AAC speech); written to a temporary name beside
        it and renamed, so nothing is left at `path` if anything fails.
      seconds: duration in [4, 120] s (whole frames: T = floor(seconds * fps)).
      size: frame side S, a multiple of 16 in [128, 1024].
      fps: frame rate.
      seed: the speaker, motion style, appearance and scene.

    Returns:
      `DefaultTarget`.

    Raises:
      InputError: bad arguments or an unwritable path (checked before any work), espeak-ng
        or ffmpeg missing or failing.
    """
    seconds, size, fps = _check_seconds(seconds), _check_size(size), _check_fps(fps)
    seed, path = _check_seed(seed), _check_writable(path)
    target, scene = _plan(seconds, size, fps, seed)
    frames, landmarks = [], []
    try:
        with visualize.VideoWriter(path, fps, audio=target.wave, crf=_CRF) as writer:
            for f, lm in render_batches(target.coeffs, size, lambda s: _backgrounds(scene, s)):
                writer.write(f)  # ffmpeg encodes this batch while the next one renders
                frames.append(f)
                landmarks.append(lm)
    except OSError as err:
        raise InputError(f"cannot write {path}: {err}") from None
    return dataclasses.replace(
        target, frames=np.concatenate(frames), landmarks=np.concatenate(landmarks)
    )


def _plan(seconds: float, size: int, fps: float, seed: int) -> tuple[DefaultTarget, _Scene]:
    """Everything of the clip but its pixels: (target with `frames` and `landmarks` None,
    scene)."""
    model = _model()
    layout = coeffs_lib.Layout.of(model)
    speech_rng, motion_rng, look_rng, exp_rng, scene_rng = _streams(_TARGET_TAG, seed, 5)

    # 1-3: speech, then the mouth and the head driven by it. The wave is exactly the T frames
    # long (rounded up to a sample), so the audio and video tracks end together.
    num_frames = audio.num_video_frames(seconds, fps)
    samples = math.ceil(num_frames / fps * audio.SAMPLE_RATE - 1e-6)
    speaker = synthetic.sample_speaker(speech_rng)
    wave, starts = synthetic.compose_speech(
        _sentences(0), speaker, speech_rng, samples / audio.SAMPLE_RATE
    )
    style = synthetic.sample_style(motion_rng)
    video = synthetic.video_from_speech(wave, starts, speaker, style, motion_rng, fps)
    corpus_pose = video.pose[:num_frames]
    directions = synthetic_expression.mouth_directions(model)
    exp_style = synthetic_expression.speaker_style(seed, speaker.speaker_id, layout.exp)
    exp = synthetic_expression.expression_from_speech(
        wave, fps, num_frames, directions, exp_style, exp_rng
    )

    # 4-6: appearance, framing, scene.
    ident, tex, gamma = sample_appearance(look_rng, layout)
    pose = _framed_pose(model, ident, exp, corpus_pose, size)
    target = DefaultTarget(
        frames=None,
        pose=pose,
        exp=exp,
        wave=wave,
        fps=fps,
        id=ident,
        tex=tex,
        gamma=gamma,
        landmarks=None,
        corpus_pose=corpus_pose,
        speaker=speaker,
        motion_style=style,
        expression_style=exp_style,
    )
    return target, _scene(scene_rng, model, tex, gamma, pose, size)


def speech_speaker(seed: int, avoid_voice: str | None = None) -> synthetic.Speaker:
    """The espeak-ng speaker of `make_speech(seed=seed)` (never `avoid_voice`)."""
    rng = _streams(_SPEECH_TAG, seed, 1)[0]
    speaker = synthetic.sample_speaker(rng)
    while speaker.voice == avoid_voice:  # 1 in 104 draws; a redraw is deterministic too
        speaker = synthetic.sample_speaker(rng)
    return speaker


def make_speech(
    path: str | os.PathLike,
    seconds: float = SPEECH_SECONDS,
    seed: int = 1,
    avoid_voice: str | None = None,
) -> np.ndarray:
    """Writes a driving speech: 16 kHz mono 16-bit wav of an espeak-ng speaker.

    The speaker (voice, rate, pitch) is drawn from `seed` (redrawn while its voice is
    `avoid_voice`) and reads the bundled sentences with odd line numbers -- not the target's.

    Args:
      path: the wav to write (atomically: a temporary name beside it, then renamed).
      seconds: duration in [4, 120] s.
      seed: the speaker and the sentence order.
      avoid_voice: an espeak-ng voice not to use (`make_default_inputs` passes the target's).

    Returns:
      float32 [round(seconds * 16000)] the wave as stored (16-bit), what `audio.load_audio`
      reads back.

    Raises:
      InputError: bad arguments or an unwritable path, espeak-ng missing or failing.
    """
    seconds, seed, path = _check_seconds(seconds), _check_seed(seed), _check_writable(path)
    # Child 0 draws the speaker (`speech_speaker`), child 1 the sentences and prosody.
    rng = _streams(_SPEECH_TAG, seed, 2)[1]
    speaker = speech_speaker(seed, avoid_voice)
    wave, _ = synthetic.compose_speech(_sentences(1), speaker, rng, seconds)
    pcm = np.round(np.clip(wave, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    import soundfile

    try:
        records.atomic_write(
            path, lambda f: soundfile.write(f, pcm, audio.SAMPLE_RATE, "PCM_16", format="WAV")
        )
    except OSError as err:
        raise InputError(f"cannot write {path}: {err}") from None
    return pcm.astype(np.float32) / 32768.0


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REAL_DEFAULT_DIR = os.path.join(REPO, "third_party", "obama_weekly_address")


def real_default_inputs(folder: str = REAL_DEFAULT_DIR) -> dict[str, str]:
    """The embedded default's real inputs: {"target": target.mp4 (12 s, 256^2, 25 fps),
    "speech": speech.wav (8 s, 16 kHz)} of `third_party/obama_weekly_address`.

    Raises:
      InputError: the files are missing (a checkout of the repository holds them; an install
        without `third_party/` does not).
    """
    paths = {
        "target": os.path.join(folder, TARGET_NAME),
        "speech": os.path.join(folder, SPEECH_NAME),
    }
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        raise InputError(
            f"the embedded default's footage is missing ({', '.join(missing)}): run from a "
            "checkout of the repository, or give --audio and --video"
        )
    return paths


def make_default_inputs(out_dir: str | os.PathLike, seed: int = 0) -> dict[str, str]:
    """Writes the default demo's inputs into `out_dir` (created): `target.mp4` (12 s, 256^2,
    25 fps, `make_target_video(seed=seed)`) and `speech.wav` (8 s, `make_speech(seed=seed+1)`
    in another voice).

    Idempotent: a stamp (`default_inputs.json`: format, seed and settings) is written last;
    when it matches and both files exist nothing is redone.

    Returns:
      {"target": path of target.mp4, "speech": path of speech.wav}.

    Raises:
      InputError: `out_dir` cannot be created or written; generation failed.
    """
    seed, out_dir = _check_seed(seed), os.path.abspath(os.fspath(out_dir))
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create {out_dir}: {err.strerror or err}") from None
    paths = {
        "target": os.path.join(out_dir, TARGET_NAME),
        "speech": os.path.join(out_dir, SPEECH_NAME),
    }
    stamp_path = os.path.join(out_dir, STAMP_NAME)
    stamp = {
        "format": STAMP_FORMAT,
        "seed": int(seed),
        "target": {"seconds": TARGET_SECONDS, "size": TARGET_SIZE, "fps": FPS, "seed": int(seed)},
        "speech": {"seconds": SPEECH_SECONDS, "seed": int(seed) + 1},
    }
    if all(os.path.isfile(p) for p in paths.values()) and _read_stamp(stamp_path) == stamp:
        return paths
    if os.path.exists(stamp_path):
        os.remove(stamp_path)  # a run interrupted below must not leave a stamp that matches
    target = make_target_video(paths["target"], TARGET_SECONDS, TARGET_SIZE, FPS, seed)
    make_speech(paths["speech"], SPEECH_SECONDS, seed + 1, avoid_voice=target.speaker.voice)
    records.atomic_write(stamp_path, lambda f: json.dump(stamp, f, indent=1), mode="w")
    return paths


def _read_stamp(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
