"""The zoo's source table: which source serves a model name.

Names route by prefix: ``tfhub:...`` to the TF Hub source, ``NAME:...`` to the source
registered as ``NAME``, anything else (timm's own ``hf-hub:`` names included) to timm, the
default. The built-in sources are imported here. Sources of packages above the zoo come from
the ``cairn.zoo_sources`` entry point group and are loaded only when a name with their prefix
is resolved or every source is listed; :func:`register_source` adds one from code.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import TypeVar

from zoo.errors import SourceUnavailableError, UnknownSourceError
from zoo.sources import Source
from zoo.sources.tfhub import TfHubSource
from zoo.sources.timm import PREFIXES as TIMM_PREFIXES
from zoo.sources.timm import TimmSource

__all__ = ["DEFAULT_SOURCE", "GROUP", "get_source", "is_plugin", "register_source", "resolve",
           "source_names"]

GROUP = "cairn.zoo_sources"
DEFAULT_SOURCE = "timm"
_SOURCES: dict[str, Source] = {"timm": TimmSource(), "tfhub": TfHubSource()}

T = TypeVar("T")


def register_source(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: register one instance of the class as source ``name`` (it takes the
    place of any source of that name, a plugin's included)."""

    def decorate(cls: type[T]) -> type[T]:
        _SOURCES[name] = cls()  # type: ignore[assignment]
        return cls

    return decorate


def source_names() -> list[str]:
    """Every source, plugins loaded (one that cannot load warns), the default first."""
    for name in _plugins():
        try:
            get_source(name)
        except SourceUnavailableError as exc:
            warnings.warn(str(exc), stacklevel=2)
    return sorted(_SOURCES, key=lambda s: (s != DEFAULT_SOURCE, s))


def is_plugin(name: str) -> bool:
    """Whether source ``name`` comes from another package's ``cairn.zoo_sources`` entry."""
    return name in _plugins()


def get_source(name: str) -> Source:
    """The source registered as ``name`` (loading its plugin), or UnknownSourceError."""
    source = _SOURCES.get(name) or _load_plugin(name)
    if source is None:
        raise UnknownSourceError(name, source_names())
    return source


def resolve(name: str) -> tuple[Source, str]:
    """Split a model name into its source and the name that source knows it by."""
    prefix, sep, rest = name.partition(":")
    if not sep or prefix in TIMM_PREFIXES:
        return get_source(DEFAULT_SOURCE), name
    return get_source(prefix), rest


def _plugins() -> dict[str, EntryPoint]:
    """The ``cairn.zoo_sources`` entry points by name (nothing imported)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def _load_plugin(name: str) -> Source | None:
    """Import plugin source ``name`` into the table; None when no package declares it."""
    entry = _plugins().get(name)
    if entry is None:
        return None
    try:
        found = entry.load()
    except ImportError as exc:
        raise SourceUnavailableError(name, exc.name or entry.value) from exc
    return _SOURCES.setdefault(name, found() if isinstance(found, type) else found)
