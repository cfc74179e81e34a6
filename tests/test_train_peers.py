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
from testdata import fill_random

from experiments import train_pose
from experiments.configs import audio2head as audio2head_config
from experiments.configs import lsp as lsp_config
from experiments.configs import pose as pose_config
from experiments.configs import posegan as posegan_config
from talkingjax import audio
from talkingjax.data import records, sampling, synthetic
from talkingjax.errors import InputError
from talkingjax.losses import lsp as lsp_losses
from talkingjax.models import lsp
from talkingjax.predict import PeerPredictor
from talkingjax.train import peers, runner

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
        c.model.apc_hidden, c.model.apc_layers = 8, 1
        c.train.apc_rows, c.train.apc_context_rows = 48, 16
    c.train.batch_size = 8  # 2 windows per device
    c.eval.reference_seconds = 4.0  # the test clips are short
    c.train.steps = steps
    if name == "lsp":  # "apc" features: 1 APC step, then the pose phase
        c.train.apc_steps, c.train.steps = 1, steps - 1
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
    phases = ["apc", "pose"] if name == "lsp" else ["train", "train"]
    assert [m["phase"] for m in lines] == phases
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
        "--config.train.steps=1",
        "--config.train.apc_steps=1",
        f"--config.train.apc_rows={c.train.apc_rows}",
        f"--config.train.apc_context_rows={c.train.apc_context_rows}",
        f"--config.model.apc_hidden={m.apc_hidden}",
        f"--config.model.apc_layers={m.apc_layers}",
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
    lines = _metrics(str(tmp_path / "run"))
    assert [(m["step"], m["phase"]) for m in lines] == [(1, "apc"), (2, "pose")]


# ------------------------------------------------------------------ LSP on APC features (004)


@pytest.fixture(scope="session")
def apc_run(corpus, tmp_path_factory):
    """(config, workdir) of a finished tiny LSP "apc" run: 1 APC step, then 2 pose steps."""
    workdir = str(tmp_path_factory.mktemp("run_lsp_apc"))
    c = _tiny("lsp", corpus)
    assert c.model.audio_features == "apc"
    peers.train(c, workdir)
    return c, workdir


def test_lsp_config_variants():
    tiny, paper = lsp_config.get_config("tiny"), lsp_config.get_config()
    assert tiny.model.audio_features == paper.model.audio_features == "apc"
    assert (paper.model.apc_hidden, paper.model.apc_layers) == (512, 3)  # Sec. 3.1
    assert tiny.model.apc_hidden < 512 and tiny.model.window == 64
    for variant in pose_config.VARIANTS:  # every data variant of the pose config, passed on
        c = lsp_config.get_config(variant)
        data = pose_config.data_config(variant)
        if "silent" in data:
            data.silent = False  # both of LSP's phases read speech
        assert c.data.to_dict() == data.to_dict(), variant
        assert c.eval.reference_seconds == pose_config.eval_config(variant).reference_seconds
        assert c.model.apc_hidden == (512 if variant == "paper" else 32)
    with pytest.raises(ValueError, match="variant"):
        lsp_config.get_config("nonsense")


def test_frame_rows_are_the_rows_of_the_mfcc_features():
    mfcc = np.random.default_rng(1).normal(size=(230, 13)).astype(np.float32)
    for fps in (25.0, 30.0):
        frames = audio.frames_in_features(mfcc.shape[0], fps)
        rows = peers.frame_rows(fps, frames)
        assert rows.shape == (frames, 4)
        np.testing.assert_array_equal(
            mfcc[rows].reshape(frames, 52), sampling.frame_audio_features(mfcc, fps, frames)
        )


