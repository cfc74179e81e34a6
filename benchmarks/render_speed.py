"""Speed and memory of the differentiable face renderer; prints one JSON object.

  python benchmarks/render_speed.py [--size 224] [--batches 1,8] [--repeats 10]
                                    [--models default,bfm_size]

For each model and batch size, frames per second after compilation (best of `repeats`, so a
busy neighbour process does not count against us) of:
- render_fwd: rasterize + barycentrics + colour interpolation of an already posed and lit mesh
  (what the renderer itself costs);
- render_fwd_bwd: the same plus the gradient of a photometric loss w.r.t. vertex positions and
  colours;
- face_fwd: the whole stage-2 pipeline from coefficients: shape and albedo from the bases,
  normals, SH lighting, pose, camera, rasterization, interpolation;
- face_fwd_bwd: face_fwd plus the gradient of a photometric loss w.r.t. all coefficients.
Peak memory: XLA's buffer assignment of the compiled program (arguments + outputs + temporaries,
minus aliased) and the process's maximum resident set size at the end.

Models: `default` is the shipped default model, `bfm_size` the synthetic model with the BFM's
exact sizes (35,709 vertices, 70,789 triangles, 80/64/80 coefficients). Faces use zero
coefficients (the mean face, frontal, centred: it fills about half of the frame like a
reference crop). Reference point (the issue): Mesa llvmpipe draws a 70.7k-triangle face-sized
mesh at 224 x 224 at about 89 frames/s on this machine kind; targets >= 30 frames/s forward on
the BFM-size mesh and forward+backward <= 3x forward.
"""

import argparse
import json
import resource

import jax
import jax.numpy as jnp
import numpy as np
import quoted
from timing import best_of, timed

from talkingjax.face3d import camera as camera_lib
from talkingjax.face3d import coeffs as coeffs_lib
from talkingjax.face3d import synthetic
from talkingjax.render import face


def _load_model(name: str):
    if name == "bfm_size":
        return synthetic.synthetic_model()
    if name == "default":
        from talkingjax.face3d import default

        return default.load_default()
    raise ValueError(f"unknown model {name!r} (default, bfm_size)")


def _time(fn, args, repeats: int) -> tuple[float, dict]:
    compiled = jax.jit(fn).lower(*args).compile()
    mem = compiled.memory_analysis()
    peak = None
    if mem is not None:
        peak = (
            mem.argument_size_in_bytes
            + mem.output_size_in_bytes
            + mem.temp_size_in_bytes
            - mem.alias_size_in_bytes
        )
    timed(compiled, *args)
    best, _ = best_of(lambda: compiled(*args), repeats)
    return best, {"xla_peak_mb": None if peak is None else peak / 2**20}


def bench_model(name: str, size: int, batches: list[int], repeats: int) -> dict:
    model = _load_model(name)
    camera = camera_lib.Camera().scaled(size)
    layout = coeffs_lib.Layout.of(model)
    out = {
        "vertices": model.num_vertices,
        "triangles": model.num_triangles,
        "coefficients": layout.dim,
    }
    for batch in batches:
        coeffs = coeffs_lib.zeros(layout, (batch,))
        target = jnp.full((batch, size, size, 3), 0.5, jnp.float32)
        posed = face.pose_face(model, coeffs)

        def render(vertices, colors):
            return face.render_mesh(vertices, model.triangles, colors, camera).image

        def render_grad(vertices, colors, target=target):
            loss = lambda v, c: jnp.mean((render(v, c) - target) ** 2)  # noqa: E731
            return jax.grad(loss, argnums=(0, 1))(vertices, colors)

        def face_fwd(model, coeffs):
            return face.render_face(model, coeffs, camera).image

        def face_grad(model, coeffs, target=target):
            loss = lambda c: jnp.mean((face_fwd(model, c) - target) ** 2)  # noqa: E731
            return jax.grad(loss)(coeffs)

        row = {}
        cases = {
            "render_fwd": (render, (posed.vertices, posed.colors)),
            "render_fwd_bwd": (render_grad, (posed.vertices, posed.colors)),
            "face_fwd": (face_fwd, (model, coeffs)),
            "face_fwd_bwd": (face_grad, (model, coeffs)),
        }
        for key, (fn, args) in cases.items():
            seconds, mem = _time(fn, args, repeats)
            row[key] = {"frames_per_s": batch / seconds, "ms_per_call": 1e3 * seconds, **mem}
        for kind in ("render", "face"):
            row[f"{kind}_bwd_over_fwd"] = (
                row[f"{kind}_fwd"]["frames_per_s"] / row[f"{kind}_fwd_bwd"]["frames_per_s"]
            )
        row["mask_fraction"] = float(
            np.mean(np.asarray(face.render_face(model, coeffs, camera).mask))
        )
        out[f"batch_{batch}"] = row
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batches", default="1,8")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--models", default="default,bfm_size")
    args = p.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    out = {
        "benchmark": "render_speed",
        "backend": jax.default_backend(),
        "devices": jax.device_count(),
        "jax": jax.__version__,
        "size": args.size,
    }
    for name in args.models.split(","):
        out[name] = bench_model(name, args.size, batches, args.repeats)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["quoted_reference"] = {  # not measured by this run
        "source": "issue: Mesa llvmpipe on this machine kind; targets of the issue",
        "llvmpipe_70k_tris_224_fps": 89,
        "target_fwd_fps": 30,
        "max_bwd_ratio": 3,
    }
    out["quoted_side_by_side_issue_24"] = quoted.ISSUE_24
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
