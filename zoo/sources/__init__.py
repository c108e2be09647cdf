"""Model sources, and the kit for writing one: the :class:`Source` protocol and
:func:`suggest`.

The built-in sources are :mod:`zoo.sources.timm` and :mod:`zoo.sources.tfhub`; the zoo's
source table imports them. A package above the zoo adds its own through the
``cairn.zoo_sources`` entry point group (name: the ``name:`` prefix of its models; value:
``module:Class``), the way the catalog adds ``catalog:``::

    [project.entry-points."cairn.zoo_sources"]
    catalog = "catalog._source:CatalogSource"

A source module imports only this kit and the zoo's public names, never the source table,
and imports its framework on first use, so listing sources stays cheap.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from zoo._info import Framework, ModelInfo

__all__ = ["Framework", "Source", "suggest"]


class Source(Protocol):
    """What a model source offers. Sources import their framework lazily."""

    def list(self, query: str | None = None) -> Iterable[ModelInfo]:
        """Entries whose name matches ``query`` (a substring or a glob), without counts."""
        ...

    def info(self, name: str) -> ModelInfo:
        """Everything about one model, its parameter count included."""
        ...

    def create(self, name: str, num_classes: int, pretrained: bool = True,
               weights: str | None = None) -> Any:
        """The model with a ``num_classes`` head and ``cairn_info`` set."""
        ...

    def framework(self, name: str) -> Framework:
        """What ``create(name, ...)`` returns, answered cheaply (no framework import)."""
        ...


def suggest(name: str, candidates: Sequence[str], n: int = 5) -> list[str]:
    """Close names: those that start with ``name`` (shortest first), then difflib's."""
    lowered = name.lower()
    starts = sorted((c for c in candidates if c.lower().startswith(lowered)), key=len)
    close = difflib.get_close_matches(lowered, candidates, n=n, cutoff=0.6)
    return list(dict.fromkeys([*starts[:n], *close]))[:n]
