"""Measures of a written talking-face video against its target video, read from the videos.

Nothing here uses what the pipeline chose internally: both the output mp4 and the target's real
video are tracked (MediaPipe, `talkingjax.video.tracking`) and fitted (`talkingjax.video.
reconstruct.fit_video`, the project's own 3DMM fit) by `analyze_video`, and `compare` reads the
measures of `talkingjax.metrics.video` off the two analyses:

- head motion: mean angular speed (deg/s), jerk (deg/s^3), the largest frame-to-frame
  rotation (deg) and the per-axis angle std (deg), for the output and the target, and the
  output / target ratios; the target's 99th-percentile step and its rest jitter (per-axis std
  about a 5-frame moving average, deg);
- when the pose the pipeline predicted (or rendered) is given: per-axis Pearson r of the
  output's tracked angles with it (each axis minus its mean), and the lag (frames, |lag| <=
  `MAX_LAG`) at which the mean r peaks (> 0: the video moves later than predicted);
- sharpness inside the face (`metrics.video.face_region`, at the frame's own resolution):
  CPBD (`metrics.image.cpbd`) and the Laplacian variance, each a mean over measured frames,
  output and target, and their ratios;
- mouth: Pearson r of the tracked mouth opening with the speech log energy per frame, at lag 0
  and the best lag (> 0: the mouth lags the speech); the target's own r with its own audio,
  when it has speech, is the real-video reference;
- AV offset and confidence, when a `SyncScorer` is given, for the output (and the target if it
  has audio);
- lost-face frames: the count and fraction of frames MediaPipe did not find the face in (the
  measures use only found frames; the tracker fills the others);
- the seam along the paste boundary (`metrics.video.seam_profile`): band and ring gradients
  across the face hull, their contrast (band / rings) per frame, averaged, for the output and
  the target, and the ratio of the two contrasts (1 = no more edge at the hull boundary than in
  the real video; above 1 = a visible seam).

Image measures run on at most `max_image_frames` found frames, evenly spaced (CPBD and the seam
take ~0.1 s a frame). A whole clip is tracked and fitted; `max_frames` measures only the first
frames. Measured on the embedded default job (8 s output, 12 s target, 256^2, 2 shared cores):
~35 s per video (track 4-5 s, fit 13 s with compilation, images 14-16 s).

    target = analyze_video("target.mp4")
    report = measure_video("out.mp4", target, predicted_pose=result.predicted_pose)
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import TYPE_CHECKING, Protocol

import numpy as np

from talkingjax import audio
from talkingjax.errors import InputError
from talkingjax.evaluation import generation as generation_eval
from talkingjax.face3d import default
from talkingjax.metrics import image as image_metrics
from talkingjax.metrics import video as vm
from talkingjax.video import reconstruct, tracking

if TYPE_CHECKING:
    from talkingjax.metrics.sync import SyncScore

MAX_LAG = 10  # frames searched for the pose and mouth lags (0.4 s at 25 fps)
CROP_SIZE = 224  # the fit's crop, as preprocessing and personalisation fit videos
MAX_IMAGE_FRAMES = 120
# The measuring fit: the landmark stages as preprocessing runs them, but with a 100x weaker
# pose smoothness, so a one-frame jump stays a one-frame step (measured on a rendered head
# jumping 8 deg in yaw: the step reads 7.9 deg at w_smooth_pose 0.5, 4.7 deg at
# preprocessing's 50, which spreads it over three frames); geometry only (albedo and light
# are not measured; skipping them saves ~17 s of compilation and a render of every frame).
FIT_CONFIG = reconstruct.VideoFitConfig(color=False, detailed_albedo=False, w_smooth_pose=0.5)


class SyncScorer(Protocol):
    """Anything that scores the AV sync of an mp4 with audio (`predict.SyncScorer`)."""

    def score(self, path: str) -> SyncScore:
        """The SyncNet protocol's result (attributes `offset`, frames, and `confidence`)."""
        ...


@dataclasses.dataclass
class VideoAnalysis:
    """What the measures need of one video, from tracking and fitting it.

    Attributes:
      path: the video.
      fps: frame rate.
      frame_size: (width, height).
      landmarks: [T, 478, 2] tracked face points, frame pixels (lost frames filled).
      detected: [T] bool, False where the face was lost.
      pose: [T, 6] fitted pose (angles radians, translation) in the fit's crop camera.
      landmark_rmse_px: [T] fit reprojection error in crop pixels.
      mouth_opening: [T] `metrics.video.mouth_opening` of the landmarks.
      image_frames: [N] frames whose image measures were computed (found frames only).
      cpbd, laplacian, seam_band, seam_rings: [N] per measured frame.
      has_audio: whether the file has an audio stream.
      seconds: wall time per step ("track", "fit", "images").
    """

    path: str
    fps: float
    frame_size: tuple[int, int]
    landmarks: np.ndarray
    detected: np.ndarray
    pose: np.ndarray
    landmark_rmse_px: np.ndarray
    mouth_opening: np.ndarray
    image_frames: np.ndarray
    cpbd: np.ndarray
    laplacian: np.ndarray
    seam_band: np.ndarray
    seam_rings: np.ndarray
    has_audio: bool
    seconds: dict

    @property
    def num_frames(self) -> int:
        return len(self.detected)

    def seam_contrast(self) -> np.ndarray:
        """[N] band / rings per measured frame."""
        return np.array(
            [vm.seam_contrast(b, r) for b, r in zip(self.seam_band, self.seam_rings, strict=True)]
        )


