"""A store made by every schema revision upgrades to this Cairn with every record intact.

Each case creates the store at one revision with Alembic, fills that revision's own tables
the way the Cairn of that revision wrote them (rows given here, metric chunks packed here, no
code of today's writer involved), then opens it with today's ``SqlStore`` and reads it back
through the public API. The revisions come from the migrations folder, so a new revision
makes its predecessor a tested starting point without touching this file.
"""

from __future__ import annotations

import math
import os
import signal
import struct
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, create_engine, insert, inspect, select, text

import registry
from registry._fingerprint import data_key
from registry.config import Workspace
from registry.entities import RunRecord
from registry.errors import SchemaOutdatedError, StoreError
from registry.store import SqlStore
from registry.store import schema as current
from registry.store._engine import make_engine, normalise_url
from registry.store._migrate import _config, upgrade
from registry.store.schema import SCHEMA_REVISION

SCRIPTS = ScriptDirectory.from_config(_config())
REVISIONS = [s.revision for s in reversed(list(SCRIPTS.walk_revisions()))]
OLDER = [r for r in REVISIONS if r != SCRIPTS.get_current_head()]
ROOT = Path(__file__).resolve().parent.parent
T0 = 1_700_000_000.25
DATA_HASH = "a" * 32 + ".dir"
NAN, INF = math.nan, math.inf

# -- what each run holds: rows as the Cairn of that revision wrote them -----------------------

PROJECTS = {"défauts-ligne-3": "Kratzer und Dellen, Linie 3 ✓", "cracks": None}

# (vtype, value_text, value_num, the value read back)
PARAMS = {
    "base": {
        "lr": ("float", "0.001", 0.001, 0.001), "epochs": ("int", "30", 30.0, 30),
        "big": ("int", str(2**80), float(2**80), 2**80),
        "huge": ("int", "1" + "0" * 400, None, 10**400),
        "aug": ("bool", "true", 1.0, True), "model.backbone": ("str", "resnet18", None, "resnet18"),
        "label": ("str", "Kratzer-Erkennung ✓ 検証", None, "Kratzer-Erkennung ✓ 検証"),
        "betas": ("json", "[0.9, 0.999]", None, [0.9, 0.999]),
        "seed": ("null", None, None, None), "eps": ("float", "nan", None, NAN),
        "clip": ("float", "-inf", None, -INF),
    },
    "lr": {
        "lr": ("float", "0.002", 0.002, 0.002), "epochs": ("int", "30", 30.0, 30),
        "model.backbone": ("str", "resnet18", None, "resnet18"),
        "aug": ("bool", "false", 0.0, False),
    },
}
TAGS = {"base": {"team": "vision", "stage": "Überprüfung", "empty": ""},
        "lr": {"team": "vision"}}
# Metric points in logging order, and how many went into each chunk row.
LOSS = [(s, 1.0 / (s + 1), T0 + s) for s in range(25)]
LOSS[20] = (20, NAN, T0 + 20)
HISTORY = {
    "base": {"loss": (LOSS, [15, 10]),
             "acc": ([(0, 0.5, T0), (1, 0.7, T0 + 1), (1, 0.75, T0 + 1.5), (2, INF, T0 + 2)],
                     [4]),
             # -0.0 only inside the history: SQLite stores a REAL -0.0 as the integer 0
             "lr": ([(0, -1.0, T0 + 7), (1, -0.0, T0 + 8), (2**40, 1.0, T0 + 9)], [3])},
    "lr": {"loss": ([(s, 2.0 / (s + 1), T0 + s) for s in range(10)], [3, 7]),
           "acc": ([(2, -INF, T0 + 2), (0, 0.4, T0 + 3)], [2])},
}
DATASETS = {"base": [("train", "data/train", DATA_HASH, True), ("val", "data/val", None, False)],
            "lr": [("train", "data/train", DATA_HASH, True)]}
ARTIFACTS = {"base": [("model.pt", "b" * 64, 12_345, "file:///art/bb/model.pt"),
                      ("reports/résumé.md", "c" * 64, 0, "s3://bucket/cc/résumé.md")]}
