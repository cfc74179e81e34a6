"""The peer pose models' trainer (`talkingjax.train.peers`) on a tiny synthetic corpus.

Runs on the 4 faked CPU devices of conftest.py, so every update is really data-parallel.
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments import train_pose
from experiments.configs import audio2head as audio2head_config
from experiments.configs import lsp as lsp_config
from experiments.configs import posegan as posegan_config
from talkingjax import audio
from talkingjax.data import records, sampling, synthetic
from talkingjax.errors import InputError
from talkingjax.predict import PeerPredictor
from talkingjax.train import peers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINDOW = 32
STEPS = 3


def _tiny(name, root, steps=STEPS):
    """The model's tiny config made smaller still: window 32, widths of a few channels."""
    c = {"audio2head": audio2head_config, "posegan": posegan_config, "lsp": lsp_config}[
        name
    ].get_config("tiny")
    c.data.root = str(root)
    c.model.window = WINDOW
    if name == "audio2head":
        c.model.hidden = c.model.audio_embed = 8
        c.model.audio_blocks = (1,)  # one ResNet stage: most of the compile time is E_A
        c.model.audio_features = (4,)
        c.model.pose_embed_features = (8,)
        c.model.d_features = (8, 8, 8)
    elif name == "posegan":
        c.model.features = 8
        c.model.depth = 2
        c.model.d_features = (8, 8)
    else:
        c.model.dilations = (1, 2, 4)
        c.model.residual_channels = c.model.dilation_channels = 8
        c.model.skip_channels = c.model.cond_channels = 8
    c.train.batch_size = 8  # 2 windows per device
    c.eval.reference_seconds = 4.0  # the test clips are short
    c.train.steps = steps
    c.train.checkpoint_every = 2
    c.train.log_every = 1
    return c


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("peers_corpus")
    synthetic.generate_corpus(root, num_videos=4, num_test_videos=2, seconds_per_video=9.0)
    return root


@pytest.fixture(scope="session", params=["audio2head", "posegan", "lsp"])
def trained(request, corpus, tmp_path_factory):
    """(name, workdir) of a run stopped after 2 of its 3 steps (resumed by a test)."""
    workdir = str(tmp_path_factory.mktemp(f"run_{request.param}"))
    peers.train(_tiny(request.param, corpus), workdir, stop_after=2)
    return request.param, workdir


def _metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_frame_audio_features_are_the_frames_own_rows_at_25_fps():
    rng = np.random.default_rng(0)
    mfcc = rng.normal(size=(200, 13)).astype(np.float32)
    frames = audio.frames_in_features(mfcc.shape[0], 25.0)
    got = sampling.frame_audio_features(mfcc, 25.0, frames)
    # Padded rows 12 + 4k .. 15 + 4k are frame k's own 40 ms (12 rows = 0.12 s of padding).
    want = mfcc[audio.WINDOW_ROWS // 2 - 2 :][: 4 * frames].reshape(frames, 52)
    assert got.shape == (frames, 52)
    np.testing.assert_array_equal(got, want)


def test_pose_window_sampler_is_a_function_of_the_step(corpus):
    clips = records.load_dataset(corpus, split="train")
    sampler = sampling.PoseWindowSampler(clips, 25.0, WINDOW, seed=3)
    a, b, c = sampler.sample(5, 4), sampler.sample(5, 4), sampler.sample(6, 4)
    assert a["audio"].shape == (4, WINDOW, 52) and a["pose"].shape == (4, WINDOW, 6)
    assert a["audio"].dtype == np.float32 and a["pose"].dtype == np.float32
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["pose"], c["pose"])
    with pytest.raises(InputError, match="frames"):
        sampling.PoseWindowSampler(clips, 25.0, 100_000, seed=0)


def test_training_writes_finite_metrics_and_resumes(trained, corpus):
    name, workdir = trained
    lines = _metrics(workdir)
    assert [m["step"] for m in lines] == [1, 2]
    assert all(m["phase"] == "train" for m in lines)
    for m in lines:
        assert all(np.isfinite(v) for k, v in m.items() if isinstance(v, float)), m
    # Resuming continues from the checkpoint at step 2 and does only the last step.
    state = peers.train(_tiny(name, corpus), workdir)
    assert int(jax.device_get(state.step)) == STEPS
    assert [m["step"] for m in _metrics(workdir)] == [1, 2, 3]


def test_predictor_returns_finite_poses(trained, corpus):
    name, workdir = trained
    predictor = PeerPredictor.from_workdir(workdir)
    assert (predictor.name, predictor.fps, predictor.has_pattern) == (name, 25.0, False)
    clip = records.load_dataset(corpus, split="test")[0]
    frames = 2 * WINDOW + 7  # not a multiple of the window
    ref = clip.pose[:40]
    # mfcc starting at frame 40's window start (row 4 * 40 at 25 fps).
    pose = predictor.predict(clip.mfcc[4 * 40 :], ref, frames, seed=1)
    assert pose.shape == (frames, 6) and pose.dtype == np.float32
    assert np.all(np.isfinite(pose))
    with pytest.raises(InputError):
        predictor.predict(clip.mfcc[:50], ref, frames)  # too little audio


def test_unknown_model_name_is_a_one_line_input_error(corpus, tmp_path):
    c = _tiny("lsp", corpus)
    c.model.name = "wavenet"
    with pytest.raises(InputError) as err:
        peers.train(c, str(tmp_path / "run"))
    assert "unknown model.name 'wavenet'" in str(err.value)
    assert "\n" not in str(err.value)
    assert not os.path.exists(tmp_path / "run")


def test_train_and_evaluate_writes_the_table(trained, corpus):
    name, workdir = trained
    c = _tiny(name, corpus)
    results = train_pose.train_and_evaluate(c, workdir)  # a resume with nothing left to train
    assert name in results["rows"] and "real pose" in results["rows"]
    assert np.isfinite(results["rows"][name]["d_rot"])
    assert os.path.exists(os.path.join(workdir, "eval", "pose_table.md"))


def test_command_line_trains_lsp(corpus, tmp_path):
    c = _tiny("lsp", corpus, steps=2)
    m = c.model
    args = [
        "--config=experiments/configs/lsp.py:tiny",
        f"--workdir={tmp_path / 'run'}",
        f"--config.data.root={corpus}",
        "--config.train.steps=2",
        f"--config.train.batch_size={c.train.batch_size}",
        f"--config.model.window={m.window}",
        f"--config.model.dilations={tuple(m.dilations)}",
        f"--config.model.residual_channels={m.residual_channels}",
        f"--config.model.dilation_channels={m.dilation_channels}",
        f"--config.model.skip_channels={m.skip_channels}",
        f"--config.model.cond_channels={m.cond_channels}",
        # The evaluation module is another trainer's concern; this checks the dispatch.
        "--noeval",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.train_pose", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert [m["step"] for m in _metrics(str(tmp_path / "run"))] == [1, 2]
