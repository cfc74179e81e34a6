"""Face tracking in videos: probing, decoding, MediaPipe face-mesh landmarks and stable crops.

    info = probe_video(path)                 # fps, size, frames, audio; rejects unusable files
    track = track_video(path)                # [T, 478, 3] landmarks, lost frames filled+flagged
    params = crop_track(track, model)        # [T, 5] smoothed transform_params per frame
    crops = crop_video(path, params, 224)    # [T, 224, 224, 3] uint8
    points = landmarks_in_crop(track, params)

Conventions:

- Frames are RGB uint8 [H, W, 3], decoded by ffmpeg in display orientation (rotation metadata
  applied), one per coded frame: frame i is at time i / fps. Variable-frame-rate videos are
  rejected by `probe_video`, because that equation -- which keeps audio and frames in sync --
  would not hold.
- Landmarks are MediaPipe's face mesh with iris refinement (478 points: the 468 mesh vertices,
  then 5 per iris). x, y are frame pixels, continuous coordinates with pixel centres at +0.5
  (`talkingjax.face3d.camera`): MediaPipe's normalised x * W and y * H, y down. z is
  MediaPipe's relative depth times W, the same pixel units as x; smaller = closer to the
  camera. (Not the y-up model frame of `face3d.images.to_model_frame`.)
- Which face: MediaPipe may report up to `max_faces` faces. The first frame with any face picks
  the largest (landmark bounding box area); every later frame picks the one most consistent
  with the last tracked face: the largest overlap (IoU) of landmark boxes, then the nearest
  centre. A face whose centre moved more than one face size from the last tracked one is taken
  to be someone else, and the frame counts as lost rather than switching people.
- Lost frames (no face, or only other faces) are flagged in `Track.detected` and filled:
  interior gaps of <= `max_gap` frames by linear interpolation between the detections on either
  side, longer ones by the nearest detection (interpolating over a long gap would invent a
  motion), and gaps at the start or end by the nearest detection. A clip is rejected
  (`InputError` naming the lost frame ranges) if more than `max_lost_fraction` of its frames
  are lost or any gap is longer than `max_gap_seconds`.
- Crops are `talkingjax.face3d.fit.crop_params` per frame against the model's mean face, with
  log-scale and crop centre smoothed over time, so the crop does not jitter with the landmarks.

The gap and face-selection policies are pure numpy functions (`fill_gaps`, `check_lost`,
`choose_face`), testable without MediaPipe; MediaPipe is imported only by `face_mesh`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction

import numpy as np
import scipy.ndimage

from talkingjax import console
from talkingjax.errors import InputError
from talkingjax.face3d import camera as camera_lib
from talkingjax.face3d import default, fit, topology

NUM_POINTS = 478  # MediaPipe face mesh with refine_landmarks: 468 vertices + 2 x 5 iris
MAX_GAP_SECONDS = 2.0
FPS_TOLERANCE = 0.01  # relative difference of r_frame_rate and avg_frame_rate still "constant"
# Images that ffprobe reads as one-frame "videos" (image2 demuxer, png_pipe, jpeg_pipe, ...).
_IMAGE_FORMATS = ("image2",)


# ------------------------------------------------------------------------------------------
# Probing and decoding (ffmpeg)


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` found out about a video file.

    Attributes:
      path: the file.
      fps: frames per second (constant; frame i is at i / fps).
      num_frames: frames in the video stream (the container's count, else its packets).
      width, height: frame size in display orientation (rotation metadata applied).
      has_audio: whether the file has an audio stream.
    """

    path: str
    fps: float
    num_frames: int
    width: int
    height: int
    has_audio: bool


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, check=False)
    except FileNotFoundError as err:
        raise InputError(f"{cmd[0]} (FFmpeg) is needed to read videos and is not on PATH") from err


