"""A read-only workspace reads everything and can write nothing (the dashboard's access)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import func, insert, select, text

import registry
from registry.errors import StoreError, StoreReadOnlyError
from registry.knowledge.mov import mov_progress
from registry.store.schema import mov_definition, project, run

ESCAPE = {"unit": "ppm", "direction": "lower", "baseline": 420, "target": 100}


@pytest.fixture
def filled(workspace):
    """Two runs written through the ordinary (writable) workspace."""
    for lr in (0.1, 0.01):
        with registry.start_run(project="defects", name=f"lr-{lr}", params={"lr": lr},
                                workspace=workspace) as r:
            r.log_metric("acc", 0.5 + lr)
    return workspace


def _counts(ws) -> tuple[int, int]:
    with ws.open_store().reading() as conn:
        return (conn.execute(select(func.count()).select_from(run)).scalar_one(),
                conn.execute(select(func.count()).select_from(mov_definition)).scalar_one())


def test_a_read_only_workspace_opens_its_own_read_only_store(filled):
    ro = filled.read_only()
    assert ro.readonly and not filled.readonly
    store = ro.open_store()
    assert store.readonly and store is ro.open_store() and store is not filled.open_store()
    with pytest.raises(StoreReadOnlyError, match="read-only"), store.writing():
        pass


def test_the_database_itself_refuses_writes_on_a_read_only_store(filled):
    store = filled.read_only().open_store()
    before = _counts(filled)
    with pytest.raises(StoreError), store.reading() as conn:
        conn.execute(insert(project).values(name="sneaky", created_time=0.0))
    if store.dialect == "postgresql":  # the session default, not only psycopg's BEGIN
        with store.engine.connect() as conn:
            assert conn.execute(text("SHOW default_transaction_read_only")).scalar() == "on"
    assert _counts(filled) == before


def test_the_knowledge_layer_reads_through_a_read_only_workspace(filled):
    ro = filled.read_only()
    page = registry.search("params.lr < 0.05", workspace=ro)
    assert [r.name for r in page.runs] == ["lr-0.01"]
    table = registry.compare(["lr-0.1", "lr-0.01"], workspace=ro)
    assert table.params
    assert registry.get_run("lr-0.1", workspace=ro).metrics["acc"].last == pytest.approx(0.6)


def test_mov_progress_on_a_read_only_workspace_shows_declared_movs_without_storing_them(filled):
    declared = replace(filled, projects={"defects": {"mov": {"escaped": ESCAPE}}})
    before = _counts(declared)
    (progress,) = mov_progress("defects", workspace=declared.read_only())
    assert (progress.name, progress.unit, progress.measurements) == ("escaped", "ppm", [])
    assert _counts(declared) == before  # nothing synced into the store
    (stored,) = mov_progress("defects", workspace=declared)  # the writable one stores it
    assert stored.name == "escaped" and _counts(declared)[1] == before[1] + 1


def test_no_run_starts_in_a_read_only_workspace(filled):
    before = _counts(filled)
    with pytest.raises(StoreReadOnlyError, match="start a run"):
        registry.start_run(project="defects", name="sneaky", workspace=filled.read_only())
    assert _counts(filled) == before
