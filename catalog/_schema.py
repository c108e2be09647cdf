"""The card schema, declared as data: Hugging Face's model card metadata plus Cairn's fields.

:func:`check_card` reports every problem of one model card with the line it is on: unknown
fields, wrong types, bad values, missing body sections and the places a person still has to
write; :func:`check_fields` and :func:`check_body` do the same for any schema (dataset cards:
:mod:`catalog._dataset_schema`). A card's ``kind`` (:func:`card_kind`) says which schema it
follows. Checks against the outside world (runs, weights files) live in :mod:`catalog._checks`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from catalog._card import ModelCard

__all__ = [
    "FIELDS",
    "KINDS",
    "PLACEHOLDER",
    "SECTIONS",
    "STATUSES",
    "CardProblem",
    "Spec",
    "card_kind",
    "check_body",
    "check_card",
    "check_fields",
]

KINDS = ("model", "dataset")  # a card without `kind` is a model card
STATUSES = ("draft", "reviewed", "deprecated")
PLACEHOLDER = "TODO(cairn)"  # marks what only a person can write; drafts are full of it
SECTIONS = ("What it does", "Data", "Training", "Evaluation", "How to reuse", "Limitations")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,49}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class CardProblem:
    """One thing wrong with a card: where (file, line, field) and what."""

    path: str
    line: int | None
    field: str | None
    message: str
    severity: str = "error"  # or "warning": reported, but validation still passes

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        what = f"{self.field}: " if self.field else ""
        return f"{where}: {self.severity}: {what}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Spec:
    """What one field holds. ``kind``: text, int, number, bool, any, list, map, or one of
    several (``kinds``); ``check`` adds a value rule returning a message or None."""

    kind: str = "text"
    required: bool = False
    item: Spec | None = None
    fields: Mapping[str, Spec] | None = None
    kinds: tuple[Spec, ...] = ()
    choices: tuple[str, ...] = ()
    check: Callable[[Any], str | None] | None = None
    doc: str = ""


def _pattern(regex: re.Pattern[str], what: str) -> Callable[[Any], str | None]:
    return lambda v: None if regex.match(str(v)) else f"{what}, not {str(v)[:80]!r}"


def _positive(v: Any) -> str | None:
    return None if v > 0 else f"must be positive, not {v}"


def _unique(v: list[Any]) -> str | None:
    dupes = sorted({str(x) for x in v if v.count(x) > 1})
    return f"holds duplicates: {', '.join(dupes)}" if dupes else None


def _non_empty(v: list[Any]) -> str | None:
    return None if v else "must not be empty"


TEXT = Spec("text")
TEXTS = Spec("list", item=TEXT)
TEXT_OR_TEXTS = Spec("one_of", kinds=(TEXT, TEXTS))
NUMBER = Spec("number")
POSITIVE_INT = Spec("int", check=_positive)

_METRIC = Spec("map", fields={
    "type": Spec(required=True), "value": Spec("one_of", required=True, kinds=(NUMBER, TEXT)),
    "name": TEXT, "config": TEXT, "args": Spec("any"), "verified": Spec("bool"),
    "verifyToken": TEXT})
_RESULT = Spec("map", fields={
    "task": Spec("map", required=True, fields={"type": Spec(required=True), "name": TEXT}),
    "dataset": Spec("map", fields={"type": Spec(required=True), "name": TEXT, "config": TEXT,
                                   "split": TEXT, "revision": TEXT, "args": Spec("any")}),
    "metrics": Spec("list", required=True, item=_METRIC),
    "source": Spec("map", fields={"name": TEXT, "url": TEXT})})
_MODEL_INDEX = Spec("list", item=Spec("map", fields={
    "name": Spec(required=True), "results": Spec("list", required=True, item=_RESULT)}))

def _non_negative(v: Any) -> str | None:
    return None if v >= 0 else f"must not be negative, not {v}"


# One profile of `cairn zoo profile` (catalog._inference); Hugging Face's own `inference`
# (true/false, or widget parameters) stays valid beside it.
_PROFILE = Spec("map", fields={
    "runtime": Spec(required=True), "runtime_version": TEXT,
    "precision": Spec(required=True, choices=("fp32", "fp16", "int8")),
    "hardware": Spec(required=True), "threads": POSITIVE_INT,
    "batch": Spec("int", required=True, check=_positive),
    "latency_ms": Spec("map", required=True, fields={
        q: Spec("number", required=True, check=_non_negative) for q in ("p50", "p90", "p99")}),
    "throughput": Spec("number", check=_positive),
    "accuracy": Spec("number", check=lambda v: None if 0 <= v <= 1 else
                     f"must be a fraction in [0, 1], not {v}"),
    "accuracy_delta": NUMBER, "peak_memory_mb": Spec("number", check=_non_negative),
    "file_mb": Spec("number", check=_non_negative), "measured": TEXT, "run": TEXT,
    "notes": TEXT})
_INFERENCE = Spec("one_of", kinds=(Spec("bool"), Spec("map"), Spec("list", item=_PROFILE)),
                  doc="profiles measured where the model runs (or Hugging Face's widget flag)")

HF_FIELDS: dict[str, Spec] = {
    "license": Spec(doc="license identifier, e.g. apache-2.0, mit, other"),
    "license_name": TEXT, "license_link": TEXT, "language": TEXT_OR_TEXTS,
    "tags": Spec("list", item=TEXT), "datasets": TEXTS, "metrics": TEXTS,
    "base_model": TEXT_OR_TEXTS,
    "base_model_relation": Spec(choices=("adapter", "merge", "quantized", "finetune")),
    "library_name": TEXT, "pipeline_tag": TEXT, "thumbnail": TEXT, "inference": _INFERENCE,
    "widget": Spec("any"), "co2_eq_emissions": Spec("any"), "new_version": TEXT,
    "model-index": _MODEL_INDEX,
}

CAIRN_FIELDS: dict[str, Spec] = {
    "kind": Spec(choices=KINDS, doc="model (the default) or dataset"),
    "name": Spec(required=True, check=_pattern(NAME, "letters, digits, '.', '_' and '-'")),
    "version": Spec("one_of", required=True, kinds=(Spec("int"), TEXT),
                    check=_pattern(VERSION, "a version such as 1 or 1.2.0")),
    "status": Spec(required=True, choices=STATUSES),
    "project": TEXT, "owner": TEXT, "created": TEXT,
    "runs": Spec("list", item=TEXT, check=_unique),
    "backbone": Spec(required=True, doc="the zoo name the model was built from"),
    "base_weights": Spec("map", doc="the pretrained weights the fine-tune started from",
                         fields={"source": TEXT, "repo": TEXT, "revision": TEXT, "file": TEXT,
                                 "size": Spec("int"), "sha256": Spec(check=_pattern(
                                     SHA256, "64 lower-case hex digits"))}),
    "training_cost": Spec("map", doc="what the training run cost, as it recorded it",
                          fields={"cost": NUMBER, "currency": TEXT, "gpu_hours": NUMBER,
                                  "energy_kwh": NUMBER}),
    "weights": Spec("map", required=True, fields={
        "path": Spec(required=True), "sha256": Spec(required=True, check=_pattern(
            SHA256, "64 lower-case hex digits")), "dvc": TEXT}),
    "input": Spec("map", required=True, fields={
        "size": Spec("one_of", required=True,
                     kinds=(POSITIVE_INT, Spec("list", item=POSITIVE_INT))),
        "mean": Spec("list", required=True, item=NUMBER),
        "std": Spec("list", required=True, item=Spec("number", check=_positive)),
        "labels": Spec("list", required=True, item=TEXT,
                       check=lambda v: _non_empty(v) or _unique(v)),
        "interpolation": Spec(choices=("bilinear", "bicubic", "nearest")),
        "crop_pct": Spec("number", check=lambda v: None if 0 < v <= 1 else
                         f"must be in (0, 1], not {v}")}),
    "mov": Spec("list", item=Spec("map", fields={
        "name": Spec(required=True), "value": Spec("number", required=True), "unit": TEXT,
        "baseline": NUMBER, "target": NUMBER, "evidence": TEXT, "run": TEXT,
        "measured": TEXT})),
    "intended_use": TEXT, "limitations": TEXT,
}

FIELDS: dict[str, Spec] = {**HF_FIELDS, **CAIRN_FIELDS}
_TYPE_NAMES = {"text": "text", "int": "an integer", "number": "a number", "bool": "true or false",
               "list": "a list", "map": "a mapping (key: value lines)"}


def card_kind(card: ModelCard) -> str:
    """``model`` or ``dataset`` (or the unknown kind a card claims: the schema says so)."""
    kind = card.front_matter.get("kind")
    return kind if isinstance(kind, str) and kind else "model"


def check_card(card: ModelCard) -> list[CardProblem]:
    """Every problem of a model card against the model schema, in file order."""
    problems = check_fields(card, FIELDS) + _cross_checks(card) + check_body(card, SECTIONS)
    return sorted(problems, key=lambda p: (p.line or 0, p.field or ""))


def check_fields(card: ModelCard, fields: Mapping[str, Spec]) -> list[CardProblem]:
    """The front matter's problems against ``fields`` (types, values, required, unknown)."""
    found: list[tuple[str, str, str]] = []
    _check(card.front_matter, Spec("map", fields=fields), "", found)
    return [CardProblem(card.location(), card.line_of(key), key or None, message, severity)
            for key, message, severity in found]


