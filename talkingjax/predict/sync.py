"""The trained AV-sync instrument as a measure: any video with speech -> AV offset and confidence
(paper 000 Table III, the SyncNet protocol of `talkingjax.metrics.sync`).

    scorer = SyncScorer.default()               # shipped: talkingjax/assets/models/sync
    scorer = SyncScorer.from_workdir(workdir)   # or a train_sync workdir
    score = scorer.score("out.mp4")             # -> metrics.sync.SyncScore
    score = scorer.score_arrays(frames, landmarks, wave, fps)   # already decoded and tracked

`score(mp4)` frames the face as the preprocessor does (`talkingjax.video.reconstruct`): the
project's tracker (`tracking.track_video`), the smoothed 224 px crop against the default face
model (`tracking.crop_track`, `crop_video`, `landmarks_in_crop`); then mouth crops at the source
rate, nearest-time resampling to 25 fps (`talkingjax.data.sync.sync_clip`), the speech
features of the file's audio (`talkingjax.audio`), embeddings of every 5-frame video window
and of every audio position the offsets -15..15 read, and the protocol's offset curve. Video
windows with a frame where the face was lost are left out, and so are, when the clip is long
enough to have others, windows without audio at every offset (`metrics.sync.complete_rows`:
every offset is then averaged over the same windows).

`SyncScorer.protocol` is "syncnet" (the mean distance curve of Chung & Zisserman) or
"centred" (each distance minus the mean distance of its audio window,
`metrics.sync.centre_audio`: a still face scores exactly no confidence, and silent stretches
of a short clip stop pulling the curve). `SyncScorer.no_confidence` is the threshold of
"no lip sync" for that protocol. Both are chosen on the val speakers and stored with the model
(`instrument.json`); a confidence below the threshold means the video shows no lip motion
that matches the speech (e.g. a still face); None when unknown.
"""

from __future__ import annotations

import json
import os

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from talkingjax import audio
from talkingjax.data import records
from talkingjax.data import sync as sync_data
from talkingjax.errors import InputError
from talkingjax.metrics import sync as sync_metrics
from talkingjax.models.sync import SyncNet
from talkingjax.train import checkpoint, runner
from talkingjax.train import sync as sync_train

ASSET_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "models", "sync"
)
PROTOCOLS = ("syncnet", "centred")
PARAMS_FILE = "params.msgpack"
INSTRUMENT_FILE = "instrument.json"
CROP_SIZE = 224  # the preprocessor's face crops (the mouths the model was trained on)


