"""Tests of talkingjax.metrics.image against plain, independently written NumPy/SciPy references."""

import math

import cv2
import numpy as np
import pytest
import scipy.ndimage

from talkingjax.errors import InputError
from talkingjax.metrics import image as im


def _rects(rng, h=128, w=128, count=30, gray=True):
    """Random axis-aligned rectangles of random intensity on a mid-gray canvas, in [0, 1]."""
    img = np.full((h, w, 1 if gray else 3), 0.5)
    for _ in range(count):
        y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
        hh, ww = rng.integers(6, 60, size=2)
        img[y0 : y0 + hh, x0 : x0 + ww] = rng.uniform(0.0, 1.0, size=img.shape[-1])
    return img[..., 0] if gray else img


def _texture(rng, n=128):
    """Natural-ish texture: a 1/f^1.5 random field with overlaid semi-transparent rectangles."""
    ky = np.fft.fftfreq(n)[:, None]
    kx = np.fft.fftfreq(n)[None, :]
    k = np.hypot(kx, ky)
    k[0, 0] = 1.0
    spec = np.fft.fft2(rng.normal(size=(n, n))) / k**1.5
    spec[0, 0] = 0.0
    field = np.real(np.fft.ifft2(spec))
    img = 0.5 * (field - field.min()) / (field.max() - field.min())
    for _ in range(25):
        y0, x0 = rng.integers(0, n - 8, size=2)
        hh, ww = rng.integers(6, 50, size=2)
        patch = img[y0 : y0 + hh, x0 : x0 + ww]
        img[y0 : y0 + hh, x0 : x0 + ww] = 0.5 * patch + rng.uniform(0.0, 0.5)
    return np.clip(img, 0.0, 1.0)


def _blur(img, sigma):
    return img if sigma == 0 else cv2.GaussianBlur(img, (0, 0), sigma)


# ----------------------------------------------------------------------------- PSNR / L1


def test_psnr_matches_formula():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(3, 20, 24, 3))
    b = np.clip(a + rng.normal(scale=[[[[0.01]]], [[[0.05]]], [[[0.2]]]], size=a.shape), 0, 1)
    ref = []
    for i in range(3):
        mse = sum(float(d) ** 2 for d in (a[i] - b[i]).ravel()) / a[i].size
        ref.append(10.0 * math.log10(1.0 / mse))
    assert im.psnr(a, b) == pytest.approx(sum(ref) / 3, rel=1e-12)
    assert im.psnr(a[1], b[1]) == pytest.approx(ref[1], rel=1e-12)


def test_psnr_conventions():
    rng = np.random.default_rng(1)
    a8 = rng.integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    b8 = rng.integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    a, b = a8 / 255.0, b8 / 255.0
    assert im.psnr(a8, b8) == pytest.approx(im.psnr(a, b), rel=1e-12)
    assert im.psnr(a8, b) == pytest.approx(im.psnr(a, b), rel=1e-12)
    # [-1, 1] images with data_range 2 are the same as [0, 1] images with data_range 1.
    assert im.psnr(2 * a - 1, 2 * b - 1, data_range=2.0) == pytest.approx(im.psnr(a, b))
    # Identical frames: capped, not inf, and a batch mean stays finite.
    assert im.psnr(a, a) == im.PSNR_CAP_DB
    mixed = im.psnr(np.stack([a[0], a[1]]), np.stack([a[0], b[1]]))
    assert mixed == pytest.approx((im.PSNR_CAP_DB + im.psnr(a[1], b[1])) / 2)
    assert im.psnr(a[0, ..., 0], b[0, ..., 0]) == pytest.approx(
        im.psnr(a[0, ..., :1], b[0, ..., :1])
    )


def test_l1_matches_formula():
    rng = np.random.default_rng(2)
    a = rng.uniform(size=(2, 9, 7, 3))
    b = rng.uniform(size=(2, 9, 7, 3))
    ref = sum(abs(float(x) - float(y)) for x, y in zip(a.ravel(), b.ravel(), strict=True))
    assert im.l1(a, b) == pytest.approx(ref / a.size, rel=1e-12)
    assert im.l1((a * 255).round().astype(np.uint8), (b * 255).round().astype(np.uint8)) == (
        pytest.approx(im.l1((a * 255).round() / 255, (b * 255).round() / 255), rel=1e-12)
    )
    assert im.l1(a, a) == 0.0


