"""Third-party noise kept off the console: the one place that knows what is noise.

A run prints its own stage and progress lines (`talkingjax.progress`), warnings a user can
act on, and errors. These are not any of those, so they are dropped:

- MediaPipe's native (C++) log lines, written straight to file descriptor 2 from its graph
  threads when a face-mesh graph starts: "Created TensorFlow Lite XNNPACK delegate for CPU",
  "All log messages before absl::InitializeLog() is called are written to STDERR" and
  "inference_feedback_manager.cc ... Feedback manager requires a model with a single
  signature inference". No environment variable turns them off (GLOG_minloglevel and
  TF_CPP_MIN_LOG_LEVEL were tried: MediaPipe 0.10.14 logs through absl and TF-Lite's minimal
  logger), so `native_stderr_filtered` points descriptor 2 at a temporary file while a graph
  starts and then passes on every captured line that is not one of them.
- protobuf's "SymbolDatabase.GetPrototype() is deprecated" UserWarning, raised inside
  MediaPipe (pinned at 0.10.14) at each result it converts: `mediapipe_warnings_ignored`.
- Orbax's absl warning "Given directory is read only=...", logged whenever a checkpoint is
  restored read-only, which the library does on purpose (a run may be saving meanwhile):
  `drop_absl_notices`, a filter on absl's logger installed by the command-line programs.

Both MediaPipe guards are scoped (they change nothing outside the `with` block) and used by
`talkingjax.video.tracking`, so library users and worker processes get them too; the absl
filter changes a process-wide logger, so only programs install it (`experiments/cli.py`).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator

from absl import logging as absl_logging

# Lines MediaPipe's native code writes to fd 2 when a graph starts (see the module docstring).
NATIVE_NOISE = re.compile(
    r"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|\S+ \S+ +\d+ inference_feedback_manager\.cc:\d+\] Feedback manager requires a model "
    r"with a single signature inference\. Disabling support for feedback tensors\."
)
# Python warnings MediaPipe triggers in its dependencies (regexes of the message start).
MEDIAPIPE_WARNINGS = (r"SymbolDatabase\.GetPrototype\(\) is deprecated",)
# absl (Python) log messages of libraries the project uses on purpose (printf templates).
ABSL_NOTICES = ("Given directory is read only=%s",)  # orbax CheckpointManager(read_only=True)


@contextlib.contextmanager
def native_stderr_filtered(noise: re.Pattern = NATIVE_NOISE) -> Iterator[None]:
    """Captures what native code writes to file descriptor 2 in the block; on exit writes
    back every captured line that `noise` does not fully match (nothing is lost but noise).

    Python's own stderr writes in the block are captured and written back too (after it).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                if not noise.fullmatch(line.rstrip("\r\n"))
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


@contextlib.contextmanager
def mediapipe_warnings_ignored() -> Iterator[None]:
    """Ignores, inside the block, the Python warnings in `MEDIAPIPE_WARNINGS`."""
    with warnings.catch_warnings():
        for message in MEDIAPIPE_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        yield


def _not_a_notice(record) -> bool:
    return record.msg not in ABSL_NOTICES


def drop_absl_notices() -> None:
    """Drops the absl log messages in `ABSL_NOTICES` from now on (idempotent)."""
    logger = absl_logging.get_absl_logger()
    if _not_a_notice not in logger.filters:
        logger.addFilter(_not_a_notice)