def _image_frames(detected: np.ndarray, limit: int) -> np.ndarray:
    found = np.flatnonzero(detected)
    if len(found) <= limit:
        return found
    return found[np.unique(np.round(np.linspace(0, len(found) - 1, limit)).astype(int))]


def analyze_video(
    path: str,
    model=None,
    *,
    max_frames: int | None = None,
    crop_size: int = CROP_SIZE,
    fit_config: reconstruct.VideoFitConfig | None = None,
    max_image_frames: int = MAX_IMAGE_FRAMES,
) -> VideoAnalysis:
    """Tracks and fits a video and measures its frames (`VideoAnalysis`).

    The steps of `reconstruct.reconstruct_video` (track, stable crops, fit), except that any
    number of lost frames is accepted: a generated video is measured, not refused, so its lost
    frames are counted where preprocessing would reject the clip.

    Args:
      path: the video.
      model: the morphable model to fit (default: the shipped one).
      max_frames: only the first frames (default: all).
      crop_size: the fit's crop side.
      fit_config: the fit's stages (default `FIT_CONFIG`).
      max_image_frames: the most frames the image measures (CPBD, Laplacian, seam) run on.

    Raises:
      InputError: an unusable video, or no face in any frame.
    """
    path = os.fspath(path)
    model = default.load_default() if model is None else model
    info = tracking.probe_video(path)
    t0 = time.perf_counter()
    track = tracking.track_video(
        path,
        frames=tracking.read_frames(path, count=max_frames),
        max_lost_fraction=1.0,
        max_gap_seconds=float("inf"),
    )
    t1 = time.perf_counter()
    params = tracking.crop_track(track, model, size=crop_size)
    crops = tracking.crop_video(path, params, crop_size)
    fit = reconstruct.fit_video(
        model,
        crops,
        tracking.landmarks_in_crop(track, params),
        track.detected,
        config=FIT_CONFIG if fit_config is None else fit_config,
    )
    t2 = time.perf_counter()
    points = track.landmarks[..., :2]
    chosen = _image_frames(track.detected, max(int(max_image_frames), 0))
    wanted = set(chosen.tolist())
    cpbd, lap, band, rings = [], [], [], []
    frames = tracking.read_frames(path, count=int(chosen[-1]) + 1) if len(chosen) else ()
    for i, frame in enumerate(frames):
        if i not in wanted:
            continue
        try:
            region = vm.face_region(frame, points[i])
        except InputError:  # the face box is outside the frame: nothing to measure
            cpbd.append(np.nan)
            lap.append(np.nan)
        else:
            cpbd.append(image_metrics.cpbd(region))
            lap.append(vm.laplacian_variance(region))
        b, r = vm.seam_profile(frame, points[i, : vm.NUM_MESH_POINTS])
        band.append(b)
        rings.append(r)
    t3 = time.perf_counter()
    return VideoAnalysis(
        path=path,
        fps=track.fps,
        frame_size=track.frame_size,
        landmarks=points,
        detected=np.asarray(track.detected, bool),
        pose=np.asarray(fit.pose, np.float64),
        landmark_rmse_px=np.asarray(fit.landmark_rmse_px),
        mouth_opening=vm.mouth_opening(points),
        image_frames=chosen,
        cpbd=np.asarray(cpbd),
        laplacian=np.asarray(lap),
        seam_band=np.asarray(band),
        seam_rings=np.asarray(rings),
        has_audio=info.has_audio,
        seconds={"track": t1 - t0, "fit": t2 - t1, "images": t3 - t2},
    )


# ----------------------------------------------------------------------------- comparison


def _num(x) -> float | None:
    """A JSON-safe float: None for nan / inf."""
    x = float(x)
    return round(x, 6) if np.isfinite(x) else None


def _ratio(a: float, b: float) -> float | None:
    return _num(a / b) if np.isfinite(a) and np.isfinite(b) and b > 0 else None