RUNS = {
    "base": {
        "id": "0" * 31 + "1", "project": "défauts-ligne-3", "name": "r18-baseline", "owner": "ana",
        "status": "FINISHED", "start_time": T0, "end_time": T0 + 3600.5,
        "heartbeat_time": T0 + 3600.0, "heartbeat_interval": 30.0,
        "question": "Hilft Mixup bei Kratzern?", "notes": "Überprüfung der Kratzer — 検証済み",
        "conclusion": "ja, +2 pp", "fingerprint": "f" * 64, "code_state": "clean",
        "git_commit": "1" * 40, "git_branch": "main", "git_remote": "git@host:team/repo.git",
        "git_dirty": False, "command": "python train.py --lr 0.001",
        "entry_point": "train.py", "cwd": "/home/ana/repo", "hostname": "gpu-01",
        "hardware": {"cpu": "Xeon", "gpus": [{"name": "H100", "memory_gb": 80}]},
        "environment": {"python": "3.11.9", "packages": {"torch": "2.13.0"}},
        "code": {"detached": False, "untracked": ["notes/ü.txt"], "root": "/home/ana/repo"},
        "warnings": ["param 'x' held text that is not valid UTF-8"],
        "mlflow_run_id": "9" * 32,
    },
    "lr": {
        "id": "0" * 31 + "2", "project": "défauts-ligne-3", "name": "r18-lr", "owner": "ben",
        "status": "FAILED", "start_time": T0 + 10, "end_time": T0 + 70,
        "notes": "mixup tried", "failure": "CUDA out of memory (GPU 0; 80 GiB)",
        "git_commit": "2" * 40, "git_dirty": True, "git_diff_sha256": "d" * 64,
        "hardware": {}, "environment": {}, "code": {}, "warnings": [],
    },
    "vit": {"id": "0" * 31 + "3", "project": "cracks", "name": None, "owner": "cara",
            "status": "KILLED", "start_time": T0 + 20},
    "crashed": {"id": "0" * 31 + "4", "project": "cracks", "name": "stuck", "owner": "cara",
                "status": "RUNNING", "start_time": T0 + 30, "heartbeat_time": T0 + 40,
                "heartbeat_interval": 30.0},
}
# From revision 0002: similarity keys, the free-text index, measured organisational value.
FAMILY = {"base": "resnet", "lr": "resnet"}
MOV = {"escape_rate": ("défauts-ligne-3", "ppm", "lower", 420.0, 100.0, "Qualität, Werk 3"),
       "yield": ("cracks", "%", "higher", 90.0, 99.0, None)}
MEASUREMENTS = [("escape_rate", "base", 300.0, "Audit Linie 3 ✓", "ana", T0 + 4000),
                ("escape_rate", None, 250.0, None, "quality", T0 + 5000)]


def _dataset(path: str, digest: str | None) -> dict[str, Any]:
    """A dataset row as DVC described it (untracked data: the path alone)."""
    tracked = digest is not None
    return {"path": path, "hash": digest, "hash_kind": "md5" if tracked else None,
            "size": 1234 if tracked else None, "nfiles": 2 if tracked else None,
            "remote": "s3://dvc-remote" if tracked else None,
            "source": "data/train.dvc" if tracked else None}


@dataclass
class OldStore:
    """A store left at ``revision`` with the records above; ``rows`` holds, per table, every
    row written (the columns given), to find again after the upgrade."""

    url: str
    revision: str
    pks: dict[str, int] = field(default_factory=dict)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def has(self, revision: str) -> bool:
        return REVISIONS.index(self.revision) >= REVISIONS.index(revision)


# -- filling a store at an old revision ---------------------------------------------------------


def _pack(code: str, column: list) -> bytes:
    return struct.pack(f"<{len(column)}{code}", *column)


def _summary(points: list[tuple[int, float, float]]) -> dict[str, Any]:
    top = max(p[0] for p in points)
    last = [p for p in points if p[0] == top][-1]
    finite = [p[1] for p in points if math.isfinite(p[1])]
    nonfinite = None if math.isfinite(last[1]) else ("nan" if math.isnan(last[1])
                                                     else "inf" if last[1] > 0 else "-inf")
    return {"last": last[1] if nonfinite is None else None, "last_nonfinite": nonfinite,
            "last_step": top, "last_time": last[2], "min": min(finite, default=None),
            "max": max(finite, default=None), "count": len(points),
            "nonfinite_count": len(points) - len(finite)}


