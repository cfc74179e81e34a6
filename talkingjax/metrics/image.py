"""Image-quality metrics for rendered / generated frames: PSNR, SSIM, L1 and CPBD sharpness.

Paper 000 (Sec. V) reports CPBD (Table III, no reference: ours 0.31) and PSNR / SSIM
(Table IV, against ground truth, following ATVG). These functions run on the host over
evaluation frames: NumPy in, Python floats (or a dict of them) out, float64 inside, not
jittable, `InputError` for unusable input.

Conventions (shared by every function here)
-------------------------------------------
- An image is `[H, W, C]` with channels last, `C` = 3 (RGB) or 1; `[H, W]` is a grayscale
  image; `[N, H, W, C]` is a batch of N frames. A 3-D array is always *one* image, never a
  batch of grayscale frames (add a channel axis for that).
- Float images are in [0, 1]. `uint8` images are divided by 255 first, so the two encodings
  of the same frame give the same number; other integer dtypes are refused. `psnr` / `ssim`
  take `data_range` for float images in another range (e.g. 2.0 for [-1, 1]); it describes
  the float scale, so with `uint8` input it must stay 1.0. Values spanning more than
  `data_range` (typically a [0, 255] float image) raise `InputError` instead of producing a
  silently wrong number: clip generator outputs first.
- A batch gives the **mean over frames of the per-frame metric** (for PSNR this is not the
  PSNR of the pooled MSE).

Metrics
-------
- `psnr`: 10 log10(data_range^2 / MSE), MSE over all pixels and channels of one frame.
  Identical frames would give +inf, which poisons a mean, so per-frame PSNR is capped at
  `PSNR_CAP_DB` = 100 dB (identical frames give exactly 100.0).
- `ssim`: Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error visibility
  to structural similarity", IEEE TIP 13(4), 2004. Local statistics under an 11x11 Gaussian
  window (sigma 1.5, normalised to sum 1), K1 = 0.01, K2 = 0.03, population (not sample)
  (co)variances, SSIM map over the *valid* region only (window fully inside the image, i.e.
  `(H - 10) x (W - 10)` positions), averaged; computed **per channel and averaged over
  channels** (the usual face-reenactment convention, not luma). This equals Wang's reference
  MATLAB `ssim_index.m` (`filter2(..., 'valid')`) on each channel, *without* the automatic
  downsampling of the later `ssim.m` (which shrinks images larger than ~384 px by
  round(min(H, W) / 256)), and equals scikit-image's
  `structural_similarity(a, b, data_range=..., channel_axis=-1, gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False)` (its 3.5-sigma truncation gives the same 11 taps,
  and it crops the same 5-pixel border). Frames must be at least 11 x 11.
- `l1`: mean absolute error in [0, 1] units (`uint8` divided by 255).
- `cpbd`: Cumulative Probability of Blur Detection, Narvekar & Karam, "A No-Reference Image
  Blur Metric Based on the Cumulative Probability of Blur Detection (CPBD)", IEEE TIP 20(9),
  2011. Higher is sharper, in [0, 1]. Written from the paper's description; the details the
  paper leaves open follow the authors' released code and the widely used Python port (which
  published talking-face CPBD numbers come from), as listed in the `cpbd` docstring. CPBD of
  a batch is the mean of the per-frame values; frames must be at least 64x64. An image
  without any measurable edge (e.g. flat) scores 0.0.

`frame_metrics` bundles the four for a generated clip against its ground truth.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from talkingjax.errors import InputError

PSNR_CAP_DB = 100.0

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

# ITU-R BT.601 luma weights (the R'G'B' -> Y' of cv2.cvtColor / PIL "L").
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

CPBD_BLOCK = 64  # block side in pixels
CPBD_EDGE_BLOCK_FRACTION = 0.002  # a block is an edge block if edge pixels > 0.2 % of it
CPBD_CONTRAST_SPLIT = 50  # block contrast (max - min, 0..255) <= 50 -> w_JNB = 5, else 3
CPBD_WIDTH_JNB_LOW_CONTRAST = 5.0
CPBD_WIDTH_JNB_HIGH_CONTRAST = 3.0
CPBD_BETA = 3.6
CPBD_P_JNB = 1.0 - math.exp(-1.0)  # the paper's "63 %": P_blur at w = w_JNB
CPBD_SOBEL_THRESHOLD = 2.0  # |dI/dx| in gray levels per pixel of width-measured edges
CPBD_CANNY_SIGMA = 1.0  # Gaussian pre-smoothing of the edge detector
CPBD_CANNY_THRESHOLDS = (0.1, 0.2)  # hysteresis thresholds on the 3x3 Sobel magnitude (0..255)
CPBD_VERTICAL_TOLERANCE_DEG = 22.5  # gradient closer than this to horizontal -> vertical edge

_RANGE_TOL = 1e-6
_CANNY_GRADIENT_SCALE = 10.0  # int16 gradients for cv2.Canny keep 0.1 of the Sobel magnitude


# ----------------------------------------------------------------------------- validation


def _as_frames(x, name: str) -> tuple[np.ndarray, bool]:
    """Validates one image or a batch; returns (float64 [N, H, W, C], whether it was uint8)."""
    arr = np.asarray(x)
    if arr.dtype == np.uint8:
        was_uint8 = True
        arr = arr.astype(np.float64) / 255.0
    elif np.issubdtype(arr.dtype, np.floating):
        was_uint8 = False
        arr = arr.astype(np.float64)
    else:
        raise InputError(
            f"{name}: expected a float image in [0, 1] or uint8, got dtype {arr.dtype}"
        )
    if arr.ndim == 2:
        arr = arr[None, :, :, None]
    elif arr.ndim == 3:
        arr = arr[None]
    elif arr.ndim != 4:
        raise InputError(
            f"{name}: expected [H, W], [H, W, C] or [N, H, W, C] image(s), got shape {arr.shape}"
        )
    if arr.shape[-1] not in (1, 3):
        raise InputError(
            f"{name}: expected 1 or 3 channels (channels last), got shape {np.shape(x)}"
        )
    if arr.size == 0:
        raise InputError(f"{name}: empty image array of shape {np.shape(x)}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name}: contains NaN or infinite values")
    return arr, was_uint8


def _pair(pred, target, data_range: float) -> tuple[np.ndarray, np.ndarray]:
    """Validates a (pred, target) pair of equal shape; returns both as float64 [N, H, W, C]."""
    try:
        ok = math.isfinite(float(data_range)) and float(data_range) > 0.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"data_range must be a positive finite number, got {data_range!r}")
    data_range = float(data_range)
    p, p_u8 = _as_frames(pred, "pred")
    t, t_u8 = _as_frames(target, "target")
    if np.shape(pred) != np.shape(target):
        raise InputError(
            f"pred and target must have the same shape, got {np.shape(pred)} vs {np.shape(target)}"
        )
    if (p_u8 or t_u8) and data_range != 1.0:
        raise InputError(
            f"uint8 images are scaled to [0, 1], so data_range must be 1.0, got {data_range}"
        )
    lo = min(p.min(), t.min())
    hi = max(p.max(), t.max())
    if hi - lo > data_range * (1.0 + _RANGE_TOL):
        raise InputError(
            f"pixel values span [{lo:.4g}, {hi:.4g}], more than data_range={data_range}: "
            "float images must be in [0, 1] (clip them, or pass the right data_range)"
        )
    return p, t


# ----------------------------------------------------------------------------- full-reference


def psnr(pred, target, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, mean over frames, each frame capped at `PSNR_CAP_DB`.

    Args:
      pred, target: [H, W, C] / [H, W] images or [N, H, W, C] batches of the same shape;
        float in [0, data_range] (any offset) or uint8.
      data_range: peak-to-peak range of float images (1.0 for [0, 1]).

    Returns:
      mean over frames of 10 log10(data_range^2 / MSE_frame), MSE over pixels and channels.
    """
    p, t = _pair(pred, target, data_range)
    mse = np.mean((p - t) ** 2, axis=(1, 2, 3))  # [N]
    floor = data_range**2 * 10.0 ** (-PSNR_CAP_DB / 10.0)
    per_frame = 10.0 * np.log10(data_range**2 / np.maximum(mse, floor))
    return float(np.mean(np.minimum(per_frame, PSNR_CAP_DB)))