def test_apc_sequence_sampler(corpus):
    clips = records.load_dataset(corpus, split="train")
    sampler = peers.APCSequenceSampler(clips, 40, seed=2)
    a, b = sampler.sample(4, 6), sampler.sample(4, 6)
    assert a["rows"].shape == (6, 40, 13) and a["rows"].dtype == np.float32
    np.testing.assert_array_equal(a["rows"], b["rows"])
    np.testing.assert_array_equal(a["length"], 40)
    # Each sequence is 40 consecutive rows of some training clip.
    for seq in a["rows"]:
        assert any(
            np.array_equal(c.mfcc[s : s + 40], seq)
            for c in clips
            for s in np.flatnonzero(np.all(c.mfcc == seq[0], axis=1))
        )
    # A clip shorter than the sequence is taken whole, padded, with its length.
    short = peers.APCSequenceSampler(clips, 100_000, seed=2).sample(0, 2)
    lengths = {c.mfcc.shape[0] for c in clips}
    assert set(short["length"].tolist()) <= lengths
    assert np.all(short["rows"][0, short["length"][0] :] == 0)


def test_apc_pose_windows_see_the_features_of_the_whole_clip(corpus):
    """With a context reaching back to the clip's start, a training window's APC features
    are exactly those the predictor computes over the whole clip (APC starting at row 0)."""
    clips = records.load_dataset(corpus, split="train")
    sampler = peers.APCPoseWindowSampler(clips[:1], 25.0, WINDOW, context=10_000, seed=0)
    batch = sampler.sample(3, 2)
    w = WINDOW
    assert batch["index"].shape == (2, w, 4) and batch["pose"].shape == (2, w, 6)
    assert batch["rows"].shape == (2, 10_000 + 4 * w, 13) and batch["mask"].dtype == bool
    model = lsp.APCPoseModel(
        apc=lsp.APC(hidden=4, num_layers=1), pose=lsp.LSPPoseModel(dilations=(1,))
    )
    shapes = jax.eval_shape(
        model.init, jax.random.key(0), batch["rows"][:1, :8], batch["index"][:1, :2],
        np.zeros((1, 2, 12), np.float32),
    )  # fmt: skip
    variables = fill_random(shapes, 3)
    got = model.apply(
        variables, batch["rows"], batch["index"], batch["mask"],
        method=lsp.APCPoseModel.frame_features,
    )  # fmt: skip
    clip = clips[0]
    frames = sampler.pose[0].shape[0]
    all_rows = peers.frame_rows(25.0, frames)
    whole = model.apply(
        variables, clip.mfcc[None].astype(np.float32), all_rows[None].astype(np.int32),
        method=lsp.APCPoseModel.frame_features,
    )[0]  # fmt: skip
    for b in range(2):
        # The window's first frame: its rows' positions in the padded batch row.
        first = int(np.flatnonzero(batch["mask"][b])[0])
        start = (batch["index"][b, 0, 0] - first - all_rows[0, 0]) // 4
        np.testing.assert_allclose(got[b], whole[start : start + w], rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(batch["pose"][b], sampler.pose[0][start : start + w])


def test_apc_phase_reduces_eq9(corpus, tmp_path):
    """The "apc" phase alone (no pose steps) lowers Eq. 9 on fixed held-out sequences, below
    copying the current row."""
    c = _tiny("lsp", corpus)
    c.train.apc_steps, c.train.steps = 80, 0
    c.train.apc_lr = c.train.apc_lr_end = 1e-2
    c.train.checkpoint_every = 100
    workdir = str(tmp_path / "run")
    peers.train(c, workdir)
    model = peers.build(c)
    test = records.load_dataset(corpus, split="test")
    rows = peers.APCSequenceSampler(test, c.train.apc_rows, seed=9).sample(0, 8)["rows"]

    def eq9(variables):
        pred, x, _ = model.apply(variables, rows, method=lsp.APCPoseModel.encode)
        return float(lsp_losses.apc_l1(pred, x, lsp.APC_SHIFT))

    _, trained = runner.load_variables(peers.TRAINER, workdir)
    initial = peers.init_variables(c, model)
    initial["batch_stats"] = trained["batch_stats"]  # the statistics of the training speech
    want = peers.surface_statistics(records.load_dataset(corpus, split="train"))
    np.testing.assert_allclose(trained["batch_stats"]["surface_mean"], want["surface_mean"])
    before, after = eq9(initial), eq9(trained)
    # Predicting x_(t+3) by x_t: the bar a useful predictor clears (same sums as Eq. 9).
    x = (rows - want["surface_mean"]) / want["surface_std"]
    n = lsp.APC_SHIFT
    copy = float(np.mean(np.sum(np.abs(x[:, n:] - x[:, :-n]), axis=(1, 2))))
    assert after < 0.85 * before and after < copy, (before, after, copy)
    # The pose group was frozen in the APC phase.
    frozen = zip(
        jax.tree.leaves(initial["params"]["pose"]),
        jax.tree.leaves(trained["params"]["pose"]),
        strict=True,
    )
    for a, b in frozen:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_pose_phase_freezes_apc(apc_run):
    c, workdir = apc_run
    lines = _metrics(workdir)
    assert [m["phase"] for m in lines] == ["apc", "pose", "pose"]
    assert {"apc_mae", "copy_mae"} <= set(lines[0]) and "pose_mse" in lines[1]
    _, after_apc = runner.load_variables(peers.TRAINER, workdir, step=2)
    _, final = runner.load_variables(peers.TRAINER, workdir)
    initial = peers.init_variables(c, peers.build(c))

    def equal(a, b):
        return all(
            np.array_equal(x, y)
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
        )

    assert not equal(initial["params"]["apc"], final["params"]["apc"])  # the APC step
    assert equal(after_apc["params"]["apc"], final["params"]["apc"])  # then frozen
    assert not equal(after_apc["params"]["pose"], final["params"]["pose"])


def test_apc_predictor_conditions_on_apc_features(apc_run, corpus):
    c, workdir = apc_run
    predictor = PeerPredictor.from_workdir(workdir)
    assert isinstance(predictor.model, lsp.APCPoseModel)
    clip = records.load_dataset(corpus, split="test")[0]
    frames, mfcc, ref = 45, clip.mfcc[4 * 40 :], clip.pose[:40]
    feats = predictor._features(mfcc, frames)
    assert feats.shape == (frames, 4 * c.model.apc_hidden)
    pose = predictor.predict(mfcc, ref, frames, seed=1)
    assert pose.shape == (frames, 6) and pose.dtype == np.float32 and np.all(np.isfinite(pose))
    # Other APC parameters (same pose model, same sampling key): another prediction.
    variables = jax.tree.map(np.asarray, predictor.variables)
    variables["params"]["apc"] = jax.tree.map(lambda x: 1.5 * x, variables["params"]["apc"])
    other = PeerPredictor(c, variables).predict(mfcc, ref, frames, seed=1)
    assert np.max(np.abs(other - pose)) > 1e-5
    np.testing.assert_array_equal(predictor.predict(mfcc, ref, frames, seed=1), pose)
    with pytest.raises(InputError, match="more audio"):
        predictor.predict(mfcc[:50], ref, frames)


def test_raw_mfcc_lsp_workdir_still_trains_and_predicts(corpus, tmp_path):
    """A config written before `model.audio_features` (raw MFCC rows) loads as "mfcc"."""
    c = _tiny("lsp", corpus)
    c.train.steps = 2
    del c.model["audio_features"]
    for key in ("apc_hidden", "apc_layers", "apc_residual"):
        del c.model[key]
    for key in ("apc_steps", "apc_lr", "apc_lr_end", "apc_rows", "apc_context_rows"):
        del c.train[key]
    workdir = str(tmp_path / "run")
    peers.train(c, workdir)
    assert [m["phase"] for m in _metrics(workdir)] == ["train", "train"]
    predictor = PeerPredictor.from_workdir(workdir)
    assert isinstance(predictor.model, lsp.LSPPoseModel) and "apc" not in predictor.params
    clip = records.load_dataset(corpus, split="test")[0]
    pose = predictor.predict(clip.mfcc[4 * 40 :], clip.pose[:40], 45, seed=1)
    assert pose.shape == (45, 6) and np.all(np.isfinite(pose))
    c.model.audio_features = "wav2vec"
    with pytest.raises(InputError, match="audio_features"):
        peers.build(c)
