"""Self-reconstruction (talkingjax.evaluation.reconstruction, experiments.eval_reconstruction):
the split, the nearest-pose baseline, the face-region and mouth measures on cases with known
answers, and the whole protocol on a rendered target video personalised by hand."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from talkingjax import generation, predict
from talkingjax.errors import InputError
from talkingjax.evaluation import reconstruction as rec
from talkingjax.metrics import image as image_metrics
from tests.test_generation_controls import made_target

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_split_and_tuning_frames():
    p = rec.Protocol()
    assert rec.split_point(221, 25.0, p) == 110  # round(110.5) = 110, above 2 s
    assert rec.split_point(100, 25.0, p) == 50  # 4 s: the shortest target the pipeline takes
    assert rec.split_point(120, 30.0, rec.Protocol(first_fraction=0.25)) == 60  # 2 s at least
    with pytest.raises(InputError, match="refuses targets under 4 s"):
        rec.split_point(99, 25.0, p)
    with pytest.raises(InputError, match="too short for the split"):
        rec.split_point(125, 25.0, rec.Protocol(min_rest_seconds=3.0))
    with pytest.raises(InputError, match="first_fraction"):
        rec.Protocol(first_fraction=1.0).check()


def test_nearest_pose_picks_the_frame_with_the_nearest_head_angles():
    rng = np.random.default_rng(0)
    first = rng.uniform(-0.3, 0.3, (20, 6))
    rest = first[[5, 12, 0, 5]].copy()
    rest[:, :3] += rng.uniform(-1e-3, 1e-3, (4, 3))
    rest[:, 3:] += 5.0  # the translation (crop-relative) does not count
    np.testing.assert_array_equal(rec.nearest_pose(rest, first), [5, 12, 0, 5])
    twice = np.concatenate([first, first])  # ties: the earlier frame
    np.testing.assert_array_equal(rec.nearest_pose(first[[3]], twice), [3])
    with pytest.raises(InputError):
        rec.nearest_pose(np.zeros((2, 6)), np.zeros((0, 6)))


def _square_points(x0, y0, side):
    return np.array([[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side]], float)


def test_face_mask_is_the_dilated_hull():
    mask = rec.face_mask((64, 64), _square_points(20.5, 20.5, 20), 0.0)
    assert mask[20:41, 20:41].all() and mask.sum() == 21 * 21
    wide = rec.face_mask((64, 64), _square_points(20.5, 20.5, 20), 0.1)  # radius 2 px
    assert wide[18:43, 20:41].all() and not wide[17, 30] and not wide[0, 0]


def test_region_psnr_and_ssim_on_known_cases():
    rng = np.random.default_rng(1)
    real = rng.integers(0, 246, (2, 48, 48, 3), np.uint8)
    masks = np.zeros((2, 48, 48), bool)
    masks[:, 10:30, 12:40] = True
    # The real frames against themselves: PSNR is capped (not infinite), SSIM is 1.
    assert rec.region_psnr(real, real, masks) == image_metrics.PSNR_CAP_DB
    assert rec.region_ssim(real, real, masks) == pytest.approx(1.0, abs=1e-12)
    outside = real.copy()
    outside[:, 40:] = 0  # changes outside the region do not count
    assert rec.region_psnr(outside, real, masks) == image_metrics.PSNR_CAP_DB
    brighter = real.copy()
    brighter[masks] += 10  # 10 gray levels inside: 20 log10(255 / 10) dB
    assert rec.region_psnr(brighter, real, masks) == pytest.approx(20 * np.log10(25.5), abs=1e-9)
    # A full region is metrics.image's PSNR and SSIM.
    other = rng.integers(0, 256, real.shape, np.uint8)
    full = np.ones((2, 48, 48), bool)
    assert rec.region_psnr(other, real, full) == pytest.approx(image_metrics.psnr(other, real))
    assert rec.region_ssim(other, real, full) == pytest.approx(
        image_metrics.ssim(other, real), abs=1e-12
    )
    with pytest.raises(InputError, match="at least one pixel"):
        rec.region_psnr(real, real, np.zeros_like(masks))


def test_mouth_lmd_measures_mouth_shape_and_place():
    rng = np.random.default_rng(2)
    real = rng.uniform(50, 150, (3, 478, 2))
    real[:, 33], real[:, 263] = (60.0, 80.0), (100.0, 80.0)  # eyes 40 px apart
    assert rec.mouth_lmd(real, real) == {"mouth_lmd": 0.0, "mouth_lmd_placed": 0.0}
    moved = real + np.array([4.0, 0.0])  # the whole face 4 px aside: same mouth, 10 % off
    lmd = rec.mouth_lmd(moved, real)
    assert lmd["mouth_lmd"] == pytest.approx(0.0, abs=1e-9)
    assert lmd["mouth_lmd_placed"] == pytest.approx(10.0)
    bigger = 2.0 * real  # twice the size: the same shape
    assert rec.mouth_lmd(bigger, real)["mouth_lmd"] == pytest.approx(0.0, abs=1e-9)
    wrong = real.copy()
    wrong[0, list(rec.MOUTH_MESH_POINTS)] += np.array([0.0, 8.0])  # one frame's lips 8 px down
    wrong[0, 13] += np.array([0.0, 8.0])  # and its upper inner lip 8 px more
    assert rec.mouth_lmd(wrong, real, valid=[False, True, True])["mouth_lmd"] == 0.0
    assert rec.mouth_lmd(wrong, real)["mouth_lmd"] > 0.0
    try:
        from mediapipe.python.solutions import face_mesh_connections
    except ImportError:  # pragma: no cover
        return
    lips = sorted({i for edge in face_mesh_connections.FACEMESH_LIPS for i in edge})
    assert list(rec.MOUTH_MESH_POINTS) == lips


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A corpus of one rendered speech clip (4 s, 100 frames), a silent clip and a clip the
    preprocessing skipped; its split file and preprocess reports."""
    root = tmp_path_factory.mktemp("corpus")
    os.makedirs(root / "speech")
    os.makedirs(root / "pre" / "reports")
    video = str(root / "speech" / "a.mp4")
    target, _ = made_target(video, seconds=4.0)
    clips = [
        {"file": "speech/a.mp4", "clip_id": "speech__a", "speaker_id": "s1", "audio": "speech"},
        {"file": "silent/b.mp4", "clip_id": "silent__b", "speaker_id": "s2", "audio": "silent"},
        {"file": "speech/c.mp4", "clip_id": "speech__c", "speaker_id": "s3", "audio": "speech"},
    ]
    (root / "split.json").write_text(json.dumps({"clips": {"val": clips, "test": []}}))
    (root / "pre" / "reports" / "speech__a.json").write_text(json.dumps({"status": "ok"}))
    report = {"status": "skipped", "reason": "several faces"}
    (root / "pre" / "reports" / "speech__c.json").write_text(json.dumps(report))
    return root, target