class _Filler:
    def __init__(self, conn: Connection, old: OldStore) -> None:
        self.conn, self.old = conn, old
        names = set(inspect(conn).get_table_names()) & set(current.metadata.tables)
        self.tables = MetaData()
        self.tables.reflect(conn, only=sorted(names))

    def add(self, table: str, row: dict[str, Any], key: str | None = None) -> Any:
        """Insert a row (only if the table exists at this revision); returns ``key``'s value."""
        if table not in self.tables.tables:
            return None
        t = self.tables.tables[table]
        row = {k: v for k, v in row.items() if k in t.c}
        self.old.rows.setdefault(table, []).append(row)
        stmt = insert(t).values(**row)
        if key is None:
            self.conn.execute(stmt)
            return None
        made = self.conn.execute(stmt.returning(t.c[key])).scalar_one()
        row[key] = made
        return made


def fill(conn: Connection, old: OldStore) -> None:
    """Write the records above into whatever tables this revision has."""
    f = _Filler(conn, old)
    projects = {name: f.add("project", {"name": name, "description": description,
                                        "created_time": T0 - 100}, "id")
                for name, description in PROJECTS.items()}
    datasets: dict[tuple[str, str | None], int] = {}
    for ref, spec in RUNS.items():
        row = {k: v for k, v in spec.items() if k != "project"}
        row.update(project_id=projects[spec["project"]],
                   model_family=FAMILY.get(ref),
                   data_key=data_key(h for _, _, h, _ in DATASETS.get(ref, [])))
        pk = old.pks[ref] = f.add("run", row, "pk")
        for key, (vtype, value_text, value_num, _) in PARAMS.get(ref, {}).items():
            f.add("param", {"run_pk": pk, "key": key, "vtype": vtype, "value_text": value_text,
                            "value_num": value_num})
        for key, value in TAGS.get(ref, {}).items():
            f.add("tag", {"run_pk": pk, "key": key, "value": value})
        for key, (points, sizes) in HISTORY.get(ref, {}).items():
            _fill_metric(f, pk, key, points, sizes)
        for role, path, data_hash, tracked in DATASETS.get(ref, []):
            if (path, data_hash) not in datasets or data_hash is None:
                datasets[path, data_hash] = f.add("dataset", _dataset(path, data_hash), "id")
            f.add("run_dataset", {"run_pk": pk, "dataset_id": datasets[path, data_hash],
                                  "role": role, "tracked": tracked, "dirty": False,
                                  "dirty_check": "stat-cache" if tracked else None})
        for name, sha, size, uri in ARTIFACTS.get(ref, []):
            f.add("artifact", {"run_pk": pk, "name": name, "sha256": sha, "size": size,
                               "uri": uri, "created_time": T0 + 3000})
    if old.has("0002"):
        _fill_knowledge(f, old, projects)
    if old.has("0003"):
        _fill_cards(f, old)


def _fill_metric(f: _Filler, pk: int, key: str, points: list, sizes: list[int]) -> None:
    start = 0
    for seq, size in enumerate(sizes):
        part = points[start:start + size]
        start += size
        steps = [p[0] for p in part]
        f.add("metric_chunk", {"run_pk": pk, "key": key, "seq": seq, "count": len(part),
                               "min_step": min(steps), "max_step": max(steps),
                               "steps": _pack("q", steps),
                               "values": _pack("d", [p[1] for p in part]),
                               "times": _pack("d", [p[2] for p in part])})
    f.add("metric_summary", {"run_pk": pk, "key": key, **_summary(points)})


def _document(ref: str) -> str:
    spec = RUNS[ref]
    parts = [spec.get(k) for k in ("name", "owner", "question", "notes", "conclusion")]
    parts += [f"{k} {v}".strip() for k, v in TAGS.get(ref, {}).items()]
    parts += [p[1] for p in PARAMS.get(ref, {}).values() if p[0] in ("str", "json")]
    return "\n".join(p for p in parts if p)