def _last_line(data: bytes) -> str:
    lines = [ln.strip() for ln in data.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown error"


def _rate(text: str | None) -> float | None:
    """'30000/1001' -> 29.97; None for missing or 0/0 rates."""
    try:
        value = float(Fraction(text))
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def _rotation(stream: dict) -> int:
    """Display rotation in degrees from the side data (newer FFmpeg) or the 'rotate' tag."""
    for side in stream.get("side_data_list", []):
        if "rotation" in side:
            return int(round(float(side["rotation"])))
    try:
        return int(stream.get("tags", {}).get("rotate", 0))
    except ValueError:
        return 0


def _video_stream(path: str) -> tuple[list[dict], dict]:
    """(all of ffprobe's streams, the first real video stream); InputError if there is none."""
    if not os.path.isfile(path):
        raise InputError(f"video not found: {path}")
    proc = _run(["ffprobe", "-v", "error", "-of", "json", "-show_streams", "-show_format", path])
    if proc.returncode != 0:
        raise InputError(f"cannot read video {path}: {_last_line(proc.stderr)}")
    probe = json.loads(proc.stdout or b"{}")
    streams = probe.get("streams", [])
    fmt = probe.get("format", {})
    # Cover art in audio files is a "video" stream too.
    video = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
    ]
    if not video:
        raise InputError(f"{path} is not a video (no video stream)")
    name = fmt.get("format_name", "")
    if name in _IMAGE_FORMATS or name.endswith("_pipe"):
        raise InputError(f"{path} is an image ({name}), not a video")
    return streams, video[0]


def _display_size(stream: dict) -> tuple[int, int]:
    width, height = int(stream.get("width", 0)), int(stream.get("height", 0))
    if _rotation(stream) % 180 == 90:  # ffmpeg rotates on decoding; so do we
        width, height = height, width
    return width, height


def _packet_times(path: str, stream: dict) -> np.ndarray | None:
    """Presentation times (s) of the stream's packets in decoding order; None if unknown."""
    proc = _run(
        ["ffprobe", "-v", "error", "-select_streams", str(stream["index"]),
         "-show_entries", "packet=pts", "-of", "csv=p=0", path]
    )  # fmt: skip
    if proc.returncode != 0:
        return None
    values = [ln.strip().rstrip(",") for ln in proc.stdout.decode().splitlines() if ln.strip()]
    if not values or any(not v.lstrip("-").isdigit() for v in values):
        return None  # N/A timestamps (raw streams, some AVIs): nothing to check
    return np.array([int(v) for v in values], np.float64) * float(Fraction(stream["time_base"]))


def probe_video(path: str, min_size: int = 128) -> VideoInfo:
    """Frame rate, size, frame count and audio presence of a video, checking it is usable.

    Args:
      path: the video file.
      min_size: the smallest accepted short side in pixels.

    Returns:
      `VideoInfo`.

    Raises:
      InputError: missing file, not a video (unreadable, no video stream, an image), variable
        frame rate (r_frame_rate and avg_frame_rate differ by more than 1%, or frame i's
        timestamp is more than half a frame off i / fps), no frames, or a short side below
        `min_size`. A missing audio stream is not an error (`has_audio`; callers decide).
    """
    path = os.fspath(path)
    streams, stream = _video_stream(path)
    r_rate, avg_rate = _rate(stream.get("r_frame_rate")), _rate(stream.get("avg_frame_rate"))
    if r_rate is None and avg_rate is None:
        raise InputError(f"cannot determine the frame rate of {path}")
    if r_rate and avg_rate and abs(r_rate - avg_rate) > FPS_TOLERANCE * avg_rate:
        raise InputError(
            f"{path} has a variable frame rate (nominal {r_rate:.3f} fps, average "
            f"{avg_rate:.3f} fps); re-encode it at a constant rate (ffmpeg -vf fps=25)"
        )
    # The nominal rate is exact (25/1, 30000/1001); the average is rounded from the duration.
    fps = r_rate or avg_rate
    width, height = _display_size(stream)
    if min(width, height) < min_size:
        raise InputError(
            f"{path} is {width}x{height}; the short side must be at least {min_size} pixels"
        )
    times = _packet_times(path, stream)
    try:
        num_frames = int(stream.get("nb_frames", 0))
    except ValueError:
        num_frames = 0
    if num_frames <= 0 and times is not None:
        num_frames = len(times)  # containers without a frame count (mkv, webm)
    if num_frames <= 0:
        raise InputError(f"{path} has no video frames")
    if times is not None and len(times) > 1:
        # Frame i must be shown nearer to i / fps than to any other frame's slot; otherwise
        # frames were dropped/duplicated or the rate varies, and audio would go out of sync.
        # (Timestamp rounding is a tick of the time base, far below half a frame.)
        times = np.sort(times)
        drift = times - times[0] - np.arange(len(times)) / fps
        worst = int(np.argmax(np.abs(drift)))
        if abs(drift[worst]) > 0.5 / fps:
            raise InputError(
                f"{path} has irregular frame timestamps (frame {worst} is "
                f"{drift[worst] * 1000:+.0f} ms off a constant {fps:.3f} fps); re-encode it at "
                "a constant rate (ffmpeg -vf fps=25)"
            )
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    return VideoInfo(path, float(fps), num_frames, width, height, has_audio)


