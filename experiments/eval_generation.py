"""Issue 6's acceptance checks of end-to-end generation on one (speech, target video) pair.

  python -m experiments.eval_generation --audio=SPEECH.wav --video=TARGET.mp4 \
      --style_video=OTHER.mp4 --out_dir=DIR [--gan_model=PRETRAINED_GAN_WORKDIR] \
      [--sync_model=SYNC_WORKDIR] [--region=mouth|face] [--retime_speed=1] [--blend=1] \
      [--still_check]

Generates DIR/own.mp4 (the target's own motion pattern) and DIR/style.mp4 (the pattern of
--style_video), then writes DIR/pose_curves.png (head angles predicted, rendered, tracked on
own.mp4 and on the target video) and DIR/acceptance.json (and prints it): the video length
against the speech, decoded frames, the mouth opening's correlation with the speech energy on
the rendered expression (`talkingjax.evaluation.generation`), how differently the two patterns
move the head, and under "video_measures" the measures of own.mp4 against the target video, read
from both videos by tracking and fitting them (`talkingjax.evaluation.video`): head angular
speed, jerk and largest step, the tracked pose against the predicted and the rendered pose, face
CPBD and Laplacian sharpness, mouth opening against the speech energy, AV offset and confidence,
lost-face frames and the seam along the paste boundary; with --style_video also how far the two
videos' tracked heads differ ("tracked_pose_difference_deg"), with --still_check the tracked
angle std of DIR/still.mp4 (--pose_scale=0) against the target's rest jitter. AV sync is
measured with --sync_model (a trained AV-sync workdir), else with the shipped sync model if
there is one, else left out ("av_sync_measured": false).
"""

import dataclasses
import json
import os

import numpy as np
from absl import flags

from experiments import cli
from talkingjax import audio, generation, predict, visualize
from talkingjax.data import records
from talkingjax.errors import InputError
from talkingjax.evaluation import generation as generation_eval
from talkingjax.evaluation import video as video_eval
from talkingjax.face3d import default
from talkingjax.generation import paste
from talkingjax.metrics import video as video_metrics
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
_REGION = flags.DEFINE_enum(
    "region", generation.Controls.region, paste.REGIONS, "What of the refined face is pasted."
)
_TURN_GAIN = flags.DEFINE_list(
    "turn_gain", [f"{g:g}" for g in generation.Controls.turn_gain],
    "Pitch, yaw, roll: how much farther than asked the real head is turned (the warp's "
    "out-of-plane turn reads smaller).",
)  # fmt: skip
_RETIME = flags.DEFINE_float(
    "retime_speed", generation.Controls.retime_speed,
    "Background retiming limit in target frames per output frame (0 = none).",
)  # fmt: skip
_BLEND = flags.DEFINE_float(
    "blend", generation.Controls.blend,
    "Weight of the background frame's head angles (1 = paper; < 1 turns the real head).",
)  # fmt: skip
_STILL_CHECK = flags.DEFINE_bool(
    "still_check", False,
    "Also write DIR/still.mp4 with --pose_scale=0 and report its tracked angle std against "
    "the target video's rest jitter.",
)  # fmt: skip
_SYNC_MODEL = flags.DEFINE_string(
    "sync_model", None, "A trained AV-sync workdir (default: the shipped sync model, if any)."
)


def _sync_scorer():
    """The AV-sync scorer of --sync_model, else the shipped one, else None (not measured)."""
    scorer = getattr(predict, "SyncScorer", None)
    if _SYNC_MODEL.value:
        if scorer is None:
            raise InputError("--sync_model: this version has no talkingjax.predict.SyncScorer")
        return scorer.from_workdir(_SYNC_MODEL.value)
    if scorer is None or not hasattr(scorer, "default"):
        return None
    try:
        return scorer.default()
    except InputError:  # no shipped sync model: AV offset and confidence are left out
        return None


def _gaps(a: video_eval.VideoAnalysis) -> np.ndarray:
    """A tracked pose [T, 6] with NaN where the face was lost."""
    return np.where(a.detected[:, None], a.pose, np.nan)


