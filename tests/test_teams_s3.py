"""A team across machines, end to end on the loopback S3 server: two offline nodes synced to
the team store with their artifacts copied to S3, the dashboard reading the team store, and a
fine-tune whose checkpoint lives on S3 carded and loaded from there."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import streamlit as st

import catalog
import registry
import zoo
from registry.artifacts import ArtifactStore
from registry.store import SqlStore
from registry.transfer.sync import sync_stores
from tests._s3server import S3, s3, s3_server  # noqa: F401 (fixtures)
from tests.test_catalog_draft import finetune_run
from tests.test_dashboard_pages import _app, _cells
from tests.test_dashboard_run_page import png
from tests.test_sync import node


def _trained(ws, name: str, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    with registry.start_run(project="defects", name=name, params={"lr": 0.01},
                            workspace=ws) as run:
        for step in range(20):
            run.log_metric("val_acc", 0.5 + step / 50, step=step)
        run.log_artifact(png(folder / "confusion.png"), name="eval/confusion.png")
    return run.id


def test_offline_nodes_reach_the_team_store_and_its_dashboard_with_s3_artifacts(
        tmp_dir: Path, repo: Path, store_url: str, s3: S3,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    team, blobs = SqlStore(store_url), ArtifactStore(s3.url("team"))
    runs, copied = {}, []
    for who in ("ana", "ben"):
        ws = node(tmp_dir, who)
        runs[who] = _trained(ws, f"{who}-r18", tmp_dir / who / "files")
        result = sync_stores(ws.open_store(), team, dest_blobs=blobs)
        assert result.sent == [runs[who]] and not result.failed
        copied.append(result.blobs)
    assert copied == [1, 0]  # the same confusion matrix: stored once, by its digest
    for who, run_id in runs.items():
        (artifact,) = team.get_run(run_id).artifacts
        assert artifact.uri == blobs.uri(artifact.sha256)
        assert artifact.uri.startswith(f"s3://{s3.bucket}/team/sha256/")
        assert blobs.open(artifact.sha256).read() == \
            (tmp_dir / who / "files" / "confusion.png").read_bytes()
        assert len(team.metric_history(run_id)["val_acc"]) == 20

    monkeypatch.setenv("CAIRN_STORE", store_url)
    monkeypatch.setenv("CAIRN_ARTIFACTS", blobs.root)
    st.cache_data.clear()
    st.cache_resource.clear()
    try:
        listed = _cells(_app("runs"))
        assert "ana-r18" in listed and "ben-r18" in listed
        page = _app("run", id="ben-r18")
        assert len(page.get("image")) == 1  # the confusion matrix, read back from S3
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_model_on_s3_is_carded_and_loaded_from_there(workspace, s3: S3,  # noqa: F811
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ws = replace(workspace, artifact_root=s3.url("models"))
    monkeypatch.setenv("CAIRN_STORE", ws.store_url)
    monkeypatch.setenv("CAIRN_ARTIFACTS", ws.artifact_root)
    monkeypatch.setenv("CAIRN_CATALOG", str(ws.catalog_dir))
    run_id, trained = finetune_run(ws)
    (weights,) = registry.get_run(run_id, workspace=ws).artifacts
    assert weights.uri.startswith(f"s3://{s3.bucket}/models/sha256/")
    card = catalog.draft_from_run(run_id, workspace=ws)
    assert card.is_file()
    model = zoo.create("catalog:scratch-r18", num_classes=3)
    state, expected = model.state_dict(), trained.state_dict()
    assert all((state[k] == expected[k]).all() for k in expected)
    loaded = catalog.load("scratch-r18")
    assert sorted(loaded.labels) == ["dent", "ok", "scratch"]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_run_on_s3_exports_to_onnx_and_to_mlflow(workspace, s3: S3, tmp_path: Path,  # noqa: F811
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from registry.transfer.mlflow import export_runs
    from tests.test_mlflow_export import client_for
    from zoo.cli import zoo as zoo_cli

    ws = replace(workspace, artifact_root=s3.url("models"))
    monkeypatch.setenv("CAIRN_STORE", ws.store_url)
    monkeypatch.setenv("CAIRN_ARTIFACTS", ws.artifact_root)
    run_id, _ = finetune_run(ws)
    out = CliRunner().invoke(zoo_cli, ["export", run_id, "--out", str(tmp_path / "onnx"),
                                       "--image-size", "64"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "onnx" / "model.onnx").is_file()

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = export_runs(uri, workspace=ws, models=False)
    assert not result.failed and not result.warnings, result.warnings
    files = client_for(uri).list_artifacts(result.mlflow_ids[run_id])
    assert [f.path for f in files] == ["model.safetensors"]
