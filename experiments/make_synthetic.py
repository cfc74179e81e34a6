"""Writes the synthetic head-motion corpus (espeak-ng speech, head pose), nothing downloaded.

  python -m experiments.make_synthetic --out=DATA --videos=128 --test_videos=16 --seconds=24

`talkingjax.data.synthetic` has the generative model; the output is a `talkingjax.data.records`
dataset directory (one clip per video, "train" then "test"). `experiments.make_synthetic_expression`
writes the same corpus with expression coefficients, with these flags.
"""

from collections.abc import Callable

from absl import flags

from experiments import cli
from talkingjax.data import synthetic

_OUT = flags.DEFINE_string("out", None, "Dataset directory to write.", required=True)
_VIDEOS = flags.DEFINE_integer("videos", 24, "Number of train videos.")
_TEST_VIDEOS = flags.DEFINE_integer(
    "test_videos", 6, "Number of test videos (unseen speakers/styles)."
)
_SECONDS = flags.DEFINE_float("seconds", 30.0, "Seconds per video.")
_FPS = flags.DEFINE_float("fps", 25.0, "Frame rate.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")


def write_corpus(generate: Callable[..., list], describe: Callable[[list], str]) -> None:
    """Runs `generate(out, videos, test_videos, seconds, fps, seed)` with the flags' values and
    prints one summary line; `describe(clips)` adds to it."""
    clips = generate(
        _OUT.value, _VIDEOS.value, _TEST_VIDEOS.value, _SECONDS.value, _FPS.value, _SEED.value
    )
    print(
        f"wrote {len(clips)} clips ({_VIDEOS.value} train, {_TEST_VIDEOS.value} test"
        f"{describe(clips)}) to {_OUT.value}"
    )


def main(argv):
    del argv
    write_corpus(synthetic.generate_corpus, lambda clips: "")


if __name__ == "__main__":
    cli.run(main)
