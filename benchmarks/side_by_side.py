"""talkingjax and PyTorch on the same models and shapes, in one run on this machine.

  python benchmarks/side_by_side.py [--rounds 2] [--steps 3]

Head motion: `benchmarks/pose_speed.py` (talkingjax: float32 and bfloat16 products) and
`benchmarks/torch_pose.py` (PyTorch eager, the same network and step: float32, and under
bfloat16 autocast). Expression: `benchmarks/expression_speed.py` (float32) and
`benchmarks/torch_expression.py` (float32 and bfloat16 autocast). Each script runs as its own
process, alternating, `rounds` times each; prints one JSON object with each side's best time
and the ratios. Needs the `bench` extra (a CPU torch wheel:
`pip install -e .[bench]`); without torch it says so and exits 2.

Both sides flush denormal floats to zero (XLA's CPU default; `torch_pose.py` sets it, without
which PyTorch's encoder backward is ~15x slower here) and use all cores of the machine.
"""

import argparse
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _run(script: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, script), *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=os.path.dirname(HERE),
    ).stdout
    return json.loads(out[out.index("{") :])


def _best(runs: list[dict], *keys: str) -> float:
    values = []
    for run in runs:
        v = run
        for k in keys:
            v = v[k]
        values.append(v)
    return min(values)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    try:
        import torch
    except ImportError:
        print("error: PyTorch is not installed (pip install -e .[bench])", file=sys.stderr)
        sys.exit(2)
    steps = ["--steps", str(args.steps)]
    jax_runs, torch_runs, torch_bf16_runs = [], [], []
    jax_exp, torch_exp, torch_exp_bf16 = [], [], []
    for _ in range(args.rounds):
        jax_runs.append(_run("pose_speed.py", *steps))
        torch_runs.append(_run("torch_pose.py", *steps))
        torch_bf16_runs.append(_run("torch_pose.py", *steps, "--bfloat16"))
        jax_exp.append(_run("expression_speed.py", *steps, "--chunks", "256,0"))
        torch_exp.append(_run("torch_expression.py", *steps))
        torch_exp_bf16.append(_run("torch_expression.py", *steps, "--bfloat16"))
    ej, ep, ep16 = (_best(r, "train_step_s") for r in (jax_exp, torch_exp, torch_exp_bf16))
    eij, eip, eip16 = (_best(r, "inference_s") for r in (jax_exp, torch_exp, torch_exp_bf16))
    tj32 = _best(jax_runs, "train_float32", "train_step_s")
    tj16 = _best(jax_runs, "train_bfloat16", "train_step_s")
    tp32 = _best(torch_runs, "train_step_s")
    tp16 = _best(torch_bf16_runs, "train_step_s")
    ij, ip = _best(jax_runs, "inference_s"), _best(torch_runs, "inference_s")
    first = jax_runs[0]
    print(
        json.dumps(
            {
                "benchmark": "side_by_side",
                "machine": {
                    "cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(),
                    "jax": first["jax"],
                    "torch": torch.__version__,
                    "matmul_gflop_per_s_2048": first["matmul_gflop_per_s"],
                },
                "rounds": args.rounds,
                "pose_train_step_b16x300_s": {
                    "talkingjax_float32": tj32,
                    "talkingjax_bfloat16": tj16,
                    "pytorch_float32": tp32,
                    "pytorch_bfloat16_autocast": tp16,
                    "pytorch_over_talkingjax_float32": tp32 / tj32,
                    "pytorch_over_talkingjax_bfloat16": tp32 / tj16,
                    "pytorch_autocast_over_talkingjax_bfloat16": tp16 / tj16,
                    "gflop_per_step": first["train_float32"]["train_gflop_per_step"],
                    "talkingjax_gflop_per_s": {
                        "float32": first["train_float32"]["train_gflop_per_step"] / tj32,
                        "bfloat16": first["train_bfloat16"]["train_gflop_per_step"] / tj16,
                    },
                },
                "pose_pattern_and_pose_60s_speech_s": {
                    "talkingjax": ij,
                    "pytorch": ip,
                    "pytorch_over_talkingjax": ip / ij,
                },
                "expression_train_step_b16x16_s": {
                    "talkingjax_float32": ej,
                    "pytorch_float32": ep,
                    "pytorch_bfloat16_autocast": ep16,
                    "pytorch_over_talkingjax": ep / ej,
                    "pytorch_autocast_over_talkingjax": ep16 / ej,
                },
                "expression_inference_60s_speech_s": {
                    "talkingjax_float32": eij,
                    "pytorch_float32": eip,
                    "pytorch_bfloat16_autocast": eip16,
                    "pytorch_over_talkingjax": eip / eij,
                },
                "runs": {
                    "talkingjax": jax_runs,
                    "pytorch": torch_runs,
                    "pytorch_bfloat16": torch_bf16_runs,
                    "talkingjax_expression": jax_exp,
                    "pytorch_expression": torch_exp,
                    "pytorch_expression_bfloat16": torch_exp_bf16,
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