def _gaussian_window_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian [size]; its outer product is the 2-D SSIM window."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(r**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of [N, H, W, C] with g (x) g -> [N, H-k+1, W-k+1, C]."""
    k = g.shape[0]
    x = sliding_window_view(x, k, axis=1) @ g  # [N, H-k+1, W, C]
    return sliding_window_view(x, k, axis=2) @ g  # [N, H-k+1, W-k+1, C]


def ssim(pred, target, data_range: float = 1.0) -> float:
    """Structural similarity (Wang et al. 2004), per channel then averaged; mean over frames.

    11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, valid region only; see the
    module docstring for the exact reference implementations this matches.

    Args:
      pred, target: [H, W, C] / [H, W] images or [N, H, W, C] batches of the same shape, with
        H, W >= 11; float in [0, data_range] (any offset) or uint8.
      data_range: peak-to-peak range of float images (1.0 for [0, 1]).

    Returns:
      mean SSIM in [-1, 1] (1 for identical frames).
    """
    p, t = _pair(pred, target, data_range)
    if min(p.shape[1], p.shape[2]) < SSIM_WINDOW:
        raise InputError(
            f"ssim needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {p.shape[1:3]}"
        )
    g = _gaussian_window_1d()
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    per_frame = []
    for i in range(p.shape[0]):  # one frame at a time keeps the temporaries small
        x, y = p[i : i + 1], t[i : i + 1]
        mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
        var_x = _filter_valid(x * x, g) - mu_x**2
        var_y = _filter_valid(y * y, g) - mu_y**2
        cov = _filter_valid(x * y, g) - mu_x * mu_y
        num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
        den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
        per_frame.append(np.mean(num / den))  # channels averaged together with positions
    return float(np.mean(per_frame))