def _mean(x: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(np.mean(x)) if x.size else float("nan")


def motion_measures(a: VideoAnalysis) -> dict[str, float]:
    """Head angular speed (deg/s), jerk (deg/s^3), max step (deg) over found frames."""
    return {
        "angular_speed_deg_s": vm.angular_speed(a.pose, a.fps, a.detected),
        "jerk_deg_s3": vm.jerk(a.pose, a.fps, a.detected),
        "max_step_deg": vm.max_step(a.pose, a.detected),
    }


def mouth_energy(opening: np.ndarray, wave: np.ndarray, fps: float, detected: np.ndarray):
    """(r at lag 0, best lag, r at the best lag) of a mouth opening [T] with the speech energy.

    Frames past the speech's end are left out; lag > 0: the mouth lags the speech.
    """
    n = min(len(opening), audio.num_video_frames(wave.size / audio.SAMPLE_RATE, fps))
    if n < 3:
        return float("nan"), 0, float("nan")
    energy = generation_eval.frame_energy(wave, fps, n)
    lags, r = vm.lagged_correlation(energy, opening[:n], MAX_LAG, valid=detected[:n])
    lag, r_best = vm.best_lag(lags, r)
    return float(r[lags == 0][0]), lag, r_best


def _speech_of(a: VideoAnalysis) -> np.ndarray | None:
    """The audio track of an analysed video as speech, or None if it has none usable."""
    if not a.has_audio:
        return None
    try:
        return audio.load_audio(a.path)
    except InputError:  # silent, too short or undecodable track: no speech to compare with
        return None


def pose_agreement(output: VideoAnalysis, pose: np.ndarray, name: str = "") -> dict:
    """Per-axis r of the output's tracked angles with a pose [F, >= 3] the pipeline chose and
    the slope of the tracked on that pose at lag 0 (1 = the video turns as far as the pose),
    the lag of the best mean r (> 0: the video moves later) and that r, over found frames."""
    pose = np.asarray(pose, np.float64)
    if pose.ndim != 2 or pose.shape[1] < 3:
        raise InputError(f"a pipeline pose must be [F, 3] or [F, 6], got {pose.shape}")
    n = min(len(pose), output.num_frames)
    tracked, pose, ok = output.pose[:n, :3], pose[:n, :3], output.detected[:n]
    lags, r = vm.lagged_correlation(pose, tracked, MAX_LAG, valid=ok)
    lag, r_best = vm.best_lag(lags, r)
    slope = [None] * 3
    if ok.sum() >= 3:
        fit = vm.readback(np.degrees(pose[ok]), np.degrees(tracked[ok]))
        slope = [fit[axis]["slope"] for axis in ("pitch", "yaw", "roll")]
    return {
        f"pose{name}_r_pitch_yaw_roll": [_num(x) for x in r[lags == 0][0]],
        f"pose{name}_slope_pitch_yaw_roll": slope,
        f"pose{name}_lag_frames": lag,
        f"pose{name}_r_mean_at_lag": _num(r_best),
    }


def tracked_pose_difference(a: VideoAnalysis, b: VideoAnalysis) -> float | None:
    """Mean absolute difference in degrees of two videos' tracked head angles over the frames
    found in both (None if none): how differently two outputs of one speech move the head."""
    n = min(a.num_frames, b.num_frames)
    ok = a.detected[:n] & b.detected[:n]
    if not ok.any():
        return None
    return _num(float(np.degrees(np.abs(a.pose[:n, :3] - b.pose[:n, :3])[ok].mean())))


def compare(
    output: VideoAnalysis,
    target: VideoAnalysis,
    speech: np.ndarray | None = None,
    predicted_pose: np.ndarray | None = None,
    sync_scorer: SyncScorer | None = None,
    rendered_pose: np.ndarray | None = None,
) -> dict:
    """The measures of an output video against its target (module docstring), JSON-ready.

    Args:
      output, target: `analyze_video` of the written mp4 and of the target's real video.
      speech: 16 kHz speech the output was made from (default: the output's audio track).
      predicted_pose: [F, 6] (or [F, 3]) pose the pipeline predicted for the output's frames
        ("pose_*" keys, `pose_agreement`).
      sync_scorer: scores AV offset and confidence (None: not measured).
      rendered_pose: [F, 6] pose the pipeline rendered ("pose_rendered_*" keys).

    Returns:
      A flat dict of floats (None where undefined: no found frames, no speech, ...); `*_target`
      keys are the target's value, `*_ratio` output / target.
    """
    out: dict = {
        "frames": output.num_frames,
        "frames_target": target.num_frames,
        "fps": output.fps,
    }
    for name, a in (("", output), ("_target", target)):
        lost = int(np.sum(~a.detected))
        out[f"lost_frames{name}"] = lost
        out[f"lost_fraction{name}"] = _num(lost / max(a.num_frames, 1))
    mo, mt = motion_measures(output), motion_measures(target)
    for key in mo:
        out[key] = _num(mo[key])
        out[f"{key}_target"] = _num(mt[key])
        out[f"{key.rsplit('_deg', 1)[0]}_ratio"] = _ratio(mo[key], mt[key])
    out["max_step_p99_deg_target"] = _num(vm.step_percentile(target.pose, 99.0, target.detected))
    out["rest_jitter_deg_pitch_yaw_roll_target"] = [
        _num(x) for x in vm.rest_jitter(target.pose, target.detected)
    ]
    std_o = vm.angle_std(output.pose, output.detected)
    std_t = vm.angle_std(target.pose, target.detected)
    out["angle_std_deg_pitch_yaw_roll"] = [_num(x) for x in std_o]
    out["angle_std_deg_pitch_yaw_roll_target"] = [_num(x) for x in std_t]
    out["angle_std_ratio_pitch_yaw_roll"] = [
        _ratio(a, b) for a, b in zip(std_o, std_t, strict=True)
    ]

    for name, pose in (("", predicted_pose), ("_rendered", rendered_pose)):
        if pose is not None:
            out.update(pose_agreement(output, pose, name))

    cpbd_o, cpbd_t = _mean(output.cpbd), _mean(target.cpbd)
    lap_o, lap_t = _mean(output.laplacian), _mean(target.laplacian)
    out.update(
        face_cpbd=_num(cpbd_o), face_cpbd_target=_num(cpbd_t),
        face_cpbd_ratio=_ratio(cpbd_o, cpbd_t),
        face_laplacian_var=_num(lap_o), face_laplacian_var_target=_num(lap_t),
        face_laplacian_ratio=_ratio(lap_o, lap_t),
    )  # fmt: skip

    speech = _speech_of(output) if speech is None else np.asarray(speech, np.float32)
    for name, a, wave in (("", output, speech), ("_target", target, _speech_of(target))):
        if wave is None:
            out[f"mouth_energy_r{name}"] = None
            continue
        r0, lag, r_best = mouth_energy(a.mouth_opening, wave, a.fps, a.detected)
        out[f"mouth_energy_r{name}"] = _num(r0)
        out[f"mouth_energy_lag_frames{name}"] = lag
        out[f"mouth_energy_r_at_lag{name}"] = _num(r_best)

    if sync_scorer is not None:
        for name, a in (("", output), ("_target", target)):
            if not a.has_audio:
                continue
            score = sync_scorer.score(a.path)
            out[f"av_offset{name}"] = int(score.offset)
            out[f"av_confidence{name}"] = _num(score.confidence)

    seam_o, seam_t = output.seam_contrast(), target.seam_contrast()
    out.update(
        seam_band=_num(_mean(output.seam_band)), seam_band_target=_num(_mean(target.seam_band)),
        seam_contrast=_num(_mean(seam_o)), seam_contrast_target=_num(_mean(seam_t)),
        seam_ratio=_ratio(_mean(seam_o), _mean(seam_t)),
    )  # fmt: skip
    out["fit_rmse_px"] = _num(_mean(output.landmark_rmse_px[output.detected]))
    out["fit_rmse_px_target"] = _num(_mean(target.landmark_rmse_px[target.detected]))
    return out


def measure_video(
    output_mp4: str,
    target_video: str | VideoAnalysis,
    speech: np.ndarray | None = None,
    predicted_pose: np.ndarray | None = None,
    sync_scorer: SyncScorer | None = None,
    *,
    rendered_pose: np.ndarray | None = None,
    model=None,
    max_frames: int | None = None,
    fit_config: reconstruct.VideoFitConfig | None = None,
) -> dict:
    """`compare` of a written mp4 with its target video, both analysed here.

    Args:
      output_mp4: the generated video.
      target_video: the target's real video, or its `analyze_video` (reused across outputs).
      speech, predicted_pose, sync_scorer, rendered_pose: see `compare`.
      model, max_frames, fit_config: see `analyze_video` (max_frames applies to both videos).

    Returns:
      `compare`'s dict, plus "seconds" (analysis time per video and step).
    """
    model = default.load_default() if model is None else model
    kwargs = {"max_frames": max_frames, "fit_config": fit_config}
    out_a = analyze_video(output_mp4, model, **kwargs)
    if isinstance(target_video, VideoAnalysis):
        tgt_a = target_video
    else:
        tgt_a = analyze_video(target_video, model, **kwargs)
    report = compare(out_a, tgt_a, speech, predicted_pose, sync_scorer, rendered_pose)
    report["seconds"] = {
        "output": {k: round(v, 1) for k, v in out_a.seconds.items()},
        "target": {k: round(v, 1) for k, v in tgt_a.seconds.items()},
    }
    return report
