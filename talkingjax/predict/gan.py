"""The trained rendering-to-realistic GAN generator (paper 000 Sec. IV-B3; paper 001's memory
variant) as a function: rendered windows -> refined frames.

    refine = Refiner.from_workdir(workdir)  # a train_gan workdir
    out = refine(windows)  # [N, S, S, 9] in [-1, 1] -> {"image": [N, S, S, 3], ...}
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from talkingjax.errors import InputError
from talkingjax.models import gan as gan_models
from talkingjax.models import memory as memory_models
from talkingjax.train import gan as gan_train
from talkingjax.train import runner


class Refiner:
    """A trained generator as a function: rendered windows -> refined frames.

        refine = Refiner.from_workdir(workdir)
        out = refine(windows)   # [N, S, S, 9] in [-1, 1] -> dict of [N, S, S, 3|1]

    In the memory variant the identity feature of each frame is, unless given, read from the
    trained memory with the key of its rendered window (top-1) and smoothed over the sequence
    every `model.memory.smooth_every` frames (paper 001's test time), so consecutive windows
    should be passed in order.

    `ensemble_shift` >= 0 refines each window as the mean of the geometric self-ensemble
    (`gan_models.self_ensemble_transforms`: mirror, and shifts by that many pixels; 2 or 18
    generator passes), beyond the paper; the default -1 is one pass.
    """

    def __init__(
        self,
        config,
        variables,
        batch: int = 8,
        ensemble_shift: int = gan_models.SELF_ENSEMBLE_OFF,
    ):
        self.config = config
        self.nets = gan_train.build(config.model)
        self.params = variables["params"]
        self.memory = variables.get("batch_stats", {}).get("memory")
        self.batch = batch
        self.ensemble_shift = int(ensemble_shift)
        self._transforms = (
            None
            if self.ensemble_shift == gan_models.SELF_ENSEMBLE_OFF
            else gan_models.self_ensemble_transforms(self.ensemble_shift)
        )

    @classmethod
    def from_workdir(
        cls,
        workdir: str,
        step: int | None = None,
        batch: int = 8,
        ensemble_shift: int = gan_models.SELF_ENSEMBLE_OFF,
    ) -> Refiner:
        config, variables = runner.load_variables(gan_train.TRAINER, workdir, step)
        return cls(config, variables, batch, ensemble_shift)

    def with_ensemble(self, ensemble_shift: int) -> Refiner:
        """The same generator (shared parameters and memory), another self-ensemble."""
        variables = {"params": self.params}
        if self.memory is not None:
            variables["batch_stats"] = {"memory": self.memory}
        return Refiner(self.config, variables, self.batch, ensemble_shift)

    @property
    def passes(self) -> int:
        """Generator passes per window (1 without the self-ensemble)."""
        return 1 if self._transforms is None else len(self._transforms)

    @property
    def size(self) -> int:
        return int(self.config.model.size)

    @functools.cached_property
    def _generate(self):
        g = self.nets.generator
        transforms = self._transforms

        def generate(p, x, s):
            fn = lambda xi: g.apply({"params": p}, xi, train=False, **s)  # noqa: E731
            return fn(x) if transforms is None else gan_models.self_ensemble(fn, x, transforms)

        return jax.jit(generate)

    @functools.cached_property
    def _keys(self):
        return jax.jit(lambda p, x: self.nets.key_encoder.apply({"params": p}, x))

    def _batches(self, fn, *arrays):
        """fn over fixed-size batches of the arrays (one compiled program), concatenated."""
        n = len(arrays[0])
        pad = -n % self.batch
        arrays = [np.concatenate([a, np.repeat(a[-1:], pad, 0)]) if pad else a for a in arrays]
        outs = [
            jax.device_get(fn(*(a[i : i + self.batch] for a in arrays)))
            for i in range(0, n + pad, self.batch)
        ]
        return jax.tree.map(lambda *xs: np.concatenate(xs)[:n], *outs)

    def identity_features(self, windows: np.ndarray) -> np.ndarray:
        """[N, D] identity features of consecutive windows from the memory (memory variant)."""
        if not self.nets.memory:
            raise InputError("identity features exist only in the memory variant")
        keys = self._batches(lambda x: self._keys(self.params["key_encoder"], x), windows)
        values = memory_models.read_identity(self.memory, jnp.asarray(keys))
        every = int(self.config.model.memory.smooth_every)
        return np.asarray(memory_models.smooth_identity(values, every))

    def __call__(self, windows: np.ndarray, identity: np.ndarray | None = None):
        """windows [N, S, S, 9] float in [-1, 1] -> {"image", "color" [N, S, S, 3] in [-1, 1],
        "attention" [N, S, S, 1]}. identity: [N, D] features for the memory variant (e.g. of
        an external face-recognition network); default: read from the memory."""
        windows = np.asarray(windows, np.float32)
        if windows.ndim != 4 or windows.shape[1:] != (self.size, self.size, 9) or not len(windows):
            raise InputError(
                f"windows are {windows.shape}; this generator takes [N, {self.size}, "
                f"{self.size}, 9]"
            )
        params = self.params["generator"]
        if not self.nets.memory:
            return self._batches(lambda x: self._generate(params, x, {}), windows)
        if identity is None:
            identity = self.identity_features(windows)
        identity = np.asarray(identity, np.float32)
        if identity.shape != (len(windows), self.config.model.memory.identity_dim):
            raise InputError(
                f"identity features are {identity.shape}; expected "
                f"[{len(windows)}, {self.config.model.memory.identity_dim}]"
            )
        return self._batches(
            lambda x, s: self._generate(params, x, {"identity": s}), windows, identity
        )
