"""The trained audio-to-expression regressor (paper 000 Eq. 6-7; paper 001's joint expression
and pose LSTM) as a call: audio windows of an utterance -> expression (and pose) per frame.

    predictor = ExpressionPredictor.from_workdir(workdir)   # a train_expression workdir
    out = predictor.predict_windows(windows)                # [T, 28, 12] -> {"exp": [T, K], ...}
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from talkingjax.models import build_expression_model
from talkingjax.train import expression as trainer
from talkingjax.train import runner


class ExpressionPredictor:
    """A trained regressor: expression (and pose) of every frame of an utterance."""

    def __init__(self, model, variables, fps: float):
        self.model = model
        self.variables = variables
        self.fps = fps
        self._apply = jax.jit(lambda v, w: model.apply(v, w, train=False))

    @classmethod
    def from_workdir(cls, workdir: str, step: int | None = None) -> ExpressionPredictor:
        """Loads the latest (or given) checkpoint of a `train_expression` workdir."""
        config, variables = runner.load_variables(trainer.TRAINER, workdir, step)
        return cls(build_expression_model(config.model), variables, config.model.fps)

    def predict_windows(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        """[T, 28, 12] audio windows -> {"exp": [T, K], ("pose": [T, 6])}, one LSTM pass."""
        out = self._apply(self.variables, jnp.asarray(windows)[None])
        return {k: np.asarray(v[0]) for k, v in out.items()}
