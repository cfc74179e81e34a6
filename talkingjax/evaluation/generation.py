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
  another motion pattern must move the head differently).

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
