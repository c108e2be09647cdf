"""What one export or import did, run by run: the part both directions share."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SyncResult"]


@dataclass
class SyncResult:
    """Run ids sorted by outcome (registry ids for an export, MLflow ids for an import)."""

    tracking_uri: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self, **more: list[str]) -> str:
        """One line of counts; ``more`` adds a direction's own outcomes, labelled."""
        counts = {"created": self.created, "updated": self.updated,
                  "unchanged": self.unchanged, **more, "failed": self.failed}
        return f"{self.tracking_uri}: " + ", ".join(f"{len(ids)} {label}"
                                                  for label, ids in counts.items())
