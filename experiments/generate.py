"""Speech + a short video of a target -> a video of the target saying it, with the target's
own head motion (paper 000, Fig. 1). The library calls behind it are `talkingjax.generation`'s
`personalize` and `generate`.

  python -m experiments.generate --audio=SPEECH.wav --video=TARGET.mp4 --out=OUT.mp4
  python -m experiments.generate --default --out=runs/default/talking.mp4   # embedded default
      (a real target: third_party/obama_weekly_address, public domain)
  python -m experiments.generate --audio=SPEECH.wav --image=PHOTO.jpg --out=OUT.mp4  # photo

Writes OUT.mp4 (the speech is its audio track, and its length), OUT_pose.png (predicted and
rendered head pose), OUT_side.mp4 (target | output; --noside_by_side skips it) and prints a
JSON summary. The target's personalisation (fits, motion pattern, fine-tuned expression
regressor and GAN) is cached under --cache by the video's content, so another speech for
the same video starts at generation. Models default to the small ones shipped in
talkingjax/assets/models; --pose_model / --expression_model / --gan_model take workdirs of
the library's trainers instead.
"""

import dataclasses
import json
import os

import numpy as np
from absl import flags

from experiments import cli
from talkingjax import audio, generation, visualize
from talkingjax.data import default_inputs
from talkingjax.errors import InputError
from talkingjax.generation import paste
from talkingjax.progress import Progress

_AUDIO = flags.DEFINE_string("audio", None, "Speech (wav/flac/mp3, or a video's audio).")
_VIDEO = flags.DEFINE_string("video", None, "The target's 10-15 s talking video.")
_IMAGE = flags.DEFINE_string("image", None, "Photo-only mode: a portrait instead of a video.")
_OUT = flags.DEFINE_string("out", None, "The mp4 to write.", required=True)
_DEFAULT = flags.DEFINE_bool(
    "default", False, "The embedded default: 12 s of a US presidential address as the target "
    "and 8 s of its later speech (public domain, third_party/obama_weekly_address).",
)  # fmt: skip
_STYLE = flags.DEFINE_string(
    "pose-style-from", None, "Move the head in the motion pattern of this other video."
)
_SCALE = flags.DEFINE_float("pose-scale", 1.0, "Scale of the predicted head motion.")
_STILL = flags.DEFINE_bool("still", False, "No head motion.")
_SEED = flags.DEFINE_integer(
    "seed", 0, "0: the pattern of the whole target video; other: of a random stretch of it."
)
_BLEND = flags.DEFINE_float(
    "blend", generation.Controls.blend,
    "Weight of the background frame's head angles (0: the predicted angles, the real head "
    "turned to them; 1: the paper's, the background frame's own).",
)  # fmt: skip
_TURN_GAIN = flags.DEFINE_list(
    "turn_gain", [f"{g:g}" for g in generation.Controls.turn_gain],
    "Pitch, yaw, roll: how much farther than asked the real head is turned (the warp's "
    "out-of-plane turn reads smaller).",
)  # fmt: skip
_RETIME = flags.DEFINE_float(
    "retime_speed", generation.Controls.retime_speed,
    "Background retiming limit in target frames per output frame (0 = none).",
)  # fmt: skip
_PASTE = flags.DEFINE_enum("paste", "poisson", paste.MODES, "Paste-back blending.")
_REGION = flags.DEFINE_enum(
    "region", generation.Controls.region, paste.REGIONS,
    "What of the refined face is pasted: the whole face (paper 000) or the mouth region only "
    "(mouth, jaw, lower cheeks; eyes and skin stay the target's real frame).",
)  # fmt: skip
_ENSEMBLE = flags.DEFINE_integer(
    "gan_ensemble_shift",
    -1,
    "GAN test-time self-ensemble: -1 off, 0 mirror, s > 0 mirror + shifts by s px (18 passes).",
)
_SIDE = flags.DEFINE_bool("side_by_side", True, "Also write OUT_side.mp4 (target | output).")
_CACHE = flags.DEFINE_string("cache", generation.DEFAULT_CACHE, "Personalisation cache.")
_POSE_MODEL = flags.DEFINE_string("pose_model", None, "A train_pose workdir.")
_EXPR_MODEL = flags.DEFINE_string("expression_model", None, "A train_expression workdir.")
_GAN_MODEL = flags.DEFINE_string("gan_model", None, "A pretrained train_gan workdir.")
_TUNE_FRAMES = flags.DEFINE_integer("tune_frames", 300, "Tuning frames of the target.")
_EXPR_STEPS = flags.DEFINE_integer("expression_steps", 300, "Expression fine-tune steps.")
_GAN_STEPS = flags.DEFINE_integer(
    "gan_steps", None, "GAN fine-tune steps (default: the GAN workdir config's; 0 = none)."
)
_QUIET = flags.DEFINE_bool("quiet", False, "No progress lines.")


