"""Builds the default morphable face model from real portraits and talking-face videos.

  python -m experiments.build_default_face --faces=DIR --videos=DIR [--out=PATH] \
      [--albedo_exclude=a.jpg,b.jpg]

MediaPipe face-mesh fits of the portraits give the identity and albedo, the videos' frames the
expression (`talkingjax.face3d.build_default` has the method). --out defaults to the shipped
asset `talkingjax/face3d/assets/default_face.npz`; the exact command that built it is in
`talkingjax/face3d/assets/README.md`. The build's steps are logged; the last line sums it up.
"""

import logging

from absl import flags

from experiments import cli
from talkingjax.face3d import build_default

_FACES = flags.DEFINE_string("faces", None, "Directory of portrait images.", required=True)
_VIDEOS = flags.DEFINE_string("videos", None, "Directory of talking-face videos.", required=True)
_OUT = flags.DEFINE_string("out", build_default.DEFAULT_OUT, "Output .npz.")
_ALBEDO_EXCLUDE = flags.DEFINE_list(
    "albedo_exclude", [],
    "Portrait file names not to use for the albedo (e.g. masks, sunglasses, face paint); they "
    "still count for the shape.",
)  # fmt: skip


def main(argv):
    del argv
    # The build's own log lines (faces found, components kept) are its progress report.
    logging.getLogger(build_default.__name__).setLevel(logging.INFO)
    exclude = tuple(sorted(n.strip() for n in _ALBEDO_EXCLUDE.value if n.strip()))
    config = build_default.BuildConfig(albedo_exclude=exclude)
    built = build_default.build(_FACES.value, _VIDEOS.value, _OUT.value, config)
    meta = built.metadata
    print(
        f"wrote {_OUT.value}: {built.model.num_vertices} vertices, components "
        f"id {meta['id_components']} exp {meta['exp_components']} tex {meta['tex_components']}"
    )


if __name__ == "__main__":
    cli.run(main)
