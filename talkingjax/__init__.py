"""talkingjax: audio-driven talking-face video with personalised head motion, in pure JAX.

Paper 000 (Yi et al., TMM 2022) is the system: speech and a 10-15 s video of a person become
a video of that person saying the speech, with the person's own head motion. Its predecessor
and peers are trained and scored as baselines with the same code.

    import talkingjax
    from talkingjax import audio

    models = talkingjax.Models.default()            # the small models shipped in assets/models
    target = talkingjax.personalize("target.mp4", models)
    talkingjax.generate(audio.load_audio("speech.wav"), target, models, "out.mp4")

`Models`, `Controls`, `TuneOptions`, `personalize`, `personalize_photo` and `generate` are
re-exported from `talkingjax.generation`, loaded on first use, so `import talkingjax.audio`
stays light.

Packages, from the bottom up; the top layers import only downwards (`evaluation` ->
`generation` -> `predict` -> `train` -> the rest):

- `audio`: loading speech, the reference MFCC, MFCC rows <-> video frames;
- `face3d`: 3D morphable face models, the camera, coefficients, fitting, the shipped model;
- `render`: differentiable SH lighting, rasterizer and face rendering;
- `video`: face tracking in videos (MediaPipe) and per-video 3DMM reconstruction;
- `data`: record formats, dataset preprocessing, synthetic corpora, GAN pairs, default inputs;
- `models`: the stateless Flax networks; `losses`: one function per paper equation;
  `metrics`: what evaluations report;
- `train`: one trainer per model on one contract, checkpoints, data-parallel steps;
- `predict`: trained workdirs made callable (one predictor per trained model);
- `generation`: personalisation, prediction from speech, background matching, rendering, the
  GAN, paste-back and the mp4 (the end-to-end system);
- `evaluation`: held-out scores of the trained models and of generation, with baselines.

Helpers: `errors` (the one input-error type), `geometry` (rotation conventions), `progress`
(stage lines and progress bars), `console` (third-party console noise kept off),
`visualize` (images, videos and pose plots). Command-line programs live in `experiments/`.
"""

__version__ = "0.1.0"

# Re-exported from `talkingjax.generation` on first access (PEP 562).
_FROM_GENERATION = (
    "Controls", "Models", "TuneOptions", "generate", "personalize", "personalize_photo",
)  # fmt: skip


def __getattr__(name: str):
    if name in _FROM_GENERATION:
        import talkingjax.generation as generation

        return getattr(generation, name)
    raise AttributeError(f"module 'talkingjax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_FROM_GENERATION})