def _check(value: Any, spec: Spec, key: str, found: list[tuple[str, str, str]]) -> None:
    kind_error = _kind_error(value, spec)
    if kind_error:
        found.append((key, kind_error, "error"))
        return
    if spec.kind == "one_of":
        if spec.check and (message := spec.check(value)):
            found.append((key, message, "error"))
        chosen = next(s for s in spec.kinds if _kind_error(value, s) is None)
        _check(value, chosen, key, found)
        return
    if spec.choices and value not in spec.choices:
        found.append((key, f"must be one of {', '.join(spec.choices)}, not {value!r}", "error"))
    if spec.check and (message := spec.check(value)):
        found.append((key, message, "error"))
    if spec.kind == "list" and spec.item:
        for i, item in enumerate(value):
            _check(item, spec.item, f"{key}[{i}]", found)
    if spec.kind == "map" and spec.fields is not None:
        _check_map(value, spec.fields, key, found)


def _check_map(value: dict[str, Any], fields: Mapping[str, Spec], key: str,
               found: list[tuple[str, str, str]]) -> None:
    prefix = f"{key}." if key else ""
    for name, child in fields.items():
        if child.required and value.get(name) in (None, "", []):
            found.append((key, f"missing required field {prefix}{name}", "error"))
    for name, item in value.items():
        if name not in fields:
            known = ", ".join(sorted(fields))
            found.append((prefix + name, f"unknown field; known here: {known}", "error"))
        elif item is not None:
            _check(item, fields[name], prefix + name, found)


