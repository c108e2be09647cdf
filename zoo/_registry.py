"""The zoo's model sources, filled by a decorator (like timm's ``@register_model``).

A source is an object with ``list(query)``, ``info(name)`` and ``create(name, num_classes,
pretrained, weights)``. Names route by prefix: ``tfhub:...`` to the tfhub source,
``catalog:...`` to the catalog source, everything else to timm.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from zoo._info import ModelInfo
from zoo.errors import UnknownSourceError

__all__ = [
    "DEFAULT_SOURCE",
    "Source",
    "get_source",
    "register_source",
    "resolve",
    "source_names",
    "suggest",
]

DEFAULT_SOURCE = "timm"
PREFIXED = ("tfhub", "catalog")  # sources named by a ``source:`` prefix
_SOURCES: dict[str, Source] = {}
_loaded = False

T = TypeVar("T")


class Source(Protocol):
    """What a model source offers. Sources import their framework lazily."""

    def list(self, query: str | None = None) -> Iterable[ModelInfo]: ...

    def info(self, name: str) -> ModelInfo: ...

    def create(self, name: str, num_classes: int, pretrained: bool = True,
               weights: str | None = None) -> Any: ...


def register_source(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: register one instance of the class as source ``name``."""

    def decorate(cls: type[T]) -> type[T]:
        _SOURCES[name] = cls()  # type: ignore[assignment]
        return cls

    return decorate


def _load_builtin() -> None:
    """Import the built-in source modules (cheap: they import their frameworks lazily)."""
    global _loaded
    if not _loaded:
        importlib.import_module("zoo.sources")
        _loaded = True


def source_names() -> list[str]:
    """Registered sources, the default first."""
    _load_builtin()
    return sorted(_SOURCES, key=lambda s: (s != DEFAULT_SOURCE, s))


def get_source(name: str) -> Source:
    """The source registered as ``name``, or UnknownSourceError."""
    _load_builtin()
    try:
        return _SOURCES[name]
    except KeyError:
        raise UnknownSourceError(name, source_names()) from None


def resolve(name: str) -> tuple[Source, str]:
    """Split a model name into its source and the name that source knows it by."""
    prefix, sep, rest = name.partition(":")
    if sep and (prefix in PREFIXED or prefix in source_names()):
        return get_source(prefix), rest
    return get_source(DEFAULT_SOURCE), name


def suggest(name: str, candidates: Sequence[str], n: int = 5) -> list[str]:
    """Close names: those that start with ``name`` (shortest first), then difflib's."""
    lowered = name.lower()
    starts = sorted((c for c in candidates if c.lower().startswith(lowered)), key=len)
    close = difflib.get_close_matches(lowered, candidates, n=n, cutoff=0.6)
    return list(dict.fromkeys([*starts[:n], *close]))[:n]
