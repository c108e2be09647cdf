"""Typed errors of the catalog. Each keeps the fields that explain it."""

from __future__ import annotations

from collections.abc import Sequence

from registry.errors import CairnError

__all__ = [
    "CardExistsError",
    "CardInvalidError",
    "CardNotFoundError",
    "CardSyntaxError",
    "CatalogError",
    "DatasetError",
    "DatasetNotTrackedError",
    "DraftError",
    "WeightsIntegrityError",
    "WeightsMissingError",
]


class CatalogError(CairnError):
    """Base class of the catalog's errors."""


class CardSyntaxError(CatalogError):
    """A card file cannot be read as Markdown with YAML front matter."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        self.path, self.line, self.reason = path, line, reason
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {reason}")


class CardInvalidError(CatalogError):
    """A card was read but breaks the schema (``problems`` holds every CardProblem)."""

    def __init__(self, path: str, problems: Sequence[object]) -> None:
        self.path, self.problems = path, list(problems)
        shown = "; ".join(str(p) for p in self.problems[:3])
        more = f" (and {len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
        super().__init__(f"{path}: invalid model card: {shown}{more}")


class CardNotFoundError(CatalogError):
    """No card (of this kind: model, dataset, or None for any) has this name and version."""

    def __init__(self, name: str, version: str | None = None,
                 known: Sequence[str] = (), kind: str | None = "model") -> None:
        self.name, self.version, self.known, self.kind = name, version, list(known), kind
        what = f"{name}@{version}" if version else name
        hint = f"; known: {', '.join(self.known[:10])}" if self.known else ""
        super().__init__(f"no {kind + ' ' if kind else ''}card named {what!r}{hint} (run "
                         "`cairn catalog index` after adding cards)")


class CardExistsError(CatalogError):
    """A draft would overwrite a card that is already there."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} already exists: pass another name or version, or --force")


class DatasetError(CatalogError):
    """A dataset card cannot be drafted for this folder."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"cannot draft a dataset card for {path}: {reason}")


class DatasetNotTrackedError(DatasetError):
    """The folder is not a DVC-tracked version, so no card can say which data it documents."""

    def __init__(self, path: str, reason: str) -> None:
        hint = (f"run `dvc init` at the repository root, then `dvc add {path}`"
                if "not inside a DVC repository" in reason else f"run `dvc add {path}`")
        super().__init__(path, f"{reason}; {hint} and commit {path}.dvc, then draft the card")


class DraftError(CatalogError):
    """A card cannot be drafted from this run."""

    def __init__(self, run: str, reason: str) -> None:
        self.run, self.reason = run, reason
        super().__init__(f"cannot draft a card from run {run}: {reason}")


class WeightsMissingError(CatalogError):
    """The card's weights file is not on this machine."""

    def __init__(self, card: str, path: str, hint: str = "") -> None:
        self.card, self.path, self.hint = card, path, hint
        super().__init__(f"weights of model card {card!r} are missing: {path}"
                         + (f" ({hint})" if hint else ""))


class WeightsIntegrityError(CatalogError):
    """The weights file does not match what the card documents (sha256 or format)."""

    def __init__(self, card: str, path: str, reason: str) -> None:
        self.card, self.path, self.reason = card, path, reason
        super().__init__(f"weights of model card {card!r} at {path}: {reason}")
