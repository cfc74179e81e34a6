"""Checks of a generated talking video (issue 6's acceptance), each a small function.

- `video_length`: the mp4's frames and audio against the speech (duration within one frame,
  no frame missing: every frame decodes);
- `pose_std_ratio`: per-angle std of the rendered head pose over the target video's (what the
  pipeline chose; `talkingjax.evaluation.video` measures the written video itself);
- `mouth_energy_corr`: Pearson r of the mouth opening with the speech log energy per frame,
  measured twice: on the rendered expression through the face model, and on the output video
  itself (MediaPipe's inner-lip gap over the eye-corner distance,
  `talkingjax.metrics.video.mouth_opening`), so the GAN and paste-back are inside the
  measurement;
- `pose_difference`: mean absolute angle difference of two pose sequences (the same speech with
  another motion pattern must move the head differently);
- `motion_row` / `motion_markdown`: the head-motion figures of `experiments.eval_generation`
  reports as one table (issue 22; `experiments.motion_table`).

The measures of a written mp4 against its target video (head motion, sharpness, seam, sync,
lost frames), from tracking and fitting both videos, are `talkingjax.evaluation.video`'s.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np

from talkingjax import audio
from talkingjax.metrics import mouth
from talkingjax.metrics import video as video_metrics
from talkingjax.video import tracking


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if np.std(a) < 1e-12 or np.std(b) < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def frame_energy(wave: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
    """[num_frames] speech log energy at each video frame's window centre."""
    feats = audio.speech_features(wave)
    return audio.frame_windows(feats, fps, num_frames)[:, audio.WINDOW_ROWS // 2, 0]


def streams(path: str) -> dict[str, dict]:
    """ffprobe's stream records of a media file by codec type ("video", "audio")."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", path],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {s["codec_type"]: s for s in json.loads(out.stdout)["streams"]}


def video_length(path: str, wave: np.ndarray, fps: float) -> dict:
    """Frames and durations of an mp4 against 16 kHz speech.

    Returns:
      {"expected_frames", "frames" (container), "decoded_frames", "video_seconds",
       "audio_seconds", "speech_seconds", "duration_error_frames"}.
    """
    info = streams(path)
    speech = wave.size / audio.SAMPLE_RATE
    decoded = sum(1 for _ in tracking.read_frames(path))
    video_seconds = decoded / fps
    return {
        "expected_frames": audio.num_video_frames(speech, fps),
        "frames": int(info["video"]["nb_frames"]),
        "decoded_frames": decoded,
        "video_seconds": round(video_seconds, 3),
        "audio_seconds": round(float(info["audio"]["duration"]), 3),
        "speech_seconds": round(speech, 3),
        "duration_error_frames": round(abs(video_seconds - speech) * fps, 2),
    }


def pose_std_ratio(pose: np.ndarray, target_pose: np.ndarray) -> list[float]:
    """Per-angle (pitch, yaw, roll) std of `pose` [F, 6] over that of `target_pose` [T, 6]."""
    return (pose[:, :3].std(0) / np.maximum(target_pose[:, :3].std(0), 1e-9)).tolist()


def pose_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute angle difference in degrees of two [F, 6] pose sequences."""
    return float(np.degrees(np.abs(a[:, :3] - b[:, :3]).mean()))


def mouth_energy_corr(model, exp: np.ndarray, wave: np.ndarray, fps: float) -> float:
    """r of the inner-lip gap of expressions [F, K] (face model, mean identity) with energy."""
    opening = mouth.mouth_opening(model, exp)
    return _corr(opening, frame_energy(wave, fps, len(exp)))


def video_mouth_opening(path: str) -> np.ndarray:
    """[T] MediaPipe inner-lip gap over the outer eye-corner distance, per frame of a video."""
    return video_metrics.mouth_opening(tracking.track_video(path).landmarks)


def video_mouth_energy_corr(path: str, wave: np.ndarray, fps: float) -> float:
    """r of the output video's measured mouth opening with the speech energy."""
    opening = video_mouth_opening(path)
    return _corr(opening, frame_energy(wave, fps, len(opening)))


def _fmt(x, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def motion_row(name: str, report: dict) -> dict:
    """The head-motion figures (issue 22) of one `experiments.eval_generation` report
    (acceptance.json): motion against the target and the prediction, sharpness, seam, and the
    pattern and pose-scale-0 checks where the run made them."""
    v = report["video_measures"]
    r = v.get("pose_r_pitch_yaw_roll") or [None] * 3
    out = {
        "run": name,
        "blend": report.get("controls", {}).get("blend", 1.0),
        "turn_gain": report.get("controls", {}).get("turn_gain", [1.0, 1.0, 1.0]),
        "speed_ratio": v.get("angular_speed_ratio"),
        "jerk_ratio": v.get("jerk_ratio"),
        "max_step_deg": v.get("max_step_deg"),
        "max_step_p99_deg_target": v.get("max_step_p99_deg_target"),
        "pose_r_pitch_yaw_roll": r,
        "pose_r_mean_at_lag": v.get("pose_r_mean_at_lag"),
        "pose_slope_pitch_yaw_roll": v.get("pose_slope_pitch_yaw_roll") or [None] * 3,
        "cpbd_ratio": v.get("face_cpbd_ratio"),
        "seam_ratio": v.get("seam_ratio"),
        "lost_frames": v.get("lost_frames"),
        "tracked_pose_difference_deg": report.get("tracked_pose_difference_deg"),
        "predicted_pose_difference_deg": report.get("predicted_pose_difference_deg"),
    }
    still = report.get("pose_scale_0")
    if still:
        out["pose_scale_0_std_deg"] = still["angle_std_deg_pitch_yaw_roll"]
        out["rest_jitter_deg_target"] = still["rest_jitter_deg_pitch_yaw_roll_target"]
    return out


def motion_markdown(rows: list[dict]) -> str:
    """A markdown table of `motion_row`s (`experiments.motion_table`)."""
    head = (
        "| run | blend | turn gain (p/y/r) | speed / real | jerk / real | "
        "max step / real p99 (deg) | r with prediction (pitch, yaw, roll; mean at best lag) | "
        "slope on prediction (p/y/r) | CPBD / real | seam / real | lost | "
        "patterns differ (tracked / predicted, deg) | pose scale 0: std / real jitter "
        "(deg, p/y/r) |\n|" + "---|" * 13 + "\n"
    )
    lines = []
    for x in rows:
        r = ", ".join(_fmt(a) for a in x["pose_r_pitch_yaw_roll"])
        still = "-"
        if "pose_scale_0_std_deg" in x:
            still = (
                "/".join(_fmt(a) for a in x["pose_scale_0_std_deg"])
                + " vs "
                + "/".join(_fmt(a) for a in x["rest_jitter_deg_target"])
            )
        lines.append(
            f"| {x['run']} | {x['blend']:g} | {'/'.join(f'{g:g}' for g in x['turn_gain'])} | "
            f"{_fmt(x['speed_ratio'])} | {_fmt(x['jerk_ratio'])} | "
            f"{_fmt(x['max_step_deg'])} / {_fmt(x['max_step_p99_deg_target'])} | "
            f"{r}; {_fmt(x['pose_r_mean_at_lag'])} | "
            f"{'/'.join(_fmt(a) for a in x['pose_slope_pitch_yaw_roll'])} | "
            f"{_fmt(x['cpbd_ratio'])} | "
            f"{_fmt(x['seam_ratio'])} | {x['lost_frames']} | "
            f"{_fmt(x['tracked_pose_difference_deg'])} / "
            f"{_fmt(x['predicted_pose_difference_deg'])} | {still} |"
        )
    return head + "\n".join(lines) + "\n"
