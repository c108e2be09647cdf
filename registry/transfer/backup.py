"""Runs to and from JSON lines: one run per line with everything recorded; lossless.

Non-finite metric values are written as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` (plain JSON has no such numbers). Params keep their type. Artifacts are
exported as references (name, sha256, size, uri); the blobs stay in the artifact store.
The similarity keys (``model_family``, ``data_key``) travel as they were recorded; an export
without them (older files) gets them derived from its params and data again on import.
Projects and their MoV definitions and measurements travel in lines of their own
(``cairn.project/1``, ``cairn.mov/1``: see :mod:`registry.transfer._mov`), applied after the
file's runs. MLflow links and indexed model cards are not exported.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from registry._fingerprint import data_key, model_family
from registry._history import Summary, split
from registry._params import ParamValue
from registry.artifacts import check_sha256, clean_name
from registry.entities import DatasetUse, MetricSummary
from registry.errors import CairnError, ImportFormatError, StoreError
from registry.store import SqlStore
from registry.store import backup as rows
from registry.transfer._mov import FORMATS, MOV_FORMAT, PROJECT_FORMAT, MovImport, import_mov
from registry.transfer._mov import export_mov as export_mov

__all__ = ["FORMAT", "MOV_FORMAT", "PROJECT_FORMAT", "ImportResult", "MovImport", "export_mov",
           "export_runs", "import_runs"]

FORMAT = "cairn.run/1"
_RUN_FIELDS = ("id", "name", "owner", "start_time", "end_time", "heartbeat_time",
               "heartbeat_interval", "question", "notes", "conclusion", "failure", "fingerprint",
               "command", "entry_point", "cwd", "hostname", "hardware", "environment",
               "warnings", "mlflow_run_id", "parent_id")
_KNOWN = (FORMAT, *FORMATS)
_KEYS = rows.SIMILARITY_KEYS
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass
class ImportResult:
    """Run ids imported and skipped, the bad lines, and what the project and MoV lines did."""

    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[ImportFormatError] = field(default_factory=list)
    mov: MovImport = field(default_factory=MovImport)


def export_runs(store: SqlStore, pks: Iterable[int]) -> Iterator[dict[str, Any]]:
    """One JSON-ready dict per run."""
    for pk in pks:
        snap = rows.run_snapshot(store, pk)
        record, history = snap.record, snap.history
        data = {"format": FORMAT, "project": record.project, "status": record.stored_status,
                **{f: getattr(record, f) for f in _RUN_FIELDS}, "code": record.code,
                **snap.keys}
        data["params"] = {k: {"type": t, "text": text} for k, t, text in snap.params}
        data["tags"] = record.tags
        data["metrics"] = {k: {"step": [p.step for p in pts], "value": [_num(p.value) for p in pts],
                               "time": [p.time for p in pts]} for k, pts in history.items()}
        data["datasets"] = [asdict(d) for d in record.datasets]
        data["artifacts"] = [asdict(a) for a in record.artifacts]
        yield data


def import_runs(store: SqlStore, lines: Iterable[str], *, replace: bool = False) -> ImportResult:
    """Import JSON lines; each run lands whole or not at all. Existing ids are skipped
    (or replaced in place, in one transaction: MoV measurements and MLflow links stay). Bad
    lines are reported with their number and do not stop the rest.
    Project and MoV lines are applied after the runs, whatever their place in the file."""
    result = ImportResult()
    deferred: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = _parse(number, line)
            if data["format"] != FORMAT:
                deferred.append((number, data))
                continue
            pk = store.key_of(data["id"])
            if pk is not None and not replace:
                result.skipped.append(data["id"])
                continue
            _insert(store, data, number, pk)
            result.imported.append(data["id"])
        except ImportFormatError as exc:
            result.errors.append(exc)
    result.mov = import_mov(store, deferred, replace=replace, errors=result.errors)
    result.errors.sort(key=lambda e: e.line)
    return result


def _num(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _parse(number: int, line: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(number, f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") not in _KNOWN:
        raise ImportFormatError(number, f"not a Cairn record (format {', '.join(_KNOWN)})")
    if data["format"] != FORMAT:
        return data
    for key in ("id", "project", "owner", "status", "start_time"):
        if data.get(key) is None:
            raise ImportFormatError(number, f"missing {key!r}")
    return data


def _insert(store: SqlStore, data: dict[str, Any], number: int, pk: int | None = None) -> None:
    """Store one run record: a new run, or in place of run ``pk``."""
    try:
        params = {k: ParamValue(v["type"], v["text"],
                                _number(v)) for k, v in data.get("params", {}).items()}
        history = {k: (m["step"], [_value(v) for v in m["value"]], m["time"])
                   for k, m in data.get("metrics", {}).items()}
        for key, (steps, values, times) in history.items():
            if not len(steps) == len(values) == len(times):
                raise ValueError(f"metric {key!r}: step, value and time lists differ in length")
        datasets = [DatasetUse(**d) for d in data.get("datasets", [])]
        artifacts = [_artifact(a) for a in data.get("artifacts", [])]
        values = {f: data.get(f) for f in _RUN_FIELDS}
        if not isinstance(values["parent_id"], str | None):
            raise ValueError("parent_id must be a run id (text) or null")
        code = data.get("code") or {}
        values.update(status=data["status"], code=code, code_state=code.get("state"),
                      git_commit=code.get("commit"), git_branch=code.get("branch"),
                      git_remote=code.get("remote"), git_dirty=code.get("dirty"),
                      git_diff_sha256=code.get("diff_sha256"))
        values.update(_similarity_keys(data, params, datasets))
        parts = {"params": params, "tags": data.get("tags", {}),
                 "chunks": [(key, seq, *part) for key, cols in history.items()
                            for seq, part in enumerate(split(*cols))],
                 "summaries": [_summary(k, *cols) for k, cols in history.items() if cols[0]],
                 "datasets": datasets, "artifacts": artifacts}
        if pk is None:
            rows.restore_run(store, data["project"], values, **parts)
        else:
            rows.replace_run(store, pk, data["project"], values, **parts)
    except StoreError:
        raise
    except CairnError as exc:
        raise ImportFormatError(number, str(exc)) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ImportFormatError(number, f"malformed record: {exc!r}") from None


def _artifact(a: dict[str, Any]) -> tuple[str, str, int, str, float]:
    """An artifact reference checked as the artifact store checks its own: a file would
    otherwise be fetched to wherever a crafted name points (``../../x``). An empty digest is
    a blob kept elsewhere (an MLflow run's artifact, reached by its uri)."""
    if not isinstance(a["uri"], str):
        raise TypeError("an artifact's uri must be text")
    digest = a["sha256"] if a["sha256"] == "" else check_sha256(a["sha256"])
    return clean_name(a["name"]), digest, int(a["size"]), a["uri"], float(a["created_time"])


def _similarity_keys(data: dict[str, Any], params: dict[str, ParamValue],
                     datasets: list[DatasetUse]) -> dict[str, str | None]:
    """The keys as exported, or derived as a run's start derives them (older exports)."""
    if all(k in data for k in _KEYS[:2]):  # an export older than group keys lacks the third
        keys = {k: data.get(k) for k in _KEYS}
        if any(v is not None and not isinstance(v, str) for v in keys.values()):
            raise ValueError(f"{' and '.join(_KEYS)} must be text or null")
        return keys
    family = model_family({k: p.value() for k, p in params.items() if p.vtype == "str"})
    return {"model_family": family, "data_key": data_key(d.hash for d in datasets),
            "group_key": None}  # made again on the first registry.groups


def _number(p: dict[str, Any]) -> float | None:
    value = ParamValue(p["type"], p["text"], None)
    if p["type"] in ("int", "float", "bool"):
        try:
            number = float(value.value())
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    return None


def _value(v: float | str) -> float:
    return _NONFINITE[v] if isinstance(v, str) else float(v)


def _summary(key: str, steps: list[int], values: list[float], times: list[float]) -> MetricSummary:
    summary = Summary()
    summary.add(steps, values, times)
    return summary.freeze(key)