def read_frames(path: str, start: int = 0, count: int | None = None) -> Iterator[np.ndarray]:
    """Decodes frames start, start + 1, ... of a video (all to the end, or `count` of them).

    Frames are counted as decoded (no frame-rate conversion), so frame i is the i-th coded
    frame. The generator stops ffmpeg if it is closed early. A decoding error after some
    frames ends the iteration there (callers that need T frames count them, `crop_video`).

    Yields:
      RGB uint8 [H, W, 3] frames in display orientation.

    Raises:
      InputError: missing or unreadable file, no video stream.
    """
    path = os.fspath(path)
    if start < 0 or (count is not None and count < 0):
        raise ValueError(f"start {start} and count {count} must be >= 0")
    _, stream = _video_stream(path)
    width, height = _display_size(stream)
    if count == 0:
        return
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-map", f"0:{stream['index']}"]
    if start:
        cmd += ["-vf", f"select=gte(n\\,{start})"]
    if count is not None:
        cmd += ["-frames:v", str(count)]
    # passthrough: no frames dropped or duplicated to reach a nominal rate.
    cmd += ["-vsync", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    frame_bytes = width * height * 3
    # stderr to a file: a pipe nobody reads could fill up and stall ffmpeg.
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        except FileNotFoundError as e:
            raise InputError("ffmpeg (FFmpeg) is needed to read videos and is not on PATH") from e
        yielded = 0
        try:
            while True:
                data = proc.stdout.read(frame_bytes)
                if len(data) < frame_bytes:
                    break
                yielded += 1
                yield np.frombuffer(data, np.uint8).reshape(height, width, 3).copy()
            if proc.wait() != 0 and yielded == 0:
                err.seek(0)
                raise InputError(f"cannot decode video {path}: {_last_line(err.read())}")
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.wait()


# ------------------------------------------------------------------------------------------
# MediaPipe


def face_mesh(static: bool, max_faces: int = 1, refine: bool = False):
    """A MediaPipe FaceMesh (a context manager): image mode if `static`, else video mode.

    `refine` adds the 10 iris points (478 in all) and refines eyes and lips. The log lines
    MediaPipe's native code prints while its graph starts are kept off the console
    (`talkingjax.console.native_stderr_filtered`).
    """
    import mediapipe as mp

    with console.native_stderr_filtered():
        mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static,
            max_num_faces=max_faces,
            refine_landmarks=refine,
            min_detection_confidence=0.5,
            min_tracking_confidence=0.5,
        )
        # The graph's calculators open (and log) on its own threads after the constructor
        # returns; waiting for the idle graph keeps those lines inside the filter too. The
        # inference calculator logs once more on its first image: one blank image does that
        # here (no face, so no tracking state is left behind).
        mesh._graph.wait_until_idle()
        warm_up(mesh)
    return mesh


