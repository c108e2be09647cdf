"""A registry run (the lossless record of :func:`registry.transfer.backup.export_runs`) as what
MLflow stores: tags, text params, metric points in milliseconds, dataset inputs."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from registry.entities import derived_status
from registry.transfer.mlflow import _convert as cv

__all__ = ["DatasetSpec", "Payload", "build"]

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(frozen=True)
class DatasetSpec:
    """One MLflow dataset input: a DVC version, its hash as the digest."""

    name: str
    digest: str
    source_type: str
    source: str
    profile: str
    role: str


@dataclass
class Payload:
    run_name: str | None
    status: str
    start_ms: int
    end_ms: int | None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, list[tuple[int, float, int]]] = field(default_factory=dict)
    datasets: list[DatasetSpec] = field(default_factory=list)


def build(data: Mapping[str, Any], mov: Sequence[Any] = ()) -> Payload:
    """What MLflow should hold for one run (``data`` is a ``cairn.run/1`` record)."""
    status = derived_status(data["status"], data.get("heartbeat_time"),
                            data.get("heartbeat_interval"))
    end = data.get("end_time")
    if status == "CRASHED":
        end = data.get("heartbeat_time")
    payload = Payload(run_name=data.get("name"), status=cv.export_status(status),
                      start_ms=cv.to_ms(data["start_time"]), end_ms=cv.to_ms(end))
    renamed = {kind: cv.KeyMap() for kind in ("params", "metrics", "tags")}
    spelled = _spelled(data.get("tags", {}))
    truncated = _params(payload, data.get("params", {}), renamed["params"], spelled)
    for key, m in sorted(data.get("metrics", {}).items()):
        values = [_NONFINITE[v] if isinstance(v, str) else float(v) for v in m["value"]]
        payload.metrics[renamed["metrics"](key)] = list(
            zip(m["step"], values, [cv.to_ms(t) for t in m["time"]], strict=True))
    for key, value in sorted(data.get("tags", {}).items()):
        if key != cv.PARAM_TEXT:
            payload.tags[renamed["tags"](key)] = value[:cv.MAX_TAG]
    payload.tags.update(_system_tags(data, status, mov))
    payload.tags.update(cv.split_json_tag(cv.RENAMED, {k: m.renamed for k, m in renamed.items()
                                                      if m.renamed}))
    payload.tags.update(cv.split_json_tag(cv.TRUNCATED, truncated))
    payload.datasets = [_dataset(d) for d in data.get("datasets", [])]
    return payload


def _params(payload: Payload, params: Mapping[str, Any], keys: cv.KeyMap,
            spelled: Mapping[str, str]) -> list[str]:
    types, truncated = {}, []
    for key, p in sorted(params.items()):
        text = cv.param_text(p["type"], p["text"])
        original = spelled.get(key)
        if original is not None and cv.typed_param(original, None) == p:
            text = original  # as MLflow spelled it when the run was imported
        if len(text) > cv.MAX_PARAM:
            text = text[:cv.MAX_PARAM]
            truncated.append(key)
        safe = keys(key)
        payload.params[safe] = text
        if cv.infer_type(text)[0] != p["type"]:
            types[safe] = p["type"]
    payload.tags.update(cv.split_json_tag(cv.PARAM_TYPES, types))
    return truncated


def _spelled(tags: Mapping[str, str]) -> dict[str, str]:
    """The MLflow spelling of imported params (see ``cv.PARAM_TEXT``); {} if unreadable."""
    try:
        found = json.loads(tags.get(cv.PARAM_TEXT) or "{}")
    except ValueError:
        return {}
    return {k: v for k, v in found.items() if isinstance(v, str)} \
        if isinstance(found, dict) else {}


def _system_tags(data: Mapping[str, Any], status: str, mov: Sequence[Any]) -> dict[str, str]:
    code = data.get("code") or {}
    tags = {cv.RUN_ID: data["id"], cv.USER: data["owner"], cv.SOURCE_TYPE: "LOCAL",
            cv.NOTE: data.get("notes"), cv.GIT_COMMIT: code.get("commit"),
            cv.GIT_BRANCH: code.get("branch"), cv.GIT_REPO: code.get("remote"),
            cv.SOURCE_NAME: data.get("entry_point"), "cairn.code.state": code.get("state"),
            "cairn.code.diff_sha256": code.get("diff_sha256"),
            "cairn.command": data.get("command"), "cairn.host": data.get("hostname"),
            "cairn.question": data.get("question"), "cairn.conclusion": data.get("conclusion")}
    if code.get("dirty") is not None:
        tags["cairn.code.dirty"] = "true" if code["dirty"] else "false"
    if status == "CRASHED":
        tags[cv.CRASHED] = status
    for key, value in cv.flatten(data.get("hardware") or {}, "cairn.hardware"):
        tags[cv.safe_key(key)] = value
    for m in mov:  # oldest first: the latest measurement of each MoV wins
        tags[cv.safe_key(f"cairn.mov.{m.name}")] = f"{m.value:g} {m.unit}"
    return {k: str(v)[:cv.MAX_TAG] for k, v in tags.items() if v not in (None, "")}


def _dataset(d: Mapping[str, Any]) -> DatasetSpec:
    profile = {k: d.get(k) for k in ("tracked", "hash", "hash_kind", "size", "nfiles", "dirty",
                                     "dirty_check", "pushed")}
    source = {"path": d["path"], "remote": d.get("remote"), "source": d.get("source")}
    return DatasetSpec(name=d["path"][:500], digest=(d.get("hash") or "untracked")[:36],
                       source_type="dvc" if d.get("tracked") else "local",
                       source=json.dumps(source), profile=json.dumps(profile), role=d["role"])
