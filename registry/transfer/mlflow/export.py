"""Mirror registry runs into MLflow: incremental and idempotent.

Each exported run is linked to its MLflow run in ``mlflow_link`` with a digest of what was
exported. Exporting again skips runs whose digest is unchanged; a changed run is updated in
place: new tags are set, params MLflow lacks are logged (MLflow never changes a param, nor
does the registry), and for each metric only the points MLflow does not hold yet (compared
by step, millisecond time and value) are appended. Runs that came *from* this MLflow store
(imported) are left alone: MLflow is their source.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from registry.artifacts import ArtifactStore
from registry.config import Workspace, load_workspace
from registry.errors import CairnError
from registry.store import SqlStore
from registry.store import links as _links
from registry.store import mov as stored_mov
from registry.transfer.backup import export_runs as read_records
from registry.transfer.mlflow import _client, _models
from registry.transfer.mlflow import _convert as cv
from registry.transfer.mlflow import _files as files
from registry.transfer.mlflow._payload import Payload, build
from registry.transfer.mlflow._result import SyncResult

__all__ = ["ExportResult", "Exporter", "export_runs", "parse_since"]

DIGEST_VERSION = 1
_PAGE = 200


@dataclass
class ExportResult(SyncResult):
    """What an export did, by registry run id."""

    skipped: list[str] = field(default_factory=list)  # imported from this MLflow store
    models: list[str] = field(default_factory=list)  # "name/version" registered
    warnings: list[str] = field(default_factory=list)
    mlflow_ids: dict[str, str] = field(default_factory=dict)


def export_runs(tracking_uri: str, *, project: str | None = None,
                since: float | str | datetime | None = None, runs: Sequence[str] = (),
                models: bool = True, artifacts: bool = True, workspace: Workspace | None = None,
                progress: Callable[[str, str], None] | None = None) -> ExportResult:
    """Mirror the workspace's runs (or ``runs``, or those of ``project`` started since
    ``since``) into the MLflow store at ``tracking_uri``; returns what was done."""
    ws = workspace or load_workspace()
    store = ws.open_store()
    exporter = Exporter(store, ArtifactStore(ws.artifact_root), tracking_uri, models=models,
                        with_artifacts=artifacts)
    pks = [store.resolve(r) for r in runs] if runs else select_runs(store, project, since)
    return exporter.export(pks, progress=progress)


def select_runs(store: SqlStore, project: str | None, since: Any) -> list[int]:
    """Run keys of a project (or all), oldest first, optionally started since a time."""
    pks = store.run_keys(project_name=project, since=parse_since(since), limit=10**12)
    return list(reversed(pks))


def parse_since(since: float | str | datetime | None) -> float | None:
    """A start time from a timestamp, an ISO date or time, or an age such as ``7d``, ``12h``."""
    if since is None or isinstance(since, (int, float)):
        return since
    if isinstance(since, datetime):
        return since.timestamp()
    text = str(since).strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if text[:-1].isdigit() and text[-1:] in units:
        return time.time() - int(text[:-1]) * units[text[-1]]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise CairnError(f"--since {text!r}: give a date (2026-11-01), a time "
                         "(2026-11-01T12:00) or an age (90m, 12h, 7d)") from None


class Exporter:
    """Exports runs of one registry store into one MLflow store."""

    def __init__(self, store: SqlStore, artifacts: ArtifactStore, tracking_uri: str, *,
                 models: bool = True, with_artifacts: bool = True, client: Any = None) -> None:
        self.store, self.blobs = store, artifacts
        self.uri = _client.normalise_uri(tracking_uri)
        self.client = client or _client.make_client(self.uri)
        self.models, self.with_artifacts = models, with_artifacts
        self.experiments = _client.Experiments(self.client)
        self._orphans: list[tuple[str, str]] = []  # (MLflow run, registry parent not there yet)

    def check(self) -> None:
        """Fail early, with a typed error, when MLflow cannot be reached."""
        try:
            self.client.search_experiments(max_results=1)
        except Exception as exc:
            raise _client.unavailable(self.uri, exc) from exc

    def export(self, pks: Sequence[int], *,
               progress: Callable[[str, str], None] | None = None) -> ExportResult:
        result = ExportResult(self.uri)
        if not pks:
            return result
        self.check()
        links = _links.for_runs(self.store, self.uri, pks)
        for start in range(0, len(pks), _PAGE):
            for pk, record, mov in self._page(pks[start:start + _PAGE]):
                outcome = self._one(pk, record, mov, links.get(pk), result)
                if progress:
                    progress(record.id, outcome)
        self._adopt(result)
        return result

    def _page(self, pks: Sequence[int]) -> Iterable[tuple[int, Any, list]]:
        records = self.store.get_runs(pks)
        mov = stored_mov.of_runs(self.store, pks)
        ids = self.store.keys_of([r.id for r in records])
        for record in records:
            yield ids[record.id], record, mov.get(ids[record.id], [])

    def _one(self, pk: int, record: Any, mov: list, link: _links.Link | None,
             result: ExportResult) -> str:
        if link is not None and link.direction == "import":
            result.skipped.append(record.id)
            return "skipped"
        digest = self.digest(record, mov)
        if link is not None and link.digest == digest:
            result.unchanged.append(record.id)
            result.mlflow_ids[record.id] = link.mlflow_run_id
            return "unchanged"
        try:
            outcome = self.sync(pk, record, mov, link, digest, result)
        except Exception as exc:  # one run's failure must not stop the others
            result.failed[record.id] = _client.unavailable(self.uri, exc).detail
            return "failed"
        (result.created if outcome == "created" else result.updated).append(record.id)
        return outcome

    def digest(self, record: Any, mov: list) -> str:
        """What an export of this run depends on: a changed digest means "sync again"."""
        data = record.to_dict()
        for volatile in ("mlflow_run_id", "heartbeat_time"):
            data.pop(volatile, None)
        text = json.dumps([DIGEST_VERSION, self.models, self.with_artifacts, data,
                           [asdict(m) for m in mov]], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def sync(self, pk: int, record: Any, mov: list, link: _links.Link | None,
             digest: str | None, result: ExportResult) -> str:
        """Create or update the MLflow run of one registry run; returns what it did."""
        data = next(read_records(self.store, [pk]))
        payload = build(data, mov)
        parent = self._nest(payload, data.get("parent_id"), result.mlflow_ids)
        existing = self._existing(link)
        experiment_id = self.experiments.id_for(data["project"])
        run_id = (self._create(pk, payload, experiment_id) if existing is None
                  else existing.info.run_id)
        if data.get("parent_id") and parent is None:
            self._orphans.append((run_id, data["parent_id"]))
        problems = self._log(run_id, payload, existing)
        problems += self._files(run_id, data, existing, result)
        self._logged_models(run_id, experiment_id, data, existing)
        problems += self._model(run_id, record, data, existing, result)
        self._finish(run_id, payload, existing)
        result.warnings.extend(f"run {record.id[:8]}: {p}" for p in problems)
        result.mlflow_ids[record.id] = run_id
        _links.save(self.store, self.uri, _links.Link(pk, run_id, experiment_id, "export",
                                                      None if problems else digest))
        return "created" if existing is None else "updated"

    def _create(self, pk: int, payload: Payload, experiment_id: str) -> str:
        created = self.client.create_run(experiment_id, start_time=payload.start_ms,
                                         tags=payload.tags, run_name=payload.run_name)
        run_id = created.info.run_id
        # Linked before anything else is logged: an export cut short resumes this run.
        _links.save(self.store, self.uri, _links.Link(pk, run_id, experiment_id, "export", None))
        return run_id

    def start_live(self, pk: int) -> str:
        """Create the MLflow run of a run that has just started: tags, params and data, no
        metrics (they are streamed); returns the MLflow run id."""
        data = next(read_records(self.store, [pk]))
        data["metrics"] = {}
        payload = build(data)
        self._nest(payload, data.get("parent_id"), {})
        run_id = self._create(pk, payload, self.experiments.id_for(data["project"]))
        self._log(run_id, payload, None)
        return run_id

    def stream(self, run_id: str, chunks: Iterable[tuple]) -> int:
        """Log batches of metric points as the registry's writer wrote them; names MLflow
        would refuse are left to the final sync. Returns the number of points logged."""
        from mlflow.entities import Metric

        metrics = [Metric(key, float(v), cv.to_ms(t), step)
                   for key, _seq, steps, values, times in chunks if cv.safe_key(key) == key
                   for step, v, t in zip(steps, values, times, strict=True)]
        for _, batch, _ in _batches([], metrics, []):
            self.client.log_batch(run_id, metrics=batch, synchronous=True)
        return len(metrics)

    def _nest(self, payload: Payload, parent_id: str | None,
              exported: dict[str, str]) -> str | None:
        """Tag the payload with the MLflow id of the parent run's mirror (exported now or
        before, or imported from there); None when the parent has none (yet)."""
        if not parent_id:
            return None
        mirror = exported.get(parent_id)
        if mirror is None:
            pk = self.store.key_of(parent_id)
            link = _links.for_runs(self.store, self.uri, [pk]).get(pk) if pk else None
            mirror = link.mlflow_run_id if link is not None else None
        if mirror is not None:
            payload.tags[cv.PARENT] = mirror
        return mirror

    def _adopt(self, result: ExportResult) -> None:
        """Children exported before their parent: tagged once the parent has its mirror."""
        for run_id, parent_id in self._orphans:
            mirror = result.mlflow_ids.get(parent_id)
            if mirror is not None:
                self.client.set_tag(run_id, cv.PARENT, mirror)
        self._orphans.clear()

    def _existing(self, link: _links.Link | None) -> Any:
        if link is None:
            return None
        try:
            found = self.client.get_run(link.mlflow_run_id)
        except Exception as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or \
                    "not found" in str(exc).lower():
                return None  # deleted for good in MLflow: export it afresh
            raise
        return None if found.info.lifecycle_stage == "deleted" else found

    def _log(self, run_id: str, payload: Payload, existing: Any) -> list[str]:
        from mlflow.entities import Metric, Param, RunTag

        have = existing.data if existing is not None else None
        tags = {k: v for k, v in payload.tags.items() if have and have.tags.get(k) != v}
        params = {k: v for k, v in payload.params.items() if not have or k not in have.params}
        problems = [f"param {k!r} differs in MLflow and cannot change there"
                    for k, v in payload.params.items() if have and have.params.get(k, v) != v]
        metrics = [Metric(key, value, ms, step) for key, points in payload.metrics.items()
                   for step, value, ms in self._new_points(run_id, key, points, have)]
        for p, m, t in _batches(list(params.items()), metrics, list(tags.items())):
            self.client.log_batch(run_id, metrics=m, params=[Param(k, v) for k, v in p],
                                  tags=[RunTag(k, v) for k, v in t], synchronous=True)
        self._inputs(run_id, payload, existing)
        return problems

    def _new_points(self, run_id: str, key: str, points: list[tuple[int, float, int]],
                    have: Any) -> list[tuple[int, float, int]]:
        if have is None or key not in have.metrics:
            return points
        held = Counter(_point_key(m.step, m.value, m.timestamp)
                       for m in self.client.get_metric_history(run_id, key))
        new = []
        for step, value, ms in points:
            k = _point_key(step, value, ms)
            if held[k]:
                held[k] -= 1
            else:
                new.append((step, value, ms))
        return new

    def _inputs(self, run_id: str, payload: Payload, existing: Any) -> None:
        from mlflow.entities import Dataset, DatasetInput, InputTag

        held = set()
        if existing is not None and existing.inputs is not None:
            held = {(i.dataset.name, i.dataset.digest) for i in existing.inputs.dataset_inputs}
        inputs = [DatasetInput(Dataset(d.name, d.digest, d.source_type, d.source,
                                       profile=d.profile),
                               [InputTag("mlflow.data.context", d.role)])
                  for d in payload.datasets if (d.name, d.digest) not in held]
        if inputs:
            self.client.log_inputs(run_id, datasets=inputs)

    def _files(self, run_id: str, data: dict, existing: Any, result: ExportResult) -> list[str]:
        if not self.with_artifacts or not data.get("artifacts"):
            return []
        held = ({p for p, _ in _models.list_files(self.client, run_id)} if existing is not None
                else set())
        wanted = [a for a in data["artifacts"] if a["name"] not in held
                  and not files.is_model_file(a["name"]) and self._by_value(a, data, result)]
        if not wanted:
            return []
        problems = []
        with tempfile.TemporaryDirectory(prefix="cairn-mlflow-") as tmp:
            for a in wanted:
                try:
                    self.blobs.get(a["sha256"], Path(tmp, a["name"]))
                except (CairnError, OSError) as exc:
                    problems.append(f"artifact {a['name']!r} not exported: {exc}")
            if any(Path(tmp).iterdir()):
                self.client.log_artifacts(run_id, tmp)
        return problems

    @staticmethod
    def _by_value(a: dict, data: dict, result: ExportResult) -> bool:
        """Whether the registry holds the artifact's bytes; one kept in MLflow by reference
        (too large to copy at import) is named in the result's warnings instead."""
        if a["sha256"]:
            return True
        result.warnings.append(f"run {data['id'][:8]}: artifact {a['name']!r} is a "
                               f"reference to {a['uri']}, not copied")
        return False

    def _logged_models(self, run_id: str, experiment_id: str, data: dict,
                       existing: Any) -> None:
        if not self.with_artifacts or not files.model_files(data.get("artifacts", [])):
            return
        have = ({m.name for m in self.client.search_logged_models(
            [experiment_id], filter_string=f"source_run_id = '{run_id}'")}
            if existing is not None else set())
        files.log_models(self.client, run_id, experiment_id, data, self.blobs, have)

    def _model(self, run_id: str, record: Any, data: dict, existing: Any,
               result: ExportResult) -> list[str]:
        if not self.models or (existing is not None and cv.MODEL in existing.data.tags):
            return []
        logged, problems = _models.log_model(self.client, run_id, record, data, self.blobs,
                                             self.store)
        if logged:
            self.client.set_tag(run_id, cv.MODEL, logged)
            result.models.append(logged)
        return problems

    def _finish(self, run_id: str, payload: Payload, existing: Any) -> None:
        info = existing.info if existing is not None else None
        if info is not None and payload.run_name and info.run_name != payload.run_name:
            self.client.update_run(run_id, name=payload.run_name)
        if payload.status == "RUNNING":
            return
        if info is None or (info.status, info.end_time) != (payload.status, payload.end_ms):
            self.client.set_terminated(run_id, payload.status, end_time=payload.end_ms)


def _point_key(step: int, value: float, ms: int) -> tuple[int, str, int]:
    return step, repr(cv.value_from_mlflow(value)), ms


def _batches(params: list, metrics: list, tags: list):
    """Slices within MLflow's log_batch limits: 100 params, 100 tags, 1,000 entities."""
    while params or metrics or tags:
        p, params = params[:100], params[100:]
        t, tags = tags[:100], tags[100:]
        room = 1000 - len(p) - len(t)
        m, metrics = metrics[:room], metrics[room:]
        yield p, m, t