def warm_up(graph) -> None:
    """One blank image through a MediaPipe solution (`face_mesh`, `person_segmenter`, the
    preprocessing's face detector), inside the caller's stderr filter: the inference
    calculator logs a line on its first image."""
    with console.mediapipe_warnings_ignored():
        graph.process(np.zeros((64, 64, 3), np.uint8))
    graph._graph.wait_until_idle()


def person_segmenter():
    """A MediaPipe selfie segmenter (a context manager; the general 256 x 256 model, bundled
    with the wheel like the face mesh): `person_mask` separates people from the background."""
    import mediapipe as mp

    with console.native_stderr_filtered():
        segmenter = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
        segmenter._graph.wait_until_idle()
        warm_up(segmenter)
    return segmenter


def person_mask(segmenter, rgb: np.ndarray) -> np.ndarray:
    """[H, W] float32 in [0, 1]: how likely each pixel of an RGB image shows a person."""
    with console.mediapipe_warnings_ignored():
        result = segmenter.process(np.ascontiguousarray(rgb))
    if result.segmentation_mask is None:
        return np.zeros(rgb.shape[:2], np.float32)
    return np.clip(np.asarray(result.segmentation_mask, np.float32), 0.0, 1.0)


def detect_faces(mesh, rgb: np.ndarray) -> list[np.ndarray]:
    """MediaPipe's normalised landmarks [N, 3] (x, y in [0, 1], z) of every face in an image."""
    with console.mediapipe_warnings_ignored():  # protobuf deprecations inside MediaPipe
        result = mesh.process(np.ascontiguousarray(rgb))
    return [
        np.array([(p.x, p.y, p.z) for p in face.landmark], np.float64)
        for face in result.multi_face_landmarks or ()
    ]


