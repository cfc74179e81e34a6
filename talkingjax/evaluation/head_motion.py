"""Paper 000's model on its held-out clips: the one pose protocol, plus its curves figure.

The protocol, the baselines (audio only, replay of the reference, static poses, random real)
and every metric live in `talkingjax.evaluation.pose_table`, the one home of the held-out
pose evaluation for paper 000 and its peers; this module adds what is particular to a paper-000
workdir: the figure of real vs predicted (pattern and audio-only) angles of a few clips.

    results = evaluate_workdir(workdir)   # <workdir>/eval/pose_table.md, .json, pose_curves.png
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np

from talkingjax.evaluation import pose_table
from talkingjax.metrics import pose as pose_metrics
from talkingjax.predict.peers import YI2022_NAME
from talkingjax.train import storage


def plot_curves(curves: list[dict], fps: float, path: str, rows: tuple[str, ...]) -> None:
    """PNG of the real vs predicted pitch/yaw/roll (degrees) of a few held-out clips.

    Args:
      curves: `pose_table.evaluate_predictors(...)["curves"]`: {"clip_id", "real pose", row:
        [F, 6]} per clip.
      fps: frame rate of the curves.
      path: the PNG to write.
      rows: the rows to draw next to the real pose.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(curves), 3, figsize=(13, 2.6 * len(curves)), squeeze=False)
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    styles = [(pose_table.REAL, "k")] + [
        (row, colors[i % len(colors)]) for i, row in enumerate(rows)
    ]
    for r, c in enumerate(curves):
        t = np.arange(c[pose_table.REAL].shape[0]) / fps
        for a, name in enumerate(pose_metrics.AXES):
            ax = axes[r, a]
            for key, color in styles:
                ax.plot(t, np.degrees(c[key][:, a]), color=color, lw=1, label=key)
            ax.set_title(f"{c['clip_id']} {name}", fontsize=9)
            ax.set_xlabel("s", fontsize=8)
            ax.set_ylabel("deg", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90, format="png")
    plt.close(fig)


def evaluate_workdir(
    workdir: str,
    step: int | None = None,
    part: str | None = None,
    out_dir: str | None = None,
    smooth_sigmas: Sequence[float] = (),
) -> dict:
    """The pose table of one paper-000 workdir on its held-out part, and its curves figure.

    Writes `<out_dir>/pose_table.md`, `pose_table.json` and `pose_curves.png` (default
    out_dir `<workdir>/eval`). Returns `pose_table.evaluate_workdirs`' results.
    """
    results = pose_table.evaluate_workdirs([workdir], out_dir, step, part, smooth_sigmas)
    out_dir = out_dir or os.path.join(workdir, "eval")
    rows = (YI2022_NAME, pose_table.AUDIO_ONLY.format(YI2022_NAME))
    curves = [c for c in results["curves"] if all(r in c for r in rows)]
    if curves and storage.is_writer():
        png = io.BytesIO()
        plot_curves(curves, results["fps"], png, rows)
        storage.atomic_write(
            os.path.join(out_dir, "pose_curves.png"), lambda f: f.write(png.getvalue()), "wb"
        )
    return results
