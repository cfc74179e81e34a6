"""An independent, slow NumPy z-buffer rasterizer used only as a test reference.

It works differently from `talkingjax.render.rasterize` on purpose: triangles are clipped
against the near plane in homogeneous space (Sutherland-Hodgman), the clipped polygons are
fan-triangulated and projected, and each sub-triangle is scanned pixel by pixel in float64
with the usual edge functions; depth comes from linearly interpolating 1/w in screen space.
"""

import numpy as np


def _clip_near(poly: np.ndarray, near: float) -> np.ndarray:
    """Clips a polygon [N, 3] of homogeneous (X, Y, W) points to W >= near."""
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        a_in, b_in = a[2] >= near, b[2] >= near
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (near - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out)


def rasterize(pos_h, triangles, height, width, near=1e-3):
    """Returns ([H, W] triangle index or -1, [H, W] depth or inf)."""
    pos_h = np.asarray(pos_h, np.float64)
    tri_img = np.full((height, width), -1, np.int64)
    zbuf = np.full((height, width), np.inf)
    for t, tri in enumerate(np.asarray(triangles)):
        poly = _clip_near(pos_h[tri], near)
        if len(poly) < 3:
            continue
        s = poly[:, :2] / poly[:, 2:]
        for k in range(1, len(poly) - 1):
            idx = [0, k, k + 1]
            p, w = s[idx], poly[idx, 2]
            area = (p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[1, 1] - p[0, 1]) * (
                p[2, 0] - p[0, 0]
            )
            if area == 0:
                continue
            x0 = max(int(np.ceil(p[:, 0].min() - 0.5)), 0)
            x1 = min(int(np.floor(p[:, 0].max() - 0.5)), width - 1)
            y0 = max(int(np.ceil(p[:, 1].min() - 0.5)), 0)
            y1 = min(int(np.floor(p[:, 1].max() - 0.5)), height - 1)
            if x1 < x0 or y1 < y0:
                continue
            xs, ys = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
            lam = []
            for a, b in ((1, 2), (2, 0), (0, 1)):
                lam.append(
                    ((p[a, 0] - xs) * (p[b, 1] - ys) - (p[a, 1] - ys) * (p[b, 0] - xs)) / area
                )
            lam = np.stack(lam)
            inside = np.all(lam >= 0, axis=0)
            depth = 1.0 / np.tensordot(1.0 / w, lam, axes=1)
            rows, cols = np.nonzero(inside)
            for r, c in zip(rows, cols, strict=True):
                z = depth[r, c]
                yy, xx = r + y0, c + x0
                if z < zbuf[yy, xx] or (z == zbuf[yy, xx] and t > tri_img[yy, xx]):
                    zbuf[yy, xx] = z
                    tri_img[yy, xx] = t
    return tri_img, zbuf