def _inputs() -> tuple[str, str | None, str | None]:
    """(speech, video, image) paths from the flags (making the default inputs if asked)."""
    if _DEFAULT.value:
        if _AUDIO.value or _VIDEO.value or _IMAGE.value:
            raise InputError("--default makes its own inputs; drop --audio/--video/--image")
        made = default_inputs.real_default_inputs()
        return made["speech"], made["target"], None
    if not _AUDIO.value:
        raise InputError("give --audio (or --default)")
    if bool(_VIDEO.value) == bool(_IMAGE.value):
        raise InputError("give exactly one of --video and --image (or --default)")
    return _AUDIO.value, _VIDEO.value, _IMAGE.value


def main(argv):
    del argv
    out = _OUT.value
    if not out.endswith(".mp4"):
        raise InputError(f"--out must be an .mp4 path, got {out}")
    if _DEFAULT.value:  # the embedded default owns its output folder (runs/default)
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    stem = out[: -len(".mp4")]
    side = stem + "_side.mp4" if _SIDE.value else None
    for path in filter(None, (out, side)):
        generation.check_output(path)
    controls = generation.Controls(
        pose_scale=_SCALE.value,
        still=_STILL.value,
        seed=_SEED.value,
        blend=_BLEND.value,
        turn_gain=generation.turn_gain(_TURN_GAIN.value),
        retime_speed=_RETIME.value,
        paste=_PASTE.value,
        region=_REGION.value,
        ensemble_shift=_ENSEMBLE.value,
    )
    generation.check_controls(controls)  # before any fitting
    speech, video, image = _inputs()
    wave = audio.load_audio(speech)  # fails early, before any fitting, on bad speech
    models = generation.Models.with_defaults(_POSE_MODEL.value, _EXPR_MODEL.value, _GAN_MODEL.value)
    progress = Progress(quiet=_QUIET.value)
    options = generation.TuneOptions(_TUNE_FRAMES.value, _EXPR_STEPS.value, _GAN_STEPS.value)
    if image:
        with progress.stage("fit photo"):
            target = generation.personalize_photo(image, models)
    else:
        target = generation.personalize(video, models, _CACHE.value, options, progress)
    if _STYLE.value:
        with progress.stage("motion pattern of --pose-style-from"):
            pattern = generation.pattern_of_video(_STYLE.value, models, _CACHE.value)
        controls = dataclasses.replace(controls, pattern=pattern)
    result = generation.generate(
        wave, target, models, out, controls, progress, side_by_side=side
    )  # fmt: skip
    plot = stem + "_pose.png"
    visualize.plot_pose(plot, result.pose, result.fps, title="rendered head pose")
    summary = {
        "out": out,
        "side_by_side": side,
        "pose_plot": plot,
        "frames": result.num_frames,
        "fps": result.fps,
        "speech_seconds": round(wave.size / audio.SAMPLE_RATE, 3),
        "video_seconds": round(result.num_frames / result.fps, 3),
        "pose_std_deg": np.degrees(result.pose[:, :3].std(0)).round(2).tolist(),
        "cache": target.cache,
        "seconds": {k: round(v, 1) for k, v in result.seconds.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    cli.run(main)
