"""Paired GAN data: the synthetic pairs, the file format, composition, windows, the sampler's
augmentation, and pairs made from a preprocessed video (a synthetic head video and its fit
written in the preprocess layout)."""

import dataclasses
import json
import os

import numpy as np
import pytest

from talkingjax.data import gan_pairs
from talkingjax.errors import InputError
from talkingjax.face3d import coeffs as coeffs_lib
from talkingjax.face3d import default


@pytest.fixture(scope="module")
def clips():
    return gan_pairs.synthetic_pairs(num_identities=2, frames=6, size=64, seed=3)


def test_synthetic_pairs_shapes_and_determinism(clips):
    again = gan_pairs.synthetic_pairs(num_identities=2, frames=6, size=64, seed=3)
    for a, b in zip(clips, again, strict=True):
        gan_pairs.check_clip(a)
        assert a.real.shape == (6, 64, 64, 3) and a.mask.shape == (6, 64, 64)
        np.testing.assert_array_equal(a.real, b.real)
        np.testing.assert_array_equal(a.render, b.render)
    face = clips[0].mask > 127
    assert 0.1 < face.mean() < 0.9  # a face, with background around it
    # Outside the face the real frame is the background, which the render does not have.
    assert np.abs(clips[0].real[~face].astype(int) - 255).mean() > 20
    # Inside, real and render differ (detail, shading) but are the same face.
    diff = np.abs(clips[0].real[face].astype(int) - clips[0].render[face].astype(int)).mean()
    assert 3 < diff < 80
    assert clips[0].identity != clips[1].identity


def test_compose_matches_formula():
    rng = np.random.default_rng(0)
    render, back = rng.integers(0, 256, (2, 4, 5, 5, 3), dtype=np.uint8)
    mask = rng.integers(0, 256, (4, 5, 5), dtype=np.uint8)
    m = mask[..., None] / 255.0
    want = (m * render / 255.0 + (1 - m) * back / 255.0).astype(np.float32)
    np.testing.assert_allclose(gan_pairs.compose(render, mask, back), want, atol=1e-6)


def test_window_orders_frames_and_repeats_the_first(clips):
    c = clips[0]
    w = gan_pairs.window(c, 0)
    assert w.shape == (64, 64, 9) and w.min() >= -1 and w.max() <= 1
    np.testing.assert_array_equal(w[..., :3], w[..., 6:])  # t = 0: frames max(t - k, 0)
    w4 = gan_pairs.window(c, 4)
    r = lambda t: gan_pairs.compose(c.render[t], c.mask[t], c.real[t]) * 2 - 1  # noqa: E731
    for k, t in enumerate((2, 3, 4)):
        np.testing.assert_allclose(w4[..., 3 * k : 3 * k + 3], r(t), atol=1e-6)


def test_save_load_roundtrip_and_errors(clips, tmp_path):
    root = tmp_path / "pairs"
    gan_pairs.save(root, clips[:1], 64)
    gan_pairs.save(root, clips[1:], 64)  # adds to the directory
    loaded = gan_pairs.load(root)
    assert [c.clip_id for c in loaded] == [c.clip_id for c in clips]
    np.testing.assert_array_equal(loaded[1].mask, clips[1].mask)
    assert not [f for f in os.listdir(root) if f.endswith(".tmp")]
    with pytest.raises(InputError, match="64"):
        gan_pairs.save(root, clips, 32)
    with pytest.raises(InputError, match="no manifest"):
        gan_pairs.load(tmp_path / "missing")
    with pytest.raises(InputError, match="no pairs clips in split"):
        gan_pairs.load(root, split="test")
    bad = gan_pairs.PairClip("x", "x", 25.0, clips[0].real, clips[0].render[:, :32], clips[0].mask)
    with pytest.raises(InputError, match="render"):
        gan_pairs.check_clip(bad)


def test_sampler_is_deterministic_and_augments_consistently(clips):
    # Mask 0 everywhere: the composed r_t is the real frame, so after the shared resize, crop
    # and flip the window's last frame must still equal the real frame exactly.
    c = clips[0]
    plain = gan_pairs.PairClip("p", "p", 25.0, c.real, c.render, np.zeros_like(c.mask))
    sampler = gan_pairs.PairSampler([plain, clips[1]], seed=5, frames=4)
    a, b = sampler.sample(7, 6), sampler.sample(7, 6)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert a["render"].shape == (6, 64, 64, 9) and a["real"].shape == (6, 64, 64, 3)
    assert set(a["identity"].tolist()) <= {0, 1}
    rows = a["identity"] == sampler.identities.index("p")
    assert rows.any()
    np.testing.assert_allclose(a["render"][rows, ..., 6:], a["real"][rows], atol=1e-5)
    assert not np.array_equal(a["render"], sampler.sample(8, 6)["render"])
    flat = gan_pairs.PairSampler([plain], seed=5, augment=False).sample(0, 2)
    frames = c.real / 127.5 - 1  # without augmentation a real frame is one of the clip's
    for r in flat["real"]:
        assert np.any(np.all(np.isclose(r, frames, atol=1e-5), axis=(1, 2, 3)))
    with pytest.raises(InputError, match="no pairs"):
        gan_pairs.PairSampler([], seed=0)


