"""experiments.motion_table: the issue-22 table of eval_generation runs."""

import json
import os
import subprocess
import sys

from talkingjax.evaluation import generation as generation_eval

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

REPORT = {
    "controls": {"blend": 0.0, "turn_gain": [1.5, 2.0, 1.0]},
    "video_measures": {
        "angular_speed_ratio": 0.9, "jerk_ratio": 0.86, "max_step_deg": 2.43,
        "max_step_p99_deg_target": 3.5, "pose_r_pitch_yaw_roll": [0.81, 0.88, 0.99],
        "pose_r_mean_at_lag": 0.9, "pose_slope_pitch_yaw_roll": [0.9, 1.05, 1.0],
        "face_cpbd_ratio": 0.98, "seam_ratio": 0.93, "lost_frames": 0,
    },
    "tracked_pose_difference_deg": 1.1,
    "predicted_pose_difference_deg": 1.2,
    "pose_scale_0": {
        "angle_std_deg_pitch_yaw_roll": [0.31, 0.24, 0.11],
        "rest_jitter_deg_pitch_yaw_roll_target": [0.2, 0.15, 0.1],
    },
}  # fmt: skip


def test_rows_and_markdown_carry_the_measured_figures():
    row = generation_eval.motion_row("t_b0", REPORT)
    assert row["pose_r_pitch_yaw_roll"] == [0.81, 0.88, 0.99] and row["blend"] == 0.0
    text = generation_eval.motion_markdown(
        [row, generation_eval.motion_row("paper", {"video_measures": {}})]
    )
    first, second = text.splitlines()[2:4]
    assert "| t_b0 | 0 | 1.5/2/1 | 0.90 | 0.86 | 2.43 / 3.50 | 0.81, 0.88, 0.99; 0.90 |" in first
    assert "| 0.90/1.05/1.00 | 0.98 |" in first
    assert "1.10 / 1.20 | 0.31/0.24/0.11 vs 0.20/0.15/0.10 |" in first
    assert second.startswith("| paper | 1 | 1/1/1 | - |")


def test_cli_writes_both_files_and_refuses_a_missing_run(tmp_path):
    run = tmp_path / "t_b0"
    run.mkdir()
    (run / "acceptance.json").write_text(json.dumps(REPORT))
    out = str(tmp_path / "table")
    cmd = [sys.executable, "-m", "experiments.motion_table", f"--run={run}", f"--out={out}"]
    subprocess.run(cmd, check=True, cwd=REPO, capture_output=True)
    assert json.load(open(out + ".json"))["rows"][0]["run"] == "t_b0"
    bad = subprocess.run(
        [*cmd[:3], f"--run={tmp_path / 'none'}", f"--out={tmp_path / 'x'}"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith("error:")
    assert not os.path.exists(tmp_path / "x.md")