# ----------------------------------------------------------------------------- SSIM


def _ssim_scipy(x, y, data_range=1.0):
    """Full-image Gaussian filtering (scipy, 3.5-sigma truncation = 11 taps), crop 5, mean."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    vals = []
    for ch in range(x.shape[-1]):
        a, b = x[..., ch], y[..., ch]

        def f(z):
            return scipy.ndimage.gaussian_filter(z, sigma=1.5, truncate=3.5, mode="reflect")

        mx, my = f(a), f(b)
        vx, vy, cxy = f(a * a) - mx * mx, f(b * b) - my * my, f(a * b) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        vals.append(s[5:-5, 5:-5])
    return float(np.mean(vals))


def _ssim_loop(x, y):
    """Direct loop over every 11x11 window fully inside the image (Wang et al.'s 'valid')."""
    r = np.arange(11) - 5
    win = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    win /= win.sum()
    c1, c2 = 0.01**2, 0.03**2
    h, w = x.shape
    total, count = 0.0, 0
    for i in range(h - 10):
        for j in range(w - 10):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (win * px).sum(), (win * py).sum()
            vx = (win * (px - mx) ** 2).sum()
            vy = (win * (py - my) ** 2).sum()
            cxy = (win * (px - mx) * (py - my)).sum()
            total += ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
            count += 1
    return total / count


def test_ssim_matches_scipy_reference():
    rng = np.random.default_rng(3)
    a = scipy.ndimage.gaussian_filter(rng.uniform(size=(2, 34, 41, 3)), sigma=(0, 1.2, 1.2, 0))
    b = np.clip(a + rng.normal(scale=0.05, size=a.shape), 0, 1)
    ref = np.mean([_ssim_scipy(a[i], b[i]) for i in range(2)])
    assert im.ssim(a, b) == pytest.approx(ref, abs=1e-10)
    # [-1, 1] images with data_range 2 (SSIM's luminance term is not offset-invariant).
    a2, b2 = 2 * a - 1, 2 * b - 1
    ref2 = np.mean([_ssim_scipy(a2[i], b2[i], data_range=2.0) for i in range(2)])
    assert im.ssim(a2, b2, data_range=2.0) == pytest.approx(ref2, abs=1e-10)


def test_ssim_matches_direct_window_loop():
    rng = np.random.default_rng(4)
    x = rng.uniform(size=(15, 14))
    y = np.clip(0.7 * x + 0.2 + rng.normal(scale=0.1, size=x.shape), 0, 1)
    assert im.ssim(x, y) == pytest.approx(_ssim_loop(x, y), abs=1e-12)
    # RGB: mean of per-channel SSIM.
    xs = rng.uniform(size=(13, 12, 3))
    ys = np.clip(xs + rng.normal(scale=0.2, size=xs.shape), 0, 1)
    per_ch = [_ssim_loop(xs[..., c], ys[..., c]) for c in range(3)]
    assert im.ssim(xs, ys) == pytest.approx(np.mean(per_ch), abs=1e-12)


def test_ssim_properties():
    rng = np.random.default_rng(5)
    a = _rects(rng, 48, 48, gray=False)
    assert im.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    prev = 1.0
    for scale in (0.01, 0.05, 0.15, 0.4):
        b = np.clip(a + rng.normal(scale=scale, size=a.shape), 0, 1)
        s = im.ssim(a, b)
        assert s == pytest.approx(im.ssim(b, a), abs=1e-12)  # symmetric
        assert s <= 1.0
        assert s < prev  # more noise, lower SSIM
        prev = s
    a8 = (a * 255).round().astype(np.uint8)
    b8 = (np.clip(a + 0.1, 0, 1) * 255).round().astype(np.uint8)
    assert im.ssim(a8, b8) == pytest.approx(im.ssim(a8 / 255.0, b8 / 255.0), abs=1e-12)


# ----------------------------------------------------------------------------- CPBD


def _ramp_image(lo, hi, width, size=64, col=30):
    """Vertical linear ramp from lo (at `col`) to hi (at col + width), gray levels 0..255."""
    row = np.full(size, float(lo))
    row[col : col + width + 1] = np.linspace(lo, hi, width + 1)
    row[col + width + 1 :] = hi
    return np.tile(row, (size, 1)) / 255.0


@pytest.mark.parametrize(
    ("lo", "hi", "width", "expected"),
    [
        (25, 230, 1, 1.0),  # ideal step: width 2, sharp
        (25, 230, 3, 1.0),  # width 3 = w_JNB (contrast > 50): P_blur = 1 - 1/e, not blurred
        (25, 230, 4, 0.0),  # width 4 > w_JNB = 3
        (100, 150, 5, 1.0),  # contrast 50 -> w_JNB = 5; width 5 is not blurred
        (100, 151, 5, 0.0),  # contrast 51 -> w_JNB = 3
        (100, 148, 6, 0.0),  # width 6 > w_JNB = 5
        (230, 25, 3, 1.0),  # falling edges are measured the same way
        (230, 25, 4, 0.0),
    ],
)
def test_cpbd_ramps_follow_the_width_rule(lo, hi, width, expected):
    assert im.cpbd(_ramp_image(lo, hi, width)) == expected


def _cpbd_loop_reference(gray01):
    """CPBD written as loops from the paper's description; Canny map taken from the module."""
    g = np.round(gray01 * 255.0)
    h, w = g.shape
    sob = scipy.ndimage.sobel(g, axis=1, mode="nearest") / 8.0
    gx = np.zeros_like(g)
    gy = np.zeros_like(g)
    gx[:, 1:-1] = (g[:, 2:] - g[:, :-2]) / 2
    gx[:, 0], gx[:, -1] = g[:, 1] - g[:, 0], g[:, -1] - g[:, -2]
    gy[1:-1] = (g[2:] - g[:-2]) / 2
    gy[0], gy[-1] = g[1] - g[0], g[-1] - g[-2]
    canny = im._canny_edges(g)
    nby, nbx = h // 64, w // 64
    probs = []
    for bi in range(nby):
        for bj in range(nbx):
            rs, cs = slice(64 * bi, 64 * bi + 64), slice(64 * bj, 64 * bj + 64)
            if canny[rs, cs].sum() <= 0.002 * 64 * 64:
                continue
            contrast = g[rs, cs].max() - g[rs, cs].min()
            w_jnb = 5.0 if contrast <= 50 else 3.0
            for r in range(64 * bi, 64 * bi + 64):
                for c in range(64 * bj, 64 * bj + 64):
                    if r in (0, h - 1) or c in (0, w - 1):
                        continue
                    m = sob[r, c] ** 2
                    ml = sob[r, c - 1] ** 2
                    mr = sob[r, c + 1] ** 2
                    if not (m > 4.0 and m > ml and m >= mr):
                        continue
                    angle = math.degrees(math.atan2(gy[r, c], gx[r, c]))
                    if gx[r, c] == 0 or not (abs(angle) < 22.5 or abs(angle) > 157.5):
                        continue
                    s = 1.0 if gx[r, c] > 0 else -1.0
                    right = c + 1
                    while right + 1 < w and s * (g[r, right + 1] - g[r, right]) > 0:
                        right += 1
                    left = c - 1
                    while left - 1 >= 0 and s * (g[r, left] - g[r, left - 1]) > 0:
                        left -= 1
                    probs.append(1.0 - math.exp(-(((right - left) / w_jnb) ** 3.6)))
    if not probs:
        return 0.0
    return sum(p <= 1.0 - math.exp(-1.0) + 1e-12 for p in probs) / len(probs)


@pytest.mark.parametrize("sigma", [0.0, 0.6, 1.2])
def test_cpbd_matches_loop_reference(sigma):
    rng = np.random.default_rng(6)
    img = _blur(_texture(rng, 150)[:140], sigma)  # 140 x 150: remainder strips are ignored
    assert im.cpbd(img) == pytest.approx(_cpbd_loop_reference(img), abs=1e-12)


def test_cpbd_sharp_beats_blurred():
    rng = np.random.default_rng(7)
    checker = ((np.arange(128)[:, None] // 16 + np.arange(128)[None, :] // 16) % 2) * 0.8 + 0.1
    rects = _rects(rng, 128, 128, gray=False)
    for img in (checker, rects):
        sharp = im.cpbd(img)
        assert 0.0 <= sharp <= 1.0
        for sigma in (1.0, 2.0):
            assert im.cpbd(_blur(img, sigma)) < sharp


def test_cpbd_monotone_in_blur():
    rng = np.random.default_rng(8)
    tex = _texture(rng, 128)
    scores = [im.cpbd(_blur(tex, s)) for s in (0.0, 0.5, 0.8, 1.2, 2.0, 3.0)]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[0] > 0.5
    assert all(b <= a for a, b in zip(scores, scores[1:], strict=False)), scores
    assert scores[0] > scores[1] > scores[2] > scores[3], scores


def test_cpbd_degenerate_images_and_conventions():
    assert im.cpbd(np.full((64, 64, 3), 0.5)) == 0.0  # flat: no edges
    stripes = np.tile((np.arange(96)[:, None] // 8 % 2) * 0.8, (1, 96))
    assert im.cpbd(stripes) == 0.0  # only horizontal edges: nothing measured along rows
    rng = np.random.default_rng(9)
    rgb = _rects(rng, 96, 80, gray=False)
    rgb8 = (rgb * 255).round().astype(np.uint8)
    assert im.cpbd(rgb8) == im.cpbd(rgb8 / 255.0)
    gray = rgb @ np.array([0.299, 0.587, 0.114])
    assert im.cpbd(rgb) == im.cpbd(gray) == im.cpbd(gray[..., None])
    other = _blur(rgb, 1.0)
    assert im.cpbd(np.stack([rgb, other])) == pytest.approx((im.cpbd(rgb) + im.cpbd(other)) / 2)


# ----------------------------------------------------------------------------- bundle, errors


def test_frame_metrics_matches_individual_calls():
    rng = np.random.default_rng(11)
    target = np.stack([_rects(rng, 64, 72, gray=False) for _ in range(2)])
    pred = np.stack([_blur(frame, 0.8) for frame in target])
    out = im.frame_metrics(pred, target)
    assert set(out) == {"psnr", "ssim", "l1", "cpbd"}
    assert out["psnr"] == im.psnr(pred, target)
    assert out["ssim"] == im.ssim(pred, target)
    assert out["l1"] == im.l1(pred, target)
    assert out["cpbd"] == im.cpbd(pred)
    assert all(isinstance(v, float) for v in out.values())


def _bad_calls():
    ok = np.zeros((16, 16, 3))
    nan = ok.copy()
    nan[3, 4, 1] = np.nan
    inf = ok.copy()
    inf[0, 0, 0] = np.inf
    return [
        ("shape", lambda: im.psnr(ok, np.zeros((16, 15, 3)))),
        ("shape", lambda: im.ssim(ok, np.zeros((2, 16, 16, 3)))),
        ("shape", lambda: im.l1(ok, np.zeros((16, 16)))),
        ("NaN", lambda: im.psnr(nan, ok)),
        ("NaN", lambda: im.ssim(ok, inf)),
        ("NaN", lambda: im.cpbd(np.pad(nan, ((24, 24), (24, 24), (0, 0))))),
        ("channels", lambda: im.psnr(np.zeros((16, 16, 4)), np.zeros((16, 16, 4)))),
        ("expected", lambda: im.l1(np.zeros((2, 2, 8, 8, 3)), np.zeros((2, 2, 8, 8, 3)))),
        ("dtype", lambda: im.psnr(ok.astype(np.int16), ok.astype(np.int16))),
        ("empty", lambda: im.psnr(np.zeros((0, 16, 3)), np.zeros((0, 16, 3)))),
        ("data_range", lambda: im.psnr(ok * 255, np.full((16, 16, 3), 255.0))),
        ("data_range", lambda: im.psnr(ok.astype(np.uint8), ok.astype(np.uint8), 255)),
        ("data_range", lambda: im.ssim(ok, ok, data_range=0.0)),
        ("at least 11", lambda: im.ssim(np.zeros((10, 30)), np.zeros((10, 30)))),
        ("at least 64", lambda: im.cpbd(np.zeros((63, 100)))),
        ("[0, 1]", lambda: im.cpbd(np.full((64, 64), 2.0))),
    ]


@pytest.mark.parametrize(("needle", "call"), _bad_calls())
def test_bad_input_raises_one_line_input_error(needle, call):
    with pytest.raises(InputError) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg
    assert needle in msg
