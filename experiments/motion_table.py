"""The head-motion table of issue 22 from `experiments.eval_generation` runs.

  python -m experiments.motion_table --run=DIR1 [--run=DIR2 ...] --out=docs/figures/NAME

Reads each DIR/acceptance.json and writes NAME.md (one row per run: the motion of the written
mp4 against the target's real video and against the predicted pose, sharpness, seam; the
pattern and pose-scale-0 checks where the run made them) and NAME.json (the rows' figures and
the source acceptance files whole).
"""

import json
import os

from absl import flags

from experiments import cli
from talkingjax.data import records
from talkingjax.errors import InputError

_RUNS = flags.DEFINE_multi_string("run", None, "An eval_generation --out_dir.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output path without extension.", required=True)


def _f(x, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def row(name: str, report: dict) -> dict:
    """The table's figures of one acceptance.json."""
    v = report["video_measures"]
    r = v.get("pose_r_pitch_yaw_roll") or [None] * 3
    out = {
        "run": name,
        "blend": report.get("controls", {}).get("blend", 1.0),
        "speed_ratio": v.get("angular_speed_ratio"),
        "jerk_ratio": v.get("jerk_ratio"),
        "max_step_deg": v.get("max_step_deg"),
        "max_step_p99_deg_target": v.get("max_step_p99_deg_target"),
        "pose_r_pitch_yaw_roll": r,
        "pose_r_mean_at_lag": v.get("pose_r_mean_at_lag"),
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


def markdown(rows: list[dict]) -> str:
    head = (
        "| run | blend | speed / real | jerk / real | max step / real p99 (deg) | "
        "r with prediction (pitch, yaw, roll; mean at best lag) | CPBD / real | seam / real | "
        "lost | patterns differ (tracked / predicted, deg) | pose scale 0: std / real jitter "
        "(deg, p/y/r) |\n|" + "---|" * 11 + "\n"
    )
    lines = []
    for x in rows:
        r = ", ".join(_f(a) for a in x["pose_r_pitch_yaw_roll"])
        still = "-"
        if "pose_scale_0_std_deg" in x:
            still = (
                "/".join(_f(a) for a in x["pose_scale_0_std_deg"])
                + " vs "
                + "/".join(_f(a) for a in x["rest_jitter_deg_target"])
            )
        lines.append(
            f"| {x['run']} | {x['blend']:g} | {_f(x['speed_ratio'])} | {_f(x['jerk_ratio'])} | "
            f"{_f(x['max_step_deg'])} / {_f(x['max_step_p99_deg_target'])} | "
            f"{r}; {_f(x['pose_r_mean_at_lag'])} | {_f(x['cpbd_ratio'])} | "
            f"{_f(x['seam_ratio'])} | {x['lost_frames']} | "
            f"{_f(x['tracked_pose_difference_deg'])} / {_f(x['predicted_pose_difference_deg'])} "
            f"| {still} |"
        )
    return head + "\n".join(lines) + "\n"


def main(argv):
    del argv
    reports, rows = {}, []
    for run in _RUNS.value:
        path = os.path.join(run, "acceptance.json")
        if not os.path.isfile(path):
            raise InputError(f"{path} does not exist (run experiments.eval_generation first)")
        with open(path) as f:
            report = json.load(f)
        name = os.path.basename(os.path.normpath(run))
        reports[name] = report
        rows.append(row(name, report))
    text = markdown(rows)
    records.atomic_write(_OUT.value + ".md", lambda f: f.write(text), mode="w")
    data = json.dumps({"rows": rows, "reports": reports}, indent=1)
    records.atomic_write(_OUT.value + ".json", lambda f: f.write(data), mode="w")
    print(text)


if __name__ == "__main__":
    cli.run(main)
