"""End-to-end generation (paper 000, Fig. 1): speech + a short video of a target -> a video of
the target saying that speech, moving the head the way the target does.

    from talkingjax import audio, generation

    models = generation.Models.default()      # or Models(pose=..., expression=..., gan=...)
    target = generation.personalize("target.mp4", models)  # fits + pattern + fine-tunes, cached
    result = generation.generate(audio.load_audio("speech.wav"), target, models, "out.mp4")

Two library calls, which the command line (`python -m experiments.generate`) only strings
together: `personalize` once per target video (`personalize_photo` for the paper's photo-only
mode), then `generate` once per speech. The modules, in the order a run uses them:

- `models`: `Models`, the three trained workdirs (pose, expression, GAN; the shipped ones by
  default), and their content fingerprints;
- `cache`: content hashes and all-or-nothing cache directories (the personalisation cache);
- `personalization`: `personalize` / `personalize_photo` -> `Target` (fit, motion pattern,
  expression and GAN fine-tunes; `TuneOptions`);
- `motion`: motion pattern, head pose and expression from speech, predicted in cross-faded
  pieces so any length of speech streams through;
- `controls`: `Controls` and their early checks, and the motion plan over the target's
  frames (`plan_motion`);
- `background`: background matching (Sec. IV-B2); `paste`: paste-back of refined crops;
- `compose`: `generate` -> `Result`: predict, plan, render, refine, paste, write the mp4.

Progress lines come from `talkingjax.progress.Progress` (pass one to `personalize` and
`generate`; by default they print nothing).
"""

from talkingjax.generation.cache import DEFAULT_CACHE, file_hash
from talkingjax.generation.compose import Result, generate
from talkingjax.generation.controls import (
    Controls,
    check_controls,
    check_output,
    plan_motion,
    turn_gain,
)
from talkingjax.generation.models import DEFAULT_MODELS, Models, gan_size
from talkingjax.generation.motion import (
    MIN_TARGET_SECONDS,
    motion_pattern,
    predict_expression,
    predict_pose,
)
from talkingjax.generation.personalization import (
    Target,
    TuneOptions,
    fit_target,
    pattern_of_video,
    personalize,
    personalize_photo,
)

__all__ = [
    "DEFAULT_CACHE",
    "DEFAULT_MODELS",
    "MIN_TARGET_SECONDS",
    "Controls",
    "turn_gain",
    "Models",
    "Result",
    "Target",
    "TuneOptions",
    "check_controls",
    "check_output",
    "file_hash",
    "fit_target",
    "gan_size",
    "generate",
    "motion_pattern",
    "pattern_of_video",
    "personalize",
    "personalize_photo",
    "plan_motion",
    "predict_expression",
    "predict_pose",
]
