"""What makes two runs "the same experiment": code, normalised params, data versions.

Pure functions of a run's record; no database. ``fingerprint`` is exact (a sha256);
``model_family`` and ``data_key`` are the coarse keys similarity search starts from.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from registry._params import ParamValue

__all__ = ["data_key", "fingerprint", "model_family", "normalise_params"]

# Param names (last dotted part) that name the architecture being trained.
_MODEL_KEYS = ("backbone", "arch", "architecture", "model", "model_name", "network", "net")
_LETTERS = re.compile(r"[a-z]+")


def normalise_params(params: Mapping[str, ParamValue], ignore: Iterable[str] = ()) -> dict:
    """Canonical text per param: 1, 1.0 and True-as-number differ only where types differ."""
    skip = set(ignore)
    return {k: _canonical(p) for k, p in sorted(params.items()) if k not in skip}


def _canonical(p: ParamValue) -> str:
    if p.vtype in ("int", "float") and p.number is not None:
        number = p.number
        return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)
    return f"{p.vtype}:{p.text}"


def fingerprint(code: Mapping[str, Any], params: Mapping[str, ParamValue],
                data: Iterable[tuple[str, str | None, str]], ignore: Iterable[str] = ()) -> str:
    """sha256 of code commit (+ dirty diff), normalised params and data hashes.

    ``data`` holds (role, hash, path) triples; untracked data counts by path. Without git
    the entry point stands in for the commit, which is weaker and said so in the key.
    """
    code_part = (
        {"commit": code.get("commit"), "diff": code.get("diff_sha256")}
        if code.get("commit") else {"no_git": code.get("entry_point")}
    )
    doc = {
        "code": code_part,
        "params": normalise_params(params, ignore),
        "data": _data_part(data),
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def _data_part(data: Iterable[tuple[str, str | None, str]]) -> list[list[str]]:
    """(role, version) pairs. A DVC stage dependency (role ``dep``) that the script also
    declares under a role of its own counts once, under that role: the same experiment run
    inside ``dvc repro`` and by hand gets the same fingerprint."""
    entries = {(role, h or f"path:{path}") for role, h, path in data}
    named = {version for role, version in entries if role != "dep"}
    return sorted([role, version] for role, version in entries
                  if role != "dep" or version not in named)


def data_key(hashes: Iterable[str | None]) -> str | None:
    """A digest of the set of DVC hashes a run used, or None when it used no tracked data."""
    known = sorted({h for h in hashes if h})
    if not known:
        return None
    return hashlib.sha256("\n".join(known).encode()).hexdigest()[:32]


def model_family(params: Mapping[str, Any]) -> str | None:
    """The architecture family named by the params: ``resnet50.a1_in1k`` -> ``resnet``."""
    for key, value in sorted(params.items(), key=lambda kv: kv[0].count(".")):
        last = key.rsplit(".", 1)[-1].lower()
        parent = key.rsplit(".", 2)[-2].lower() if "." in key else ""
        named = last in _MODEL_KEYS or (parent in _MODEL_KEYS and last in ("name", "id"))
        if named and isinstance(value, str) and value.strip():
            return _family(value)
    return None


def _family(name: str) -> str | None:
    name = name.strip().lower().removeprefix("tfhub:").removeprefix("catalog:")
    parts = [p for p in re.split(r"[/\\]", name) if _LETTERS.match(p)]
    if not parts:
        return None
    core = max(parts, key=len) if "://" in name or len(parts) > 1 else parts[0]
    match = _LETTERS.match(core)
    return match.group() if match else None


def param_similarity(a: ParamValue | None, b: ParamValue | None) -> float:
    """1 for equal values, 0 for unrelated ones; numbers by their ratio (10x apart -> 0)."""
    if a is None or b is None:
        return 0.0
    if a == b:
        return 1.0
    if a.number is not None and b.number is not None and a.vtype != "bool":
        x, y = a.number, b.number
        if x == y:
            return 1.0
        if x > 0 and y > 0:
            return max(0.0, 1.0 - abs(math.log10(x / y)))
        return max(0.0, 1.0 - abs(x - y) / max(abs(x), abs(y)))
    return 1.0 if (a.vtype, a.text) == (b.vtype, b.text) else 0.0
