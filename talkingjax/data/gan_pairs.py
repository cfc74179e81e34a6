"""Paired data of the rendering-to-realistic GAN: (rendered frame, real frame) per video frame.

Paper 000 Sec. IV-B3: "Given a real frame g_i, the corresponding frame r_i in the training data
is synthesized by rendering the 3D face reconstructed from g_i." The rendered frames hold only
the face; hair and background come from a real frame (at training time g_i itself, at test time
the matched background of Sec. IV-B2). So a clip stores the render and its mask separately, and
the generator's input is composed when a batch is drawn (`compose`):

    r_t = mask_t * render_t + (1 - mask_t) * background_t       (background_t = g_t in training)

Layout of a pairs directory::

    <root>/manifest.json       {"format": "talkingjax.ganpairs/1", "size": S, "clips": [...]}
    <root>/pairs/<clip_id>.npz `real` uint8 [T, S, S, 3], `render` uint8 [T, S, S, 3] (the
                               face on white), `mask` uint8 [T, S, S] (255 on the face)

Each manifest entry: `clip_id`, `identity` (who: identities index the memory variant's identity
classes), `fps` (0 for a still image), `num_frames`, `split`, `file`.

Sources, all giving the same `PairClip`:

- `video_pairs`: a video preprocessed by `talkingjax.data.preprocess` (its `coeffs/<id>.mat`
  with the crop transforms and `reports/<id>.json`): every frame is cut out at S x S with the
  fit's crop (the 224 framing scaled to S: face, hair and shoulders) and the fit is rendered
  with the *detailed albedo* (paper Sec. IV-B1) read from the most neutral, most frontal frame
  among the first `albedo_frames` -- so that frames after them, which evaluation holds out,
  leave no trace in the texture.
- `portrait_pairs`: still photographs (paper 000 pretrains on LFW stills): one fit each,
  a one-frame clip whose window repeats the frame.
- `synthetic_pairs`: made by the project from its default face model, with no download: the
  "real" frame is the face with per-identity high-frequency albedo detail and stronger
  shading over a textured background, the render the same face with the smooth model albedo.
  What the GAN must learn (add the detail, fix the shading inside the face, keep the rest) is
  the task's structure at toy scale; tests and the embedded default train on it.

    from talkingjax.data import gan_pairs
    clip = gan_pairs.video_pairs("dataset/", "yi2020_target_31", size=128, albedo_frames=300)
    gan_pairs.save(root, [clip], size=128)
    clips = gan_pairs.load(root)
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from talkingjax.data import records
from talkingjax.errors import InputError

FORMAT = "talkingjax.ganpairs/1"
REFERENCE_CROP = 224  # the fit's crop size (the reference camera)
ALBEDOS = ("detailed", "model")


@dataclasses.dataclass(frozen=True)
class PairClip:
    """Rendered and real frames of one clip (or one still image), uint8 at S x S.

    Attributes:
      clip_id: unique name.
      identity: who is in it (clips of one person share it).
      fps: frame rate; 0 for a still image.
      real: [T, S, S, 3] uint8 real frames g_t.
      render: [T, S, S, 3] uint8 rendered face on white.
      mask: [T, S, S] uint8, 255 where the render shows the face.
      split: "train", "test", ...
      albedo: how the face was coloured: "detailed" (the per-vertex albedo read from a real
        frame, paper 000 Sec. IV-B1) or "model" (the morphable model's low-frequency albedo of
        the fitted texture coefficients). The paper pretrains on detailed renders and
        fine-tunes on the target's video with low-frequency ones; a renderer feeding a
        trained generator must colour faces the same way.
    """

    clip_id: str
    identity: str
    fps: float
    real: np.ndarray
    render: np.ndarray
    mask: np.ndarray
    split: str = "train"
    albedo: str = "detailed"

    @property
    def num_frames(self) -> int:
        return int(self.real.shape[0])

    @property
    def size(self) -> int:
        return int(self.real.shape[1])


def check_clip(clip: PairClip) -> PairClip:
    """Raises `InputError` unless the arrays agree in shape and type."""
    t, s = clip.real.shape[:2] if clip.real.ndim == 4 else (0, 0)
    want = {"real": (t, s, s, 3), "render": (t, s, s, 3), "mask": (t, s, s)}
    for name, shape in want.items():
        array = getattr(clip, name)
        if array.shape != shape or array.dtype != np.uint8 or t == 0:
            raise InputError(
                f"pairs clip {clip.clip_id}: {name} is {array.dtype} {array.shape}; expected "
                f"uint8 {shape} (real [T, S, S, 3] with T >= 1)"
            )
    return clip


def compose(render: np.ndarray, mask: np.ndarray, background: np.ndarray) -> np.ndarray:
    """r = mask * render + (1 - mask) * background, all uint8 -> float32 in [0, 1].

    Args:
      render: [..., S, S, 3] uint8. mask: [..., S, S] uint8. background: [..., S, S, 3] uint8.
    """
    m = mask[..., None].astype(np.float32) / 255.0
    return (m * render + (1.0 - m) * background).astype(np.float32) / 255.0


# ------------------------------------------------------------------------------------ files


def save(root: str | os.PathLike, clips: list[PairClip], size: int) -> None:
    """Writes the clips' files and the manifest atomically (existing clips of root are kept)."""
    root = os.fspath(root)
    os.makedirs(os.path.join(root, "pairs"), exist_ok=True)
    entries = {}
    manifest = os.path.join(root, "manifest.json")
    if os.path.exists(manifest):
        old = _read_manifest(root)
        if old["size"] != size:
            raise InputError(f"{root} holds {old['size']}^2 pairs; these are {size}^2")
        entries = {e["clip_id"]: e for e in old["clips"]}
    for clip in clips:
        check_clip(clip)
        if clip.size != size:
            raise InputError(f"pairs clip {clip.clip_id} is {clip.size}^2; the set is {size}^2")
        file = os.path.join("pairs", f"{clip.clip_id}.npz")
        records.atomic_write(
            os.path.join(root, file),
            lambda f, c=clip: np.savez(f, real=c.real, render=c.render, mask=c.mask),
            "xb",
        )
        entries[clip.clip_id] = {
            "clip_id": clip.clip_id,
            "identity": clip.identity,
            "fps": float(clip.fps),
            "num_frames": clip.num_frames,
            "split": clip.split,
            "albedo": clip.albedo,
            "file": file,
        }
    body = {"format": FORMAT, "size": int(size), "clips": list(entries.values())}
    records.atomic_write(manifest, lambda f: f.write(json.dumps(body, indent=1)), "x")


