"""The default morphable face model that ships with the package (no licence-gated data).

Built by `python -m experiments.build_default_face` (`build_default`) from real portraits and
talking-face videos (`assets/README.md` says how); same conventions and scale as the BFM
(`talkingjax.face3d.model`), MediaPipe's face-mesh topology, 68 landmarks in dlib order.
"""

from __future__ import annotations

import os

from talkingjax.face3d import model as mm

# Vertex count of the shipped model; its first 468 vertices are MediaPipe's face-mesh points,
# which is how fitting recognises the model and uses all of them as landmarks.
NUM_VERTICES = 7257
ASSET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "default_face.npz")


def load_default() -> mm.MorphableModel:
    """The shipped default model.

    Raises:
      InputError: the asset is missing or unreadable (a broken install).
    """
    return mm.load(ASSET)


def default_metadata() -> dict[str, str]:
    """How the shipped model was built (the metadata strings stored with it)."""
    return mm.metadata(ASSET)
