"""How a registry run reads in MLflow's vocabulary, and back. No MLflow import here.

Documented coercions, all undone on import:

- Names MLflow refuses (characters outside ``[/\\w.\\- :]``, paths that are not normal) get
  each bad character replaced by ``_``; the original names travel in the tag ``cairn.renamed``.
- Params are text in MLflow. Types that the text does not say by itself (the text ``"32"`` of a
  ``str`` param, say) travel in ``cairn.param_types``; the rest are inferred on import.
- Infinite metric values come back from MLflow's SQL store as +/-1.797e308 (its clamp): the
  import reads those as infinities. Times are kept to the millisecond, MLflow's resolution.
- Param and tag text longer than MLflow's limits is cut; cut params are named in
  ``cairn.truncated``.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "BRIDGE_TAGS",
    "EXPORT_STATUS",
    "KeyMap",
    "export_status",
    "flatten",
    "from_ms",
    "infer_type",
    "is_bridge_tag",
    "join_json_tags",
    "split_json_tag",
    "to_ms",
    "value_from_mlflow",
]

MAX_PARAM = 6000
MAX_TAG = 8000
MAX_KEY = 250
_BAD = re.compile(r"[^/\w.\- :]")
_INT = re.compile(r"-?[1-9]\d*|0")

# MLflow's own tags that the bridge reads and writes (mlflow/utils/mlflow_tags.py).
USER, NOTE, RUN_NAME = "mlflow.user", "mlflow.note.content", "mlflow.runName"
PARENT = "mlflow.parentRunId"
GIT_COMMIT, GIT_BRANCH = "mlflow.source.git.commit", "mlflow.source.git.branch"
GIT_REPO, SOURCE_NAME, SOURCE_TYPE = ("mlflow.source.git.repoURL", "mlflow.source.name",
                                      "mlflow.source.type")
RUN_ID, CRASHED, PARAM_TYPES, RENAMED, TRUNCATED, MODEL = (
    "cairn.run_id", "cairn.status", "cairn.param_types", "cairn.renamed", "cairn.truncated",
    "cairn.model")
# A registry tag of imported runs: MLflow's text of the params whose registry text differs
# ("True" is the bool true), as JSON, so an export gives MLflow back its own spelling.
PARAM_TEXT = "cairn.mlflow.param_text"
# Tags the bridge owns (exact names, or prefixes ending in "."); every other tag is the user's.
BRIDGE_TAGS = (RUN_ID, CRASHED, PARAM_TYPES, RENAMED, TRUNCATED, MODEL, PARAM_TEXT, "cairn.code.",
               "cairn.command", "cairn.host", "cairn.question", "cairn.conclusion",
               "cairn.hardware.", "cairn.mov.")
EXPORT_STATUS = {"RUNNING": "RUNNING", "FINISHED": "FINISHED", "FAILED": "FAILED",
                 "KILLED": "KILLED", "CRASHED": "FAILED"}
IMPORT_STATUS = {"RUNNING": "RUNNING", "SCHEDULED": "RUNNING", "FINISHED": "FINISHED",
                 "FAILED": "FAILED", "KILLED": "KILLED"}


def is_bridge_tag(key: str) -> bool:
    """True for tags MLflow or the bridge wrote, which are not the user's own."""
    if key.startswith("mlflow."):
        return True
    return any(key == t or (t.endswith(".") and key.startswith(t)) or
               (key.startswith(t + ".") and t in (PARAM_TYPES, RENAMED, TRUNCATED))
               for t in BRIDGE_TAGS)


def export_status(status: str) -> str:
    return EXPORT_STATUS[status]


def to_ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def from_ms(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def value_from_mlflow(value: float) -> float:
    """Undo MLflow's clamp of infinities to the largest float."""
    if value == sys.float_info.max:
        return math.inf
    if value == -sys.float_info.max:
        return -math.inf
    return value


class KeyMap:
    """Names made acceptable to MLflow, remembering the originals that had to change."""

    def __init__(self) -> None:
        self.renamed: dict[str, str] = {}
        self._used: set[str] = set()

    def __call__(self, key: str) -> str:
        safe = base = safe_key(key)
        n = 2
        while safe in self._used:
            safe, n = f"{base[:MAX_KEY - 8]}_{n}", n + 1
        if safe != key:
            self.renamed[safe] = key
        self._used.add(safe)
        return safe


def safe_key(key: str) -> str:
    """``key`` with the characters MLflow refuses replaced, and as a normal relative path."""
    safe = _BAD.sub("_", key)[:MAX_KEY]
    parts = [p if p not in ("", ".", "..") else "_" for p in safe.split("/")]
    return "/".join(parts) or "_"


# -- params ---------------------------------------------------------------------------------


def param_text(vtype: str, text: str | None) -> str:
    """The registry's text of a typed param as MLflow shows it (null as ``None``)."""
    return "None" if vtype == "null" else str(text)


def infer_type(text: str) -> tuple[str, str | None]:
    """(type, registry text) a param's MLflow text stands for when nothing says otherwise."""
    if _INT.fullmatch(text):
        return "int", text
    if text in ("true", "false", "True", "False"):
        return "bool", text.lower()
    if text == "None":
        return "null", None
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None and repr(number) == text:
        return "float", text
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            items = None
        if isinstance(items, list) and all(not isinstance(i, (dict, list)) for i in items):
            return "json", text
    return "str", text


def typed_param(text: str, vtype: str | None) -> dict[str, Any]:
    """The transfer format's ``{"type", "text"}`` of an MLflow param."""
    if vtype is None:
        vtype, value = infer_type(text)
    else:
        value = None if vtype == "null" else text
    return {"type": vtype, "text": value}


# -- JSON in tags ---------------------------------------------------------------------------


def split_json_tag(key: str, value: Any) -> dict[str, str]:
    """A JSON value as one tag, or as ``key``, ``key.1``, ... when longer than a tag holds."""
    if not value:
        return {}
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    parts = [text[i:i + MAX_TAG] for i in range(0, len(text), MAX_TAG)]
    return {(key if n == 0 else f"{key}.{n}"): part for n, part in enumerate(parts)}


def join_json_tags(tags: Mapping[str, str], key: str) -> Any:
    """Inverse of :func:`split_json_tag`; None when the tag is absent or unreadable."""
    if key not in tags:
        return None
    parts, n = [tags[key]], 1
    while f"{key}.{n}" in tags:
        parts.append(tags[f"{key}.{n}"])
        n += 1
    try:
        return json.loads("".join(parts))
    except ValueError:
        return None


def flatten(data: Any, prefix: str) -> Iterable[tuple[str, str]]:
    """Nested dicts and lists as (dotted key, text) pairs, for hardware tags."""
    if isinstance(data, Mapping):
        for k, v in data.items():
            yield from flatten(v, f"{prefix}.{k}")
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from flatten(v, f"{prefix}.{i}")
    elif data is not None:
        yield prefix, str(data)