def _read_manifest(root: str) -> dict:
    path = os.path.join(root, "manifest.json")
    try:
        with open(path) as f:
            body = json.load(f)
    except FileNotFoundError:
        raise InputError(f"{root} is not a pairs directory: no manifest.json") from None
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read {path}: {err}") from None
    if body.get("format") != FORMAT:
        raise InputError(f"{path}: format {body.get('format')!r}, expected {FORMAT!r}")
    return body


def load(root: str | os.PathLike, split: str | None = None) -> list[PairClip]:
    """The clips of a pairs directory (optionally only one split), checked.

    `root` may join several directories with commas ("A,B"): their clips in that order, e.g.
    one video's pairs made with each albedo, which share clip ids.
    """
    root = os.fspath(root)
    if "," in root:
        return [c for r in root.split(",") if r for c in load(r, split)]
    body = _read_manifest(root)
    clips = []
    for e in body["clips"]:
        if split is not None and e["split"] != split:
            continue
        path = os.path.join(root, e["file"])
        try:
            with np.load(path) as z:
                arrays = {k: z[k] for k in ("real", "render", "mask")}
        except (OSError, KeyError, ValueError) as err:
            raise InputError(f"cannot read pairs clip {path}: {err}") from None
        clip = PairClip(
            e["clip_id"], e["identity"], e["fps"], split=e["split"],
            albedo=e.get("albedo", "detailed"), **arrays,
        )  # fmt: skip
        if check_clip(clip).size != body["size"]:
            raise InputError(f"{path} is {clip.size}^2; the manifest says {body['size']}^2")
        clips.append(clip)
    if not clips:
        raise InputError(f"{root} has no pairs clips" + (f" in split {split!r}" if split else ""))
    return clips


# ---------------------------------------------------------------------------------- renders


def scaled_transform(params: np.ndarray, crop_size: int, size: int) -> np.ndarray:
    """Crop transforms [T, 5] of a `crop_size` crop -> the same framing at `size` pixels."""
    out = np.array(params, np.float32, copy=True)
    out[..., 2:5] *= size / crop_size
    return out


