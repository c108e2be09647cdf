"""What a run of bench_zoo.py has measured: the table's rows, the JSON's figures and the
steps that failed, written out after every step so that a run cut short by its deadline
(SIGTERM) still leaves them."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from _common import Row, step

__all__ = ["Results", "Stopped"]


class Stopped(BaseException):
    """SIGTERM arrived (the run's time is up): report what was measured."""


@dataclass
class Results:
    """The table's rows and the JSON's figures, written out after every step."""

    plan: Any  # bench_zoo.Plan
    facts: list[tuple[str, str]]
    path: Path | None = None
    rows: list[Row] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    stopped: bool = False

    def stop(self, signum: int, frame: Any) -> None:
        """The SIGTERM handler. ``timeout`` signals the whole process group, so loader
        workers die too and their loader may raise its own error over ``Stopped``."""
        self.stopped = True
        raise Stopped

    def measure(self, what: str, fn: Callable[[], tuple[list[Row], dict[str, Any]]]) -> None:
        try:
            rows, figure = step(what, fn)
        except Exception as exc:  # one step's failure (OOM, compile) must not end the check
            if self.stopped:
                raise Stopped from exc
            print(f" FAILED: {exc!r}", flush=True)
            self.errors.append({"step": what, "error": repr(exc),
                                "traceback": traceback.format_exc(limit=-8)})
            self.rows.append(Row(f"{what}: FAILED", repr(exc)[:100], passed=False))
        else:
            self.rows += rows
            self.figures.append(figure)
            for row in rows:
                print(f"    {row.measure}: {row.cairn} | {row.anchor} | {row.ratio} "
                      f"{row.verdict}", flush=True)
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        self.write()

    def synthetic_rate(self, name: str, compiled: bool) -> float | None:
        return next((f["zoo_images_per_s"] for f in self.figures if f["model"] == name
                     and f["compiled"] == compiled and f["source"] == "synthetic"), None)

    def write(self) -> None:
        if self.path is None:
            return
        doc = {"plan": asdict(self.plan), "machine": dict(self.facts), "figures": self.figures,
               "rows": [asdict(r) | {"verdict": r.verdict} for r in self.rows],
               "errors": self.errors, "stopped": self.stopped,
               "seconds": round(time.perf_counter() - self.started, 1)}
        self.path.write_text(json.dumps(doc, indent=1, default=str))
