"""Errors the dashboard raises on purpose (all :class:`registry.errors.CairnError`)."""

from __future__ import annotations

from registry.errors import CairnError

__all__ = ["DashboardError", "NoStoreError"]


class DashboardError(CairnError):
    """Base class of the dashboard's errors."""


class NoStoreError(DashboardError):
    """The workspace's store does not exist yet, so there is nothing to show."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(f"no registry store at {url}: record a run first (or run `cairn init`)")