def l1(pred, target) -> float:
    """Mean absolute error in [0, 1] units over pixels, channels and frames.

    Args:
      pred, target: [H, W, C] / [H, W] images or [N, H, W, C] batches of the same shape;
        float in [0, 1] or uint8 (divided by 255).
    """
    p, t = _pair(pred, target, 1.0)
    return float(np.mean(np.abs(p - t)))


# ----------------------------------------------------------------------------- CPBD


def _gray_levels(frame: np.ndarray) -> np.ndarray:
    """[H, W, C] float in [0, 1] -> [H, W] float64 BT.601 luma rounded to the levels 0..255."""
    if frame.shape[-1] == 3:
        y = frame @ np.asarray(LUMA_WEIGHTS)
    else:
        y = frame[..., 0]
    return np.round(np.clip(y, 0.0, 1.0) * 255.0)


def _canny_edges(gray: np.ndarray) -> np.ndarray:
    """Canny edge map [H, W] bool of a [H, W] 0..255 image (settings: see `cpbd`)."""
    smooth = cv2.GaussianBlur(
        gray.astype(np.float32),
        (0, 0),
        sigmaX=CPBD_CANNY_SIGMA,
        sigmaY=CPBD_CANNY_SIGMA,
        borderType=cv2.BORDER_REFLECT,
    )
    grads = []
    for dx, dy in ((1, 0), (0, 1)):
        d = cv2.Sobel(smooth, cv2.CV_32F, dx, dy, ksize=3, borderType=cv2.BORDER_REFLECT)
        d = np.clip(np.round(d * _CANNY_GRADIENT_SCALE), -32767, 32767).astype(np.int16)
        grads.append(d)
    low, high = (th * _CANNY_GRADIENT_SCALE for th in CPBD_CANNY_THRESHOLDS)
    return cv2.Canny(grads[0], grads[1], low, high, L2gradient=True) > 0


