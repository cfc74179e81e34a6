"""Checks of the AV-sync instrument on a split part, scoring of a video, export of the model.

  # the checks on val (chooses the "no confidence" threshold, written to the workdir):
  python -m experiments.eval_sync --workdir=/work/runs/sync_real --part=val [--step=N]
  # once, on the held-out test speakers, judged with the val threshold:
  python -m experiments.eval_sync --workdir=/work/runs/sync_real --part=test
  # the shipped model (or an exported one) on a part of a preprocessed corpus:
  python -m experiments.eval_sync --model=default --part=test --root=/work/runs/corpus
  # the same checks end to end on the part's source videos (tracking, ffmpeg-shifted copies):
  python -m experiments.eval_sync --workdir=/work/runs/sync_real --part=val --videos \
      --corpus=../shared/data/real/corpus
  # AV offset and confidence of one video:
  python -m experiments.eval_sync --model=default --video=out.mp4
  # params-only export (config.json + params.msgpack + instrument.json):
  python -m experiments.eval_sync --workdir=/work/runs/sync_real --export=DIR [--step=N]

Tables go to `<workdir>/eval/sync_<part>.md` and `.json` (with `--model`, to `--out`).
"""

import json
import os

from absl import flags

from experiments import cli
from talkingjax.data import sync as sync_data
from talkingjax.errors import InputError
from talkingjax.evaluation import sync as sync_eval
from talkingjax.predict import sync as sync_predict

_SPLIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "split.json")


def _scorer():
    if _MODEL.value == "default":
        return sync_predict.SyncScorer.default()
    return sync_predict.SyncScorer.from_exported(_MODEL.value)


def main(argv):
    del argv
    if bool(_WORKDIR.value) == bool(_MODEL.value):
        raise InputError("give exactly one of --workdir (a train_sync run) and --model")
    if _EXPORT.value:
        if not _WORKDIR.value:
            raise InputError("--export needs --workdir")
        config = sync_predict.export(_WORKDIR.value, _EXPORT.value, _STEP.value, _DTYPE.value)
        print(f"exported step {config.exported_step} to {_EXPORT.value}")
        return
    if _VIDEO.value:
        scorer = (
            sync_predict.SyncScorer.from_workdir(_WORKDIR.value, _STEP.value)
            if _WORKDIR.value
            else _scorer()
        )
        score = scorer.score(_VIDEO.value, _AUDIO.value or None)
        out = score.to_dict() | {"no_confidence": scorer.no_confidence}
        print(json.dumps(out))
        return
    if _VIDEOS.value:
        scorer = (
            sync_predict.SyncScorer.from_workdir(_WORKDIR.value, _STEP.value)
            if _WORKDIR.value
            else _scorer()
        )
        threshold = _THRESHOLD.value if _THRESHOLD.value is not None else scorer.no_confidence
        if threshold is None:
            raise InputError("the model has no threshold chosen on val; pass --threshold")
        paths = sync_eval.part_videos(_CORPUS.value, _SPLIT_FILE.value, _PART.value)
        if _LIMIT.value:
            paths = paths[: _LIMIT.value]
        if not paths:
            raise InputError(f"no {_PART.value} speech videos under {_CORPUS.value}")
        result = sync_eval.run_video_checks(scorer, paths, threshold)
        result |= {"part": _PART.value, "step": _STEP.value}
        out = _OUT.value or os.path.join(_WORKDIR.value, "eval")
        title = f"AV-sync checks end to end (mp4), {_PART.value}"
        sync_eval.write_result(out, f"sync_{_PART.value}_videos", result, title)
        print(sync_eval.markdown(result, title))
        return
    if _WORKDIR.value:
        result = sync_eval.evaluate_workdir(
            _WORKDIR.value,
            _PART.value,
            _STEP.value,
            _ROOT.value or None,
            _THRESHOLD.value,
            _PROTOCOL.value,
        )
    else:
        if not (_ROOT.value and _OUT.value):
            raise InputError("--model checks need --root (a preprocessed corpus) and --out")
        scorer = _scorer()
        threshold = _THRESHOLD.value if _THRESHOLD.value is not None else scorer.no_confidence
        if _PART.value != "val" and threshold is None:
            raise InputError("the model has no threshold chosen on val; pass --threshold")
        clips, missing = sync_data.load_split_clips(_ROOT.value, _SPLIT_FILE.value, _PART.value)
        result = sync_eval.run_checks(scorer, clips, threshold=threshold)
        result |= {"part": _PART.value, "missing_clips": missing}
        title = f"AV-sync checks, {_PART.value}"
        sync_eval.write_result(_OUT.value, f"sync_{_PART.value}", result, title)
    title = f"AV-sync checks, {_PART.value} ({len(result['rows'])} clips)"
    print(sync_eval.markdown(result, title))


if __name__ == "__main__":
    _WORKDIR = flags.DEFINE_string("workdir", "", "A train_sync workdir.")
    _MODEL = flags.DEFINE_string("model", "", "'default' (shipped) or an exported model dir.")
    _STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
    _PART = flags.DEFINE_enum("part", "val", ["val", "test", "train"], "Split part to check.")
    _ROOT = flags.DEFINE_string("root", "", "Preprocessed corpus (default: the run's data.root).")
    _SPLIT_FILE = flags.DEFINE_string("split", _SPLIT, "The split file (with --model).")
    _OUT = flags.DEFINE_string("out", "", "Output dir of the tables (with --model).")
    _PROTOCOL = flags.DEFINE_enum(
        "protocol", None, ["syncnet", "centred"], "Distance curve (default: the model's)."
    )
    _THRESHOLD = flags.DEFINE_float("threshold", None, "no_confidence (default: chosen on val).")
    _VIDEO = flags.DEFINE_string("video", "", "Score one video file instead.")
    _AUDIO = flags.DEFINE_string("audio", "", "Its speech, if not its own audio track.")
    _VIDEOS = flags.DEFINE_bool(
        "videos", False, "Check end to end on the part's source videos (needs --corpus)."
    )
    _CORPUS = flags.DEFINE_string("corpus", "", "The raw corpus (for --videos).")
    _LIMIT = flags.DEFINE_integer("limit", 0, "At most this many videos (0: all).")
    _EXPORT = flags.DEFINE_string("export", "", "Write the params-only model to this dir.")
    _DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Export dtype.")
    cli.run(main)
