"""The library's one progress display: stage lines with their times, and progress bars.

Everything goes to one text stream (stderr by default). A stage prints a start line and a
"done in" line and adds its wall time to `Progress.times`; a bar is one line, rewritten in
place on a terminal, and printed at most every `every` seconds (and at the end) anywhere else,
so the logs of long runs stay short:

    progress = Progress()                      # Progress(quiet=True) prints nothing
    with progress.stage("fit target video"):   # [fit target video] ...
        ...                                    # [fit target video] done in 12.3 s
    bar = progress.bar("frames", total=300, unit="frames", every=5.0)
    for chunk in chunks:
        bar.advance(len(chunk))

The bar then reads
`frames [##########....................] 100/300 frames elapsed 0:12 eta 0:24`.

Used by generation (`talkingjax.generation`: one stage per step, a bar over the output frames)
and by dataset preprocessing (`talkingjax.data.preprocess`: a bar over the clips, with the
count of failed ones).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_BAR_WIDTH = 30


def hms(seconds: float) -> str:
    """`m:ss`, or `h:mm:ss` from an hour on (rounded to the second)."""
    s = int(round(seconds))
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


class Progress:
    """Stage lines with their times, and progress bars, on one stream.

    Attributes:
      quiet: print nothing (library use); stages still record their times.
      stream: where lines go (default: stderr).
      tty: whether `stream` is a terminal (bars then rewrite one line in place).
      times: seconds spent in each stage name so far (summed over repeats).
    """

    def __init__(self, quiet: bool = False, stream: TextIO | None = None):
        self.quiet = quiet
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.times: dict[str, float] = {}

    def write(self, text: str) -> None:
        """Writes `text` as is (and flushes), unless quiet."""
        if not self.quiet:
            self.stream.write(text)
            self.stream.flush()

    def stage(self, name: str) -> Stage:
        """A context manager: `[name] ...` on entry, `[name] done in X s` on success."""
        return Stage(self, name)

    def bar(
        self, name: str, total: int, unit: str = "", every: float = 5.0, failures: bool = False
    ) -> Bar:
        """A bar over `total` items, started now (see `Bar`)."""
        return Bar(self, name, total, unit, every, failures)


class Stage:
    """One timed stage of a `Progress` (made by `Progress.stage`)."""

    def __init__(self, progress: Progress, name: str):
        self.progress, self.name = progress, name

    def __enter__(self) -> Stage:
        self.start = time.perf_counter()
        self.progress.write(f"[{self.name}] ...\n")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        seconds = time.perf_counter() - self.start
        times = self.progress.times
        times[self.name] = times.get(self.name, 0.0) + seconds
        if exc_type is None:
            self.progress.write(f"[{self.name}] done in {seconds:.1f} s\n")


class Bar:
    """`name [#####.....] done/total unit [failed k] elapsed m:ss eta m:ss`.

    On a terminal the line is rewritten in place at every `advance` (a newline ends it when
    done == total); elsewhere a line is printed when `every` seconds have passed since the
    last one, and always for the last item. The eta is the mean time per item so far times
    the items left ("?" before the first).
    """

    def __init__(
        self,
        progress: Progress,
        name: str,
        total: int,
        unit: str = "",
        every: float = 5.0,
        failures: bool = False,
    ):
        self.progress, self.name, self.total, self.unit = progress, name, total, unit
        self.every, self.failures = every, failures
        self.done = self.failed = 0
        self.start = time.perf_counter()
        self._last = -float("inf")

    def advance(self, count: int = 1, failed: int = 0) -> None:
        """`count` more items done, `failed` of them failed."""
        self.done += count
        self.failed += failed
        now = time.perf_counter()
        if self.progress.tty or now - self._last >= self.every or self.done >= self.total:
            self._last = now
            self._print(now)

    def line(self, now: float | None = None) -> str:
        """The bar's current text (no line ending)."""
        elapsed = (time.perf_counter() if now is None else now) - self.start
        eta = hms(elapsed / self.done * (self.total - self.done)) if self.done else "?"
        filled = int(_BAR_WIDTH * self.done / max(self.total, 1))
        unit = f" {self.unit}" if self.unit else ""
        failed = f" failed {self.failed}" if self.failures else ""
        return (
            f"{self.name} [{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] "
            f"{self.done}/{self.total}{unit}{failed} elapsed {hms(elapsed)} eta {eta}"
        )

    def _print(self, now: float) -> None:
        line = self.line(now)
        if self.progress.tty:
            self.progress.write("\r" + line + ("\n" if self.done >= self.total else ""))
        else:
            self.progress.write(line + "\n")
