"""Metrics to a JSONL file (one object per logged step) and a console progress line."""

from __future__ import annotations

import json
import os
import sys
import time


class MetricWriter:
    """Appends {"step": s, **metrics} lines to `<workdir>/metrics.jsonl` and prints progress."""

    def __init__(self, workdir: str, total_steps: int, stream=sys.stdout):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.total = total_steps
        self.stream = stream
        self._start = self._t = time.perf_counter()
        self._last_step = None

    def write(self, step: int, metrics: dict) -> None:
        now = time.perf_counter()
        record = {"step": int(step), "elapsed_s": now - self._start}
        record.update({k: (float(v) if not isinstance(v, str) else v) for k, v in metrics.items()})
        if self._last_step is not None and step > self._last_step:
            record["steps_per_sec"] = (step - self._last_step) / (now - self._t)
        self._t, self._last_step = now, step
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        shown = " ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in record.items()
            if k != "step"
        )
        print(f"step {step}/{self.total} {shown}", file=self.stream, flush=True)
