"""The training progress bar: loss, accuracy and images/s, refreshed every few steps (each
refresh reads the running sums back from the device, so it must not happen every step)."""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["Progress"]


class Progress:
    """A tqdm bar on rank 0 (``enabled=None``: when stderr is a terminal), or nothing."""

    def __init__(self, enabled: bool | None, every: int = 20) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self.every = max(1, every)
        self._bar: Any = None
        self._start = 0.0

    def start(self, total: int, description: str) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        self.close()
        self._bar = tqdm(total=total, desc=description, unit="step", leave=True,
                         dynamic_ncols=True, file=sys.stderr)
        self._start = time.perf_counter()

    def due(self, step: int) -> bool:
        """Whether step ``step`` (0-based) should refresh the bar."""
        return self._bar is not None and (step + 1) % self.every == 0

    def show(self, steps: int, loss: float, accuracy: float, images: int) -> None:
        """Move the bar to ``steps`` done, with the running figures (this process)."""
        if self._bar is None:
            return
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        self._bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.3f}",
                              img_s=f"{images / elapsed:,.0f}", refresh=False)
        self._bar.update(steps - self._bar.n)

    def finish(self, loss: float, accuracy: float, images_per_second: float) -> None:
        """Show the epoch's figures (all processes) and close the bar."""
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.3f}",
                                  img_s=f"{images_per_second:,.0f}", refresh=False)
            self._bar.update(self._bar.total - self._bar.n)
        self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
