"""Converts Deep3DFaceRecon's `BFM_model_front.mat` into the `.npz` a talkingjax model loads.

  python -m experiments.convert_bfm --src=BFM_model_front.mat --out=bfm.npz [--norecenter]

The BFM is licence-gated and never part of this repository (BUILD.md says how to make the
.mat). The conversion (`talkingjax.face3d.bfm.convert_bfm`) checks every field, makes indices
0-based, scales the albedo to [0, 1] and re-centres the mean shape as the reference does; the
output is read by `talkingjax.face3d.model.load`.
"""

from absl import flags

from experiments import cli
from talkingjax.face3d import bfm

_SRC = flags.DEFINE_string("src", None, "BFM_model_front.mat to read.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output .npz (read by face3d.model.load).", required=True)
_RECENTER = flags.DEFINE_bool(
    "recenter", True, "Re-centre the mean shape on its centroid, as the reference does."
)


def main(argv):
    del argv
    model = bfm.convert_bfm(_SRC.value, _OUT.value, recenter=_RECENTER.value)
    k_id, k_exp, k_tex = model.sizes
    print(
        f"wrote {_OUT.value}: {model.num_vertices} vertices, {model.num_triangles} triangles, "
        f"{k_id} identity / {k_exp} expression / {k_tex} albedo coefficients"
    )


if __name__ == "__main__":
    cli.run(main)
