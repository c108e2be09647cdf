"""Bring MLflow runs into the registry: params, metric histories, tags, git commit, datasets,
status, times, parent runs, and artifacts and logged models copied into the artifact store
(see :mod:`._files`; files over ``max_artifact_size`` stay references to MLflow).

Each MLflow experiment becomes a project of the same name (or the one given). The registry
run takes the MLflow run's id, so the two read alike. Importing twice creates nothing twice:
``mlflow_link`` remembers each imported run with a digest of what MLflow held, and a run that
changed there since is read again and replaces its registry copy (runs still RUNNING in
MLflow are read every time). An MLflow run that was itself exported from this registry maps
back to the original run; exported from another registry, it is imported under the
original's id.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from registry.artifacts import ArtifactStore
from registry.config import Workspace, load_workspace
from registry.store import SqlStore
from registry.store import links as _links
from registry.transfer.backup import FORMAT
from registry.transfer.backup import import_runs as insert_records
from registry.transfer.mlflow import _client
from registry.transfer.mlflow import _convert as cv
from registry.transfer.mlflow._files import DEFAULT_MAX_SIZE, fetch_run_files
from registry.transfer.mlflow._result import SyncResult
from registry.transfer.mlflow.errors import MlflowBridgeError

__all__ = ["ImportResult", "Importer", "import_runs"]

_RUN_ID = re.compile(r"[0-9a-f]{32}")
_CONTEXT = "mlflow.data.context"


@dataclass
class ImportResult(SyncResult):
    """What an import did, by MLflow run id."""

    mapped_back: list[str] = field(default_factory=list)  # exported from this registry
    run_ids: dict[str, str] = field(default_factory=dict)  # MLflow run id -> registry run id
    #: MLflow run id -> its files left in MLflow (over the size limit), with their URIs.
    skipped_artifacts: dict[str, list[str]] = field(default_factory=dict)


def import_runs(tracking_uri: str, *, experiments: Sequence[str] = (),
                project: str | None = None, workspace: Workspace | None = None,
                max_artifact_size: int | None = DEFAULT_MAX_SIZE,
                progress: Callable[[str, str], None] | None = None) -> ImportResult:
    """Import the runs of the named MLflow experiments (all active ones when none are
    named) into the workspace's registry; ``project`` overrides the experiment names.
    Artifacts and logged models are copied into the artifact store, each file up to
    ``max_artifact_size`` bytes (None: any size; 0: none, references only)."""
    ws = workspace or load_workspace()
    return Importer(ws.open_store(), tracking_uri, project=project,
                    blobs=ArtifactStore(ws.artifact_root),
                    max_artifact_size=max_artifact_size).run(experiments, progress=progress)


class Importer:
    """Imports from one MLflow store into one registry store."""

    def __init__(self, store: SqlStore, tracking_uri: str, *, project: str | None = None,
                 client: Any = None, blobs: ArtifactStore | None = None,
                 max_artifact_size: int | None = DEFAULT_MAX_SIZE) -> None:
        self.store, self.project = store, project
        self.blobs, self.max_size = blobs, max_artifact_size
        self.uri = _client.normalise_uri(tracking_uri)
        self.client = client or _client.make_client(self.uri)
        self._links: dict[str, _links.Link] = {}
        self._seen: dict[str, str] = {}  # MLflow run id -> registry run id, this import
        self._skipped: dict[str, list[str]] = {}

    def run(self, names: Sequence[str] = (),
            progress: Callable[[str, str], None] | None = None) -> ImportResult:
        result = ImportResult(self.uri)
        self._links = links = _links.by_mlflow_id(self.store, self.uri)
        self._seen, self._skipped = result.run_ids, result.skipped_artifacts
        for experiment in self._experiments(names):
            for mlflow_run in self._runs(experiment.experiment_id):
                outcome = self._one(mlflow_run, experiment.name, links, result)
                if progress:
                    progress(mlflow_run.info.run_id, outcome)
        return result

    def _experiments(self, names: Sequence[str]) -> list[Any]:
        try:
            if not names:
                return list(_pages(lambda token: self.client.search_experiments(
                    max_results=1000, page_token=token)))
            found = [self.client.get_experiment_by_name(n) for n in names]
        except Exception as exc:
            raise _client.unavailable(self.uri, exc) from exc
        missing = [n for n, e in zip(names, found, strict=True) if e is None]
        if missing:
            raise MlflowBridgeError(f"no MLflow experiment named {', '.join(missing)} at "
                                    f"{self.uri}")
        return found

    def _runs(self, experiment_id: str) -> Iterator[Any]:
        return _pages(lambda token: self.client.search_runs(
            [experiment_id], max_results=1000, page_token=token, order_by=["start_time ASC"]))

    def _one(self, r: Any, experiment: str, links: dict[str, _links.Link],
             result: ImportResult) -> str:
        mid = r.info.run_id
        link = links.get(mid)
        if link is not None and link.direction == "export":
            return self._mapped(result, mid, link.run_pk)
        digest = None if r.info.status == "RUNNING" else digest_of(r)
        if link is not None and digest is not None and link.digest == digest:
            result.unchanged.append(mid)
            result.run_ids[mid] = self._id_of(link.run_pk)
            return "unchanged"
        origin = r.data.tags.get(cv.RUN_ID, "")
        if link is None and _RUN_ID.fullmatch(origin):
            pk = self.store.key_of(origin)
            if pk is not None:  # exported from this registry, under another URI spelling
                if not _links.for_runs(self.store, self.uri, [pk]):
                    _links.save(self.store, self.uri, _links.Link(
                        pk, mid, r.info.experiment_id, "export", None))
                return self._mapped(result, mid, pk)
        run_id = origin if _RUN_ID.fullmatch(origin) else mid
        try:
            data = self.record(r, run_id, self.project or experiment)
            outcome = insert_records(self.store, [json.dumps(data, allow_nan=False)],
                                     replace=link is not None)
        except Exception as exc:  # one run's failure must not stop the others
            result.failed[mid] = _client.unavailable(self.uri, exc).detail
            return "failed"
        if outcome.errors:
            result.failed[mid] = str(outcome.errors[0])
            return "failed"
        pk = self.store.key_of(run_id)
        _links.save(self.store, self.uri, _links.Link(pk, mid, r.info.experiment_id, "import",
                                                      digest))
        result.run_ids[mid] = run_id
        if outcome.skipped:  # the id was already here (imported under another URI spelling)
            result.unchanged.append(mid)
            return "unchanged"
        (result.updated if link is not None else result.created).append(mid)
        return "updated" if link is not None else "created"

    def _mapped(self, result: ImportResult, mid: str, pk: int) -> str:
        result.mapped_back.append(mid)
        result.run_ids[mid] = self._id_of(pk)
        return "mapped back"

    def _id_of(self, pk: int) -> str:
        return self.store.get_runs([pk], details=False)[0].id

    def record(self, r: Any, run_id: str, project: str) -> dict[str, Any]:
        """The ``cairn.run/1`` record of an MLflow run."""
        tags, info = r.data.tags, r.info
        renamed = cv.join_json_tags(tags, cv.RENAMED) or {}
        types = cv.join_json_tags(tags, cv.PARAM_TYPES) or {}
        names = {kind: renamed.get(kind) or {} for kind in ("params", "metrics", "tags")}
        start = cv.from_ms(info.start_time) or cv.from_ms(info.end_time) or time.time()
        data = {"format": FORMAT, "id": run_id, "project": project, "name": info.run_name,
                "owner": tags.get(cv.USER) or "unknown", "start_time": start,
                "end_time": cv.from_ms(info.end_time), "mlflow_run_id": info.run_id,
                "status": cv.IMPORT_STATUS.get(info.status, "FAILED"),
                "notes": tags.get(cv.NOTE), "question": tags.get("cairn.question"),
                "conclusion": tags.get("cairn.conclusion"), "command": tags.get("cairn.command"),
                "entry_point": tags.get(cv.SOURCE_NAME), "hostname": tags.get("cairn.host"),
                "hardware": {k.removeprefix("cairn.hardware."): v for k, v in tags.items()
                             if k.startswith("cairn.hardware.")},
                "code": _code(tags), "parent_id": self._registry_id(tags.get(cv.PARENT))}
        if tags.get(cv.CRASHED) == "CRASHED":  # RUNNING with a stopped heartbeat
            data.update(status="RUNNING", heartbeat_time=data["end_time"],
                        heartbeat_interval=1.0, end_time=None)
        data["params"] = {names["params"].get(k, k): cv.typed_param(v, types.get(k))
                          for k, v in r.data.params.items()}
        data["tags"] = {names["tags"].get(k, k): v for k, v in tags.items()
                        if not cv.is_bridge_tag(k)}
        spelled = {}
        for k, text in r.data.params.items():
            key = names["params"].get(k, k)
            if cv.param_text(data["params"][key]["type"], data["params"][key]["text"]) != text:
                spelled[key] = text
        if spelled:
            data["tags"][cv.PARAM_TEXT] = json.dumps(spelled, sort_keys=True)
        data["metrics"] = {names["metrics"].get(k, k): self._history(info.run_id, k)
                           for k in r.data.metrics}
        inputs = r.inputs.dataset_inputs if r.inputs is not None else []
        data["datasets"] = _dedup([_dataset(i) for i in inputs])
        files = fetch_run_files(self.client, r, self.blobs, self.max_size, self.uri)
        data["artifacts"] = files.artifacts
        data["tags"].update(files.tags)
        if files.skipped:
            self._skipped[info.run_id] = files.skipped
        return data

    def _registry_id(self, mlflow_id: str | None) -> str | None:
        """The registry id of an MLflow run: imported (now or before), exported from here, or
        to be imported under its own id."""
        if not mlflow_id:
            return None
        if mlflow_id in self._seen:
            return self._seen[mlflow_id]
        link = self._links.get(mlflow_id)
        return self._id_of(link.run_pk) if link is not None else mlflow_id

    def _history(self, run_id: str, key: str) -> dict[str, list]:
        points = self.client.get_metric_history(run_id, key)
        return {"step": [m.step for m in points],
                "value": [_json_number(cv.value_from_mlflow(m.value)) for m in points],
                "time": [m.timestamp / 1000 for m in points]}


def digest_of(r: Any) -> str:
    """What an import of this MLflow run depends on."""
    inputs = r.inputs.dataset_inputs if r.inputs is not None else []
    text = json.dumps([r.info.status, r.info.end_time, r.info.run_name,
                       sorted(r.data.params.items()), sorted(r.data.tags.items()),
                       sorted((k, repr(v)) for k, v in r.data.metrics.items()),
                       sorted((i.dataset.name, i.dataset.digest) for i in inputs)])
    return hashlib.sha256(text.encode()).hexdigest()


def _pages(call: Callable[[str | None], Any]) -> Iterator[Any]:
    token = None
    while True:
        page = call(token)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def _json_number(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _code(tags: dict[str, str]) -> dict[str, Any]:
    commit = tags.get(cv.GIT_COMMIT)
    return {"state": tags.get("cairn.code.state") or ("git" if commit else None),
            "commit": commit, "branch": tags.get(cv.GIT_BRANCH),
            "remote": tags.get(cv.GIT_REPO),
            "dirty": {"true": True, "false": False}.get(tags.get("cairn.code.dirty", "")),
            "diff_sha256": tags.get("cairn.code.diff_sha256")}


def _dataset(i: Any) -> dict[str, Any]:
    d = i.dataset
    role = next((t.value for t in i.tags if t.key == _CONTEXT), None) or "input"
    if d.source_type in ("dvc", "local"):
        try:
            source, profile = json.loads(d.source), json.loads(d.profile or "{}")
            return {**profile, "path": source["path"], "remote": source.get("remote"),
                    "source": source.get("source"), "role": role,
                    "tracked": bool(profile.get("tracked"))}
        except (ValueError, KeyError, TypeError):
            pass  # not written by Cairn: read it as any other MLflow dataset
    return {"path": d.name, "role": role, "tracked": False, "hash": d.digest,
            "hash_kind": "mlflow", "source": d.source[:2000] if d.source else None}


def _dedup(datasets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for d in datasets:
        key = (d["path"], d.get("hash"), d["role"])
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out
