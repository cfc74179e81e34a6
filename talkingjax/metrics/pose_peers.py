"""Head-pose metrics of the peer papers: D-L / D-V / D-Rot / D-Pos, diversity, beat alignment.

These are the numbers the baselines (papers 002-004) report or that later work reports on
HDTF, computed so the paper-000 model and its peers can share one table. Conventions follow
`talkingjax.metrics.pose`: NumPy in, Python floats (or a dict of them) out, float64 inside,
pose [T, 6] = Euler angles (pitch, yaw, roll; radians; R = Rz Ry Rx) then translation (x, y, z),
`InputError` for unusable input.

Paper 004 (Live Speech Portraits, Sec. 5.2) evaluates its head-pose module with "the metrics
D-L, D-V and D-Rot/Pos defined in [Zhou et al. 2020]" (MakeItTalk): "D-L and D-V denote the
normalized Euclidean position and velocity difference between predictions and the groundtruth.
D-Rot/Pos denotes the rotation angle differences and normalized translation distances." Its
Table 2 gives D-L / D-V / D-Pos in percent and D-Rot in degrees (full model: 3.6 %, 0.8 %,
3.6 / 8.9 %). In MakeItTalk (Sec. 5, not in the papers folder, so paraphrased here) D-L and D-V
are computed on facial landmarks: the mean Euclidean distance between predicted and reference
landmark positions, respectively between their velocities (the difference of landmark
positions between consecutive frames), normalised by the width of the reference face; D-Rot is
the mean difference of head rotation in degrees and D-Pos the mean distance of head position,
again normalised by the face width. From a pose alone the "positions" are therefore those of
face landmarks moved rigidly by the pose: `d_l` and `d_v` pose a 3D landmark set (by default
the 68 landmarks of the shipped face model's mean shape) with each frame's rotation and
translation, which is what a pose-predicting model such as paper 004's changes in its landmarks.

Pose diversity and beat alignment are not defined in papers 000-004 (checked: paper 000 only
has a user-study "pose variety" rating, 002 plots poses, 003 reports L2 distances and the
pose classifier, see `pose_classifier`, 004 the metrics above). The docs note them as "seen
elsewhere on HDTF"; the definitions used (the talking-head and music-to-dance literature ones)
are stated in each docstring. Always compute a real-video row with the same code.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.ndimage
import scipy.signal

from talkingjax import audio as audio_lib
from talkingjax.errors import InputError
from talkingjax.metrics import pose as pm

# Sigma of the beat-alignment kernel: sigma = 3 frames as in AIST++ (Li et al. 2021) and
# Bailando (Siyao et al. 2022), taken at this project's (and HDTF's) 25 fps.
DEFAULT_BEAT_SIGMA = 3.0 / 25.0
# A kinematic beat must be the lowest speed within +-1/6 s: AIST++'s `order=10` at 60 fps.
DEFAULT_BEAT_HALFWINDOW = 1.0 / 6.0
ENVELOPE_RATE = 100.0  # onset-envelope frames per second (10 ms hop)


# ----------------------------------------------------------------------------- shared helpers


def rotation_matrices(angles) -> np.ndarray:
    """Float64 NumPy twin of `talkingjax.geometry.euler_to_rotation`: [..., 3] -> [..., 3, 3].

    The JAX version runs in float32; metrics compute in float64, so a NumPy copy of the same
    convention (R = Rz(z) Ry(y) Rx(x), radians) lives here.
    """
    a = np.asarray(angles, dtype=np.float64)
    cx, sx = np.cos(a[..., 0]), np.sin(a[..., 0])
    cy, sy = np.cos(a[..., 1]), np.sin(a[..., 1])
    cz, sz = np.cos(a[..., 2]), np.sin(a[..., 2])
    r0 = np.stack([cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx], axis=-1)
    r1 = np.stack([sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx], axis=-1)
    r2 = np.stack([-sy, cy * sx, cy * cx], axis=-1)
    return np.stack([r0, r1, r2], axis=-2)


@functools.cache
def _default_points() -> np.ndarray:
    # Read straight from the asset (two small arrays) rather than building the whole JAX
    # MorphableModel, which would also load the large bases.
    from talkingjax.face3d import default as face_default

    try:
        with np.load(face_default.ASSET, allow_pickle=False) as data:
            points = data["mean_shape"][data["landmarks"]].astype(np.float64)
    except (OSError, KeyError) as err:
        raise InputError(f"cannot read the default face landmarks: {err}") from None
    points.setflags(write=False)
    return points


def default_landmarks() -> np.ndarray:
    """The 68 landmarks (dlib order) of the shipped face model's mean shape, [68, 3] float64.

    Model space in BFM scale (the units of the 257-d coefficients' translation); the face is
    about 1.37 units wide (jaw point 0 to jaw point 16).
    """
    return _default_points().copy()


def _points_and_width(points, face_width) -> tuple[np.ndarray, float]:
    pts = _default_points() if points is None else np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] == 0:
        raise InputError(f"points: expected [N >= 1, 3] landmarks, got shape {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise InputError("points: contains NaN or infinite values")
    if face_width is None:
        face_width = float(np.ptp(pts[:, 0]))
    if not (np.isfinite(face_width) and face_width > 0):
        raise InputError(f"face_width must be positive, got {face_width}")
    return pts, float(face_width)


def posed_landmarks(pose, points=None) -> np.ndarray:
    """Landmarks moved by each frame's pose: R(angles_t) @ x_n + trans_t, [T, N, 3] float64.

    Args:
      pose: [T, 6] pose (angles radians, then translation).
      points: [N, 3] landmarks in model space, same units as the translation; default
        `default_landmarks()`.
    """
    pose = np.asarray(pose, dtype=np.float64)
    if pose.ndim != 2 or pose.shape[1] != 6:
        raise InputError(f"pose: expected [frames, 6] pose, got shape {pose.shape}")
    if not np.all(np.isfinite(pose)):
        raise InputError("pose: contains NaN or infinite values")
    pts, _ = _points_and_width(points, 1.0)
    rot = rotation_matrices(pose[:, :3])
    return np.einsum("tij,nj->tni", rot, pts) + pose[:, None, 3:]


# ----------------------------------------------------------------------------- D-L D-V D-Rot D-Pos


def d_l(pred, true, *, points=None, face_width: float | None = None) -> float:
    """D-L (paper 004 Sec. 5.2, defined in MakeItTalk): normalised landmark position difference.

    Paper 004: "D-L and D-V denote the normalized Euclidean position and velocity difference
    between predictions and the groundtruth." As in MakeItTalk, the positions are those of face
    landmarks and the normaliser is the width of the reference face:

        D-L = mean over frames t and landmarks n of |p_pred[t, n] - p_true[t, n]| / W,

    with p[t, n] = R(angles_t) x_n + trans_t (`posed_landmarks`).

    Choices where the papers are silent: the landmark set (default: the 68 landmarks of the
    shipped face model's mean shape, the same for prediction and truth, so only the pose
    differs); 3D positions (paper 004 works with sparse 3D landmarks, 73 tracked points,
    Sec. 3-4); W = the
    x-extent of the un-posed landmarks (jaw to jaw, 1.37 units for the default set), which is
    the width of the reference face seen frontally and does not change with the pose.

    Args:
      pred: [T, 6] predicted pose.
      true: [T, 6] reference pose on the same frames.
      points: [N, 3] landmarks in the translation's units; default `default_landmarks()`.
      face_width: normaliser W; default the x-extent of `points`.

    Returns:
      A fraction of the face width (0.036 is the paper's "3.6 %"); 0 for identical poses.
    """
    pred, true = pm._aligned_pair(pred, true)
    pts, width = _points_and_width(points, face_width)
    gap = posed_landmarks(pred, pts) - posed_landmarks(true, pts)
    return float(np.linalg.norm(gap, axis=-1).mean() / width)


def d_v(pred, true, fps: float, *, points=None, face_width: float | None = None):
    """D-V (paper 004 Sec. 5.2, defined in MakeItTalk): normalised landmark velocity difference.

    MakeItTalk computes velocity "as the difference of landmark locations between consecutive
    frames", so its D-V is per frame:

        D-V = mean over t < T - 1 and n of |(p_pred[t+1, n] - p_pred[t, n])
                                            - (p_true[t+1, n] - p_true[t, n])| / W,

    landmarks and W as in `d_l`. A per-frame number depends on the frame rate (paper 004's
    videos run at 60 fps, Sec. 4; this project's at 25), so the value times `fps`, in face
    widths per second, is returned too; compare across frame rates only with that one.

    Args:
      pred: [T, 6] predicted pose, T >= 2.
      true: [T, 6] reference pose on the same frames.
      fps: frame rate of both sequences.
      points, face_width: as in `d_l`.

    Returns:
      {"per_frame": the paper's D-V, a fraction of the face width per frame,
       "per_second": per_frame * fps, face widths per second}.
    """
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be positive, got {fps}")
    pred, true = pm._aligned_pair(pred, true, min_frames=2)
    pts, width = _points_and_width(points, face_width)
    gap = np.diff(posed_landmarks(pred, pts), axis=0) - np.diff(posed_landmarks(true, pts), axis=0)
    per_frame = float(np.linalg.norm(gap, axis=-1).mean() / width)
    return {"per_frame": per_frame, "per_second": per_frame * float(fps)}


def d_rot(pred, true) -> float:
    """D-Rot (paper 004 Sec. 5.2): "the rotation angle differences", mean over frames, degrees.

    The paper does not say how an angle difference of two 3D rotations is taken; this is the
    angle of the relative rotation R_pred^T R_true (the geodesic distance), which does not
    depend on the Euler convention, via `talkingjax.metrics.pose.rotation_error_deg`. Not
    normalised (the paper reports degrees: 3.6 for its full model).

    Args:
      pred: [T, 6] predicted pose; true: [T, 6] reference pose on the same frames.

    Returns:
      Mean over frames, degrees in [0, 180].
    """
    return pm.rotation_error_deg(pred, true)


def d_pos(pred, true, *, points=None, face_width: float | None = None) -> float:
    """D-Pos (paper 004 Sec. 5.2): "normalized translation distances".

        D-Pos = mean over frames of |trans_pred[t] - trans_true[t]| / W,

    W the face width as in `d_l` (MakeItTalk normalises head position by the face width too),
    so a constant offset d of the translation gives D-Pos = |d| / W.

    Args:
      pred: [T, 6] predicted pose; true: [T, 6] reference pose on the same frames.
      points: landmarks that define W (only their x-extent is used); default the shipped face.
      face_width: W directly, in the translation's units.

    Returns:
      A fraction of the face width (the paper's 8.9 % is 0.089); 0 for identical translations.
    """
    _, width = _points_and_width(points, face_width)
    return pm.translation_error(pred, true) / width


# ----------------------------------------------------------------------------- diversity


def pose_diversity(pose) -> float:
    """Spread of the head angles over time: mean over pitch, yaw, roll of their std, degrees.

    None of papers 000-004 defines an objective pose diversity (paper 000 Sec. IV has only the
    user-study "pose variety", a 1-4 rating of how different two generated videos look). The
    project docs describe the HDTF metric as the "spread of pose features"; that is SadTalker's
    (Zhang et al., CVPR 2023) "Diversity": the standard deviation of head-motion features
    (Hopenet's yaw / pitch / roll) of the generated frames. With tracked or predicted poses the
    features are the three Euler angles themselves; the population std (ddof = 0) over frames
    is taken per axis, in degrees, and the three are averaged. Translation is left out, as
    Hopenet has none and its units are arbitrary.

    A static head scores 0; a real clip gives the scale to read a model against. For the
    spread *between* several generated samples use `sample_diversity`.

    Args:
      pose: [T, 6] pose or [T, 3] angles (radians).

    Returns:
      Degrees, >= 0.
    """
    angles = pm._angles(pose, "pose")
    return float(np.degrees(angles.std(axis=0)).mean())


def sample_diversity(samples) -> float:
    """Mean pairwise difference between pose sequences generated for one person, degrees.

    An objective counterpart of paper 000's "pose variety" (Sec. IV user study: two videos of
    the same person driven by different speeches, rated by "head motion difference between
    them"), also usable for several stochastic samples of one model for the same audio: for
    every pair of samples the frame-aligned geodesic angle between their head rotations
    (`d_rot`) is averaged over frames, then over pairs. Identical samples score 0.

    Args:
      samples: [S, T, 6] array or a sequence of S >= 2 [T, 6] poses of equal length.

    Returns:
      Degrees in [0, 180].
    """
    try:
        stack = np.asarray(samples, dtype=np.float64)
    except ValueError:
        raise InputError("samples must all have the same shape [frames, 6]") from None
    if stack.ndim != 3 or stack.shape[0] < 2 or stack.shape[2] != 6:
        raise InputError(f"samples: expected [S >= 2, frames, 6], got shape {stack.shape}")
    s = stack.shape[0]
    scores = [d_rot(stack[i], stack[j]) for i in range(s) for j in range(i + 1, s)]
    return float(np.mean(scores))


# ----------------------------------------------------------------------------- beat alignment


def onset_envelope(wave, sample_rate: float = audio_lib.SAMPLE_RATE, num_mels: int = 40):
    """Onset-strength envelope of a waveform (spectral flux of the log-mel spectrogram).

    The usual definition (as `librosa.onset.onset_strength`): frames of ~32 ms (the next power
    of two, 512 samples at 16 kHz) with a Hann window, centred every 10 ms; power spectrum;
    `num_mels` triangular mel filters; dB with an 80 dB floor below the maximum; the envelope
    at frame f is the mean over bands of max(0, S[f] - S[f - 1]) (0 at f = 0).

    Args:
      wave: [N] mono samples.
      sample_rate: of `wave`, Hz.
      num_mels: mel bands.

    Returns:
      [F] float64 envelope, F = 1 + N // hop; sample f is at f / `ENVELOPE_RATE` seconds.
    """
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1 or wave.size == 0:
        raise InputError(f"audio: expected non-empty mono samples [N], got shape {wave.shape}")
    if not np.all(np.isfinite(wave)):
        raise InputError("audio: contains NaN or infinite samples")
    if not (np.isfinite(sample_rate) and sample_rate >= 2000):
        raise InputError(f"sample_rate must be at least 2000 Hz, got {sample_rate}")
    hop = int(round(sample_rate / ENVELOPE_RATE))
    n_fft = 1 << int(np.ceil(np.log2(0.032 * sample_rate)))
    # Centred frames: frame f covers [f * hop - n_fft / 2, f * hop + n_fft / 2).
    # Reflected rather than zero padding: a jump from digital silence into the recording
    # would read as an onset at 0 s.
    mode = "reflect" if wave.size > n_fft // 2 else "constant"
    padded = np.pad(wave, (n_fft // 2, n_fft // 2), mode=mode)
    num_frames = 1 + wave.size // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:num_frames]
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    mel = power @ audio_lib.mel_filterbank(num_mels, n_fft, int(sample_rate)).T
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    db = np.maximum(db, db.max() - 80.0)
    flux = np.maximum(np.diff(db, axis=0), 0.0).mean(axis=1)
    return np.concatenate([[0.0], flux])


def onset_times(envelope, rate: float = ENVELOPE_RATE, delta: float = 0.07) -> np.ndarray:
    """Onsets (seconds) picked from an onset envelope with `librosa.onset.onset_detect`'s rule.

    The envelope is scaled to a maximum of 1. Sample n is an onset when it is the maximum of
    the envelope within +-30 ms, at least `delta` above the envelope's mean within +-100 ms
    (windows clipped at the ends), and more than 30 ms after the previous onset.

    Args:
      envelope: [F] onset strength, `rate` samples per second.
      rate: envelope samples per second.
      delta: threshold above the local mean, in units of the envelope's maximum.

    Returns:
      [K] onset times in seconds, increasing (empty for a flat envelope).
    """
    env = np.asarray(envelope, dtype=np.float64)
    if env.ndim != 1 or env.size == 0:
        raise InputError(f"envelope: expected [F >= 1], got shape {env.shape}")
    if not np.all(np.isfinite(env)):
        raise InputError("envelope: contains NaN or infinite values")
    if not (np.isfinite(rate) and rate > 0):
        raise InputError(f"envelope rate must be positive, got {rate}")
    top = env.max()
    if top <= 0:
        return np.zeros(0)
    env = env / top
    n = env.size
    half_max = max(1, int(round(0.03 * rate)))
    half_avg = max(1, int(round(0.10 * rate)))
    wait = max(1, int(round(0.03 * rate)))
    padded = np.pad(env, half_max, constant_values=-np.inf)
    local_max = np.lib.stride_tricks.sliding_window_view(padded, 2 * half_max + 1).max(axis=1)
    csum = np.concatenate([[0.0], np.cumsum(env)])
    idx = np.arange(n)
    lo = np.maximum(idx - half_avg, 0)
    hi = np.minimum(idx + half_avg + 1, n)
    local_mean = (csum[hi] - csum[lo]) / (hi - lo)
    candidates = np.flatnonzero((env >= local_max) & (env >= local_mean + delta))
    picked = []
    for c in candidates:  # few candidates: the refractory rule is sequential by nature
        if not picked or c - picked[-1] > wait:
            picked.append(c)
    return np.asarray(picked, dtype=np.float64) / rate


def kinematic_beats(
    pose, fps: float, smooth: float = 0.0, halfwindow: float = DEFAULT_BEAT_HALFWINDOW
) -> np.ndarray:
    """Head-motion beats: frames where the head's angular speed has a local minimum.

    Speed at frame t is the norm of the central difference of the Euler angles
    (`np.gradient`, one-sided at the ends), so a pause at an extreme of a nod lands on its own
    frame rather than half a frame late. If `smooth` > 0 the speed is Gaussian-smoothed first
    (sigma `smooth` seconds; Bailando smooths with sigma 5 frames). A frame is a beat when its
    speed is strictly below that of every other frame within +-`halfwindow` seconds (at least
    one frame; windows clipped at the ends; the first and last frames never count), i.e.
    `scipy.signal.argrelextrema(speed, np.less, order, mode="clip")` as in AIST++ (order 10 at
    60 fps = 1/6 s, the default).

    Args:
      pose: [T, 6] pose or [T, 3] angles, T >= 3.
      fps: frame rate.
      smooth: Gaussian smoothing of the speed, seconds (0 = none).
      halfwindow: seconds.

    Returns:
      [K] int64 frame indices, increasing.
    """
    angles = pm._angles(pose, "pose")
    if angles.shape[0] < 3:
        raise InputError(f"pose: need at least 3 frames for motion beats, got {angles.shape[0]}")
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be positive, got {fps}")
    if not (smooth >= 0 and halfwindow > 0):
        raise InputError(f"need smooth >= 0 and halfwindow > 0, got {smooth}, {halfwindow}")
    speed = np.linalg.norm(np.gradient(angles, axis=0), axis=1)
    if smooth > 0:
        speed = scipy.ndimage.gaussian_filter1d(speed, smooth * fps, mode="nearest")
    order = max(1, int(round(halfwindow * fps)))
    return scipy.signal.argrelextrema(speed, np.less, order=order, mode="clip")[0].astype(np.int64)


def beat_alignment_score(
    motion_beats, audio_beats, sigma: float = DEFAULT_BEAT_SIGMA, average_over: str = "motion"
) -> float:
    """Beat-alignment score of two sets of beat times (seconds).

    AIST++ (Li et al., ICCV 2021): BA = 1/|B_m| sum over motion beats t of
    exp(-min_{a in B_a} (t - a)^2 / (2 sigma^2)), with B_m the kinematic and B_a the music beats.
    Bailando (Siyao et al., CVPR 2022), whose code the talking-head papers reporting "Beat
    Align" on HDTF reuse, swaps the roles (averages over the audio beats, nearest motion beat):
    `average_over="audio"`.

    Args:
      motion_beats: [K] seconds. audio_beats: [M] seconds.
      sigma: seconds.
      average_over: "motion" (AIST++) or "audio" (Bailando).

    Returns:
      In [0, 1]; 0 when the averaged set is empty.

    Raises:
      InputError: the other set is empty while the averaged one is not.
    """
    if average_over not in ("motion", "audio"):
        raise InputError(f"average_over must be 'motion' or 'audio', got {average_over!r}")
    if not (np.isfinite(sigma) and sigma > 0):
        raise InputError(f"sigma must be positive, got {sigma}")
    m = np.asarray(motion_beats, dtype=np.float64).reshape(-1)
    a = np.asarray(audio_beats, dtype=np.float64).reshape(-1)
    outer, inner = (m, a) if average_over == "motion" else (a, m)
    if outer.size == 0:
        return 0.0
    if inner.size == 0:
        which = "audio onsets" if average_over == "motion" else "motion beats"
        raise InputError(f"no {which} to align with")
    nearest = np.abs(outer[:, None] - inner[None, :]).min(axis=1)
    return float(np.exp(-(nearest**2) / (2.0 * sigma**2)).mean())


def beat_alignment(
    pose,
    audio,
    fps: float,
    *,
    sample_rate: float = audio_lib.SAMPLE_RATE,
    audio_kind: str = "wave",
    sigma: float = DEFAULT_BEAT_SIGMA,
    smooth: float = 0.0,
    halfwindow: float = DEFAULT_BEAT_HALFWINDOW,
    average_over: str = "motion",
) -> float:
    """Beat alignment of head motion with speech onsets ("Beat Align"; real HDTF video ~0.27).

    Not defined in papers 000-004; this is the music-to-dance score (AIST++, Li et al. 2021)
    with speech onsets as the audio beats:

        BA = mean over kinematic beats t of exp(-d(t)^2 / (2 sigma^2)),

    d(t) the distance from t to the nearest audio onset. Kinematic beats are local minima of
    the head's angular speed (`kinematic_beats`: strictly lowest within +-`halfwindow`, default
    1/6 s; no smoothing by default). Audio onsets are peaks of a log-mel spectral-flux onset
    envelope (`onset_envelope`, 10 ms hop) picked with librosa's `onset_detect` rule
    (`onset_times`: local maximum within +-30 ms, 0.07 above the local mean over +-100 ms,
    30 ms refractory period); onsets later than the last pose frame (plus half a frame) are
    dropped, so audio longer than the video does not count. sigma defaults to 0.12 s = 3
    frames at 25 fps (AIST++ and Bailando use sigma = 3 frames; AIST++ at 60 fps, i.e.
    0.05 s: pass sigma=0.05 for that). `average_over="audio"` gives Bailando's variant.

    A head that never slows down to a strict minimum (e.g. static: constant zero speed) has
    no beats and scores 0.

    Args:
      pose: [T, 6] pose or [T, 3] angles at `fps`, starting with the audio.
      audio: the waveform [N] (`audio_kind="wave"`, `sample_rate` Hz), an onset envelope [F]
        (`audio_kind="envelope"`, `sample_rate` = envelope samples per second), or onset
        times in seconds (`audio_kind="onsets"`).
      fps: frame rate of `pose`.
      sample_rate, audio_kind: see `audio`.
      sigma: seconds.
      smooth, halfwindow: kinematic-beat picking, seconds (`kinematic_beats`).
      average_over: "motion" (AIST++, default) or "audio" (Bailando).

    Returns:
      In [0, 1].

    Raises:
      InputError: bad input, or no onsets found in the audio (e.g. silence).
    """
    beats = kinematic_beats(pose, fps, smooth=smooth, halfwindow=halfwindow) / float(fps)
    if audio_kind == "wave":
        onsets = onset_times(onset_envelope(audio, sample_rate), ENVELOPE_RATE)
    elif audio_kind == "envelope":
        onsets = onset_times(audio, sample_rate)
    elif audio_kind == "onsets":
        onsets = np.asarray(audio, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(onsets)):
            raise InputError("onsets: contains NaN or infinite values")
    else:
        raise InputError(f"audio_kind must be 'wave', 'envelope' or 'onsets', got {audio_kind!r}")
    num_frames = np.asarray(pose).shape[0]
    onsets = onsets[onsets <= (num_frames - 0.5) / fps]
    if onsets.size == 0:
        raise InputError("no audio onsets found within the clip (silent audio?)")
    return beat_alignment_score(beats, onsets, sigma=sigma, average_over=average_over)
