"""What every experiment entry point shares: one-line errors and a non-zero exit.

`run(main)` runs an absl `main`; bad input (`InputError`), a bad flag or config override, or a
diverged run (`FloatingPointError`, raised before a checkpoint would be overwritten)
becomes a single `error: ...` line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from talkingjax import console
from talkingjax.errors import InputError


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
    try:
        app.run(lambda _: main(argv), argv=argv)
    except (InputError, FloatingPointError) as err:  # bad input, or a diverged run
        _fail(str(err).splitlines()[0])


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
