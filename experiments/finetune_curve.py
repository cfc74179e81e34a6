"""The fine-tune steps curve of issue 24 from `experiments.eval_reconstruction` runs.

  python -m experiments.finetune_curve --run=LABEL:DIR [--run=LABEL:DIR ...] \
      --out=docs/figures/NAME [--row=pipeline]

Each DIR is an eval_reconstruction --out_dir of the same clips, made with other
--gan_steps / --expression_steps. Reads DIR/reconstruction.json and writes NAME.md and
NAME.json: per run (one line per LABEL, in the order given) the steps of its protocol and the
mean over clips of the `--row` row's face PSNR, face SSIM, mouth LMD, face CPBD and AV
confidence, how many clips have an AV offset within +-1, and per clip the face PSNR / mouth
LMD of every run (the clip-to-clip spread the differences between runs are read against).
"""

from __future__ import annotations

import json
import os

from absl import flags

from experiments import cli
from talkingjax.data import records
from talkingjax.errors import InputError
from talkingjax.evaluation import reconstruction

_RUNS = flags.DEFINE_multi_string("run", None, "LABEL:DIR of an eval_reconstruction run.")
_OUT = flags.DEFINE_string("out", None, "Output path without extension.")
_ROW = flags.DEFINE_string("row", "pipeline", "The reconstruction row to read.")

# (key of a clip's row, markdown header, format) of the mean columns: those of the
# reconstruction table (`reconstruction.COLUMNS`) that a steps curve reads.
_MEAN_KEYS = ("face_psnr_db", "face_ssim", "mouth_lmd", "face_cpbd", "av_confidence")
# AV confidence with 3 decimals: between step counts it differs in the third.
MEANS = tuple(
    (k, h, "{:.3f}" if k == "av_confidence" else f)
    for k, h, f in reconstruction.COLUMNS
    if k in _MEAN_KEYS
)
PER_CLIP = (("face_psnr_db", "{:.2f}"), ("mouth_lmd", "{:.2f}"))


def parse_run(spec: str) -> tuple[str, str]:
    """`LABEL:DIR` -> (label, dir)."""
    label, sep, path = spec.partition(":")
    if not sep or not label or not path:
        raise InputError(f"--run must be LABEL:DIR, got {spec!r}")
    return label, path


def _value(row: dict, key: str) -> float | None:
    v = row.get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def curve_row(label: str, report: dict, row: str = "pipeline") -> dict:
    """One run's line: its steps, the per-clip measures of `row` and their means over the
    clips that have them (None where no clip has one)."""
    per_clip: dict[str, dict] = {}
    for clip in report["clips"]:
        if row not in clip["rows"]:
            raise InputError(f"{label}: clip {clip['clip_id']} has no row {row!r}")
        measures = clip["rows"][row]
        keys = [k for k, _, _ in MEANS] + ["av_offset"]
        per_clip[clip["clip_id"]] = {k: _value(measures, k) for k in keys}
    summary = reconstruction.summarize(report["clips"]).get(row, {})
    means = {key: summary.get(key) for key, _, _ in MEANS}
    offsets = [c["av_offset"] for c in per_clip.values() if c["av_offset"] is not None]
    return {
        "label": label,
        "expression_steps": report["protocol"]["expression_steps"],
        "gan_steps": report["protocol"]["gan_steps"],
        "clips": len(per_clip),
        "mean": means,
        "av_offset_within_1": sum(abs(o) <= 1 for o in offsets),
        "av_offset_measured": len(offsets),
        "per_clip": per_clip,
    }


def _cell(v: float | None, fmt: str) -> str:
    return "—" if v is None else fmt.format(v)


def curve_markdown(rows: list[dict], row: str = "pipeline") -> str:
    """The mean table (one line per run) and the per-clip table (one line per clip)."""
    head = ["setting", "expression steps", "GAN steps", "clips"] + [h for _, h, _ in MEANS]
    lines = [f"Row {row!r}, mean over clips:", "", "| " + " | ".join(head) + " | AV offset ±1 |"]
    lines.append("|" + "---|" * (len(head) + 1))
    for r in rows:
        gan = "config" if r["gan_steps"] is None else str(r["gan_steps"])
        cells = [r["label"], str(r["expression_steps"]), gan, str(r["clips"])]
        cells += [_cell(r["mean"][k], f) for k, _, f in MEANS]
        cells.append(f"{r['av_offset_within_1']}/{r['av_offset_measured']}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Per clip, face PSNR dB / mouth LMD %:", ""]
    lines.append("| clip | " + " | ".join(r["label"] for r in rows) + " |")
    lines.append("|---|" + "---|" * len(rows))
    for clip in rows[0]["per_clip"]:
        cells = [" / ".join(_cell(r["per_clip"][clip][k], f) for k, f in PER_CLIP) for r in rows]
        lines.append(f"| {clip} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def read_runs(specs: list[str], row: str = "pipeline") -> tuple[list[dict], dict]:
    """(curve rows, {label: report}) of `LABEL:DIR` specs; the runs must share their clips."""
    rows, reports = [], {}
    for spec in specs:
        label, path = parse_run(spec)
        if label in reports:
            raise InputError(f"--run: label {label!r} given twice")
        json_path = os.path.join(path, "reconstruction.json")
        if not os.path.isfile(json_path):
            raise InputError(f"{json_path} does not exist (run experiments.eval_reconstruction)")
        with open(json_path) as f:
            reports[label] = json.load(f)
        rows.append(curve_row(label, reports[label], row))
        if set(rows[-1]["per_clip"]) != set(rows[0]["per_clip"]):
            raise InputError(f"{label} measured other clips than {rows[0]['label']}")
    return rows, reports


def main(argv):
    del argv
    if not _RUNS.value or not _OUT.value:
        raise InputError("--run (at least one) and --out are required")
    rows, reports = read_runs(_RUNS.value, _ROW.value)
    text = curve_markdown(rows, _ROW.value)
    records.atomic_write(_OUT.value + ".md", lambda f: f.write(text), mode="w")
    commands = {label: r.get("command", "") for label, r in reports.items()}
    data = json.dumps({"row": _ROW.value, "rows": rows, "commands": commands}, indent=1)
    records.atomic_write(_OUT.value + ".json", lambda f: f.write(data), mode="w")
    print(text)


if __name__ == "__main__":
    cli.run(main)