def render_frames(model, coeffs, size: int, albedo: np.ndarray | None = None, batch: int = 16):
    """The fitted faces at `size`^2: (render uint8 [T, S, S, 3] on white, mask uint8 [T, S, S]).

    Args:
      model: the morphable model. coeffs: `FaceCoeffs` with batch [T] (the 224-camera fit;
        the camera is scaled to `size`, which keeps the projection's framing).
      albedo: [V, 3] per-vertex albedo replacing the model's (the detailed albedo), or None.
    """
    from talkingjax import visualize

    images, masks = visualize.render_fit(model, coeffs, size, albedo=albedo, batch=batch)
    return to_uint8(images), to_uint8(masks)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Images in [0, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.asarray(x) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _slice_coeffs(coeffs, index):
    return jax.tree.map(lambda x: np.asarray(x)[index], coeffs)


def video_pairs(
    preprocessed: str | os.PathLike,
    clip_id: str,
    size: int,
    video: str | None = None,
    albedo_frames: int | None = None,
    max_frames: int | None = None,
    model=None,
    split: str = "train",
    albedo: str = "detailed",
) -> PairClip:
    """Pairs of every frame of one preprocessed video (`talkingjax.data.preprocess` output).

    Args:
      preprocessed: the preprocess output directory (needs `coeffs/<clip_id>.mat` with crop
        transforms and `reports/<clip_id>.json`).
      clip_id: the clip.
      size: S, the side of the pairs' frames.
      video: the video file (default: the one the report names).
      albedo_frames: read the detailed albedo from the best frame among the first this many
        (default all): frames after them stay unseen, e.g. evaluation frames.
      max_frames: only the first frames.
      model: the fitted morphable model (default: the default face model).
      albedo: "detailed" or "model" (see `PairClip.albedo`; the paper fine-tunes on "model").
    """
    from talkingjax.face3d import camera as camera_lib
    from talkingjax.face3d import coeffs as coeffs_lib
    from talkingjax.face3d import default
    from talkingjax.face3d import fit as fit_lib
    from talkingjax.video import reconstruct, tracking

    root = os.fspath(preprocessed)
    report_path = os.path.join(root, "reports", f"{clip_id}.json")
    try:
        with open(report_path) as f:
            report = json.load(f)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the preprocess report {report_path}: {err}") from None
    if report.get("status") not in ("ok", "done"):
        raise InputError(f"{clip_id} was not preprocessed successfully: {report.get('status')}")
    model = default.load_default() if model is None else model
    coeffs, params = coeffs_lib.read_mat(
        os.path.join(root, "coeffs", f"{clip_id}.mat"), coeffs_lib.Layout.of(model)
    )
    if params is None:
        raise InputError(f"{clip_id}.mat has no transform_params; cannot cut the real frames")
    count = len(params) if max_frames is None else min(max_frames, len(params))
    coeffs, params = _slice_coeffs(coeffs, slice(0, count)), params[:count]
    crop_size = int(report.get("crop_size", REFERENCE_CROP))
    video = video or report["video"]
    real = tracking.crop_video(video, scaled_transform(params, crop_size, size), size)

    if albedo not in ALBEDOS:
        raise InputError(f"albedo must be one of {ALBEDOS}, got {albedo!r}")
    vertex_albedo = None  # "model": the renderer colours with the texture coefficients
    if albedo == "detailed":
        detected = np.ones(count, bool)
        lost = report.get("tracking", {}).get("lost_frame_indices", [])
        detected[[i for i in lost if i < count]] = 0
        n_albedo = count if albedo_frames is None else min(albedo_frames, count)
        ref = reconstruct.reference_frame(
            _slice_coeffs(coeffs, slice(0, n_albedo)), detected[:n_albedo]
        )
        # The albedo is read at the fit's own resolution, where the fit is sharpest.
        frame = next(tracking.read_frames(video, start=ref, count=1))
        crop = fit_lib.apply_crop(frame, params[ref], (crop_size, crop_size)).astype(np.float32)
        vertex_albedo = reconstruct.detailed_albedo(
            model, _slice_coeffs(coeffs, ref), crop / 255.0, camera_lib.Camera().scaled(crop_size)
        )
    render, mask = render_frames(model, coeffs, size, vertex_albedo)
    fps = float(report.get("fps", 25.0))
    speaker = report.get("speaker_id", clip_id)
    return PairClip(clip_id, speaker, fps, real, render, mask, split, albedo)


def portrait_pairs(faces_dir: str, size: int, model=None, split: str = "train") -> list[PairClip]:
    """One-frame pairs of every portrait with a detectable face in `faces_dir`.

    Each portrait: MediaPipe landmarks -> 224 crop (`fit.crop_to_model`) -> `fit.fit_image`
    -> the detailed albedo of that photo -> render and real crop at `size`.
    """
    from talkingjax.face3d import default, images
    from talkingjax.face3d import fit as fit_lib
    from talkingjax.video import reconstruct

    model = default.load_default() if model is None else model
    portraits, _ = images.detect_portraits(faces_dir)
    clips = []
    for p in portraits:
        coeffs, albedo, params = reconstruct.fit_portrait(model, p.image, p.points)
        batched = jax.tree.map(lambda x: np.asarray(x)[None], coeffs)
        render, mask = render_frames(model, batched, size, albedo)
        real = fit_lib.apply_crop(
            to_uint8(p.image), scaled_transform(params, REFERENCE_CROP, size), (size, size)
        )
        name = os.path.splitext(p.name)[0]
        clips.append(PairClip(name, name, 0.0, real[None], render, mask, split))
    return clips


# -------------------------------------------------------------------------------- synthetic


def synthetic_pairs(
    num_identities: int = 4,
    frames: int = 40,
    size: int = 64,
    seed: int = 0,
    fps: float = 25.0,
    split: str = "train",
) -> list[PairClip]:
    """Project-made pairs from the default face model (see the module docstring).

    Every identity gets random identity/albedo coefficients, a lighting, a textured
    background, a per-vertex albedo detail pattern and a smooth head motion with talking
    expressions; clip i is identity i. Deterministic in `seed`.
    """
    from talkingjax.face3d import camera as camera_lib
    from talkingjax.face3d import coeffs as coeffs_lib
    from talkingjax.face3d import default
    from talkingjax.render import face as face_render

    model = default.load_default()
    layout = coeffs_lib.Layout.of(model)
    camera = camera_lib.Camera().scaled(size)
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / fps
    yy, xx = np.mgrid[0:size, 0:size] / size

    @jax.jit
    def render(c, albedo, back):
        m = model.replace(mean_albedo=albedo, albedo_basis=jnp.zeros_like(model.albedo_basis))
        out = face_render.render_face(m, c, camera, background=back)
        return out.image, out.mask

    clips = []
    for i in range(num_identities):
        freq, phase = rng.uniform(0.3, 0.9, (2, 3)), rng.uniform(0, 2 * np.pi, (2, 3))
        angles = np.array([0.1, 0.3, 0.06]) * np.sin(2 * np.pi * freq[0] * t + phase[0])
        # The fit's framing: the default model at zero translation fills the reference crop.
        trans = np.array([0.05, 0.05, 0.0]) * np.sin(2 * np.pi * freq[1] * t + phase[1])
        exp = 0.8 * np.sin(2 * np.pi * rng.uniform(1, 4, layout.exp) * t + rng.uniform(0, 6, 1))
        exp *= rng.standard_normal(layout.exp) / np.sqrt(np.arange(1, layout.exp + 1))
        # SH light (RGB-major, 3 x 9): a slightly tinted ambient, one direction for all colours.
        gamma = np.zeros((3, 9))
        gamma[:, 0] = rng.uniform(-0.1, 0.1, 3)
        gamma[:, 1:4] = rng.uniform(-0.3, 0.3, 3)
        gamma = gamma.ravel()
        ident = dict(
            id=np.broadcast_to(0.8 * rng.standard_normal(layout.id), (frames, layout.id)),
            tex=np.broadcast_to(0.8 * rng.standard_normal(layout.tex), (frames, layout.tex)),
            gamma=np.broadcast_to(gamma, (frames, 27)),
        )
        c = coeffs_lib.FaceCoeffs(exp=exp, angles=angles, trans=trans, **ident)
        c = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), c)
        base = np.asarray(face_render.pose_face(model, _slice_coeffs(c, 0)).albedo)
        # Detail: per-vertex freckle-like noise and darker lips/brows stand-in (vertex bands).
        detail = 1.0 + 0.25 * rng.standard_normal((base.shape[0], 1)) * rng.uniform(0.5, 1.0, 3)
        detailed = np.clip(base * detail, 0, 1).astype(np.float32)
        colour = rng.uniform(0.2, 0.8, 3)
        back = colour + 0.15 * np.stack(
            [
                np.sin(2 * np.pi * (k + 1) * (xx + yy * (k % 2)) + rng.uniform(0, 6))
                for k in range(3)
            ],
            axis=-1,
        )
        back = jnp.asarray(np.clip(back, 0, 1), jnp.float32)
        real, mask = render(c, jnp.asarray(detailed), back)
        smooth, _ = render(c, jnp.asarray(base), 1.0)
        # The real frames' shading is stronger than the render's (the fit's SH light is a
        # low-frequency approximation): a contrast change inside the face.
        real = np.asarray(real)
        m = np.asarray(mask)[..., None]
        real = m * np.clip(0.5 + 1.3 * (real - 0.5), 0, 1) + (1 - m) * real
        clips.append(
            PairClip(
                f"synthetic_{seed}_{i:03d}",
                f"synthetic_{seed}_{i:03d}",
                fps,
                to_uint8(real),
                to_uint8(smooth),
                to_uint8(mask),
                split,
            )
        )
    return clips


