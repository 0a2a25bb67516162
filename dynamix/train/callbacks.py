"""A tiny callback protocol: how the trainer reports to loggers, progress bars, MLflow.

The trainer calls every callback at four moments; a callback overrides only what it needs.
Metrics are flat dicts of JSON-friendly values. The MLflow adapter (in ``flows/``) will be
one more :class:`Callback`; the core never imports it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class Callback:
    """No-op base: ``on_step`` after every optimizer step, the others when they happen."""

    def on_step(self, step: int, metrics: dict[str, Any]) -> None:
        pass

    def on_relabel(self, step: int, stats: dict[str, Any]) -> None:
        pass

    def on_eval(self, step: int, metrics: dict[str, Any]) -> None:
        pass

    def on_checkpoint(self, step: int, path: Path) -> None:
        pass


def _clean(value: Any) -> Any:
    """NaN/inf are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class JsonlLogger(Callback):
    """Appends one JSON object per event to ``<out_dir>/log.jsonl``.

    Each line is ``{"event": "step"|"relabel"|"eval"|"checkpoint", "step": n, ...}``.
    ``resume_step`` drops lines of a killed run's steps after the checkpoint it resumes
    from (they will be run again), so the log reads as one uninterrupted run.
    """

    def __init__(self, out_dir: str | Path, resume_step: int | None = None) -> None:
        self.path = Path(out_dir) / "log.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            lines = self.path.read_text().splitlines()
            kept = [ln for ln in lines if ln and json.loads(ln)["step"] <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))

    def _write(self, event: str, step: int, payload: dict[str, Any]) -> None:
        record = {"event": event, "step": step, **_clean(payload)}
        with self.path.open("a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")

    def on_step(self, step: int, metrics: dict[str, Any]) -> None:
        self._write("step", step, metrics)

    def on_relabel(self, step: int, stats: dict[str, Any]) -> None:
        self._write("relabel", step, stats)

    def on_eval(self, step: int, metrics: dict[str, Any]) -> None:
        self._write("eval", step, metrics)

    def on_checkpoint(self, step: int, path: Path) -> None:
        self._write("checkpoint", step, {"path": str(path)})
