"""Trained models made callable: the only place that turns a training workdir into something
that predicts. One predictor per trained model, each with `from_workdir(workdir, step=None)`
(restoring the evaluated parameters with `talkingjax.train.runner.load_variables`):

- `HeadMotionPredictor` (`head_motion`): paper 000's E_m + D_m, pattern of a pose clip and
  pose for any speech;
- `ExpressionPredictor` (`expression`): the audio-to-expression regressor;
- `Refiner` (`gan`): the rendering-to-realistic generator, rendered windows -> frames;
- `PeerPredictor`, `Yi2022Predictor` and `load_predictor` (`peers`): the pose models of papers
  000 and 002-004 behind the pose table's protocol, and the loader of any pose workdir.

Used by `talkingjax.generation` and `talkingjax.evaluation`; imports only `train` and below.
"""

from talkingjax.predict.expression import ExpressionPredictor
from talkingjax.predict.gan import Refiner
from talkingjax.predict.head_motion import HeadMotionPredictor
from talkingjax.predict.peers import PeerPredictor, Yi2022Predictor, load_predictor
from talkingjax.predict.sync import SyncScorer

__all__ = [
    "ExpressionPredictor",
    "HeadMotionPredictor",
    "PeerPredictor",
    "Refiner",
    "SyncScorer",
    "Yi2022Predictor",
    "load_predictor",
]
