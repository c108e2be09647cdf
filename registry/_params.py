"""Hyperparameters: flatten nested configs to dotted keys and type each value.

Numbers stay numbers (so ``params.lr < 1e-3`` is a range query); everything else is text
with its type remembered, so a round trip gives back what was logged.

Documented coercions: tuples and lists of scalars are stored as JSON text (type ``json``);
``pathlib.Path`` and enums are stored as their string / value; numpy and torch scalars as
Python numbers; text that is not valid UTF-8 (lone surrogates) is stored with the bad
characters replaced by ``\\ufffd``, and the caller records a warning. Refused with ParamError:
text holding NUL (PostgreSQL cannot store it), and two keys of one call that flatten to the
same name (``{"a.b": 1, "a": {"b": 2}}``).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from registry.errors import ParamError
from registry.text import is_utf8, to_utf8

__all__ = ["MAX_KEY_LENGTH", "MAX_VALUE_LENGTH", "ParamValue", "flatten_params", "typed_value"]

MAX_KEY_LENGTH = 250
MAX_VALUE_LENGTH = 64 * 1024
_SCALARS = (str, int, float, bool, type(None))


class ParamValue(NamedTuple):
    """One typed hyperparameter as stored: ``vtype`` is int, float, bool, str, null or json."""

    vtype: str
    text: str | None
    number: float | None

    def value(self) -> Any:
        """The Python value this row stands for."""
        return _DECODE[self.vtype](self)


_DECODE = {
    "int": lambda p: int(p.text),
    "float": lambda p: float(p.text),
    "bool": lambda p: p.text == "true",
    "str": lambda p: p.text,
    "null": lambda p: None,
    "json": lambda p: json.loads(p.text),
}


def flatten_params(params: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a nested config (dicts, dataclasses, argparse namespaces) to dotted keys."""
    flat: dict[str, Any] = {}
    for key, value in _as_mapping(params, prefix or "params").items():
        if not isinstance(key, str):
            key = str(key)
        name = f"{prefix}.{key}" if prefix else key
        items = flatten_params(value, name).items() if _is_nested(value) else [(name, value)]
        for flat_key, flat_value in items:
            if flat_key in flat:  # {"a.b": 1, "a": {"b": 2}}, or keys 1 and "1"
                raise ParamError(flat_key, flat_value, "given twice in one call (a dotted key "
                                 "and a nested one, or a number and its text)")
            flat[flat_key] = flat_value
    return flat


def typed_value(key: str, value: Any) -> tuple[ParamValue, list[str]]:
    """Type one flat value for storage; raise ParamError when it cannot be recorded."""
    _check_key(key)
    warnings: list[str] = []
    value = _unwrap(value)
    if value is None:
        return ParamValue("null", None, None), warnings
    if isinstance(value, bool):
        return ParamValue("bool", "true" if value else "false", float(value)), warnings
    if isinstance(value, int):
        return ParamValue("int", str(value), _as_number(value)), warnings
    if isinstance(value, float):
        number = value if math.isfinite(value) else None
        return ParamValue("float", repr(value), number), warnings
    if isinstance(value, str):
        return ParamValue("str", _clean_text(key, value, warnings), None), warnings
    if isinstance(value, (list, tuple)) and all(isinstance(_unwrap(v), _SCALARS) for v in value):
        text = json.dumps([_unwrap(v) for v in value], allow_nan=True)
        return ParamValue("json", _clean_text(key, text, warnings), None), warnings
    raise ParamError(key, value, f"cannot record a {type(value).__name__}; use numbers, text, "
                     "booleans, None, or lists of those")


def _as_mapping(params: Any, where: str) -> Mapping[Any, Any]:
    if isinstance(params, Mapping):
        return params
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    if hasattr(params, "model_dump"):  # pydantic
        return params.model_dump()
    if hasattr(params, "__dict__") and type(params).__name__ == "Namespace":  # argparse
        return vars(params)
    raise ParamError(where, params, f"expected a mapping of params, got {type(params).__name__}")


def _is_nested(value: Any) -> bool:
    return isinstance(value, Mapping) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    )


def _unwrap(value: Any) -> Any:
    """Turn numpy/torch scalars, paths and enums into plain Python values."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not isinstance(value, _SCALARS) and hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (TypeError, ValueError, RuntimeError):
            return value
    return value


def _as_number(value: int) -> float | None:
    try:
        return float(value)
    except OverflowError:
        return None


def _check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ParamError(key, None, f"keys must be 1 to {MAX_KEY_LENGTH} characters")
    if not key.isprintable() or not is_utf8(key):
        raise ParamError(key, None, "keys must be printable, valid UTF-8 text")


def _clean_text(key: str, text: str, warnings: list[str]) -> str:
    if "\x00" in text:  # PostgreSQL cannot store it; refused alike on every dialect
        raise ParamError(key, text[:80], "text cannot hold NUL characters")
    if len(text) > MAX_VALUE_LENGTH:
        raise ParamError(key, text[:80] + "...", f"value is {len(text):,} characters, more than "
                         f"{MAX_VALUE_LENGTH:,}: log it as an artifact instead")
    text, replaced = to_utf8(text)
    if replaced:
        warnings.append(f"param {key!r} held text that is not valid UTF-8; bad characters "
                        "were replaced by U+FFFD")
    return text