class SyncScorer:
    """A trained `SyncNet` and the SyncNet protocol around it.

    Attributes:
      model: the `SyncNet`.
      params: its parameters.
      max_offset: K of the offset scan (15, the protocol's +-0.6 s).
      no_confidence: confidence threshold of "no lip sync" (None: unknown).
      protocol: "syncnet" or "centred" (module docstring).
      config: the training config (None if not known).
    """

    def __init__(
        self,
        model: SyncNet,
        params,
        max_offset: int = sync_metrics.MAX_OFFSET,
        no_confidence: float | None = None,
        config=None,
        chunk: int = 64,
        protocol: str = "syncnet",
    ):
        if protocol not in PROTOCOLS:
            raise InputError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        self.protocol = protocol
        self.model = model
        self.params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
        self.max_offset = int(max_offset)
        self.no_confidence = no_confidence
        self.config = config
        self.chunk = int(chunk)
        self._video = jax.jit(
            lambda p, x: model.apply({"params": p}, x, method=SyncNet.encode_video)
        )
        self._audio = jax.jit(
            lambda p, x: model.apply({"params": p}, x, method=SyncNet.encode_audio)
        )

    # -------------------------------------------------------------------------------- loading

    @classmethod
    def from_workdir(cls, workdir: str, step: int | None = None) -> SyncScorer:
        """The latest (or given) checkpoint of a `train_sync` workdir (its `no_confidence`
        from `<workdir>/instrument.json` if the checks wrote one)."""
        config, variables = runner.load_variables(sync_train.TRAINER, workdir, step)
        info = read_instrument(workdir)
        return cls(
            sync_train.build(config),
            variables["params"],
            no_confidence=info.get("no_confidence"),
            config=config,
            protocol=info.get("protocol", "syncnet"),
        )

    @classmethod
    def from_exported(cls, directory: str) -> SyncScorer:
        """A model written by `export` (config.json + params.msgpack [+ instrument.json])."""
        path = os.path.join(directory, PARAMS_FILE)
        if not os.path.isfile(path):
            raise InputError(f"{directory} holds no exported sync model ({PARAMS_FILE})")
        config = checkpoint.load_workdir_config(directory)
        model = sync_train.build(config)
        target = jax.eval_shape(lambda: sync_train.init_variables(config, model))["params"]
        params = runner.read_msgpack_like(path, target)
        info = read_instrument(directory)
        return cls(
            model,
            params,
            no_confidence=info.get("no_confidence"),
            config=config,
            protocol=info.get("protocol", "syncnet"),
        )

    @classmethod
    def default(cls) -> SyncScorer:
        """The model shipped in `talkingjax/assets/models/sync` (see its README)."""
        return cls.from_exported(ASSET_DIR)

    # -------------------------------------------------------------------------------- scoring

    def _encode(self, fn, x: np.ndarray) -> np.ndarray:
        """Embeddings of [N, ...] inputs in fixed-size chunks (one compiled shape)."""
        out = []
        for s in range(0, len(x), self.chunk):
            part = x[s : s + self.chunk]
            pad = self.chunk - len(part)
            if pad:
                part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), part.dtype)])
            out.append(np.asarray(fn(self.params, part))[: self.chunk - pad])
        return np.concatenate(out).astype(np.float64)

    def embed_clip(self, clip: sync_data.SyncClip) -> tuple[np.ndarray, np.ndarray]:
        """(video [W, D], audio [W + 2K, D]) embeddings of a clip, NaN rows where missing.

        W = frames - 4 video windows; a window with an undetected frame gets a NaN row, as
        does an audio position outside the audio (`data.sync.audio_scan`'s layout).
        """
        w = clip.num_frames - sync_data.FRAMES + 1
        if w < 1:
            raise InputError(
                f"{clip.clip_id}: {clip.num_frames} frames at 25 fps; the protocol needs at "
                f"least {sync_data.FRAMES}"
            )
        t = np.arange(w)
        video = self._encode(self._video, sync_data.video_windows(clip.mouths, t))
        ok = np.ones(w, bool)
        for i in range(sync_data.FRAMES):
            ok &= clip.detected[t + i]
        video[~ok] = np.nan
        wins, present = sync_data.audio_scan(clip.mfcc, w, self.max_offset)
        aud = self._encode(self._audio, wins)
        aud[~present] = np.nan
        return video, aud

    def score_clip(self, clip: sync_data.SyncClip) -> sync_metrics.SyncScore:
        """The protocol on a `SyncClip` (25-fps mouths + speech features).

        Raises:
          InputError: too few frames, no video window with a detected face, or no audio at
            some offset (the clip is shorter than the scan).
        """
        video, aud = self.embed_clip(clip)
        if not np.isfinite(video).all(axis=1).any():
            raise InputError(f"{clip.clip_id}: no 5-frame window with a detected face")
        dists = sync_metrics.distance_matrix(video, aud, self.max_offset)
        if self.protocol == "centred":
            dists = sync_metrics.centre_audio(dists)
        return sync_metrics.av_sync(sync_metrics.complete_rows(dists))

    def score_arrays(
        self,
        frames: np.ndarray,
        landmarks: np.ndarray,
        wave: np.ndarray,
        fps: float,
        detected: np.ndarray | None = None,
        name: str = "video",
    ) -> sync_metrics.SyncScore:
        """The protocol on decoded frames with their face landmarks and the speech.

        Args:
          frames: uint8 [T, H, W, 3] RGB frames (e.g. the tracker's 224 px face crops).
          landmarks: [T, 478, 2] MediaPipe landmarks in the frames' pixels.
          wave: float32 [N] 16 kHz mono speech (`talkingjax.audio.load_audio`), starting with
            frame 0.
          fps: the frames' rate (any; resampled to 25 fps by nearest time).
          detected: bool [T], False where the face was lost (default all found).
          name: for messages.
        """
        frames = np.asarray(frames)
        detected = np.ones(len(frames), bool) if detected is None else np.asarray(detected, bool)
        wave = audio.check_audio(np.asarray(wave, np.float32), name, min_seconds=0.0)
        clip = sync_data.sync_clip(
            name, frames, landmarks, detected, audio.speech_features(wave), fps
        )
        return self.score_clip(clip)

    def score(self, path: str, audio_path: str | None = None) -> sync_metrics.SyncScore:
        """AV offset and confidence of a video file with speech.

        Args:
          path: the video (mp4 or anything ffmpeg reads, constant frame rate).
          audio_path: the speech, if not the video's own audio track.

        Raises:
          InputError: an unreadable video, no audio track (and no `audio_path`), silent
            audio, no face (`tracking.track_video`), too short for the protocol.
        """
        from talkingjax.face3d import default
        from talkingjax.video import tracking

        path = os.fspath(path)
        info = tracking.probe_video(path)
        if audio_path is None and not info.has_audio:
            raise InputError(f"{path} has no audio track; the AV offset needs the speech")
        wave = audio.load_audio(audio_path or path, min_seconds=0.0)
        track = tracking.track_video(path)
        params = tracking.crop_track(track, default.load_default(), size=CROP_SIZE)
        crops = tracking.crop_video(path, params, CROP_SIZE)
        landmarks = tracking.landmarks_in_crop(track, params)
        return self.score_arrays(crops, landmarks, wave, track.fps, track.detected, name=path)


