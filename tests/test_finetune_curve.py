"""experiments.finetune_curve: the issue-24 steps table of eval_reconstruction runs."""

import json

import pytest

from experiments import finetune_curve
from talkingjax.errors import InputError


def _measures(psnr, ssim, lmd, cpbd, conf, offset):
    """A pipeline row with the keys of a real reconstruction.json (a subset of them)."""
    return {
        "face_psnr_db": psnr, "face_ssim": ssim, "measured_frames": 10, "mouth_lmd": lmd,
        "mouth_lmd_placed": 9.0, "frames": 10, "fps": 25.0, "lost_frames": 0,
        "face_cpbd": cpbd, "face_cpbd_target": 0.1, "av_offset": offset,
        "av_confidence": conf, "av_offset_target": 0, "av_confidence_target": 0.04,
        "pose_r_pitch_yaw_roll": [0.1, 0.8, 0.1], "pose_r_mean": 0.33,
    }  # fmt: skip


def _report(gan_steps, expression_steps, clips):
    """A reconstruction.json body of the real format: `clips` is {clip_id: pipeline row}."""
    return {
        "part": "val",
        "command": f"python -m experiments.eval_reconstruction --gan_steps={gan_steps}",
        "protocol": {
            "first_fraction": 0.5,
            "min_first_seconds": 2.0,
            "min_rest_seconds": 1.0,
            "max_rest_seconds": 6.0,
            "expression_steps": expression_steps,
            "gan_steps": gan_steps,
            "region_dilation": 0.1,
            "video_measures": True,
        },
        "models": {"pose": "p", "expression": "e", "gan": "g"},
        "av_sync_measured": True,
        "summary": {},
        "clips": [
            {
                "clip_id": cid,
                "speaker_id": "s",
                "video": "v.mp4",
                "fps": 25.0,
                "frames": 20,
                "first_frames": 10,
                "rest_frames": 10,
                "tune_frames": 10,
                "videos": {},
                "real_lost_frames": 0,
                "rows": {"raw_render": _measures(1, 0, 0, 0, 0, 9), "pipeline": row},
            }
            for cid, row in clips.items()
        ],
        "skipped": [],
        "strip_clip": next(iter(clips)),
    }


def _write(tmp_path, name, report):
    run = tmp_path / name
    run.mkdir()
    (run / "reconstruction.json").write_text(json.dumps(report))
    return f"{name}:{run}"


def test_means_offsets_and_per_clip_values_are_the_hand_computed_ones(tmp_path):
    a = _report(300, 300, {
        "c1": _measures(20.0, 0.60, 3.0, 0.05, 0.02, 2),
        "c2": _measures(22.0, 0.70, 4.0, 0.07, 0.04, -1),
    })  # fmt: skip
    b = _report(0, 300, {
        "c2": _measures(21.0, 0.66, 5.0, 0.09, None, 0),
        "c1": _measures(19.0, 0.50, 2.0, 0.03, 0.01, None),
    })  # fmt: skip
    specs = [_write(tmp_path, "g300", a), _write(tmp_path, "g0", b)]
    rows, reports = finetune_curve.read_runs(specs)
    assert set(reports) == {"g300", "g0"}
    ra, rb = rows
    assert (ra["gan_steps"], ra["expression_steps"], ra["clips"]) == (300, 300, 2)
    assert ra["mean"]["face_psnr_db"] == pytest.approx(21.0)
    assert ra["mean"]["face_ssim"] == pytest.approx(0.65)
    assert ra["mean"]["mouth_lmd"] == pytest.approx(3.5)
    assert ra["mean"]["face_cpbd"] == pytest.approx(0.06)
    assert ra["mean"]["av_confidence"] == pytest.approx(0.03)
    assert (ra["av_offset_within_1"], ra["av_offset_measured"]) == (1, 2)
    # A missing measure is left out of its mean (and of the offset count), not taken as 0.
    assert rb["mean"]["av_confidence"] == pytest.approx(0.01)
    assert rb["mean"]["face_psnr_db"] == pytest.approx(20.0)
    assert (rb["av_offset_within_1"], rb["av_offset_measured"]) == (1, 1)
    text = finetune_curve.curve_markdown(rows)
    lines = text.splitlines()
    assert lines[4] == "| g300 | 300 | 300 | 2 | 21.00 | 0.650 | 3.50 | 0.060 | 0.030 | 1/2 |"
    assert lines[5] == "| g0 | 300 | 0 | 2 | 20.00 | 0.580 | 3.50 | 0.060 | 0.010 | 1/1 |"
    assert "| c1 | 20.00 / 3.00 | 19.00 / 2.00 |" in lines
    assert "| c2 | 22.00 / 4.00 | 21.00 / 5.00 |" in lines


def test_refuses_bad_specs_and_runs_of_other_clips(tmp_path):
    a = _report(300, 300, {"c1": _measures(20.0, 0.6, 3.0, 0.05, 0.02, 0)})
    b = _report(100, 300, {"c9": _measures(20.0, 0.6, 3.0, 0.05, 0.02, 0)})
    specs = [_write(tmp_path, "a", a), _write(tmp_path, "b", b)]
    with pytest.raises(InputError, match="other clips"):
        finetune_curve.read_runs(specs)
    with pytest.raises(InputError, match="LABEL:DIR"):
        finetune_curve.read_runs([str(tmp_path / "a")])
    with pytest.raises(InputError, match="does not exist"):
        finetune_curve.read_runs([f"x:{tmp_path / 'none'}"])