def _fill_knowledge(f: _Filler, old: OldStore, projects: dict[str, int]) -> None:
    for ref, pk in old.pks.items():
        if f.conn.dialect.name == "sqlite":
            f.conn.execute(text("INSERT INTO run_fts (rowid, document) VALUES (:pk, :doc)"),
                           {"pk": pk, "doc": _document(ref)})
        else:
            f.conn.execute(text("INSERT INTO run_text (run_pk, document) VALUES (:pk, :doc)"),
                           {"pk": pk, "doc": _document(ref)})
    definitions = {}
    for name, (project, unit, direction, baseline, target, stakeholder) in MOV.items():
        definitions[name] = f.add("mov_definition", {
            "project_id": projects[project], "name": name, "unit": unit,
            "direction": direction, "baseline": baseline, "target": target,
            "stakeholder": stakeholder, "description": f"{name} — Beschreibung",
            "created_time": T0}, "id")
    for name, ref, value, evidence, who, when in MEASUREMENTS:
        f.add("mov_measurement", {"definition_id": definitions[name],
                                  "run_pk": old.pks.get(ref), "value": value,
                                  "evidence": evidence, "who": who, "time": when}, "id")


def _fill_cards(f: _Filler, old: OldStore) -> None:
    card = f.add("model_card", {
        "name": "scratch-detector", "version": "1", "status": "reviewed",
        "project": "défauts-ligne-3", "owner": "ana", "backbone": "resnet18",
        "path": "catalog/scratch-detector/README.md", "sha256": "e" * 64,
        "front_matter": {"runs": [RUNS["base"]["id"]], "tags": ["Kratzer"]},
        "body": "# scratch-detector\nFindet Kratzer.", "indexed_time": T0}, "id")
    table = "card_fts (rowid" if f.conn.dialect.name == "sqlite" else "card_text (card_id"
    f.conn.execute(text(f"INSERT INTO {table}, document) VALUES (:id, :doc)"),
                   {"id": card, "doc": "scratch-detector Findet Kratzer"})
    f.add("mlflow_link", {"run_pk": old.pks["base"], "tracking_uri": "http://127.0.0.1:5000",
                          "mlflow_run_id": "9" * 32, "experiment_id": "7",
                          "direction": "export", "digest": "a1" * 32, "synced_time": T0})


@pytest.fixture(params=REVISIONS)
def old_store(request: pytest.FixtureRequest, store_url: str) -> OldStore:
    """A store created at one revision and filled with that revision's records."""
    return make_old_store(store_url, request.param)


def make_old_store(url: str, revision: str) -> OldStore:
    old = OldStore(url, revision)
    engine = make_engine(url)  # as Cairn made them: WAL on SQLite
    try:
        upgrade(engine, revision)
        with engine.begin() as conn:
            fill(conn, old)
    finally:
        engine.dispose()
    return old


# -- what must come back ------------------------------------------------------------------------