def read_instrument(directory: str) -> dict:
    """`instrument.json` of a workdir or exported model ({} when there is none)."""
    path = os.path.join(directory, INSTRUMENT_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def write_instrument(directory: str, info: dict) -> None:
    """Writes `instrument.json`: the `protocol`, the threshold `no_confidence` and how they
    were chosen."""
    os.makedirs(directory, exist_ok=True)
    records.atomic_write(
        os.path.join(directory, INSTRUMENT_FILE),
        lambda f: f.write(json.dumps(info, indent=1, sort_keys=True)),
        mode="w",
    )


def export(
    workdir: str, out_dir: str, step: int | None = None, dtype: str = "float32"
) -> ml_collections.ConfigDict:
    """Writes a `train_sync` workdir's evaluated parameters (no optimizer state) to `out_dir`.

    `out_dir` gets config.json (the run's config, with `exported_step`) and params.msgpack
    (`flax.serialization`, in `dtype`: "float32" or "bfloat16"; loaded back as float32), and
    the workdir's instrument.json if it has one. Returns the config.
    """
    if dtype not in ("float32", "bfloat16"):
        raise InputError(f"dtype must be float32 or bfloat16, got {dtype!r}")
    step = checkpoint.latest_step(workdir) if step is None else int(step)
    info = read_instrument(workdir) or None
    if info is not None:
        if info.get("step") not in (None, step):
            raise InputError(
                f"{workdir}/{INSTRUMENT_FILE} holds the threshold chosen on val at step "
                f"{info.get('step')}; check val at step {step} first (experiments.eval_sync)"
            )
    config, variables = runner.load_variables(sync_train.TRAINER, workdir, step)
    cast = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
    params = jax.tree.map(lambda x: np.asarray(jnp.asarray(x, cast)), variables["params"])
    os.makedirs(out_dir, exist_ok=True)
    data = flax.serialization.msgpack_serialize(flax.serialization.to_state_dict(params))
    records.atomic_write(os.path.join(out_dir, PARAMS_FILE), lambda f: f.write(data))
    config = ml_collections.ConfigDict(config.to_dict())
    config.exported_step = step
    config.exported_dtype = dtype
    checkpoint.write_workdir_config(out_dir, config.to_json())
    if info is not None:
        write_instrument(out_dir, info)
    return config