def to_pixels(normalized: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised MediaPipe landmarks [N, 3] -> (x W, y H, z W): frame pixels, y down."""
    return np.asarray(normalized, np.float64) * np.array([width, height, width])


# ------------------------------------------------------------------------------------------
# Policies (pure numpy)


def box(points: np.ndarray) -> np.ndarray:
    """Bounding box [4] = (x0, y0, x1, y1) of points [N, >= 2]."""
    p = np.asarray(points)[:, :2]
    return np.concatenate([p.min(0), p.max(0)])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
    return float(inter / union) if union > 0 else 0.0


def choose_face(
    candidates: Sequence[np.ndarray], previous: np.ndarray | None, max_jump: float = 1.0
) -> int | None:
    """Which of the faces found in a frame is the tracked one.

    Args:
      candidates: landmarks [N, >= 2] (pixels) of each face found in the frame.
      previous: landmarks of the last tracked face, or None before the first detection.
      max_jump: the largest accepted move of the box centre, in units of the previous box's
        larger side; a candidate further away is someone else (or an unreliable detection).

    Returns:
      The candidate's index: the largest box if there is no previous face, else the
      accepted candidate with the largest box IoU with the previous face (ties: nearest
      centre). None if there are no candidates or none is accepted.
    """
    if not len(candidates):
        return None
    boxes = [box(c) for c in candidates]
    if previous is None:
        return int(np.argmax([np.prod(b[2:] - b[:2]) for b in boxes]))
    prev = box(previous)
    size = max(float(np.max(prev[2:] - prev[:2])), 1e-6)
    centre = (prev[:2] + prev[2:]) / 2
    best, best_key = None, None
    for i, b in enumerate(boxes):
        dist = float(np.linalg.norm((b[:2] + b[2:]) / 2 - centre)) / size
        if dist > max_jump:
            continue
        key = (-_iou(b, prev), dist)
        if best_key is None or key < best_key:
            best, best_key = i, key
    return best


def lost_ranges(detected: np.ndarray) -> list[tuple[int, int]]:
    """Runs of lost frames as inclusive (first, last) index pairs, in order."""
    lost = ~np.asarray(detected, bool)
    edges = np.diff(np.concatenate([[0], lost.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def format_ranges(ranges: Sequence[tuple[int, int]], limit: int = 8) -> str:
    """'10-24, 80-91' (at most `limit` ranges, then '... (N more)')."""
    text = [f"{a}" if a == b else f"{a}-{b}" for a, b in ranges[:limit]]
    if len(ranges) > limit:
        text.append(f"... ({len(ranges) - limit} more)")
    return ", ".join(text)


def check_lost(
    detected: np.ndarray,
    fps: float,
    max_lost_fraction: float = 0.2,
    max_gap_seconds: float = MAX_GAP_SECONDS,
    path: str = "video",
) -> None:
    """Raises InputError if too many frames are lost or a gap is too long.

    Args:
      detected: [T] bool, False where the face was lost.
      fps: frame rate (gap lengths are judged in seconds).
      max_lost_fraction: the largest accepted fraction of lost frames.
      max_gap_seconds: the longest accepted run of lost frames.
      path: named in the message.
    """
    detected = np.asarray(detected, bool)
    total, lost = len(detected), int(np.sum(~detected))
    if not lost:
        return
    ranges = lost_ranges(detected)
    longest = max(b - a + 1 for a, b in ranges)
    if lost > max_lost_fraction * total or longest > max_gap_seconds * fps:
        raise InputError(
            f"{path}: face lost in frames {format_ranges(ranges)} ({lost} of {total}); "
            f"accepted are at most {max_lost_fraction:.0%} lost frames and gaps of at most "
            f"{max_gap_seconds:g} s"
        )


def fill_gaps(landmarks: np.ndarray, detected: np.ndarray, max_gap: int = 5) -> np.ndarray:
    """Fills the lost frames of a landmark track.

    Args:
      landmarks: [T, ...] per-frame values (e.g. [T, 478, 3]); lost rows are ignored.
      detected: [T] bool, False where the face was lost.
      max_gap: interior gaps of at most this many frames are interpolated linearly between
        the detections on either side; longer ones take the nearest detection's values (a
        long interpolation would invent motion), as do gaps at the start and end.

    Returns:
      [T, ...] float32 copy with every lost row filled.

    Raises:
      ValueError: no frame is detected.
    """
    out = np.array(landmarks, np.float32)
    detected = np.asarray(detected, bool)
    if not detected.any():
        raise ValueError("no detected frame to fill the gaps from")
    last = len(detected) - 1
    for a, b in lost_ranges(detected):
        left, right = a - 1, b + 1
        for t in range(a, b + 1):
            if left < 0:
                out[t] = out[right]
            elif right > last:
                out[t] = out[left]
            elif b - a + 1 <= max_gap:
                w = (t - left) / (right - left)
                out[t] = (1 - w) * out[left] + w * out[right]
            else:
                out[t] = out[left] if t - left <= right - t else out[right]
    return out


# ------------------------------------------------------------------------------------------
# Tracking


@dataclasses.dataclass
class Track:
    """Per-frame face landmarks of a video.

    Attributes:
      landmarks: [T, 478, 3] float32 (x, y, z): x, y frame pixels (centres at +0.5, y down),
        z MediaPipe's depth times the frame width (smaller = closer).
      detected: [T] bool, False where the face was lost (those rows are filled, `fill_gaps`).
      fps: frames per second.
      frame_size: (width, height) of the frames.
    """

    landmarks: np.ndarray
    detected: np.ndarray
    fps: float
    frame_size: tuple[int, int]

    def lost_frames(self) -> np.ndarray:
        """Indices [K] of the frames where the face was lost."""
        return np.flatnonzero(~np.asarray(self.detected, bool))


def track_video(
    path: str,
    max_gap: int = 5,
    max_lost_fraction: float = 0.2,
    max_faces: int = 3,
    frames: Iterable[np.ndarray] | None = None,
    *,
    max_gap_seconds: float = MAX_GAP_SECONDS,
) -> Track:
    """MediaPipe face-mesh landmarks (478, with irises) of every frame of a video.

    Args:
      path: the video (probed for its frame rate; decoded unless `frames` are given).
      max_gap: lost runs of at most this many frames are interpolated linearly (`fill_gaps`).
      max_lost_fraction: the clip is rejected if more of its frames are lost.
      max_faces: faces MediaPipe looks for (the tracked one is chosen by `choose_face`).
      frames: the RGB uint8 [H, W, 3] frames, if already decoded (default: `read_frames`).
      max_gap_seconds: the clip is rejected if the face is lost for longer than this.

    Returns:
      `Track`.

    Raises:
      InputError: an unusable video (`probe_video`), no frames, frames of changing size, no
        face at all ("no face found in <path>"), or too many / too long lost runs
        (`check_lost`, naming the lost frame ranges).
    """
    path = os.fspath(path)
    info = probe_video(path)
    frames = read_frames(path) if frames is None else frames
    rows: list[np.ndarray | None] = []
    previous = None
    size = None
    with face_mesh(static=False, max_faces=max_faces, refine=True) as mesh:
        for i, rgb in enumerate(frames):
            rgb = np.asarray(rgb)
            if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
                raise InputError(f"frame {i} of {path} is {rgb.dtype} {rgb.shape}; need uint8 RGB")
            if size is None:
                size = (rgb.shape[1], rgb.shape[0])
            elif size != (rgb.shape[1], rgb.shape[0]):
                raise InputError(
                    f"frame {i} of {path} is {rgb.shape[1]}x{rgb.shape[0]}, not {size}"
                )
            faces = [to_pixels(f, *size) for f in detect_faces(mesh, rgb)]
            faces = [f for f in faces if len(f) == NUM_POINTS]
            k = choose_face(faces, previous)
            rows.append(None if k is None else faces[k])
            if k is not None:
                previous = faces[k]
    if not rows:
        raise InputError(f"no frames in {path}")
    detected = np.array([r is not None for r in rows])
    if not detected.any():
        raise InputError(f"no face found in {path} (frames 0-{len(rows) - 1}: none shows one)")
    check_lost(detected, info.fps, max_lost_fraction, max_gap_seconds, path)
    stacked = np.stack([np.zeros((NUM_POINTS, 3)) if r is None else r for r in rows])
    landmarks = fill_gaps(stacked, detected, max_gap)
    return Track(landmarks, detected, info.fps, size)


# ------------------------------------------------------------------------------------------
# Crops


def correspondence(model) -> tuple[np.ndarray, np.ndarray]:
    """(track point indices [L], model vertices [L]) for aligning a crop to `model`.

    The default model (`default.NUM_VERTICES` vertices) starts with MediaPipe's 468 vertices:
    all of them are used. Any other model (the BFM) pairs `topology.LANDMARKS_68` with its
    68 `model.landmarks`.
    """
    if model.num_vertices == default.NUM_VERTICES:
        ids = np.arange(topology.NUM_VERTICES)
        return ids, ids
    if model.landmarks.shape[0] != 68:
        raise InputError(
            f"the face model has {model.landmarks.shape[0]} landmarks; a model other than the "
            "default needs the 68 dlib-order landmark vertices"
        )
    return np.asarray(topology.LANDMARKS_68), np.asarray(model.landmarks)


def _pairs(model, landmark_vertices) -> tuple[np.ndarray, np.ndarray]:
    if landmark_vertices is None:
        return correspondence(model)
    if isinstance(landmark_vertices, tuple) and len(landmark_vertices) == 2:
        points, verts = (np.asarray(x, np.int64) for x in landmark_vertices)
    else:
        verts = np.asarray(landmark_vertices, np.int64)
        # 68 vertices are dlib-ordered landmarks; other counts are MediaPipe points 0..L-1.
        n = len(verts)
        points = np.asarray(topology.LANDMARKS_68) if n == 68 else np.arange(n)
    if points.shape != verts.shape or points.ndim != 1 or not len(points):
        raise InputError(f"landmark correspondence shapes {points.shape} and {verts.shape} differ")
    if (
        points.max() >= NUM_POINTS
        or verts.max() >= model.num_vertices
        or min(points.min(), verts.min()) < 0
    ):
        raise InputError("landmark correspondence indices out of range")
    return points, verts


def crop_track(
    track: Track,
    model,
    size: int = 224,
    smooth_sigma_s: float = 0.2,
    landmark_vertices=None,
) -> np.ndarray:
    """Per-frame crop alignment (`fit.crop_params`), smoothed over time.

    Each frame's landmarks are aligned (scale + translation) to the model's mean face seen by
    the default camera at `size` pixels. Log-scale and the crop centre (the frame point at the
    middle of the crop) are then smoothed with a Gaussian of `smooth_sigma_s * fps` frames:
    the centre rather than (tx, ty), which mix in the scale and would move the face when only
    the scale changes.

    Args:
      track: `track_video`'s result.
      model: the morphable model the crop is aligned to.
      size: crop side in pixels.
      smooth_sigma_s: smoothing standard deviation in seconds (0: none).
      landmark_vertices: None (`correspondence(model)`), a (track points [L], model vertices
        [L]) pair, or model vertices [L] for track points 0..L-1 (or, if L = 68, for
        `topology.LANDMARKS_68`).

    Returns:
      transform_params [T, 5] float32 (w0, h0, scale, tx, ty): crop = scale * frame + (tx, ty).
    """
    points, verts = _pairs(model, landmark_vertices)
    camera = camera_lib.Camera().scaled(size)
    lm = np.asarray(track.landmarks)[:, points, :2]
    raw = np.stack([fit.crop_params(p, model, verts, camera, track.frame_size) for p in lm])
    sigma = smooth_sigma_s * track.fps
    if sigma <= 0 or len(raw) < 2:
        return raw
    scale = raw[:, 2].astype(np.float64)
    half = np.array([camera.width, camera.height], np.float64) / 2
    centre = (half - raw[:, 3:5]) / scale[:, None]
    log_scale = scipy.ndimage.gaussian_filter1d(np.log(scale), sigma, mode="nearest")
    centre = scipy.ndimage.gaussian_filter1d(centre, sigma, axis=0, mode="nearest")
    scale = np.exp(log_scale)
    out = raw.copy()
    out[:, 2] = scale
    out[:, 3:5] = half - scale[:, None] * centre
    return out.astype(np.float32)


def _check_params(params, what: str) -> np.ndarray:
    params = np.asarray(params, np.float32)
    if params.ndim != 2 or params.shape[1] != 5:
        raise InputError(f"{what}: transform_params are {params.shape}; need [T, 5]")
    return params


def crop_video(path: str, params: np.ndarray, size: int) -> np.ndarray:
    """Cuts the crops `params` (`crop_track`) out of the first T frames of a video.

    Returns:
      [T, size, size, 3] uint8.

    Raises:
      InputError: the video has fewer than T frames, or another frame size than the params.
    """
    path = os.fspath(path)
    params = _check_params(params, path)
    out = np.empty((len(params), size, size, 3), np.uint8)
    n = 0
    for n, frame in enumerate(read_frames(path, count=len(params)), start=1):
        w0, h0 = (int(round(x)) for x in params[n - 1, :2])
        if (frame.shape[1], frame.shape[0]) != (w0, h0):
            raise InputError(
                f"{path} has {frame.shape[1]}x{frame.shape[0]} frames; the crop params are "
                f"for {w0}x{h0}"
            )
        out[n - 1] = fit.apply_crop(frame, params[n - 1], (size, size))
    if n < len(params):
        raise InputError(f"{path} has {n} frames; the crop params are for {len(params)}")
    return out


def landmarks_in_crop(track: Track, params: np.ndarray) -> np.ndarray:
    """The track's landmarks in crop pixels: [T, 478, 2] float32 (`fit.to_crop` per frame)."""
    params = _check_params(params, "landmarks_in_crop")
    if len(params) != len(track.landmarks):
        raise InputError(
            f"the track has {len(track.landmarks)} frames and the crop params {len(params)}"
        )
    return np.stack(
        [fit.to_crop(p[:, :2], q) for p, q in zip(track.landmarks, params, strict=True)]
    )