def test_video_pairs_from_preprocess_layout(tmp_path):
    from tests import synthetic_video

    video = tmp_path / "head.mp4"
    truth = synthetic_video.write_head_video(video, num_frames=8, size=128, audio=False)
    model = default.load_default()
    layout = coeffs_lib.Layout.of(model)
    size = 128
    # The crop that is the whole frame at the reference framing: scale 224 / 128.
    params = np.tile(np.array([size, size, 224 / size, 0.0, 0.0], np.float32), (8, 1))
    trans = np.asarray(truth.trans, np.float32)
    coeffs = coeffs_lib.zeros(layout, (8,)).replace(
        angles=np.asarray(truth.angles, np.float32), trans=trans
    )
    root = tmp_path / "pre"
    for sub in ("coeffs", "reports"):
        os.makedirs(root / sub)
    coeffs_lib.write_mat(root / "coeffs" / "head.mat", coeffs, params)
    report = {"status": "ok", "video": str(video), "crop_size": 224, "fps": 25.0,
              "speaker_id": "spk", "tracking": {"lost_frame_indices": []}}  # fmt: skip
    (root / "reports" / "head.json").write_text(json.dumps(report))
    clip = gan_pairs.video_pairs(root, "head", size=64, albedo_frames=4)
    assert clip.real.shape == (8, 64, 64, 3) and clip.identity == "spk" and clip.fps == 25.0
    # The real crop is the (downscaled) video frame, the render lies on its face.
    import cv2

    small = cv2.resize(truth.frames[3], (64, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(clip.real[3].astype(int) - small.astype(int)).mean() < 6
    face = clip.mask[3] > 127
    assert face.mean() > 0.1
    err = np.abs(clip.render[3][face].astype(int) - clip.real[3][face].astype(int)).mean()
    assert err < 25  # the detailed albedo read from the video's own frame
    assert clip.albedo == "detailed"
    # The paper's fine-tuning renders: the model's low-frequency albedo, same geometry.
    low = gan_pairs.video_pairs(root, "head", size=64, albedo="model", max_frames=4)
    assert low.albedo == "model" and low.num_frames == 4
    np.testing.assert_array_equal(low.mask, clip.mask[:4])
    np.testing.assert_array_equal(low.real, clip.real[:4])
    assert np.abs(low.render[3][face].astype(int) - clip.render[3][face].astype(int)).mean() > 1
    gan_pairs.save(tmp_path / "pairs", [low, dataclasses.replace(clip, clip_id="d")], 64)
    assert [c.albedo for c in gan_pairs.load(tmp_path / "pairs")] == ["model", "detailed"]
    with pytest.raises(InputError, match="albedo must be one of"):
        gan_pairs.video_pairs(root, "head", size=64, albedo="flat")
    with pytest.raises(InputError, match="preprocess report"):
        gan_pairs.video_pairs(root, "missing", size=64)


def test_kept_speakers_of_a_split_part(tmp_path):
    from talkingjax.data import corpus

    pre = tmp_path / "pre"
    os.makedirs(pre / "reports")
    for clip_id, status in (("speech__a", "ok"), ("silent__b", "ok"), ("speech__c", "skipped")):
        (pre / "reports" / f"{clip_id}.json").write_text(json.dumps({"status": status}))
    clips = [
        {"clip_id": "speech__a", "speaker_id": "anna"},
        {"clip_id": "silent__b", "speaker_id": "bo"},
        {"clip_id": "speech__c", "speaker_id": "cy"},  # skipped by preprocessing
        {"clip_id": "speech__d", "speaker_id": "di"},  # not preprocessed at all
    ]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"clips": {"train": clips, "test": clips[:1]}}))
    got = corpus.kept_speakers(str(split), "train", str(pre))
    assert got == {"speech__a": "anna", "silent__b": "bo"}
    with pytest.raises(InputError, match="no part 'val'"):
        corpus.kept_speakers(str(split), "val", str(pre))
    split.write_text(json.dumps({"clips": {"train": clips[2:]}}))
    with pytest.raises(InputError, match="no clip of part"):
        corpus.kept_speakers(str(split), "train", str(pre))
