"""Nested runs: a run started inside another (a sweep's trials, folds, MLflow child runs)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import registry
from registry.cli import cli
from registry.errors import RunNotFoundError
from registry.store import SqlStore
from registry.transfer.backup import export_runs, import_runs


def _sweep(ws, trials: int = 3):
    with registry.start_run(project="sweep", name="sweep-1", workspace=ws) as parent:
        children = []
        for i in range(trials):
            with registry.start_run(project="sweep", name=f"trial-{i}", parent=parent,
                                    params={"lr": 10 ** -(i + 2)}, workspace=ws) as child:
                child.log_metric("val_acc", 0.8 + i / 100)
            children.append(child)
    return parent, children


def test_children_name_their_parent_and_are_found_by_it(workspace):
    parent, children = _sweep(workspace)
    for child in children:
        assert registry.get_run(child.id, workspace=workspace).parent_id == parent.id
    assert registry.get_run(parent.id, workspace=workspace).parent_id is None
    found = registry.search(f"parent = {parent.id[:10]}", workspace=workspace)
    assert sorted(r.id for r in found.runs) == sorted(c.id for c in children)
    best = registry.search(f"parent = {parent.id} and val_acc > 0.81", workspace=workspace)
    assert [r.name for r in best.runs] == ["trial-2"]


def test_a_parent_by_name_or_prefix_and_an_unknown_parent(workspace):
    with registry.start_run(project="p", name="outer", workspace=workspace) as outer:
        pass
    for ref in ("outer", outer.id[:8]):
        with registry.start_run(project="p", parent=ref, workspace=workspace) as inner:
            pass
        assert registry.get_run(inner.id, workspace=workspace).parent_id == outer.id
    with pytest.raises(RunNotFoundError):
        registry.start_run(project="p", parent="no-such-run", workspace=workspace)
    assert len(registry.list_runs(workspace=workspace)) == 3  # nothing half-started


def test_runs_show_names_the_parent_and_lists_the_children(workspace, monkeypatch):
    parent, children = _sweep(workspace)
    monkeypatch.setenv("CAIRN_STORE", workspace.store_url)
    shown = CliRunner().invoke(cli, ["runs", "show", parent.id])
    assert shown.exit_code == 0, shown.output
    section = shown.output.split("children\n", 1)[1]
    assert all(c.id[:12] in section for c in children)
    child = CliRunner().invoke(cli, ["runs", "show", children[0].id])
    assert f"parent       {parent.id}" in child.output and "children" not in child.output
    as_json = json.loads(CliRunner().invoke(cli, ["runs", "show", children[0].id,
                                                   "--json"]).output)
    assert as_json["parent_id"] == parent.id


def test_backups_keep_the_nesting_even_without_the_parent(workspace, tmp_path):
    parent, children = _sweep(workspace, trials=2)
    store = SqlStore(workspace.store_url)
    lines = [json.dumps(d) for d in export_runs(store, [store.resolve(children[0].id)])]
    other = SqlStore(f"sqlite:///{tmp_path / 'other.db'}")
    assert import_runs(other, lines).imported == [children[0].id]
    assert other.get_run(children[0].id).parent_id == parent.id  # the parent stays unknown
    bad = json.loads(lines[0])
    bad.update(id="f" * 32, parent_id=["not", "text"])
    result = import_runs(other, [json.dumps(bad)])
    assert result.errors and "parent_id" in str(result.errors[0])
