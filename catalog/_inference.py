"""A card's ``inference:`` list: the profiles ``cairn zoo profile`` measured, written into
the card's front matter, and the figures search filters on.

    inference:
    - runtime: onnxruntime
      precision: int8
      hardware: AMD EPYC 7B13
      threads: 2
      batch: 1
      latency_ms: {p50: 3.1, p90: 3.3, p99: 4.0}
      throughput: 322.6
      accuracy: 0.947
      accuracy_delta: -0.004

Search (``latency_ms < 10 and accuracy >= 0.9``) reads three numbers of a card:
``latency_ms``, its best p50 at batch 1; ``throughput``, its best images/s; ``accuracy``, its
model-index accuracy (else its best fp32 profile's).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from catalog._card import ModelCard, parse_card
from catalog._schema import check_card
from catalog.errors import CardInvalidError, CatalogError

__all__ = ["MEASURES", "card_measures", "matches", "profile_target", "split_conditions",
           "write_inference"]

MEASURES = ("latency_ms", "throughput", "accuracy")
_SAME = ("runtime", "precision", "hardware", "threads", "batch")  # a re-profile replaces
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "=": operator.eq, "==": operator.eq, "!=": operator.ne}
_CONDITION = re.compile(
    rf"(?:\band\s+)?\b({'|'.join(MEASURES)})\s*(<=|>=|==|!=|<|>|=)\s*"
    r"(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)(?:\s+and\b)?", re.IGNORECASE)

Condition = tuple[str, str, float]


def split_conditions(query: str) -> tuple[str, list[Condition]]:
    """The query without its numeric conditions (``latency_ms < 10``), and those conditions
    (``and`` between them is dropped)."""
    found = [(m.group(1).lower(), m.group(2), float(m.group(3)))
             for m in _CONDITION.finditer(query)]
    return _CONDITION.sub(" ", query), found


def matches(values: dict[str, float | None], conditions: Sequence[Condition]) -> bool:
    """Whether a card's measures meet every condition (a card without one meets none)."""
    return all(values.get(name) is not None and _OPS[op](values[name], bound)
               for name, op, bound in conditions)


def card_measures(card: ModelCard) -> dict[str, float | None]:
    """The card's ``latency_ms``, ``throughput`` and ``accuracy`` (see the module doc)."""
    entries = _entries(card.front_matter.get("inference"))
    p50 = [_number((e.get("latency_ms") or {}).get("p50")) for e in entries
           if e.get("batch") == 1 and isinstance(e.get("latency_ms"), dict)]
    speeds = [_number(e.get("throughput")) for e in entries]
    fp32 = [_number(e.get("accuracy")) for e in entries if e.get("precision") == "fp32"]
    return {"latency_ms": _best(p50, min), "throughput": _best(speeds, max),
            "accuracy": _index_accuracy(card) or _best(fp32, max)}


def _entries(value: Any) -> list[dict[str, Any]]:
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok else None


def _best(values: list[float | None], pick: Callable) -> float | None:
    found = [v for v in values if v is not None]
    return pick(found) if found else None


def _index_accuracy(card: ModelCard) -> float | None:
    for result in _entries(card.front_matter.get("model-index")):
        for item in _entries(result.get("results")):
            for metric in _entries(item.get("metrics")):
                if str(metric.get("type", "")).lower() == "accuracy":
                    try:
                        return float(metric.get("value"))
                    except (TypeError, ValueError):
                        return None
    return None


def profile_target(card: ModelCard) -> dict[str, Any]:
    """What the zoo's profiler needs of a card: its ref, labels, input spec, runs and the
    digest of its weights."""
    return {"ref": card.ref, "labels": list(card.labels), "input": dict(card.input),
            "runs": list(card.runs), "sha256": str(card.weights.get("sha256") or card.ref),
            "path": str(card.path or "")}


def write_inference(card: ModelCard, entries: list[dict[str, Any]]) -> Path:
    """Merge ``entries`` into the card file's ``inference:`` list (an entry of the same
    runtime, precision, hardware, threads and batch is replaced) and rewrite only that
    block of the front matter. CardInvalidError when the result breaks the schema."""
    if card.path is None:
        raise CatalogError(f"{card.ref}: the card has no file to write the profile into")
    merged = _merge(_entries(card.front_matter.get("inference")), entries)
    text = _replace_block(card.path.read_text(encoding="utf-8"), "inference", merged)
    problems = [p for p in check_card(parse_card(text, str(card.path)))
                if p.severity == "error" and (p.field or "").startswith("inference")]
    if problems:
        raise CardInvalidError(str(card.path), problems)
    card.path.write_text(text, encoding="utf-8")
    return card.path


def _merge(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(entry: dict[str, Any]) -> tuple:
        return tuple(str(entry.get(k)) for k in _SAME)

    fresh = {key(e) for e in new}
    return [e for e in old if key(e) not in fresh] + list(new)


def _replace_block(text: str, key: str, value: Any) -> str:
    """``text`` (a card) with the front matter's top-level ``key`` set to ``value``; every
    other line, comments included, kept as it was."""
    import yaml

    lines = text.replace("\r\n", "\n").split("\n")
    close = next((i for i, line in enumerate(lines[1:], 1) if line.rstrip() in ("---", "...")),
                 None)
    if lines[0].rstrip() != "---" or close is None:
        raise CatalogError("a card starts with YAML front matter between '---' lines")
    block = yaml.safe_dump({key: value}, sort_keys=False, allow_unicode=True,
                           width=100).rstrip("\n").split("\n")
    start = next((i for i in range(1, close) if re.match(rf"{re.escape(key)}\s*:", lines[i])),
                 None)
    if start is None:
        return "\n".join(lines[:close] + block + lines[close:])
    end = next((i for i in range(start + 1, close) if re.match(r"[^\s#-]", lines[i])), close)
    return "\n".join(lines[:start] + block + lines[end:])