def main(argv):
    del argv
    os.makedirs(_OUT.value, exist_ok=True)
    wave = audio.load_audio(_AUDIO.value)
    sync_scorer = _sync_scorer()
    models = generation.Models.with_defaults(_POSE_MODEL.value, _EXPR_MODEL.value, _GAN_MODEL.value)
    progress = Progress()
    options = generation.TuneOptions(gan_steps=_GAN_STEPS.value)
    controls = generation.Controls(
        region=_REGION.value,
        retime_speed=_RETIME.value,
        blend=_BLEND.value,
        turn_gain=generation.turn_gain(_TURN_GAIN.value),
    )
    generation.check_controls(controls)
    target = generation.personalize(_VIDEO.value, models, _CACHE.value, options, progress)
    own = generation.generate(
        wave, target, models, os.path.join(_OUT.value, "own.mp4"), controls, progress=progress,
        side_by_side=os.path.join(_OUT.value, "own_side.mp4"),
    )  # fmt: skip
    face_model = default.load_default()
    report = {
        "speech": _AUDIO.value,
        "video": _VIDEO.value,
        "controls": {
            "region": controls.region,
            "retime_speed": controls.retime_speed,
            "blend": controls.blend,
            "turn_gain": list(controls.turn_gain),
        },
        "length": generation_eval.video_length(own.path, wave, own.fps),
        "mouth_energy_r_rendered": generation_eval.mouth_energy_corr(
            face_model, own.exp, wave, own.fps
        ),
        "seconds": {k: round(v, 1) for k, v in own.seconds.items()},
    }
    with progress.stage("measure the video against the target"):
        real = video_eval.analyze_video(_VIDEO.value, face_model)
        output = video_eval.analyze_video(own.path, face_model)
        report["video_measures"] = video_eval.compare(
            output, real, wave, own.predicted_pose, sync_scorer, rendered_pose=own.pose
        )
    visualize.plot_pose_curves(
        os.path.join(_OUT.value, "pose_curves.png"),
        {
            "predicted": own.predicted_pose,
            "rendered": own.pose,
            "output video (tracked)": _gaps(output),
            "target video (tracked)": _gaps(real)[: own.num_frames],
        },
        own.fps,
        title=f"head angles: {os.path.basename(_VIDEO.value)}, blend {controls.blend:g}",
    )
    report["av_sync_measured"] = sync_scorer is not None
    # What the pipeline rendered, as a cross-check of the measured head motion above.
    report["rendered_pose_angular_speed_deg_s"] = video_metrics.angular_speed(own.pose, own.fps)
    report["rendered_pose_max_step_deg"] = video_metrics.max_step(own.pose)
    if _STYLE.value:
        pattern = generation.pattern_of_video(_STYLE.value, models, _CACHE.value)
        style = generation.generate(
            wave, target, models, os.path.join(_OUT.value, "style.mp4"),
            dataclasses.replace(controls, pattern=pattern),
        )  # fmt: skip
        report["style_video"] = _STYLE.value
        report["predicted_pose_difference_deg"] = generation_eval.pose_difference(
            own.predicted_pose, style.predicted_pose
        )
        report["rendered_pose_difference_deg"] = generation_eval.pose_difference(
            own.pose, style.pose
        )
        with progress.stage("track both patterns' videos"):
            report["tracked_pose_difference_deg"] = video_eval.tracked_pose_difference(
                output, video_eval.analyze_video(style.path, face_model)
            )
    if _STILL_CHECK.value:
        still = generation.generate(
            wave, target, models, os.path.join(_OUT.value, "still.mp4"),
            dataclasses.replace(controls, pose_scale=0.0),
        )  # fmt: skip
        with progress.stage("track the pose-scale-0 video"):
            tracked = video_eval.analyze_video(still.path, face_model)
        report["pose_scale_0"] = {
            "angle_std_deg_pitch_yaw_roll": video_metrics.angle_std(tracked.pose, tracked.detected),
            "rest_jitter_deg_pitch_yaw_roll_target": video_metrics.rest_jitter(
                real.pose, real.detected
            ),
            "angle_std_deg_pitch_yaw_roll_target": video_metrics.angle_std(
                real.pose, real.detected
            ),
        }
    text = json.dumps(report, indent=1)
    records.atomic_write(
        os.path.join(_OUT.value, "acceptance.json"), lambda f: f.write(text), mode="w"
    )
    print(json.dumps(report))


if __name__ == "__main__":
    cli.run(main)
