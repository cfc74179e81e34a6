"""Which trained models generation runs: three workdirs of the library's trainers.

`Models` names them (the shipped small models in `talkingjax/assets/models` by default) and
fingerprints their contents for the personalisation cache (`talkingjax.generation.cache`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

from talkingjax.generation import cache
from talkingjax.train import checkpoint

DEFAULT_MODELS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "models"
)


@dataclasses.dataclass(frozen=True)
class Models:
    """The three trained parts, as workdirs of the library's trainers.

    Attributes:
      pose: a `train_pose` workdir (paper 000's motion encoder E_m and decoder D_m).
      expression: a general `train_expression` workdir (fine-tuned per target).
      gan: a pretrained `train_gan` workdir (fine-tuned per target).
    """

    pose: str
    expression: str
    gan: str

    @classmethod
    def default(cls) -> Models:
        """The models shipped in `talkingjax/assets/models` (see its README), trained on the real
        corpus's training speakers (research-only terms): head motion, expression, the GAN."""
        return cls(*(os.path.join(DEFAULT_MODELS, n) for n in ("pose", "expression", "gan")))

    @classmethod
    def synthetic(cls) -> Models:
        """The shipped models trained on project-made data only (`assets/models/synthetic`):
        the head-motion and expression models `pose/` and `expression/` start from, and the
        small GAN pretrained on synthetic pairs (`gan.py:small128`)."""
        base = os.path.join(DEFAULT_MODELS, "synthetic")
        return cls(*(os.path.join(base, n) for n in ("pose", "expression", "gan")))

    @classmethod
    def with_defaults(
        cls, pose: str | None = None, expression: str | None = None, gan: str | None = None
    ) -> Models:
        """The given workdirs, the shipped models for the parts not given."""
        default = cls.default()
        return cls(pose or default.pose, expression or default.expression, gan or default.gan)

    def fingerprint(self, *parts: str) -> str:
        """Hash of the named parts' contents (default all three)."""
        h = hashlib.sha256()
        for name in parts or ("pose", "expression", "gan"):
            h.update(cache.workdir_fingerprint(getattr(self, name)).encode())
        return h.hexdigest()[:16]


def gan_size(workdir: str) -> int:
    """Side in pixels of the frames a `train_gan` workdir's generator refines."""
    return int(checkpoint.load_workdir_config(workdir).model.size)
