"""Multi-process runs on localhost for the tests: N processes with 2 faked CPU devices each,
joined by `jax.distributed` (gloo collectives), as N hosts of a pod would be.

`launch(command, ...)` starts one process per host with `--coordinator_address`,
`--num_processes` and `--process_id` appended. Run as a program, this file is that process:

    python tests/multihost.py AUDIT_LOG -m MODULE ARGS...   # an entry point, as `python -m`
    python tests/multihost.py AUDIT_LOG job NAME ARGS...    # a job of `JOBS` below

Each process records, through a Python audit hook, every file it creates, opens for writing,
renames or removes under `$MULTIHOST_WATCH` into AUDIT_LOG (one path a line), so a test can
check which process wrote what. Orbax's array data is written by TensorStore's C++ code,
which the hook does not see; it lies under `checkpoints/`, which every process writes anyway.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICES_PER_PROCESS = 2


def free_port() -> int:
    """A TCP port nobody listens on right now (for the coordinator)."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def launch(command: list[str], audit_dir: str, watch: str, num_processes: int = 2):
    """Starts `num_processes` processes of `command` (after this file's name: "-m MODULE ..."
    or "job NAME ..."), each with `DEVICES_PER_PROCESS` CPU devices; returns their Popens.

    Process i writes its audit log to `<audit_dir>/<i>.log` and its output to
    `<audit_dir>/<i>.out`.
    """
    port = free_port()
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={DEVICES_PER_PROCESS}"
    env["MULTIHOST_WATCH"] = os.path.abspath(watch)
    os.makedirs(audit_dir, exist_ok=True)
    procs = []
    for i in range(num_processes):
        dist = [f"--coordinator_address=localhost:{port}", f"--num_processes={num_processes}",
                f"--process_id={i}"]  # fmt: skip
        out = open(os.path.join(audit_dir, f"{i}.out"), "w")
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, os.path.join(audit_dir, f"{i}.log"), *command, *dist],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        )
    return procs


def wait(procs, audit_dir: str, timeout: float = 600) -> None:
    """Waits for every process; raises with their output if one failed."""
    for i, p in enumerate(procs):
        if p.wait(timeout=timeout) != 0:
            with open(os.path.join(audit_dir, f"{i}.out")) as f:
                raise AssertionError(f"process {i} exited {p.returncode}:\n{f.read()[-4000:]}")


def written(audit_dir: str, process: int) -> set[str]:
    """The paths (relative to the watched folder) process `process` wrote."""
    path = os.path.join(audit_dir, f"{process}.log")
    if not os.path.exists(path):
        return set()
    with open(path) as f:
        return {line.rstrip("\n") for line in f}


# Tiny configs shared by the tests and the jobs, so both sides train the same run.


def pose_config(root: str, pretrain: int, joint: int):
    from experiments.configs import pose

    c = pose.get_config("tiny")
    c.data.root = root
    c.model.encoder_hidden = 16
    c.model.decoder_hidden = 16
    c.model.encoder_mlp = (16,)
    c.model.window_features = 16
    c.model.head_features = (16, 16)
    c.train.batch_size = 8
    c.train.pretrain_steps = pretrain
    c.train.joint_steps = joint
    c.train.checkpoint_every = 2
    c.train.log_every = 1
    return c


def config_flags(config, base) -> list[str]:
    """`--config.a.b=value` for every field where `config` differs from `base` (both
    ConfigDicts of one config file), so an entry point rebuilds `config` from `base`."""

    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    old = dict(leaves(base.to_dict()))
    return [
        f"--config.{k}={tuple(v) if isinstance(v, list) else v}"
        for k, v in leaves(config.to_dict())
        if old.get(k) != v
    ]


def gan_config(pairs: str):
    from experiments.configs import gan

    c = gan.get_config("tiny")
    c.data.root = pairs
    # Smaller than "tiny" (2 generator levels, 1 discriminator level, no augmentation): the
    # GAN's update is the costliest program of the tests to compile (33 s -> 17 s, one core).
    c.model.g_features = (8, 16)
    c.model.d_features = (8,)
    c.model.dropout_blocks = (0,)
    c.data.augment = False
    c.train.steps = 1
    c.train.checkpoint_every = 1
    c.train.log_every = 1
    return c


def expression_config(root: str):
    from experiments.configs import expression

    c = expression.get_config("tiny")
    c.data.root = root
    c.model.conv_channels = (4, 8, 8, 8, 8)
    c.model.fc = (16, 16)
    c.model.hidden = 16
    c.train.batch_size = 8
    c.train.steps = 1
    c.train.checkpoint_every = 1
    c.train.log_every = 1
    return c


def _job_gan_expression(out: str, pairs: str, corpus: str) -> None:
    """One GAN step into `<out>/gan`, one expression step into `<out>/expression`."""
    from talkingjax.train import expression, gan

    gan.train(gan_config(pairs), os.path.join(out, "gan"))
    expression.train(expression_config(corpus), os.path.join(out, "expression"))


JOBS = {"gan_expression": _job_gan_expression}


def _record_writes(log_path: str, watch: str) -> None:
    log = open(log_path, "a", buffering=1)  # opened before the hook: its writes are not seen
    watch = watch.rstrip("/") + "/"
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def note(path):
        if isinstance(path, (str, bytes, os.PathLike)):
            path = os.path.abspath(os.fsdecode(path))
            if path.startswith(watch):
                log.write(os.path.relpath(path, watch) + "\n")

    def hook(event, args):
        if event == "open" and len(args) >= 3:
            path, mode, flags = args[:3]
            if (isinstance(mode, str) and set(mode) & set("wax+")) or (
                isinstance(flags, int) and flags & writing
            ):
                note(path)
        elif event in ("os.rename", "os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree"):
            note(args[0])
            if event == "os.rename":
                note(args[1])

    sys.addaudithook(hook)


def _main(argv: list[str]) -> None:
    log_path, mode, *rest = argv
    _record_writes(log_path, os.environ["MULTIHOST_WATCH"])
    if mode == "-m":  # an entry point: it reads the coordinator flags itself
        import runpy

        sys.argv = [rest[0], *rest[1:]]
        runpy.run_module(rest[0], run_name="__main__", alter_sys=True)
        return
    name, *args = rest
    dist = dict(a[2:].split("=", 1) for a in args if a.startswith("--"))
    from talkingjax.train import parallel

    parallel.initialize_distributed(
        dist["coordinator_address"], int(dist["num_processes"]), int(dist["process_id"])
    )
    JOBS[name](*[a for a in args if not a.startswith("--")])


if __name__ == "__main__":
    sys.path.insert(0, REPO)
    _main(sys.argv[1:])
