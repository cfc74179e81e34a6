"""Metrics to a JSONL file (one object per logged step) and a console progress line."""

from __future__ import annotations

import json
import os
import sys
import time

from talkingjax.train import storage


class MetricWriter:
    """Appends {"step": s, **metrics} lines to `<workdir>/metrics.jsonl` and prints progress.

    Only process 0 writes and prints (every process of a multi-host run logs the same
    replicated metrics). A run resumed from the checkpoint at `resume_step` first drops the
    lines of steps after it (atomically), which the killed run logged past its last checkpoint
    and the resumed one logs again, so every step is in the file once.

    A local file is appended to; object storage (`gs://`) has no append, so there the file is
    rewritten whole (one atomic upload) at every logged step.
    """

    def __init__(self, workdir: str, total_steps: int, stream=sys.stdout, resume_step: int = 0):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.total = total_steps
        self.stream = stream
        self.active = storage.is_writer()
        self._start = self._t = time.perf_counter()
        self._last_step = None
        self._remote = storage.is_remote(workdir)
        self._lines = _drop_lines_after(self.path, resume_step) if self.active else []

    def write(self, step: int, metrics: dict) -> None:
        if not self.active:
            return
        now = time.perf_counter()
        record = {"step": int(step), "elapsed_s": now - self._start}
        record.update({k: (float(v) if not isinstance(v, str) else v) for k, v in metrics.items()})
        if self._last_step is not None and step > self._last_step:
            record["steps_per_sec"] = (step - self._last_step) / (now - self._t)
        self._t, self._last_step = now, step
        line = json.dumps(record) + "\n"
        if self._remote:
            self._lines.append(line)
            storage.atomic_write(self.path, lambda f: f.writelines(self._lines))
        else:
            with open(self.path, "a") as f:
                f.write(line)
        shown = " ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in record.items()
            if k != "step"
        )
        print(f"step {step}/{self.total} {shown}", file=self.stream, flush=True)


def _drop_lines_after(path: str, step: int) -> list[str]:
    """Rewrites `path` (atomically) without the lines of steps > `step`, if it has any;
    returns the lines kept.

    A line cut short by a kill (no newline, as every written line ends with one) goes too.
    """
    if not storage.exists(path):
        return []
    lines = storage.read_text(path).splitlines(keepends=True)
    kept = [line for line in lines if line.endswith("\n") and json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        storage.atomic_write(path, lambda f: f.writelines(kept))
    return kept
