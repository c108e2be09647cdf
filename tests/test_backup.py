"""Backup and restore with ``cairn runs export`` / ``cairn runs import``, across dialects.

A store filled through the public API is exported to a file with the CLI and imported into a
store of the other dialect (SQLite -> PostgreSQL, PostgreSQL -> SQLite); every column of every
run row and of every row that belongs to a run must come back, and so must every column of the
projects and of their MoV definitions and measurements; the public reads must agree.
Restoring into a store that already holds some of the runs skips them (or replaces them with
``--replace``); either way no run and no measurement is doubled.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select, text, update

import registry
from registry.capture.dvc import DataVersion
from registry.cli import cli
from registry.config import Workspace
from registry.store import SqlStore
from registry.store import schema as s
from tests.conftest import PG_URL, pg_schema

LONG = 12_500  # points of a long history: more than one chunk row (10,000 points)
PARAMS = {"lr": 1e-3, "epochs": 30, "big": 2**80, "huge": 10**400, "aug": True, "seed": None,
          "eps": math.nan, "clip": -math.inf, "betas": [0.9, 0.999],
          "model": {"backbone": "resnet18", "head": {"dropout": 0.25}},
          "label": "Kratzer-Erkennung ✓ 検証"}


# -- stores ---------------------------------------------------------------------------------------


@pytest.fixture
def other_url(store_url: str, tmp_path: Path) -> Iterator[str]:
    """A fresh store of the dialect ``store_url`` is not."""
    if store_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'restored' / 'registry.db'}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL not configured: set CAIRN_TEST_POSTGRES_URL to test it")
    with pg_schema("b") as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("PostgreSQL not configured: set CAIRN_TEST_POSTGRES_URL to test it")
    with pg_schema("b") as url:
        yield url


def _workspace(root: Path, url: str) -> Workspace:
    return Workspace(root=root, store_url=url, artifact_root=str(root / "artifacts"),
                     catalog_dir=root / "catalog", owner="tester", heartbeat_interval=0.5,
                     flush_interval=0.05, on_duplicate="ignore", system_interval=0)


def _data(path: str, data_hash: str | None) -> DataVersion:
    return DataVersion(path=path, tracked=data_hash is not None, hash=data_hash,
                       hash_kind="md5" if data_hash else None, size=10 if data_hash else None,
                       nfiles=2 if data_hash else None, remote=None,
                       source=f"{path}.dvc" if data_hash else None, dirty=False,
                       dirty_check="stat-cache" if data_hash else "untracked")


def fill(ws: Workspace, runs: int = 6, long: int = LONG) -> dict[str, int]:
    """Runs of every status with params of every type, long and non-finite histories,
    data, artifacts, notes and MoV measurements; returns what was written."""
    registry.define_mov("défauts", "escape_rate", unit="ppm", direction="lower", baseline=420,
                        target=100, stakeholder="Qualität, Werk 3", workspace=ws)
    (ws.root / "model.pt").write_bytes(b"\x00weights" * 100)
    points = 0
    for i in range(runs):
        project = "défauts" if i % 3 else "cracks"
        with registry.start_run(project=project, name=f"run-{i}", workspace=ws,
                                params={**PARAMS, "lr": 10.0 ** -(i + 1), "index": i},
                                tags={"team": "vision", "stage": "Überprüfung", "label": ""},
                                question="Hilft Mixup?" if i % 2 else None) as run:
            run._add_data(_data("data/train", f"{i % 2:x}" * 32 + ".dir"), "train", [])
            run._add_data(_data("data/scratch", None), "extra", [])
            n = long if i < 2 else 100
            for step in range(n):
                run.log_metrics({"loss": 1.0 / (step + 1), "val/acc": step / n}, step=step)
            run.log_metric("loss", math.nan, step=n)
            run.log_metric("loss", math.inf, step=n + 1)
            run.log_metric("val/acc", -math.inf, step=3)  # out of order, a step seen before
            run.log_metric("lr", 0.1, step=2**40)
            points += 2 * n + 4
            run.note(f"note {i}: ✓ 検証")
            run.set_conclusion(f"conclusion {i}")
            run.log_artifact(ws.root / "model.pt", name=f"models/model-{i}.pt")
            if project == "défauts":
                run.log_mov("escape_rate", 400 - i, evidence="Audit ✓")
            if i == runs - 1:
                run.end("FAILED", failure="CUDA out of memory (GPU 0)")
            elif i == runs - 2:
                run.end("KILLED")
    store = ws.open_store()
    pk = store.create_run("cracks", {  # a run whose process died: RUNNING, heartbeat stopped
        "id": uuid.uuid4().hex, "name": "crashed", "owner": "cara", "status": "RUNNING",
        "start_time": 1.0e9, "heartbeat_time": 1.0e9 + 5, "heartbeat_interval": 30.0,
        "mlflow_run_id": "9" * 32}, {}, {"k": "v"})
    store.update_run(pk, notes="crashed before its first metric")
    return {"runs": runs + 1, "points": points}


def fill_mov(ws: Workspace) -> dict[str, int]:
    """Beyond what ``fill`` records: a measurement from no run, a definition of a project
    without runs, one never measured, and project descriptions (no API writes them: SQL)."""
    registry.record_mov("défauts", "escape_rate", 380.5, evidence="Werk 3, Bericht ✓",
                        who="qa", when=1.7e9, workspace=ws)
    registry.define_mov("cracks", "false_alarms", unit="per shift", direction="lower",
                        baseline=12, target=2, description="Alarme ohne Riss", workspace=ws)
    registry.define_mov("leer", "uptime", unit="%", direction="higher", baseline=90, target=99,
                        workspace=ws)
    registry.record_mov("leer", "uptime", 93.25, workspace=ws)
    with ws.open_store().writing() as conn:
        conn.execute(update(s.project).where(s.project.c.name == "défauts")
                     .values(description="Fehler, die beim Kunden ankommen ✓"))
        conn.execute(update(s.project).where(s.project.c.name == "leer")
                     .values(description="A project with MoV and no runs"))
        conn.execute(insert(s.project).values(name="nur Beschreibung", created_time=1.5e9,
                                               description="described, nothing else"))
    with ws.open_store().reading() as conn:
        counted = {t.name: conn.execute(select(text("count(*)")).select_from(t)).scalar()
                   for t in (s.project, s.mov_definition, s.mov_measurement)}
    return {"projects": counted["project"], "definitions": counted["mov_definition"],
            "measurements": counted["mov_measurement"]}


# -- comparing stores -----------------------------------------------------------------------------

_RUN_TABLES = (s.param, s.tag, s.metric_summary, s.artifact)
_GIT_COPIES = ("state", "commit", "branch", "remote", "dirty", "diff_sha256")


def snapshot(url: str) -> dict[str, Any]:
    """Every column of every run and of every row that belongs to a run, keyed by run id
    (integer keys left out: they are the store's own), as comparable JSON."""
    store = SqlStore(url)
    out: dict[str, Any] = {}
    with store.reading() as conn:
        ids = dict(conn.execute(select(s.run.c.pk, s.run.c.id)).all())
        projects = dict(conn.execute(select(s.project.c.id, s.project.c.name)).all())
        for row in conn.execute(select(s.run)).mappings():
            data = {k: v for k, v in row.items() if k not in ("pk", "project_id")}
            out[row["id"]] = {"run": dict(data, **_json_columns(row),
                                          project=projects[row["project_id"]])}
        for table in _RUN_TABLES:
            for row in conn.execute(select(table)).mappings():
                rows = out[ids[row["run_pk"]]].setdefault(table.name, [])
                rows.append(_comparable({k: v for k, v in row.items() if k != "run_pk"}))
        query = select(s.run_dataset, s.dataset).join(
            s.dataset, s.dataset.c.id == s.run_dataset.c.dataset_id)
        for row in conn.execute(query).mappings():
            rows = out[ids[row["run_pk"]]].setdefault("dataset", [])
            rows.append(_comparable({k: v for k, v in row.items()
                                     if k not in ("run_pk", "dataset_id", "id")}))
        for pk, run_id in ids.items():
            history = store.metric_history(pk)
            out[run_id]["history"] = {k: [(p.step, p.value, p.time) for p in v]
                                      for k, v in history.items()}
            out[run_id]["record"] = asdict(store.get_run(pk))
            for name in ("dataset", *(t.name for t in _RUN_TABLES)):  # rows have no order
                out[run_id].get(name, []).sort(key=json.dumps)
    return _comparable(out)


def _json_columns(row: Any) -> dict[str, Any]:
    """NULL and an empty object are the same record (reads give ``{}`` for both); the code
    column's copies of the git columns are left to those columns (an import writes them)."""
    code = {k: v for k, v in (row["code"] or {}).items() if k not in _GIT_COPIES}
    return {"hardware": row["hardware"] or {}, "environment": row["environment"] or {},
            "warnings": row["warnings"] or [], "code": code}


def _comparable(obj: Any) -> Any:
    if isinstance(obj, float):
        return repr(obj)  # NaN equals NaN, -0.0 stays -0.0
    if isinstance(obj, dict):
        return {str(k): _comparable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_comparable(v) for v in obj]
    if isinstance(obj, (bytes, memoryview)):
        return bytes(obj).hex()
    return obj


def lost(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """Runs missing or different, and metric points missing or different, after a restore."""
    runs = sum(1 for run_id in before if after.get(run_id) != before[run_id])
    points = 0
    for run_id, data in before.items():
        restored = after.get(run_id, {}).get("history", {})
        for key, history in data["history"].items():
            again = restored.get(key, [])
            points += sum(1 for i, p in enumerate(history) if i >= len(again) or again[i] != p)
    return {"runs": runs, "points": points}


def mov_snapshot(url: str) -> dict[str, Any]:
    """Every column of every project, MoV definition and measurement (integer keys left out,
    a measurement's run by its id), as comparable JSON."""
    p, d, m, r = s.project, s.mov_definition, s.mov_measurement, s.run
    own = ("id", "project_id", "definition_id", "run_pk")
    definitions = select(p.c.name.label("project"), *(c for c in d.c if c.name not in own)
                         ).join(p, p.c.id == d.c.project_id)
    measurements = (select(p.c.name.label("project"), d.c.name.label("mov"),
                           r.c.id.label("run_id"), *(c for c in m.c if c.name not in own))
                    .join(d, d.c.id == m.c.definition_id).join(p, p.c.id == d.c.project_id)
                    .outerjoin(r, r.c.pk == m.c.run_pk))
    with SqlStore(url).reading() as conn:
        out = {name: sorted((_comparable(dict(row)) for row in conn.execute(q).mappings()),
                            key=json.dumps)
               for name, q in (("project", select(p.c.name, p.c.description, p.c.created_time)),
                               ("mov_definition", definitions),
                               ("mov_measurement", measurements))}
    return out


def cairn(url: str, *args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), env={"CAIRN_STORE": url, "CAIRN_CONFIG": None})
    return result


# -- the tests ------------------------------------------------------------------------------------


def test_backup_to_a_file_and_restore_on_the_other_dialect(tmp_dir, store_url, other_url):
    written = fill(_workspace(tmp_dir, store_url))
    before = snapshot(store_url)
    backup = tmp_dir / "backup.jsonl"
    done = cairn(store_url, "runs", "export", "-o", str(backup))
    assert done.exit_code == 0, done.output
    assert f"exported {written['runs']} runs" in done.output
    done = cairn(other_url, "runs", "import", str(backup))
    assert done.exit_code == 0, done.output
    assert f"imported {written['runs']} runs, skipped 0 already present, 0 errors" in done.output
    after = snapshot(other_url)
    assert lost(before, after) == {"runs": 0, "points": 0}
    assert after == before
    assert mov_snapshot(other_url) == mov_snapshot(store_url)
    tried = sum(len(h) for run in before.values() for h in run["history"].values())
    assert tried == written["points"]


def test_a_restore_skips_the_runs_a_store_already_has(tmp_dir, store_url, other_url):
    fill(_workspace(tmp_dir, store_url), runs=4, long=50)
    lines = (tmp_dir / "backup.jsonl")
    assert cairn(store_url, "runs", "export", "-o", str(lines)).exit_code == 0
    records = lines.read_text(encoding="utf-8").splitlines()
    partial = tmp_dir / "partial.jsonl"
    partial.write_text("\n".join(records[:2]) + "\n", encoding="utf-8")
    assert cairn(other_url, "runs", "import", str(partial)).exit_code == 0
    ours = json.loads(records[0])["id"]
    SqlStore(other_url).set_tags(SqlStore(other_url).resolve(ours), {"team": "changed here"})

    again = cairn(other_url, "runs", "import", str(lines))
    assert again.exit_code == 0, again.output
    assert "imported 3 runs, skipped 2 already present, 0 errors" in again.output
    after = snapshot(other_url)
    runs = [r for r in records if json.loads(r)["format"] == "cairn.run/1"]
    assert len(after) == len(runs) == 5 and after[ours]["run"]  # nothing doubled
    assert dict(after[ours]["record"]["tags"])["team"] == "changed here"  # the store's own kept

    assert mov_snapshot(other_url) == mov_snapshot(store_url)  # measurements found their runs

    replaced = cairn(other_url, "runs", "import", "--replace", str(lines))
    assert "imported 5 runs, skipped 0 already present, 0 errors" in replaced.output
    # A run is replaced in place: its measurements never lose it, nor are they doubled.
    assert "skipped 2 already present\n" in replaced.output
    assert snapshot(other_url) == snapshot(store_url)
    assert mov_snapshot(other_url) == mov_snapshot(store_url)


def test_a_restore_reports_a_truncated_backup_and_keeps_every_whole_run(tmp_dir, store_url,
                                                                        other_url):
    fill(_workspace(tmp_dir, store_url), runs=3, long=50)
    lines = tmp_dir / "backup.jsonl"
    assert cairn(store_url, "runs", "export", "-o", str(lines)).exit_code == 0
    records = lines.read_text(encoding="utf-8").splitlines()
    assert [json.loads(r)["format"] for r in records[3:]] == [
        "cairn.run/1", "cairn.project/1", "cairn.project/1", "cairn.mov/1"]
    cut = json.loads(records[3])["id"]  # run-2, which measured escape_rate
    records[3] = records[3][:len(records[3]) // 2]  # cut in the last run
    lines.write_text("\n".join(records) + "\n", encoding="utf-8")
    done = cairn(other_url, "runs", "import", str(lines))
    assert done.exit_code == 1 and "imported 3 runs" in done.output and "line 4" in done.output
    assert "1 measurements kept without their run" in done.output
    before, after = snapshot(store_url), snapshot(other_url)
    assert len(after) == 3 and all(after[k] == before[k] for k in after)
    expected = mov_snapshot(store_url)
    for row in expected["mov_measurement"]:
        row["run_id"] = None if row["run_id"] == cut else row["run_id"]
    expected["mov_measurement"].sort(key=json.dumps)
    assert mov_snapshot(other_url) == expected


def test_an_export_without_similarity_keys_gets_them_computed(tmp_dir, store_url, pg_url):
    """Exports written before the keys were exported: the import derives them again."""
    fill(_workspace(tmp_dir, store_url), runs=2, long=10)
    from registry.transfer.backup import export_runs, import_runs

    source = SqlStore(store_url)
    with source.reading() as conn:
        pks = list(conn.execute(select(s.run.c.pk)).scalars())
    old_format = [json.dumps({k: v for k, v in d.items() if k not in ("model_family", "data_key")},
                             allow_nan=False) for d in export_runs(source, pks)]
    assert import_runs(SqlStore(pg_url), old_format).errors == []
    keys = select(s.run.c.id, s.run.c.model_family, s.run.c.data_key).order_by(s.run.c.id)
    with source.reading() as a, SqlStore(pg_url).reading() as b:
        assert a.execute(keys).all() == b.execute(keys).all()
        assert b.execute(select(s.run.c.model_family).where(
            s.run.c.name == "run-0")).scalar() == "resnet"


def test_a_backup_restores_projects_and_mov_and_again_adds_nothing(tmp_dir, store_url,
                                                                    other_url):
    """MoV definitions and measurements (with their runs) and project descriptions come back
    on the other dialect, wherever their lines are in the file; restoring twice adds nothing."""
    ws = _workspace(tmp_dir, store_url)
    fill(ws, runs=3, long=10)
    written = fill_mov(ws)
    assert written == {"projects": 4, "definitions": 3, "measurements": 4}
    lines = tmp_dir / "backup.jsonl"
    done = cairn(store_url, "runs", "export", "-o", str(lines))
    assert done.exit_code == 0, done.output
    assert ("exported 4 runs, 4 projects, 3 MoV definitions and 4 measurements"
            in done.output)
    done = cairn(other_url, "runs", "import", str(lines))
    assert done.exit_code == 0, done.output
    assert ("restored 4 projects, 3 MoV definitions and 4 measurements, skipped 0 already "
            "present" in done.output)
    before = mov_snapshot(store_url)
    assert [len(before[k]) for k in ("project", "mov_definition", "mov_measurement")] == [4, 3, 4]
    assert sum(m["run_id"] is not None for m in before["mov_measurement"]) == 2
    assert mov_snapshot(other_url) == before
    restored = replace(ws, store_url=other_url)
    assert registry.mov_progress(workspace=restored) == registry.mov_progress(workspace=ws)

    again = cairn(other_url, "runs", "import", str(lines))
    assert again.exit_code == 0, again.output
    assert "imported 0 runs, skipped 4 already present, 0 errors" in again.output
    assert ("restored 0 projects, 0 MoV definitions and 0 measurements, skipped 4 already "
            "present" in again.output)
    assert mov_snapshot(other_url) == before

    # The MoV lines first and the runs after: the measurements still find their runs.
    backwards = tmp_dir / "backwards.jsonl"
    backwards.write_text("\n".join(reversed(lines.read_text(encoding="utf-8").splitlines())),
                         encoding="utf-8")
    third = f"sqlite:///{tmp_dir / 'third' / 'registry.db'}"
    assert cairn(third, "runs", "import", str(backwards)).exit_code == 0
    assert mov_snapshot(third) == before


def test_a_backup_without_mov_lines_restores_its_runs(tmp_dir, store_url, other_url):
    """``--no-mov`` writes what older Cairns wrote: runs only, and they still import."""
    ws = _workspace(tmp_dir, store_url)
    fill(ws, runs=2, long=10)
    lines = tmp_dir / "backup.jsonl"
    done = cairn(store_url, "runs", "export", "--no-mov", "-o", str(lines))
    assert done.exit_code == 0 and "exported 3 runs\n" in done.output
    assert {json.loads(r)["format"] for r in lines.read_text(encoding="utf-8").splitlines()} == {
        "cairn.run/1"}
    done = cairn(other_url, "runs", "import", str(lines))
    assert done.exit_code == 0 and "restored" not in done.output
    assert snapshot(other_url) == snapshot(store_url)
    assert mov_snapshot(other_url)["mov_measurement"] == []
