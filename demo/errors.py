"""Typed errors of the demo (``cairn demo``): each says what to fix.

They are Cairn errors (:class:`registry.errors.CairnError`), so the ``cairn`` command line
shows them as one line, as it does the registry's, the zoo's and the catalog's."""

from __future__ import annotations

from registry.errors import CairnError

__all__ = ["DemoError", "DemoSetupError", "DemoStepError"]


class DemoError(CairnError):
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
