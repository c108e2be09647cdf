"""Export to JSON lines and import back: a lossless round trip, across dialects too."""

from __future__ import annotations

import json
import math

import pytest

import registry
from registry.store import SqlStore
from registry.transfer import export_runs, import_runs


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