def _measured_edges(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertical edge pixels whose width is measured, and their polarity; both [H, W] bool.

    Edge map: horizontal derivative (3x3 Sobel / 8, gray levels per pixel, replicated border)
    above `CPBD_SOBEL_THRESHOLD`, thinned to local maxima of |dI/dx| along the row. Kept: pixels
    off the image border whose central-difference gradient is within 22.5 degrees of horizontal
    (nonzero dI/dx). Polarity `rising`: intensity increases to the right.
    """
    sob = cv2.Sobel(gray, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE) / 8.0
    mag = sob * sob
    left = np.concatenate([mag[:, :1], mag[:, :-1]], axis=1)
    right = np.concatenate([mag[:, 1:], mag[:, -1:]], axis=1)
    edges = (mag > CPBD_SOBEL_THRESHOLD**2) & (mag > left) & (mag >= right)
    gy, gx = np.gradient(gray)
    tol = math.tan(math.radians(CPBD_VERTICAL_TOLERANCE_DEG))
    keep = edges & (gx != 0.0) & (np.abs(gy) < tol * np.abs(gx))
    keep[0, :] = keep[-1, :] = False
    keep[:, 0] = keep[:, -1] = False
    return keep, gx > 0.0


def _edge_widths(gray: np.ndarray, measured: np.ndarray, rising: np.ndarray) -> np.ndarray:
    """Horizontal edge widths at the `measured` pixels (row-major order), as float64 [M].

    For a pixel at column n of an edge rising to the right, the right end is the local maximum
    reached by walking right from n + 1 while the intensity strictly increases, the left end the
    local minimum reached by walking left from n - 1 while it strictly decreases (a walk also
    stops at the image border); the width is their distance. Falling edges mirror this.
    Measured pixels must not lie in the first or last column. An ideal step has width 2.
    """
    h, w = gray.shape
    diff = np.diff(gray, axis=1)  # [H, W-1]: diff[:, k] = I[k+1] - I[k]
    idx = np.broadcast_to(np.arange(w), (h, w))
    out = np.zeros(int(measured.sum()), dtype=np.float64)
    rows, cols = np.nonzero(measured)
    rise = rising[rows, cols]
    edge_col = np.ones((h, 1), dtype=bool)
    for sign, sel in ((1.0, rise), (-1.0, ~rise)):
        flat = sign * diff <= 0.0  # [H, W-1]: no strict rise (in the edge's sense) k -> k+1
        # Right walk stops at k if it cannot go on to k + 1 (or k is the last column).
        stop_r = np.concatenate([flat, edge_col], axis=1)
        first_r = np.minimum.accumulate(np.where(stop_r, idx, w - 1)[:, ::-1], axis=1)[:, ::-1]
        # Left walk stops at k if it cannot go on to k - 1 (or k is the first column).
        stop_l = np.concatenate([edge_col, flat], axis=1)
        last_l = np.maximum.accumulate(np.where(stop_l, idx, 0), axis=1)
        r, c = rows[sel], cols[sel]
        out[sel] = first_r[r, c + 1] - last_l[r, c - 1]
    return out


def _cpbd_frame(gray: np.ndarray) -> float:
    """CPBD of one [H, W] image with integer levels 0..255, H, W >= CPBD_BLOCK."""
    h, w = gray.shape
    b = CPBD_BLOCK
    nby, nbx = h // b, w // b
    hb, wb = nby * b, nbx * b  # whole blocks only; a remainder strip is ignored
    measured, rising = _measured_edges(gray)  # edges and widths use the whole image
    measured[hb:, :] = False
    measured[:, wb:] = False
    widths = _edge_widths(gray, measured, rising)
    rows, cols = np.nonzero(measured)

    tiles = gray[:hb, :wb].reshape(nby, b, nbx, b)
    contrast = tiles.max(axis=(1, 3)) - tiles.min(axis=(1, 3))  # [nby, nbx]
    edge_count = _canny_edges(gray)[:hb, :wb].reshape(nby, b, nbx, b).sum(axis=(1, 3))
    is_edge_block = edge_count > CPBD_EDGE_BLOCK_FRACTION * b * b

    by, bx = rows // b, cols // b
    keep = is_edge_block[by, bx]
    if not np.any(keep):
        return 0.0
    w_jnb = np.where(
        contrast[by, bx] <= CPBD_CONTRAST_SPLIT,
        CPBD_WIDTH_JNB_LOW_CONTRAST,
        CPBD_WIDTH_JNB_HIGH_CONTRAST,
    )[keep]
    p_blur = 1.0 - np.exp(-(np.abs(widths[keep] / w_jnb) ** CPBD_BETA))
    return float(np.mean(p_blur <= CPBD_P_JNB + 1e-12))


def cpbd(image) -> float:
    """No-reference sharpness CPBD (Narvekar & Karam 2011) in [0, 1]; higher is sharper.

    Steps, per frame (details the paper leaves open follow the authors' released code and the
    common Python port, from which published talking-face CPBD numbers come):

    1. Grayscale: BT.601 luma of the RGB frame, scaled to 0..255 and rounded to integer
       levels, as when an 8-bit file is read.
    2. Blocks: whole 64x64 blocks from the top-left; a remainder narrower than 64 pixels at
       the right / bottom is ignored (as in the reference code), so frames must be at least
       64x64. A block is an *edge block* if its Canny edge pixels exceed 0.2 % of its pixels.
       Canny uses the Python port's settings (scikit-image `canny` defaults on the 0..255
       image: Gaussian pre-smoothing sigma 1, 3x3 Sobel, hysteresis thresholds 0.1 / 0.2 in
       unnormalised-Sobel magnitude units, i.e. practically every gradient ridge), implemented
       with `cv2.GaussianBlur` + `cv2.Sobel` + `cv2.Canny` on the gradients (L2 magnitude).
       The Canny map is used only for this decision.
    3. Edge pixels whose width is measured (as in the reference code, which measures widths
       along rows, i.e. of *vertical* edges only, after Marziliano et al.): the 3x3 Sobel
       horizontal derivative scaled to gray levels per pixel (Sobel / 8) exceeds 2, thinned to
       local maxima along the row, and the gradient direction (central differences) is within
       22.5 degrees of horizontal (the reference rounds the angle to a multiple of 45 degrees
       and keeps 0 / 180). Pixels on the image border are skipped.
    4. Width: distance between the local extrema on either side of the edge pixel along its row
       (minimum on the dark side, maximum on the bright side), each found by walking outward
       from the neighbouring pixel while the intensity strictly keeps changing in the edge's
       sense, stopping at the image border. An ideal one-step edge has width 2.
    5. Block contrast C = max - min of its gray levels; w_JNB = 5 if C <= 50 else 3.
    6. For each measured edge pixel in an edge block, P_blur = 1 - exp(-|w / w_JNB|^3.6);
       CPBD = the fraction of them with P_blur <= P_JNB. The paper's P_JNB = 63 % is the
       probability at w = w_JNB, 1 - 1/e = 0.632 (`CPBD_P_JNB`), so an edge exactly
       w_JNB wide counts as not blurred, as in the reference code (which reads the value off a
       histogram of P_blur with 1 % bins; for integer widths the two agree).

    An image without any measured edge pixel in an edge block (flat, or only horizontal
    edges) scores 0.0. Image noise strong enough to pass the derivative threshold adds narrow,
    "sharp" edges that put a floor under the score of a blurred noisy frame.

    Args:
      image: [H, W, 3] RGB or [H, W] / [H, W, 1] gray image, or an [N, H, W, C] batch; float
        in [0, 1] or uint8; H, W >= 64.

    Returns:
      CPBD in [0, 1]; for a batch, the mean over frames.
    """
    frames, _ = _as_frames(image, "image")
    lo, hi = frames.min(), frames.max()
    if lo < -_RANGE_TOL or hi > 1.0 + _RANGE_TOL:
        raise InputError(
            f"image: float values must be in [0, 1], got [{lo:.4g}, {hi:.4g}] (clip or rescale)"
        )
    if min(frames.shape[1], frames.shape[2]) < CPBD_BLOCK:
        raise InputError(
            f"image: cpbd needs frames of at least {CPBD_BLOCK}x{CPBD_BLOCK} (one block), "
            f"got {frames.shape[1:3]}"
        )
    return float(np.mean([_cpbd_frame(_gray_levels(f)) for f in frames]))


# ----------------------------------------------------------------------------- bundle


def frame_metrics(pred, target) -> dict[str, float]:
    """PSNR, SSIM, L1 against `target` and CPBD of `pred`, each a mean over frames.

    Args:
      pred, target: [N, H, W, C] (or one [H, W, C]) frames of the same shape, float in
        [0, 1] or uint8, H, W >= 64 (CPBD's block size).

    Returns:
      {"psnr": dB, "ssim": ..., "l1": ..., "cpbd": ... of pred}.
    """
    return {
        "psnr": psnr(pred, target),
        "ssim": ssim(pred, target),
        "l1": l1(pred, target),
        "cpbd": cpbd(pred),
    }
