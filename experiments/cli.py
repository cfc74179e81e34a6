"""What every experiment entry point shares: one-line errors and a non-zero exit, and joining
a multi-process run.

`run(main)` runs an absl `main`; bad input (`InputError`), a bad flag or config override, or a
diverged run (`FloatingPointError`, raised before a checkpoint would be overwritten)
becomes a single `error: ...` line on stderr and exit status 2, never a traceback.

Before `main` (and so before JAX is used) `run` joins a multi-process run when asked
(`talkingjax.train.parallel.initialize_distributed`): the same command on every process with
`--coordinator_address=HOST:PORT --num_processes=N --process_id=I`, or `--distributed` on
Cloud TPU VMs (and SLURM / Open MPI), where JAX finds the coordinator itself. The flags are
defined here, once, for every entry point (absl refuses a flag defined twice in a process).
It also turns on the persistent compilation cache (`talkingjax.compilation_cache`), so a
fresh process reads the programs an earlier run compiled.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from talkingjax import compilation_cache, console
from talkingjax.errors import InputError
from talkingjax.train import parallel

_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 in a multi-process run."
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes",
    None,
    "Number of processes in a multi-process run (with --coordinator_address).",
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process's index, 0 .. num_processes - 1 (with --coordinator_address)."
)
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Join a multi-process run JAX finds itself (Cloud TPU pods, SLURM)."
)


def run(main) -> None:
    try:
        argv = flags.FLAGS(sys.argv)
    except (KeyError, AttributeError) as err:  # config_flags: override of a missing field
        field = str(err.args[0]).strip("'\"") if err.args else "?"
        _fail(f"bad flag: the config has no field {field!r}")
    except (flags.Error, ValueError) as err:
        _fail(f"bad flag: {str(err).splitlines()[0]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
        console.drop_absl_notices()  # and warns at every read-only restore
    compilation_cache.enable()  # before anything compiles (talkingjax.compilation_cache)
    try:
        parallel.initialize_distributed(
            _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value, _DISTRIBUTED.value
        )
        app.run(lambda _: main(argv), argv=argv)
    except (InputError, FloatingPointError) as err:  # bad input, or a diverged run
        _fail(str(err).splitlines()[0])


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