def _plain(obj: Any) -> Any:
    """Records as comparable data: NaN equals NaN here, -0.0 keeps its sign."""
    if isinstance(obj, float):
        return repr(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def asdict_plain(record: RunRecord) -> dict[str, Any]:
    return _plain(asdict(record))


def expected_record(ref: str) -> dict[str, Any]:
    spec = RUNS[ref]
    code = dict(spec.get("code") or {})
    code.update(state=spec.get("code_state"), commit=spec.get("git_commit"),
                branch=spec.get("git_branch"), remote=spec.get("git_remote"),
                dirty=spec.get("git_dirty"), diff_sha256=spec.get("git_diff_sha256"))
    record = RunRecord(
        id=spec["id"], project=spec["project"], name=spec["name"], owner=spec["owner"],
        stored_status=spec["status"], code=code,
        params={k: p[3] for k, p in PARAMS.get(ref, {}).items()}, tags=TAGS.get(ref, {}),
        **{k: spec.get(k) for k in (
            "start_time", "end_time", "heartbeat_time", "heartbeat_interval", "question",
            "notes", "conclusion", "failure", "fingerprint", "command", "entry_point", "cwd",
            "hostname", "mlflow_run_id")},
        hardware=spec.get("hardware") or {}, environment=spec.get("environment") or {},
        warnings=spec.get("warnings") or [])
    data = asdict(record)
    data["metrics"] = {}
    for key, (points, _) in HISTORY.get(ref, {}).items():
        s = _summary(points)
        last = s["last"] if s["last_nonfinite"] is None else float(s["last_nonfinite"])
        data["metrics"][key] = {"key": key, "last": last, **{k: s[k] for k in (
            "last_step", "last_time", "min", "max", "count", "nonfinite_count")}}
    data["datasets"] = [
        {**_dataset(path, h), "role": role, "tracked": tracked, "dirty": False,
         "dirty_check": "stat-cache" if tracked else None, "pushed": None}
        for role, path, h, tracked in sorted(DATASETS.get(ref, []))]
    data["artifacts"] = [{"name": n, "sha256": s, "size": z, "uri": u, "created_time": T0 + 3000}
                         for n, s, z, u in sorted(ARTIFACTS.get(ref, []))]
    return _plain(data)


def _workspace(url: str, tmp_path) -> Workspace:
    return Workspace(root=tmp_path, store_url=url, artifact_root=str(tmp_path / "artifacts"),
                     catalog_dir=tmp_path / "catalog", owner="tester", system_interval=0)


def _found(ws: Workspace, query: str) -> set[str]:
    ids = {r.id for r in registry.search(query, limit=100, workspace=ws).runs}
    return {ref for ref, spec in RUNS.items() if spec["id"] in ids}


# -- the tests ----------------------------------------------------------------------------------


def test_every_record_reads_back_after_the_upgrade(old_store: OldStore):
    store = SqlStore(old_store.url)  # migrates to this Cairn's revision
    with store.reading() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == \
            SCHEMA_REVISION
    for ref, spec in RUNS.items():
        assert asdict_plain(store.get_run(spec["id"])) == expected_record(ref), ref
        history = store.metric_history(spec["id"])
        wanted = {k: sorted(points, key=lambda p: p[0]) for k, (points, _) in
                  HISTORY.get(ref, {}).items()}
        assert _plain({k: [(p.step, p.value, p.time) for p in v] for k, v in history.items()}) \
            == _plain(wanted), ref


def test_every_row_is_still_there(old_store: OldStore):
    """Row by row, column by column, through today's table definitions."""
    store = SqlStore(old_store.url)
    with store.reading() as conn:
        for table, rows in old_store.rows.items():
            t = current.metadata.tables[table]
            found = [dict(r._mapping) for r in conn.execute(select(t))]
            for row in rows:
                match = [f for f in found if all(_same(f[k], v) for k, v in row.items())]
                assert len(match) == 1, (table, row)
            assert len(found) == len(rows), table


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return repr(a) == repr(b)
    if isinstance(a, memoryview):
        a = bytes(a)
    return a == b


def test_upgraded_runs_are_found_compared_and_measured(old_store: OldStore, tmp_path):
    ws = _workspace(old_store.url, tmp_path)
    SqlStore(old_store.url).close()
    assert _found(ws, "Überprüfung") == {"base"}  # notes and a tag value, unicode
    assert _found(ws, "mixup") == {"base", "lr"}  # the question of one, the notes of other
    assert _found(ws, "Kratzer") == {"base"}  # a text param
    assert _found(ws, "params.lr < 0.0015") == {"base"}
    assert _found(ws, "tags.team = vision and loss.count >= 10") == {"base", "lr"}
    assert _found(ws, "acc.last > 1e308") == set()  # +inf is stored apart from finite values
    assert _found(ws, f"data.train = {DATA_HASH[:8]}") == {"base", "lr"}
    assert _found(ws, "project = cracks") == {"vit", "crashed"}
    assert _found(ws, "status = CRASHED") == {"crashed"}
    comparison = registry.compare(["r18-baseline", "r18-lr"], workspace=ws)
    assert comparison.params["lr"] == [0.001, 0.002] and "aug" in comparison.param_differences
    assert comparison.histories["loss"].steps == list(range(25))
    assert comparison.histories["acc"].values[0][:2] == [0.5, 0.75]  # the last logged wins
    progress = {p.name: p for p in registry.mov_progress(workspace=ws)}
    if not old_store.has("0002"):
        assert progress == {}
        return
    assert _found(ws, "family = resnet") == {"base", "lr"}
    assert [p.run.id for p in registry.similar("r18-lr", workspace=ws)] == [RUNS["base"]["id"]]
    escape = progress["escape_rate"]
    assert [(m.value, m.run_id, m.evidence) for m in escape.measurements] == [
        (300.0, RUNS["base"]["id"], "Audit Linie 3 ✓"), (250.0, None, None)]
    assert (escape.stakeholder, escape.best, progress["yield"].count) == \
        ("Qualität, Werk 3", 250.0, 0)


def test_an_upgraded_store_takes_new_runs(old_store: OldStore, tmp_path):
    """Keys continue after the old rows (PostgreSQL sequences included)."""
    ws = _workspace(old_store.url, tmp_path)
    with registry.start_run(project="cracks", name="after-upgrade", workspace=ws,
                            params={"model": {"backbone": "resnet18"}},
                            notes="nach dem Upgrade") as run:
        run.log_metric("loss", 0.5, step=0)
    assert [r.name for r in registry.search("Upgrade", workspace=ws).runs] == ["after-upgrade"]
    record = registry.get_run("after-upgrade", workspace=ws)
    assert record.metrics["loss"].last == 0.5 and record.project == "cracks"
    assert registry.get_run("r18-baseline", workspace=ws).params["big"] == 2**80


@pytest.mark.parametrize("revision", OLDER)
@pytest.mark.parametrize("how", ["error", "kill"])
def test_an_interrupted_upgrade_leaves_the_old_store_whole(store_url, revision, how,
                                                           monkeypatch):
    """The upgrade fails (an exception) or the process dies (SIGKILL) after the first
    migration's changes, before its commit: the store stays at its revision with every row,
    and the next open upgrades it."""
    make_old_store(store_url, revision)
    before = _state(store_url)
    assert before[0] == revision
    if how == "error":
        from alembic.runtime import migration

        def fail(self, step):
            raise RuntimeError("interrupted")

        monkeypatch.setattr(migration.HeadMaintainer, "update_to_step", fail)
        with pytest.raises((RuntimeError, StoreError), match="interrupted"):
            SqlStore(store_url)
        monkeypatch.undo()
    else:
        done = subprocess.run([sys.executable, "-c", _DIE_MID_UPGRADE, store_url],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == -signal.SIGKILL, done.stderr
    assert _state(store_url) == before  # nothing of the later revisions was kept
    store = SqlStore(store_url)
    for ref, spec in RUNS.items():
        assert asdict_plain(store.get_run(spec["id"])) == expected_record(ref)


def _state(url: str) -> tuple[str | None, set[str]]:
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            return revision, set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


_DIE_MID_UPGRADE = """if True:
    import os, signal, sys
    from alembic.runtime import migration
    migration.HeadMaintainer.update_to_step = lambda *_: os.kill(os.getpid(), signal.SIGKILL)
    from registry.store import SqlStore
    SqlStore(sys.argv[1])
"""


@pytest.mark.parametrize("revision", OLDER)
def test_a_reader_refuses_an_old_store_until_a_writable_open_upgrades_it(store_url, revision):
    """A reader (the dashboard, a read-only role) never migrates: an older store is a typed
    error naming both revisions, and stays as it is until a writable open upgrades it."""
    make_old_store(store_url, revision)
    with pytest.raises(SchemaOutdatedError, match=f"revision '{revision}'.*write access"):
        SqlStore(store_url, readonly=True, migrate=False)
    assert _state(store_url)[0] == revision
    SqlStore(store_url).close()
    reader = SqlStore(store_url, readonly=True, migrate=False)
    assert asdict_plain(reader.get_run(RUNS["base"]["id"])) == expected_record("base")


def test_runs_from_0001_are_found_by_similarity_after_the_upgrade(store_url, tmp_path):
    make_old_store(store_url, "0001")
    ws = _workspace(store_url, tmp_path)
    assert [p.run.id for p in registry.similar("r18-lr", workspace=ws)] == [RUNS["base"]["id"]]
    assert _found(ws, "family = resnet") == {"base", "lr"}