def _kind_error(value: Any, spec: Spec) -> str | None:
    """Why ``value`` is not of the spec's kind, or None."""
    if value is None or spec.kind == "any":
        return None
    if spec.kind == "one_of":
        if all(_kind_error(value, s) for s in spec.kinds):
            names = " or ".join(_TYPE_NAMES[s.kind] for s in spec.kinds)
            return f"must be {names}, not {_describe(value)}"
        return None
    ok = {
        "text": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool)
        and math.isfinite(value),
        "bool": isinstance(value, bool),
        "list": isinstance(value, list),
        "map": isinstance(value, dict),
    }[spec.kind]
    return None if ok else f"must be {_TYPE_NAMES[spec.kind]}, not {_describe(value)}"


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"text ({value[:40]!r})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    return {list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def _cross_checks(card: ModelCard) -> list[CardProblem]:
    problems = []
    spec = card.input
    mean, std = spec.get("mean"), spec.get("std")
    if isinstance(mean, list) and isinstance(std, list) and len(mean) != len(std):
        problems.append(CardProblem(card.location(), card.line_of("input.std"), "input.std",
                                    f"has {len(std)} values but input.mean has {len(mean)}"))
    size = spec.get("size")
    if isinstance(size, list) and len(size) not in (1, 2):
        problems.append(CardProblem(card.location(), card.line_of("input.size"), "input.size",
                                    "must be one number or [height, width]"))
    weights = card.weights.get("path")
    if isinstance(weights, str) and not weights.endswith(".safetensors"):
        problems.append(CardProblem(card.location(), card.line_of("weights.path"),
                                    "weights.path", "weights must be a .safetensors file "
                                    "(pickled checkpoints can run code when loaded)"))
    return problems


def check_body(card: ModelCard, sections: tuple[str, ...]) -> list[CardProblem]:
    """Missing sections and unwritten placeholders (in the body, or any front-matter text):
    errors on reviewed cards, warnings on drafts (a draft is expected to have them)."""
    severity = "error" if card.status == "reviewed" else "warning"
    where, problems = card.location(), []
    present = card.sections()
    for title in sections:
        if title.lower() not in present:
            problems.append(CardProblem(where, card.body_line, None,
                                        f"the body has no '## {title}' section", severity))
    for number, line in enumerate(card.body.splitlines(), start=card.body_line):
        if PLACEHOLDER in line:
            problems.append(CardProblem(where, number, None,
                                        f"still to be written ({PLACEHOLDER})", severity))
    for key in _placeholders(card.front_matter, ""):
        problems.append(CardProblem(where, card.line_of(key), key,
                                    f"still to be written ({PLACEHOLDER})", severity))
    return problems


def _placeholders(value: Any, key: str) -> list[str]:
    """Key paths of the front-matter texts holding the placeholder, at any depth."""
    if isinstance(value, str):
        return [key] if PLACEHOLDER in value else []
    if isinstance(value, dict):
        return [k for name, v in value.items()
                for k in _placeholders(v, f"{key}.{name}" if key else name)]
    if isinstance(value, list):
        return [k for i, v in enumerate(value) for k in _placeholders(v, f"{key}[{i}]")]
    return []
