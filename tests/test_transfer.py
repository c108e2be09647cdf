"""Export to JSON lines and import back: a lossless round trip, across dialects too; with the
projects' MoV definitions and measurements, applied after the runs whatever the line order."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

import registry
from registry.store import SqlStore
from registry.transfer.backup import MovImport, export_mov, export_runs, import_runs


def _fill(workspace):
    ids = []
    for i in range(3):
        with registry.start_run(project="p", name=f"r{i}", workspace=workspace,
                                params={"lr": 10.0 ** -i, "arch": {"depth": 18 + i}, "flag": None,
                                        "big": 2**80, "betas": [0.9, 0.99]},
                                tags={"team": "vision"}) as run:
            for step in range(50):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            run.log_metric("loss", math.nan, step=50)
            run.log_metric("acc", math.inf)
            run.note(f"note {i}")
        ids.append(run.id)
    return ids


def _dump(store) -> list[dict]:
    with store.reading() as conn:
        from registry.store._reads import list_run_pks

        pks = sorted(list_run_pks(conn, limit=1000))
    return [json.loads(json.dumps(d, allow_nan=False)) for d in export_runs(store, pks)]


def test_round_trip_is_lossless(workspace, tmp_path):
    _fill(workspace)
    source = SqlStore(workspace.store_url)
    exported = _dump(source)
    target = SqlStore(f"sqlite:///{tmp_path / 'copy.db'}")
    lines = [json.dumps(d) for d in exported]
    result = import_runs(target, lines)
    assert len(result.imported) == 3 and not result.errors
    assert sorted(_dump(target), key=lambda d: d["id"]) == sorted(exported, key=lambda d: d["id"])
    again = import_runs(target, lines)
    assert len(again.skipped) == 3 and not again.imported
    record = target.get_run(exported[0]["id"])
    assert record.metrics["loss"].nonfinite_count == 1 and record.params["big"] == 2**80


def test_bad_lines_are_reported_and_the_rest_imported(workspace, tmp_path):
    ids = _fill(workspace)
    good = [json.dumps(d) for d in _dump(SqlStore(workspace.store_url))]
    broken = dict(json.loads(good[1]), id="f" * 32, metrics={"x": {"step": [1], "value": [1.0]}})
    lines = [good[0], "{not json", json.dumps({"format": "other"}), json.dumps(broken), good[2]]
    target = SqlStore(f"sqlite:///{tmp_path / 'copy.db'}")
    result = import_runs(target, lines)
    assert sorted(result.imported) == sorted([ids[0], ids[2]])
    assert [e.line for e in result.errors] == [2, 3, 4]
    with pytest.raises(registry.errors.RunNotFoundError):
        target.get_run("f" * 32)


def _fill_mov(workspace) -> list[str]:
    """Two projects with MoV: one measurement from run r1 of "p", one from no run."""
    ids = _fill(workspace)
    registry.define_mov("p", "yield", unit="%", direction="higher", baseline=80, target=95,
                        workspace=workspace)
    registry.define_mov("q", "scrap", unit="kg", direction="lower", baseline=9, target=3,
                        workspace=workspace)
    store = SqlStore(workspace.store_url)
    registry.knowledge.mov.log_mov(store, run_pk=store.resolve(ids[1]), project="p", name="yield",
                         value=88.5, who="ana", evidence="run r1", workspace=workspace)
    registry.record_mov("p", "yield", 90, who="ben", evidence="plant report", workspace=workspace)
    registry.record_mov("q", "scrap", 7.5, workspace=workspace)
    return ids


def _lines(store, **scope) -> tuple[list[str], list[str]]:
    """Run lines and project/MoV lines of a whole store."""
    runs = [json.dumps(d, allow_nan=False) for d in _dump(store)]
    return runs, [json.dumps(d, allow_nan=False) for d in export_mov(store, **scope)]


def test_a_measurement_whose_run_comes_later_is_kept_and_then_linked(workspace, tmp_path):
    ids = _fill_mov(workspace)
    runs, mov = _lines(SqlStore(workspace.store_url))
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    target = SqlStore(url)
    first = import_runs(target, mov)  # the MoV without the runs
    assert first.errors == [] and first.imported == []
    assert first.mov == MovImport(records=4, projects=2, definitions=2, measurements=3,
                                  unlinked=1)
    copy = replace(workspace, store_url=url)
    assert [m.run_id for p in registry.mov_progress("p", workspace=copy)
            for m in p.measurements] == [None, None]

    then = import_runs(target, mov + runs)  # the runs after the MoV, in the same file
    assert sorted(then.imported) == sorted(ids) and then.errors == []
    assert then.mov == MovImport(records=4, present=3, relinked=1)
    assert registry.mov_progress(workspace=copy) == registry.mov_progress(workspace=workspace)


def test_named_runs_carry_only_their_measurements(workspace):
    ids = _fill_mov(workspace)
    store = SqlStore(workspace.store_url)
    records = list(export_mov(store, run_pks=[store.resolve(ids[1])]))
    assert [(r["format"], r["name"]) for r in records] == [("cairn.project/1", "p"),
                                                           ("cairn.mov/1", "yield")]
    assert [(m["value"], m["run_id"]) for m in records[1]["measurements"]] == [(88.5, ids[1])]
    assert {r["name"] for r in export_mov(store, project="q")} == {"q", "scrap"}


def test_bad_mov_lines_are_reported_and_the_rest_applied(workspace, tmp_path):
    _fill_mov(workspace)
    _, mov = _lines(SqlStore(workspace.store_url))
    target = SqlStore(f"sqlite:///{tmp_path / 'copy.db'}")
    project, definition = json.loads(mov[0]), json.loads(mov[2])
    assert (project["format"], definition["name"]) == ("cairn.project/1", "yield")
    bad = [dict(project, description=3), dict(definition, direction="sideways"),
           dict(definition, measurements=[{"value": "high", "who": "x", "time": 1.0}]),
           dict(definition, created_time="yesterday")]
    result = import_runs(target, [*mov, *(json.dumps(b) for b in bad)])
    assert [e.line for e in result.errors] == [5, 6, 7, 8]
    assert "sideways" in str(result.errors[1]) and "not text" in str(result.errors[2])
    assert result.mov.measurements == 3

    other_unit = dict(definition, unit="ratio", measurements=[])
    refused = import_runs(target, [json.dumps(other_unit)])
    assert "measured in '%' here and in 'ratio'" in str(refused.errors[0])
    taken = import_runs(target, [json.dumps(other_unit)], replace=True)
    assert taken.errors == [] and taken.mov.definitions == 1
