"""Has this been tried? Fingerprints, similar runs, warnings at start, the best prior run."""

from __future__ import annotations

from dataclasses import replace

import pytest

import registry
from registry._fingerprint import model_family, param_similarity
from registry._params import typed_value
from registry.entities import DatasetUse
from registry.errors import DuplicateRunError
from registry.knowledge.similarity import RunSpec, best_prior, similar
from registry.store import SqlStore

CFG = {"model": {"backbone": "resnet50.a1_in1k"}, "lr": 1e-3, "epochs": 10, "mixup": True}


def _run(ws, params, owner="ana", data_hash=None, acc=0.9, **kw):
    with registry.start_run(project="defects", name=kw.pop("name", None), params=params,
                            owner=owner, workspace=ws, **kw) as run:
        if data_hash:
            _use(ws, run, data_hash)
        run.log_metric("val_acc", acc)
    return run


def _use(ws, run, data_hash, role="train"):
    from registry.capture.dvc import DataVersion

    version = DataVersion(path=f"data/{role}", tracked=True, hash=data_hash, hash_kind="md5",
                          size=10, nfiles=2, remote=None, source=f"data/{role}.dvc",
                          dirty=False, dirty_check="stat-cache")
    run._add_data(version, role, [])


def test_the_same_experiment_by_someone_else_is_named_at_start(workspace, repo):
    first = _run(workspace, CFG, owner="ana", name="r50-base", acc=0.93)
    second = registry.start_run(project="defects", params=dict(CFG), owner="ben",
                                workspace=workspace)
    second.end()
    assert [p.run.id for p in second.tried] == [first.id] and second.tried[0].exact
    line = next(w for w in second.warnings if "same experiment" in w)
    assert "ana" in line and first.id[:8] in line and "FINISHED" in line
    assert "val_acc=0.93" in line
    assert registry.get_run(second.id, workspace=workspace).fingerprint == \
        registry.get_run(first.id, workspace=workspace).fingerprint


def test_a_changed_param_makes_it_similar_not_the_same(workspace, repo):
    first = _run(workspace, CFG, data_hash="a" * 32 + ".dir")
    run = registry.start_run(project="defects", params={**CFG, "lr": 2e-3}, owner="ben",
                             workspace=workspace)
    _use(workspace, run, "a" * 32 + ".dir")
    run.end()
    prior = next(p for p in run.tried if p.run.id == first.id)
    assert not prior.exact and 0.8 <= prior.score < 1
    assert prior.differences == {"lr": (2e-3, 1e-3)}
    assert "same data" in prior.reasons and "same model family (resnet)" in prior.reasons


def test_refuse_stops_an_exact_duplicate_before_it_is_recorded(workspace, repo):
    _run(workspace, CFG)
    strict = replace(workspace, on_duplicate="refuse")
    before = len(registry.list_runs(workspace=workspace))
    with pytest.raises(DuplicateRunError, match="already run"):
        registry.start_run(project="defects", params=CFG, workspace=strict)
    assert len(registry.list_runs(workspace=workspace)) == before
    registry.start_run(project="defects", params={**CFG, "epochs": 20}, workspace=strict).end()


def test_ignored_params_do_not_change_the_fingerprint(workspace, repo):
    ws = replace(workspace, fingerprint_ignore=("num_workers",))
    a = _run(ws, {**CFG, "num_workers": 4})
    b = _run(ws, {**CFG, "num_workers": 8})
    assert a.id in [p.run.id for p in b.tried if p.exact]


def test_different_code_is_a_different_experiment(workspace, repo):
    first = _run(workspace, CFG)
    (repo / "train.py").write_text("print(2)\n")
    second = _run(workspace, CFG)
    assert first.id not in [p.run.id for p in second.tried if p.exact]


def test_similar_ranks_by_data_family_and_params(workspace, repo):
    h = "b" * 32 + ".dir"
    base = _run(workspace, CFG, data_hash=h, name="base")
    near = _run(workspace, {**CFG, "lr": 1.5e-3}, data_hash=h, name="near")
    far = _run(workspace, {**CFG, "lr": 1e-1, "epochs": 100}, data_hash=h, name="far")
    other = _run(workspace, {"model": {"backbone": "vit_base_patch16_224"}, "lr": 1e-3},
                 data_hash="c" * 32, name="other-data")
    ranked = similar(base.id, workspace=workspace, min_score=0.0)
    ids = [p.run.id for p in ranked]
    assert ids.index(near.id) < ids.index(far.id) and base.id not in ids
    assert other.id not in ids  # neither the same data nor the same family
    spec = RunSpec({k: typed_value(k, v)[0] for k, v in {"model.backbone": "resnet18"}.items()})
    assert {p.run.id for p in similar(spec, workspace=workspace, min_score=0.0)} >= {
        base.id, near.id, far.id}


