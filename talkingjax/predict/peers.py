"""Pose predictors of the one pose table's protocol, and the loader of any pose workdir.

The protocol (`talkingjax.evaluation.pose_table`): attributes `name`, `fps`, `has_pattern`,
and `predict(mfcc, reference_pose, frames, seed=0) -> [frames, 6]`; with `has_pattern` also
`encode_patterns(poses, fps) -> [N, k]`. `Yi2022Predictor` puts paper 000's model
(`HeadMotionPredictor`) behind it, `PeerPredictor` the peers' (papers 002-004,
`talkingjax.train.peers`); `load_predictor` picks one by the workdir's `config.trainer`:

    predictor = load_predictor(workdir)
    pose = predictor.predict(mfcc, reference_pose, frames)           # [frames, 6]

LSP trained on APC features (`config.model.audio_features = "apc"`, `lsp.APCPoseModel`)
encodes the given MFCC rows with its APC and samples its pose model on h_L per frame; an LSP
workdir on raw MFCC rows (the field "mfcc", or absent in older workdirs) reads the rows.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from talkingjax.data import records, sampling
from talkingjax.errors import InputError
from talkingjax.models import lsp, posegan
from talkingjax.predict.head_motion import HeadMotionPredictor
from talkingjax.train import checkpoint, peers, runner

YI2022_NAME = "yi2022 (paper 000)"


class Yi2022Predictor:
    """Paper 000 (E_m + D_m) behind the predictor protocol: pattern of the reference pose,
    then the pose from the audio rows."""

    has_pattern = True

    def __init__(self, predictor: HeadMotionPredictor, name: str = YI2022_NAME):
        self.predictor = predictor
        self.name = name
        self.fps = predictor.fps
        self.stride = predictor.stride

    @classmethod
    def from_workdir(cls, workdir: str, step: int | None = None) -> Yi2022Predictor:
        return cls(HeadMotionPredictor.from_workdir(workdir, step))

    def predict(self, mfcc, reference_pose, frames: int, seed: int = 0) -> np.ndarray:
        del seed  # deterministic model
        x = self.predictor.encode_pattern(reference_pose, self.fps)
        return self.predictor.predict_from_features(mfcc, x, frames)

    def encode_patterns(self, poses, fps: float) -> np.ndarray:
        return self.predictor.encode_patterns(poses, fps)


# Each peer's rollout: `(model, window, temperature) -> predict(params, feats [frames, A],
# reference_pose [R, 6], seed) -> [frames, 6]`; feats are the per-frame audio features
# (`PeerPredictor._features`: 4 MFCC rows, or LSP's APC features with `model` its pose model).


def _audio2head(model, window: int, temperature: float):
    g = model[0]
    # Recurrent: one call covers any number of frames.
    run = jax.jit(lambda p, a, x: g.apply({"params": p}, a[None], x[None])[0])
    return lambda params, feats, ref, seed: run(params["generator"], feats, jnp.asarray(ref[-1]))


def _posegan(model, window: int, temperature: float):
    g = model[0]

    def run(p, a, x):
        apply = functools.partial(g.apply, {"params": p})
        return posegan.generate_long(apply, a, x, window=window)

    run = jax.jit(run)
    return lambda params, feats, ref, seed: run(params["generator"], feats, jnp.asarray(ref[-1]))


def _lsp(model, window: int, temperature: float):
    def predict(params, feats, ref, seed):
        # One extra frame, so the oldest kept state has a true velocity (not the 0 that
        # `pose_to_states` gives its first frame) whenever the history is long enough.
        history = ref[-(model.receptive_field + 1) :]
        states = lsp.pose_to_states(jnp.asarray(history))
        if history.shape[0] > 1:
            states = states[1:]
        key = jax.random.key(seed)
        return lsp.sample(model, {"params": params}, feats, states, key, temperature)

    return predict


_ROLLOUTS = {"audio2head": _audio2head, "posegan": _posegan, "lsp": _lsp}

#: APC runs over the MFCC rows padded on the right to a multiple of this (causal, so the
#: padding changes no feature), so clips of similar lengths share one compiled program.
_APC_BUCKET_ROWS = 512


def _mfcc_features(fps: float):
    """Per-frame raw MFCC features: `(mfcc [N, 13], frames) -> [frames, 52]`."""
    return lambda mfcc, frames: sampling.frame_audio_features(mfcc, fps, frames)


def _apc_features(model: lsp.APCPoseModel, variables: dict, fps: float):
    """Per-frame APC features: `(mfcc [N, 13], frames) -> [frames, 4 * hidden]`.

    APC encodes the rows from the first given one (its state starts at 0 there, as at the
    start of a training clip) up to the last row the frames read; each frame takes h_L at its
    rows (`train.peers.frame_rows`), as in training.
    """
    encode = jax.jit(
        lambda v, rows: model.apply(v, rows[None], method=lsp.APCPoseModel.encode)[2][0]
    )

    def features(mfcc: np.ndarray, frames: int) -> np.ndarray:
        index = peers.frame_rows(fps, frames)
        needed = int(index[-1, -1]) + 1
        if mfcc.ndim != 2 or mfcc.shape[1] != model.surface_dim:
            raise InputError(f"mfcc must be [rows, {model.surface_dim}], got {mfcc.shape}")
        if needed > mfcc.shape[0]:
            raise InputError(f"{frames} frames at {fps} fps need more audio than given")
        padded = -(-needed // _APC_BUCKET_ROWS) * _APC_BUCKET_ROWS
        rows = np.zeros((padded, mfcc.shape[1]), np.float32)
        rows[:needed] = mfcc[:needed]
        h = np.asarray(encode(variables, jnp.asarray(rows)))
        return h[index].reshape(frames, -1)

    return features


class PeerPredictor:
    """A trained peer model as a pose predictor: audio + the target's recent pose -> poses.

    Attributes:
      name: `config.model.name`.
      fps: the model's frame rate.
      has_pattern: False; the peers take no motion pattern from a reference video (paper 000's
        model does). Their personalisation is the reference pose they start from.
    """

    has_pattern = False

    def __init__(self, config, variables):
        self.config = config
        self.name = config.model.name
        self.fps = float(config.model.fps)
        self.window = int(config.model.window)
        self.model = peers.build(config)
        self.variables = variables
        eval_cfg = config.get("eval", None)
        self.temperature = float(eval_cfg.get("temperature", 1.0)) if eval_cfg else 1.0
        rollout_model, self.params = self.model, variables["params"]
        self._features = _mfcc_features(self.fps)
        if isinstance(self.model, lsp.APCPoseModel):  # LSP on APC features (paper 004)
            self._features = _apc_features(self.model, variables, self.fps)
            rollout_model, self.params = self.model.pose, variables["params"]["pose"]
        self._rollout = _ROLLOUTS[self.name](rollout_model, self.window, self.temperature)

    @classmethod
    def from_workdir(cls, workdir: str, step: int | None = None) -> PeerPredictor:
        config, variables = runner.load_variables(peers.TRAINER, workdir, step)
        return cls(config, variables)

    def predict(
        self, mfcc: np.ndarray, reference_pose: np.ndarray, frames: int, seed: int = 0
    ) -> np.ndarray:
        """Predicts `frames` poses at `self.fps`.

        Args:
          mfcc: [N, 13] padded MFCC rows starting at the window start of the first frame to
            predict (as `audio.frame_windows` expects for frame 0).
          reference_pose: [R, 6] the target's pose just before the first predicted frame, at
            `self.fps`. Audio2Head and PoseGAN start from its last pose (their initial pose,
            which their frame 0 reproduces, as in training where it is the window's first
            pose); LSP conditions on its last frames (up to the receptive field) as history.
          frames: number of frames to predict.
          seed: LSP's sampling key (`jax.random.key(seed)`); the GANs are deterministic.

        Returns:
          float32 [frames, 6].
        """
        frames = int(frames)
        if frames < 1:
            raise InputError(f"frames must be >= 1, got {frames}")
        ref = np.asarray(reference_pose, np.float32)
        if ref.ndim != 2 or ref.shape[0] < 1 or ref.shape[1] != records.POSE_DIM:
            raise InputError(f"reference_pose must be [frames >= 1, 6], got shape {ref.shape}")
        if not np.all(np.isfinite(ref)):
            raise InputError("reference_pose has NaN/inf values")
        feats = jnp.asarray(self._features(np.asarray(mfcc, np.float32), frames))
        return np.asarray(self._rollout(self.params, feats, ref, seed), np.float32)


# config.trainer of a workdir -> its predictor (a workdir without the field is paper 000's).
PREDICTORS = {"head_motion": Yi2022Predictor, "peers": PeerPredictor}


def load_predictor(workdir: str, step: int | None = None):
    """The predictor of a training workdir, by its config's `trainer` (`PREDICTORS`).

    `step` (default: the latest checkpoint) is passed on when given.
    """
    config = checkpoint.load_workdir_config(workdir)
    trainer = config.get("trainer", "head_motion")
    if trainer not in PREDICTORS:
        raise InputError(
            f"{workdir}: unknown trainer {trainer!r} (expected {' or '.join(PREDICTORS)})"
        )
    load = PREDICTORS[trainer].from_workdir
    return load(workdir) if step is None else load(workdir, step)
