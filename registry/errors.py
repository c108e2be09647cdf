"""Typed errors raised by the registry. Each keeps the fields that explain it."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AmbiguousRunError",
    "ArtifactError",
    "CairnError",
    "ConfigError",
    "DataNotTrackedError",
    "DataVersionError",
    "DuplicateRunError",
    "ImportFormatError",
    "MetricError",
    "MovError",
    "ParamError",
    "QueryError",
    "RunNotFoundError",
    "RunStateError",
    "SchemaOutdatedError",
    "SchemaVersionError",
    "SpoolError",
    "StoreCorruptError",
    "StoreError",
    "StoreReadOnlyError",
    "StoreUnavailableError",
    "TagError",
]


class CairnError(Exception):
    """Base class of every error Cairn raises on purpose."""


class ConfigError(CairnError):
    """The workspace configuration is malformed or names an unknown setting."""

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class StoreError(CairnError):
    """The registry store could not do what was asked."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached (server down, file missing, permissions)."""

    def __init__(self, url: str, detail: str) -> None:
        self.url, self.detail = url, detail
        super().__init__(f"registry store {url} is unavailable: {detail}")


class StoreReadOnlyError(StoreError):
    """A write was asked of a store opened read-only (the dashboard's, a reader role's)."""

    def __init__(self, url: str, action: str = "write") -> None:
        self.url, self.action = url, action
        super().__init__(f"registry store {url} is open read-only: cannot {action}")


class StoreCorruptError(StoreError):
    """The store exists but is not a readable Cairn database."""

    def __init__(self, url: str, detail: str) -> None:
        self.url, self.detail = url, detail
        super().__init__(
            f"registry store {url} is not a readable Cairn database ({detail}); "
            "restore it from a backup or point CAIRN_STORE at another file"
        )


class SchemaVersionError(StoreError):
    """The store's schema is newer than this version of Cairn understands."""

    def __init__(self, url: str, found: str, expected: str) -> None:
        self.url, self.found, self.expected = url, found, expected
        super().__init__(
            f"registry store {url} has schema revision {found!r}, this Cairn knows "
            f"up to {expected!r}: upgrade Cairn"
        )


class SchemaOutdatedError(StoreError):
    """A reader opened a store whose schema is older than this Cairn's (readers never
    upgrade a store)."""

    def __init__(self, url: str, found: str, expected: str) -> None:
        self.url, self.found, self.expected = url, found, expected
        super().__init__(
            f"registry store {url} has schema revision {found!r}, this Cairn reads "
            f"{expected!r}: open it once with write access (any cairn command with the "
            "owner's URL) to upgrade it"
        )


class RunNotFoundError(CairnError):
    """No run matches the given id, id prefix or name."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"no run matches {ref!r}")


class AmbiguousRunError(CairnError):
    """A run reference matches more than one run."""

    def __init__(self, ref: str, candidates: Sequence[str]) -> None:
        self.ref, self.candidates = ref, list(candidates)
        shown = ", ".join(self.candidates[:5])
        super().__init__(
            f"{ref!r} matches {len(self.candidates)} runs ({shown}); give more of the id"
        )


class RunStateError(CairnError):
    """The run is not in a state that allows this operation (for example, it has ended)."""

    def __init__(self, run_id: str, status: str, action: str) -> None:
        self.run_id, self.status, self.action = run_id, status, action
        super().__init__(f"cannot {action}: run {run_id} is {status}")


class ParamError(CairnError):
    """A hyperparameter cannot be recorded as given."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        self.key, self.value, self.reason = key, value, reason
        super().__init__(f"param {key!r}: {reason}")


class TagError(CairnError):
    """A tag cannot be recorded as given."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        self.key, self.value, self.reason = key, value, reason
        super().__init__(f"tag {key!r}: {reason}")


class MetricError(CairnError):
    """A metric name or value cannot be recorded."""

    def __init__(self, key: object, value: object, reason: str) -> None:
        self.key, self.value, self.reason = key, value, reason
        super().__init__(f"metric {key!r}: {reason}")


class ArtifactError(CairnError):
    """An artifact cannot be stored or read."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"artifact {path!r}: {reason}")


class DataVersionError(CairnError):
    """A dataset's version cannot be determined."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"data {path!r}: {reason}")


class DataNotTrackedError(DataVersionError):
    """The path is not tracked by DVC (raised only when the caller asks for strict checks)."""


class ImportFormatError(CairnError):
    """A line of a run export cannot be imported."""

    def __init__(self, line: int, reason: str) -> None:
        self.line, self.reason = line, reason
        super().__init__(f"line {line}: {reason}")


class QueryError(CairnError):
    """A search query is malformed; ``position`` is the 0-based offset of the problem."""

    def __init__(self, query: str, position: int, expected: str) -> None:
        self.query, self.position, self.expected = query, position, expected
        pointer = " " * position + "^"
        super().__init__(f"bad query at position {position}: expected {expected}\n"
                         f"  {query}\n  {pointer}")


class MovError(CairnError):
    """A measured-organisational-value definition or measurement is not acceptable."""

    def __init__(self, name: str, reason: str, defined: Sequence[str] = ()) -> None:
        self.name, self.reason, self.defined = name, reason, list(defined)
        known = f" (defined: {', '.join(self.defined)})" if self.defined else ""
        super().__init__(f"MoV {name!r}: {reason}{known}")


class DuplicateRunError(CairnError):
    """The workspace refuses exact duplicates and this run was already done."""

    def __init__(self, fingerprint: str, previous: Sequence[str]) -> None:
        self.fingerprint, self.previous = fingerprint, list(previous)
        super().__init__(
            f"this exact experiment (fingerprint {fingerprint[:12]}) was already run: "
            f"{'; '.join(self.previous)}. Change code, data or params, or set "
            "runs.on_duplicate = 'warn' in the workspace configuration"
        )


class SpoolError(CairnError):
    """A spool file (metrics kept while the store was unreachable) cannot be delivered as it
    is; ``line`` is 1-based, 0 when the problem is the file as a whole."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        self.path, self.line, self.reason = path, line, reason
        where = f"{path}:{line}" if line else path
        super().__init__(f"spool file {where}: {reason}")