def test_run_writes_the_table_the_strip_and_the_row_videos(corpus, tmp_path, monkeypatch):
    root, target = corpus
    models = generation.Models.default()
    seen = {}

    def personalize(video, models, cache, options, progress=None, face_model=None):
        seen["options"] = options  # the fit is the ground truth; nothing is fine-tuned
        return target

    monkeypatch.setattr(generation, "personalize", personalize)

    class IdentityGAN:  # a stand-in generator returning its input frame (the GAN is
        size = 128  # tested by tests/test_pipeline.py): the pipeline row is the raw render

        def __call__(self, windows):
            return {"image": windows[..., 6:9]}

    monkeypatch.setattr(predict.Refiner, "from_workdir", lambda *a, **k: IdentityGAN())
    clips = rec.read_part(str(root / "split.json"), "val")
    out = str(tmp_path / "out")
    # The driven part stops after 1.6 s = 40 of the 50 frames after the first half.
    protocol = rec.Protocol(
        video_measures=False, expression_steps=0, gan_steps=0, max_rest_seconds=1.6
    )
    report = rec.run(clips, str(root), str(root / "pre"), out, models, protocol)
    assert seen["options"] == generation.TuneOptions(50, 0, 0)  # the first half only
    assert sorted(os.listdir(out)) == ["clips", "reconstruction.json", "reconstruction.md",
                                       "strip.png"]  # fmt: skip
    assert sorted(os.listdir(os.path.join(out, "clips", "speech__a"))) == [
        "composite.mp4", "nearest_pose.mp4", "pipeline.mp4", "raw_render.mp4", "real.mp4",
        rec.CLIP_RESULT, rec.CLIP_TILES,
    ]  # fmt: skip
    assert [s["clip_id"] for s in report["skipped"]] == ["silent__b", "speech__c"]
    assert "several faces" in report["skipped"][1]["reason"]
    (clip,) = report["clips"]
    assert (clip["first_frames"], clip["rest_frames"], clip["tune_frames"]) == (50, 40, 50)
    rows = clip["rows"]
    for row in (rec.REAL, *rec.ROWS):
        assert rows[row]["measured_frames"] == 40
        assert 10 < rows[row]["face_psnr_db"] < image_metrics.PSNR_CAP_DB
        assert 0 < rows[row]["face_ssim"] <= 1 and rows[row]["mouth_lmd"] >= 0
    # The real frames re-encoded are closest to themselves; each row is farther.
    assert all(rows[rec.REAL]["face_psnr_db"] > rows[r]["face_psnr_db"] for r in rec.ROWS)
    assert rows[rec.REAL]["mouth_lmd"] == 0.0  # the same video tracked: the same points
    assert min(rows[r]["mouth_lmd"] for r in rec.ROWS) > 0.0
    # An identity GAN makes the pipeline the raw render.
    for key in ("face_psnr_db", "face_ssim", "mouth_lmd"):
        assert rows["pipeline"][key] == pytest.approx(rows["raw_render"][key], abs=1e-6)
    saved = json.loads(open(os.path.join(out, "reconstruction.json")).read())
    assert saved["summary"]["pipeline"]["face_psnr_db"] == pytest.approx(
        rows["pipeline"]["face_psnr_db"], abs=1e-5
    )
    table = open(os.path.join(out, "reconstruction.md")).read()
    assert "(c) pipeline (GAN, full face)" in table and "(d) GAN, mouth region" in table
    assert "silent__b" in table
    strip = cv2.imread(os.path.join(out, "strip.png"))
    assert strip.shape[1] == 5 * rec.STRIP_TILE and strip.shape[0] > rec.STRIP_TIMES * 192
    # Run again: the measured clip is read back, nothing is recomputed, the table is the same.
    monkeypatch.setattr(generation, "personalize", None)  # would fail if called
    again = rec.run(clips, str(root), str(root / "pre"), out, models, protocol)
    assert again["summary"] == saved["summary"] and again["clips"] == saved["clips"]
    assert (cv2.imread(os.path.join(out, "strip.png")) == strip).all()
    clip_dir = os.path.join(out, "clips", "speech__a")
    key = rec._result_key(protocol, models, None)
    assert rec.load_clip_result(clip_dir, key) is not None
    other = rec._result_key(rec.Protocol(max_rest_seconds=2.0), models, None)
    assert rec.load_clip_result(clip_dir, other) is None  # another protocol: measured anew


def test_cli_bad_input_is_one_line_and_writes_nothing(corpus, tmp_path):
    root, _ = corpus
    out = str(tmp_path / "out")
    base = [f"--split={root / 'split.json'}", f"--corpus={root}", f"--out_dir={out}"]
    cases = [
        [*base, f"--preprocessed={tmp_path / 'missing'}"],
        [*base, f"--preprocessed={root / 'pre'}", "--clips=speech__zzz"],
    ]
    for args in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "experiments.eval_reconstruction", *args],
            capture_output=True, text=True, cwd=REPO, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        lines = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
        assert len(lines) == 1, proc.stderr
        assert not os.path.exists(out)