def test_best_prior_is_the_best_finished_run_on_that_data(workspace, repo):
    h = "d" * 32 + ".dir"
    _run(workspace, CFG, data_hash=h, acc=0.81)
    best = _run(workspace, {**CFG, "lr": 3e-4}, data_hash=h, acc=0.95)
    _run(workspace, {**CFG, "lr": 1e-2}, data_hash="e" * 32, acc=0.99)
    assert best_prior(h[:8], "val_acc", workspace=workspace).id == best.id
    assert best_prior("f" * 8, "val_acc", workspace=workspace) is None
    with pytest.raises(ValueError, match="neither"):
        best_prior("not a hash", "val_acc", workspace=workspace)


def test_keys_for_candidates_are_recorded(workspace, repo):
    run = _run(workspace, CFG, data_hash="a" * 32 + ".dir")
    store = SqlStore(workspace.store_url)
    from registry.store.schema import run as run_table

    with store.reading() as conn:
        family, key = conn.execute(run_table.select().with_only_columns(
            run_table.c.model_family, run_table.c.data_key).where(
            run_table.c.id == run.id)).one()
    assert family == "resnet" and key


@pytest.mark.parametrize("name, family", [
    ("resnet50.a1_in1k", "resnet"), ("vit_base_patch16_224", "vit"),
    ("convnext_tiny", "convnext"), ("catalog:scratch-detector@2", "scratch"),
    ("tfhub:https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5",
     "mobilenet"),
])
def test_model_family(name, family):
    assert model_family({"model.backbone": name}) == family
    assert model_family({"arch": name}) == family


def test_param_similarity():
    p = lambda v: typed_value("x", v)[0]  # noqa: E731
    assert param_similarity(p(1e-3), p(1e-3)) == 1.0
    assert param_similarity(p(1e-3), p(1e-2)) == 0.0
    assert 0.6 < param_similarity(p(1e-3), p(2e-3)) < 0.8
    assert param_similarity(p("adamw"), p("sgd")) == 0.0
    assert param_similarity(p(1), None) == 0.0


def test_data_use_records_feed_the_fingerprint(workspace, repo):
    a = _run(workspace, CFG, data_hash="1" * 32)
    b = _run(workspace, CFG, data_hash="2" * 32)
    assert a.id not in [p.run.id for p in b.tried if p.exact]
    assert isinstance(registry.get_run(a.id, workspace=workspace).datasets[0], DatasetUse)


def test_cli_similar_and_best(workspace, repo, monkeypatch):
    from click.testing import CliRunner

    from registry.cli import cli

    monkeypatch.setenv("CAIRN_STORE", workspace.store_url)
    monkeypatch.setenv("CAIRN_ARTIFACTS", workspace.artifact_root)
    h = "9" * 32 + ".dir"
    a = _run(workspace, CFG, data_hash=h, acc=0.8, name="a")
    b = _run(workspace, {**CFG, "lr": 2e-3}, data_hash=h, acc=0.9, name="b", owner="ben")
    out = CliRunner().invoke(cli, ["runs", "similar", a.id[:8]]).output
    assert b.id[:8] in out and "ben" in out and "lr=0.002" in out
    out = CliRunner().invoke(cli, ["runs", "best", "--data", h[:8], "--metric", "val_acc"]).output
    assert b.id in out
    missing = CliRunner().invoke(cli, ["runs", "best", "--data", "7777", "--metric", "val_acc"])
    assert missing.exit_code == 1 and "no finished run" in missing.output


def test_a_similar_prior_that_becomes_the_same_is_announced_again(workspace, repo):
    x = "a" * 32 + ".dir"
    first = _run(workspace, CFG, owner="ana", data_hash=x)
    run = registry.start_run(project="defects", params=dict(CFG), owner="ben",
                             workspace=workspace)
    _use(workspace, run, x, role="dep")  # as `dvc repro` records a stage's deps first
    assert not next(p for p in run.tried if p.run.id == first.id).exact
    _use(workspace, run, x)  # the script's own use_data: now the same experiment
    run.end()
    assert [p.exact for p in run.tried if p.run.id == first.id] == [True]
    assert any("same experiment" in w and "ana" in w for w in run.warnings)


def test_a_stage_dependency_the_script_also_declares_counts_once(workspace, repo):
    """Inside `dvc repro` the stage's deps are recorded (role dep) before the script's own
    use_data: the same experiment run by hand must still be the same fingerprint."""
    x = "c" * 32 + ".dir"
    with registry.start_run(project="defects", params=CFG, owner="ana",
                            workspace=workspace) as in_repro:
        _use(workspace, in_repro, x, role="dep")
        _use(workspace, in_repro, x)
    by_hand = _run(workspace, dict(CFG), owner="ben", data_hash=x)
    assert [p.exact for p in by_hand.tried if p.run.id == in_repro.id] == [True]
    assert registry.get_run(by_hand.id, workspace=workspace).fingerprint == \
        registry.get_run(in_repro.id, workspace=workspace).fingerprint
