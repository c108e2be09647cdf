"""Typed errors of the demo (``cairn demo``): each says what to fix."""

from __future__ import annotations

from zoo.errors import ZooError

__all__ = ["DemoError", "DemoSetupError", "DemoStepError"]


class DemoError(ZooError):
    """Base class of the demo's errors."""


class DemoSetupError(DemoError):
    """The workspace cannot run the demo as it is configured (says what to change)."""

    def __init__(self, what: str, fix: str) -> None:
        self.what, self.fix = what, fix
        super().__init__(f"{what}; {fix}")


class DemoStepError(DemoError):
    """A step of the demo failed (``dvc repro``, a stage, carol's run...)."""

    def __init__(self, step: str, reason: str) -> None:
        self.step, self.reason = step, reason
        super().__init__(f"demo step {step!r} failed: {reason}")
