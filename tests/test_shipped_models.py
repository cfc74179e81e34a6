"""The shipped models (talkingjax/assets/models): which is which, and what they trained on."""

import json
import os

from experiments.configs import expression as expression_config
from experiments.configs import gan as gan_config
from experiments.configs import pose as pose_config
from talkingjax import generation
from talkingjax.generation.models import DEFAULT_MODELS
from talkingjax.train import checkpoint, runner


def _clips(workdir: str) -> dict:
    return json.loads(open(os.path.join(workdir, "train_clips.json")).read())


def test_defaults_are_the_real_variants_started_from_the_synthetic_models():
    default, synthetic = generation.Models.default(), generation.Models.synthetic()
    # The GAN: gan.py:real pretrained from scratch on real pairs; the synthetic one is small128.
    shipped = checkpoint.load_workdir_config(default.gan)
    assert shipped.model.to_dict() == gan_config.get_config("real").model.to_dict()
    assert shipped.data.root and shipped.finetune.steps == 300
    small = checkpoint.load_workdir_config(synthetic.gan)
    assert small.model.to_dict() == gan_config.get_config("small128").model.to_dict()
    assert synthetic.pose == pose_config.SYNTHETIC_POSE
    assert synthetic.expression == expression_config.SYNTHETIC_EXPRESSION
    for part, config in (("pose", pose_config), ("expression", expression_config)):
        shipped = checkpoint.load_workdir_config(getattr(default, part))
        real = config.get_config("real")
        # Made by the real variant (same model, same data settings but the local paths) ...
        assert runner.parameter_shaping(shipped.model) == runner.parameter_shaping(real.model)
        assert shipped.data.split_file.endswith(os.path.join("experiments", "corpus", "split.json"))
        # ... from its synthetic model, whose model config equals it (init_from needs that).
        source = checkpoint.load_workdir_config(getattr(synthetic, part))
        assert source.model.to_dict() == shipped.model.to_dict(), part
        assert shipped.model.get("matmul_dtype", "float32") == real.model.get(
            "matmul_dtype", "float32"
        )
        assert _clips(getattr(synthetic, part))["root"] == ""  # a synthetic corpus


def test_shipped_models_never_saw_a_held_out_speaker():
    split = json.loads(open(pose_config.REAL_SPLIT).read())["clips"]
    held_out = {c["speaker_id"] for part in ("val", "test") for c in split[part]}
    train = {c["clip_id"]: c["speaker_id"] for c in split["train"]}
    default = generation.Models.default()
    for part in ("pose", "expression", "gan"):
        used = _clips(getattr(default, part))["clips"]
        assert used, part
        for c in used:
            assert train.get(c["clip_id"]) == c["speaker_id"], (part, c)
            assert c["speaker_id"] not in held_out, (part, c)
    # The expression model needs speech; the encoder phase of the pose model also read silent clips.
    expr = _clips(default.expression)["clips"]
    assert all(c["speech"] for c in expr)
    assert {c["clip_id"] for c in expr} <= {c["clip_id"] for c in _clips(default.pose)["clips"]}


def test_the_models_readme_lists_every_training_clip():
    default = generation.Models.default()
    readme = open(os.path.join(DEFAULT_MODELS, "README.md")).read()
    assert "research only" in readme
    for part in ("pose", "expression", "gan"):
        for c in _clips(getattr(default, part))["clips"]:
            assert f"| {c['clip_id']} | {c['speaker_id']} |" in readme, (part, c["clip_id"])
