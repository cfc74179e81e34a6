"""Issue 6's acceptance checks of end-to-end generation on one (speech, target video) pair.

  python -m experiments.eval_generation --audio=SPEECH.wav --video=TARGET.mp4 \
      --style_video=OTHER.mp4 --out_dir=DIR [--gan_model=PRETRAINED_GAN_WORKDIR]

Generates DIR/own.mp4 (the target's own motion pattern) and DIR/style.mp4 (the pattern of
--style_video), then writes DIR/acceptance.json (and prints it): the video length against the
speech, decoded frames, per-angle pose std against the target video's, the mouth opening's
correlation with the speech energy (rendered expression, and measured on the output video),
and how differently the two patterns move the head. Checks: `talkingjax.evaluation.generation`.
"""

import json
import os

from absl import flags

from experiments import cli
from talkingjax import audio, generation
from talkingjax.evaluation import generation as generation_eval
from talkingjax.face3d import default
from talkingjax.progress import Progress

_AUDIO = flags.DEFINE_string("audio", None, "Speech.", required=True)
_VIDEO = flags.DEFINE_string("video", None, "The target video.", required=True)
_STYLE = flags.DEFINE_string("style_video", None, "A video of another motion pattern.")
_OUT = flags.DEFINE_string("out_dir", None, "Directory for the videos and JSON.", required=True)
_CACHE = flags.DEFINE_string("cache", generation.DEFAULT_CACHE, "Personalisation cache.")
_POSE_MODEL = flags.DEFINE_string("pose_model", None, "A train_pose workdir.")
_EXPR_MODEL = flags.DEFINE_string("expression_model", None, "A train_expression workdir.")
_GAN_MODEL = flags.DEFINE_string("gan_model", None, "A pretrained train_gan workdir.")
_GAN_STEPS = flags.DEFINE_integer("gan_steps", None, "GAN fine-tune steps.")


def main(argv):
    del argv
    os.makedirs(_OUT.value, exist_ok=True)
    wave = audio.load_audio(_AUDIO.value)
    models = generation.Models.with_defaults(_POSE_MODEL.value, _EXPR_MODEL.value, _GAN_MODEL.value)
    progress = Progress()
    options = generation.TuneOptions(gan_steps=_GAN_STEPS.value)
    target = generation.personalize(_VIDEO.value, models, _CACHE.value, options, progress)
    own = generation.generate(
        wave, target, models, os.path.join(_OUT.value, "own.mp4"), progress=progress,
        side_by_side=os.path.join(_OUT.value, "own_side.mp4"),
    )  # fmt: skip
    face_model = default.load_default()
    report = {
        "speech": _AUDIO.value,
        "video": _VIDEO.value,
        "length": generation_eval.video_length(own.path, wave, own.fps),
        "pose_std_ratio_pitch_yaw_roll": generation_eval.pose_std_ratio(own.pose, target.pose),
        "mouth_energy_r_rendered": generation_eval.mouth_energy_corr(
            face_model, own.exp, wave, own.fps
        ),
        "mouth_energy_r_video": generation_eval.video_mouth_energy_corr(own.path, wave, own.fps),
        "seconds": {k: round(v, 1) for k, v in own.seconds.items()},
    }
    if _STYLE.value:
        pattern = generation.pattern_of_video(_STYLE.value, models, _CACHE.value)
        style = generation.generate(
            wave, target, models, os.path.join(_OUT.value, "style.mp4"),
            generation.Controls(pattern=pattern),
        )  # fmt: skip
        report["style_video"] = _STYLE.value
        report["predicted_pose_difference_deg"] = generation_eval.pose_difference(
            own.predicted_pose, style.predicted_pose
        )
        report["rendered_pose_difference_deg"] = generation_eval.pose_difference(
            own.pose, style.pose
        )
    with open(os.path.join(_OUT.value, "acceptance.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report))


if __name__ == "__main__":
    cli.run(main)