# --------------------------------------------------------------------------------- sampling

LOAD_RATIO = 286 / 256  # the paper's augmentation: resize 256 -> 286, random 256 crop


def window(clip: PairClip, t: int, frames: int = 3, background: np.ndarray | None = None):
    """The generator input at frame t: [S, S, 3 * frames] float32 in [-1, 1], oldest first.

    Frame t - k is `compose(render, mask, background)` of frame max(t - k, 0) (a still image
    repeats its one frame). `background` [frames, S, S, 3] uint8 replaces the real frames
    behind the face (test time: the matched backgrounds); default the clip's real frames.
    """
    idx = [max(t - k, 0) for k in range(frames - 1, -1, -1)]
    back = clip.real[idx] if background is None else background
    x = compose(clip.render[idx], clip.mask[idx], back)  # [frames, S, S, 3]
    return np.concatenate(list(x), axis=-1) * 2.0 - 1.0


class PairSampler:
    """Random (window, real frame) pairs with the paper's augmentation; a pure function of
    (seed, step), like every sampler of the library.

    Augmentation (reference-facts.md): the window and the real frame are resized together by
    `LOAD_RATIO`, a random S x S crop is cut out and flipped left-right with probability 1/2.
    """

    def __init__(
        self,
        clips: list[PairClip],
        seed: int,
        frames: int | None = None,
        augment: bool = True,
        identities: list[str] | None = None,
    ):
        """clips: the pairs. frames: use only the first this many frames of each clip.
        identities: the identity classes (default: the clips' sorted identities)."""
        if not clips:
            raise InputError("no pairs clips to sample from")
        self.clips = clips
        self.seed = seed
        self.augment = augment
        self.size = clips[0].size
        if any(c.size != self.size for c in clips):
            raise InputError("pairs clips of different sizes cannot share a batch")
        self.frames = [c.num_frames if frames is None else min(frames, c.num_frames) for c in clips]
        self.identities = identities or sorted({c.identity for c in clips})
        self._index = {name: i for i, name in enumerate(self.identities)}
        counts = np.array(self.frames, np.float64)
        self._p = counts / counts.sum()

    @property
    def num_frames(self) -> int:
        return int(sum(self.frames))

    def sample(self, step: int, batch_size: int) -> dict[str, np.ndarray]:
        """{"render": [B, S, S, 9], "real": [B, S, S, 3] float32 in [-1, 1], "identity":
        int32 [B] (index into `identities`)}."""
        import cv2

        from talkingjax.data import sampling

        rng = sampling.step_rng(self.seed, step)
        s = self.size
        load = int(round(s * LOAD_RATIO))
        renders, reals, ids = [], [], []
        for i in rng.choice(len(self.clips), size=batch_size, p=self._p):
            clip = self.clips[i]
            t = int(rng.integers(0, self.frames[i]))
            x = np.concatenate([window(clip, t), clip.real[t].astype(np.float32) / 127.5 - 1], -1)
            if self.augment:
                # cv2.resize takes up to 512 channels; all 12 move together.
                x = cv2.resize(x, (load, load), interpolation=cv2.INTER_LINEAR)
                top, left = rng.integers(0, load - s + 1, 2)
                x = x[top : top + s, left : left + s]
                if rng.random() < 0.5:
                    x = x[:, ::-1]
            renders.append(x[..., :-3])
            reals.append(x[..., -3:])
            ids.append(self._index.get(clip.identity, -1))
        return {
            "render": np.stack(renders).astype(np.float32),
            "real": np.stack(reals).astype(np.float32),
            "identity": np.asarray(ids, np.int32),
        }
