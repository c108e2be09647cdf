"""``cairn sync``: offline nodes' runs, MoV and artifacts brought to a team store, and back."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

import registry
from registry.artifacts import ArtifactStore
from registry.cli import cli
from registry.config import Workspace
from registry.store import SqlStore
from registry.store.backup import run_snapshot
from registry.transfer import sync as sync_module
from registry.transfer.sync import sync_stores

PARAMS = {"lr": 0.01, "model": "resnet18", "seed": 1}


def node(root: Path, name: str) -> Workspace:
    """An offline node: its own SQLite store and artifact folder."""
    folder = root / name
    return Workspace(root=root, store_url=f"sqlite:///{folder / 'registry.db'}",
                     artifact_root=str(folder / "artifacts"), catalog_dir=root / "catalog",
                     owner=name, flush_interval=0.05, system_interval=0)


def record(ws: Workspace, name: str, *, points: int = 50, acc: float = 0.9,
           params: dict | None = None) -> str:
    report = Path(ws.artifact_root).parent / f"{name}.txt"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(f"the report of {name}\n" * 20)
    with registry.start_run(project="defects", name=name, params=params or PARAMS,
                            workspace=ws) as run:
        for step in range(points):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metric("val_acc", acc)
        run.log_artifact(report)
        run.log_mov("escapes", 40 - acc * 10)
    return run.id


@pytest.fixture
def team(store_url: str, tmp_path: Path) -> tuple[SqlStore, ArtifactStore]:
    return SqlStore(store_url), ArtifactStore(str(tmp_path / "team-artifacts"))


@pytest.fixture
def nodes(tmp_path: Path, repo: Path) -> tuple[Workspace, Workspace]:
    a, b = node(tmp_path, "ana"), node(tmp_path, "ben")
    for ws in (a, b):
        registry.define_mov("defects", "escapes", unit="per 1k", direction="lower",
                            baseline=40, target=10, workspace=ws)
    return a, b


def _everything(store: SqlStore, run_id: str) -> tuple:
    snap = run_snapshot(store, store.resolve(run_id))
    r = snap.record
    return (r.name, r.owner, r.stored_status, r.start_time, r.end_time, r.fingerprint,
            r.params, {k: v for k, v in r.tags.items() if k != "cairn.synced_from"},
            {k: [(p.step, p.value, p.time) for p in pts] for k, pts in snap.history.items()},
            [(a.name, a.sha256, a.size) for a in r.artifacts], r.datasets, snap.params)


def test_two_offline_nodes_end_up_complete_on_the_team_store(nodes, team):
    (a, b), (store, blobs) = nodes, team
    ids = [record(a, "a1"), record(a, "a2", acc=0.92), record(b, "b1", points=300)]
    for ws in (a, b):
        result = sync_stores(ws.open_store(), store, dest_blobs=blobs)
        assert not result.failed and not result.conflicts and not result.warnings
    for ws, run_id in ((a, ids[0]), (a, ids[1]), (b, ids[2])):
        assert _everything(store, run_id) == _everything(ws.open_store(), run_id)
        held = store.get_run(run_id)
        assert held.tags["cairn.synced_from"].endswith(ws.store_url.removeprefix("sqlite://"))
        (artifact,) = held.artifacts
        assert artifact.uri == blobs.uri(artifact.sha256)  # copied to the team's artifacts
        assert Path(artifact.uri).read_text().startswith("the report of")
    measured = registry.mov_progress("defects", workspace=_team_ws(store, blobs))
    assert sorted(m.value for m in measured[0].measurements) == pytest.approx([30.8, 31, 31])


def _team_ws(store: SqlStore, blobs: ArtifactStore) -> Workspace:
    return Workspace(root=Path(blobs.root).parent, store_url=store.url,
                     artifact_root=blobs.root, catalog_dir=Path(blobs.root).parent / "catalog",
                     owner="lead", system_interval=0)


def test_a_second_sync_sends_nothing_and_a_changed_run_goes_again(nodes, team):
    (a, _), (store, blobs) = nodes, team
    first = record(a, "a1")
    assert sync_stores(a.open_store(), store, dest_blobs=blobs).sent == [first]
    again = sync_stores(a.open_store(), store, dest_blobs=blobs)
    assert (again.sent, again.updated, again.unchanged, again.blobs) == ([], [], 1, 0)
    assert again.mov.measurements == 0 and again.mov.present == 1
    second = record(a, "a2")
    a.open_store().append_notes(a.open_store().resolve(first), "checked by hand")
    third = sync_stores(a.open_store(), store, dest_blobs=blobs)
    assert third.sent == [second] and third.updated == [first]
    assert store.get_run(first).notes == "checked by hand"


def test_an_interrupted_sync_resumes_without_doubling(nodes, team, monkeypatch):
    (a, _), (store, blobs) = nodes, team
    ids = [record(a, f"a{i}", points=10) for i in range(4)]
    real, calls = sync_module.import_runs, []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the node loses power mid-sync
        return real(*args, **kwargs)

    monkeypatch.setattr(sync_module, "import_runs", dying)
    with pytest.raises(KeyboardInterrupt):
        sync_stores(a.open_store(), store, dest_blobs=blobs)
    assert len(store.list_runs(limit=100)) == 2
    monkeypatch.setattr(sync_module, "import_runs", real)
    resumed = sync_stores(a.open_store(), store, dest_blobs=blobs)
    assert len(resumed.sent) == 2 and resumed.unchanged == 2
    assert sorted(r.id for r in store.list_runs(limit=100)) == sorted(ids)


def test_two_nodes_syncing_the_same_runs_at_once_store_them_once(nodes, team):
    (a, _), (store, blobs) = nodes, team
    ids = [record(a, f"a{i}", points=5) for i in range(6)]
    results, errors = [], []

    def go() -> None:
        try:
            results.append(sync_stores(a.open_store(), SqlStore(store.url), dest_blobs=blobs))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(not r.failed for r in results)
    assert sorted(r.id for r in store.list_runs(limit=100)) == sorted(ids)
    assert sum(len(r.sent) for r in results) == len(ids)


def test_conflicts_follow_the_documented_rule_and_are_reported(nodes, team):
    (a, _), (store, blobs) = nodes, team
    run_id = record(a, "a1")
    sync_stores(a.open_store(), store, dest_blobs=blobs)
    here, there = a.open_store(), store
    # The team lead writes on the team store; the node's owner edits on the node.
    there.append_notes(there.resolve(run_id), "lead: promising")
    there.update_run(there.resolve(run_id), conclusion="ship it")
    there.set_tags(there.resolve(run_id), {"review": "done", "shared": "team"})
    here.update_run(here.resolve(run_id), conclusion="needs another seed")
    here.set_tags(here.resolve(run_id), {"shared": "node", "gpu": "a100"})
    result = sync_stores(here, there, dest_blobs=blobs)
    held = there.get_run(run_id)
    assert held.conclusion == "ship it" and held.notes == "lead: promising"
    assert {k: held.tags[k] for k in ("review", "shared", "gpu")} == {
        "review": "done", "shared": "team", "gpu": "a100"}
    assert sorted(result.conflicts) == sorted([
        f"run {run_id[:8]}: conclusion: kept 'ship it' (here 'needs another seed')",
        f"run {run_id[:8]}: tag shared: kept 'team' (here 'node')"])
    assert _everything(there, run_id)[8] == _everything(here, run_id)[8]  # the node's points
    here.append_notes(here.resolve(run_id), "node: a second look")
    again = sync_stores(here, there, dest_blobs=blobs)
    assert f"run {run_id[:8]}: notes: kept the destination's (both sides wrote different " \
           "notes)" in again.conflicts
    assert there.get_run(run_id).notes == "lead: promising"


def test_the_team_store_warns_of_runs_from_offline_nodes(nodes, team, tmp_path):
    (a, _), (store, blobs) = nodes, team
    record(a, "a1")
    sync_stores(a.open_store(), store, dest_blobs=blobs)
    with registry.start_run(project="defects", params=PARAMS,
                            workspace=_team_ws(store, blobs)) as run:
        pass
    (line,) = [w for w in run.warnings if "the same experiment" in w]
    assert "was run by ana" in line and "(synced from " in line and "ana/registry.db" in line


def test_without_artifacts_to_the_runs_keep_their_uris_and_are_told(nodes, team):
    (a, _), (store, _) = nodes, team
    run_id = record(a, "a1")
    result = sync_stores(a.open_store(), store)
    (warning,) = result.warnings
    assert "stays on this machine" in warning and "--artifacts-to" in warning
    assert store.get_run(run_id).artifacts == a.open_store().get_run(run_id).artifacts


def test_sync_from_the_team_store_and_the_command(nodes, team, monkeypatch, tmp_path):
    (a, b), (store, blobs) = nodes, team
    record(a, "a1")
    monkeypatch.setenv("CAIRN_STORE", a.store_url)
    monkeypatch.setenv("CAIRN_ARTIFACTS", a.artifact_root)
    sent = CliRunner().invoke(cli, ["sync", "--to", store.url, "--artifacts-to", blobs.root])
    assert sent.exit_code == 0, sent.output
    assert "1 runs sent, 0 updated, 0 unchanged, 0 failed; 1 artifact files copied" in sent.output
    monkeypatch.setenv("CAIRN_STORE", b.store_url)
    fetched = CliRunner().invoke(cli, ["sync", "--from", store.url])
    assert fetched.exit_code == 0 and "1 runs sent" in fetched.output
    assert len(b.open_store().list_runs()) == 1
    both = CliRunner().invoke(cli, ["sync", "--to", store.url, "--from", store.url])
    assert both.exit_code == 2 and "exactly one of" in both.output


def test_a_blob_that_is_gone_fails_that_run_only(nodes, team):
    (a, _), (store, blobs) = nodes, team
    lost, kept = record(a, "lost"), record(a, "kept")
    Path(a.open_store().get_run(lost).artifacts[0].uri).unlink()
    result = sync_stores(a.open_store(), store, dest_blobs=blobs)
    assert result.sent == [kept] and "cannot read it to copy" in result.failed[lost]
    assert store.key_of(lost) is None  # nothing half-sent
