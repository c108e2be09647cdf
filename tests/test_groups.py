"""Groups of seeds: runs that differ only in their seed params, their statistics, two groups
compared beyond seed noise, the group line of the "has this been tried?" warning."""

from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import replace

import pytest

import registry
from registry._params import ParamValue, typed_value
from registry.errors import QueryError
from registry.knowledge._stats import bootstrap_interval, t_cdf, t_quantile, welch_interval
from registry.knowledge.groups import GroupError, compare_groups, group_key
from registry.knowledge.similarity import RunSpec
from registry.store import SqlStore
from registry.store.groups import Keying, code_of
from tests.conftest import git

BASE = {"model": {"backbone": "resnet18"}, "lr": 1e-3, "epochs": 10}


def _run(ws, seed, acc=None, *, params=BASE, project="defects", owner="ana", status="FINISHED",
         name=None, data=None, metric="val_acc"):
    run = registry.start_run(project=project, name=name, owner=owner, workspace=ws,
                             params={**params, "train": {"seed": seed}})
    if data:
        _use(run, data)
    if acc is not None:
        run.log_metric(metric, acc)
    if status != "RUNNING":
        run.end(status)
    else:
        run.flush()
    return run


def _use(run, data_hash, role="train"):
    from registry.capture.dvc import DataVersion

    version = DataVersion(path=f"data/{role}", tracked=True, hash=data_hash, hash_kind="md5",
                          size=10, nfiles=2, remote=None, source=f"data/{role}.dvc",
                          dirty=False, dirty_check="stat-cache")
    run._add_data(version, role, [])


def _by_size(groups):
    return sorted(groups, key=lambda g: (-g.runs, g.key))


# -- the statistics ---------------------------------------------------------------------------


@pytest.mark.parametrize(("df", "expected"), [(1, 12.706), (2, 4.303), (5, 2.571),
                                              (10, 2.228), (30, 2.042), (120, 1.980),
                                              (1e9, 1.960)])
def test_t_quantile_matches_the_tables(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-4)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=5e-4)


def test_t_quantile_inverts_the_cdf_for_any_degrees_of_freedom():
    assert t_quantile(0.995, 10) == pytest.approx(3.169, abs=5e-4)
    assert t_quantile(0.5, 3) == 0.0
    for df in (1.5, 3.7, 17.2, 250.0):
        for p in (0.6, 0.9, 0.975, 0.999):
            assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-10)
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)


def test_welch_interval_by_hand():
    a, b = [1.0, 2.0, 3.0, 4.0], [3.0, 5.0, 7.0, 9.0]
    low, high, df = welch_interval(a, b)
    va, vb = statistics.variance(a) / 4, statistics.variance(b) / 4
    assert df == pytest.approx((va + vb) ** 2 / (va**2 / 3 + vb**2 / 3))
    half = t_quantile(0.975, df) * math.sqrt(va + vb)
    assert (low, high) == pytest.approx((3.5 - half, 3.5 + half))


def test_the_bootstrap_is_seeded():
    a, b = [0.90, 0.91, 0.92], [0.93, 0.95, 0.94]
    assert bootstrap_interval(a, b) == bootstrap_interval(a, b)
    low, high = bootstrap_interval(a, b)
    assert 0.0 < low < 0.03 < high < 0.06


# -- what a group is --------------------------------------------------------------------------


def test_runs_that_differ_only_in_their_seed_form_a_group(workspace, repo):
    accs = [0.90, 0.91, 0.93]
    for seed, acc in enumerate(accs):
        _run(workspace, seed, acc, name=f"r18-s{seed}")
    _run(workspace, 0, 0.80, params={**BASE, "lr": 1e-2})
    found = _by_size(registry.groups(workspace=workspace))
    assert [(g.runs, g.n) for g in found] == [(3, 3), (1, 1)]
    stats = found[0].metrics["val_acc"]
    assert (stats.n, stats.min, stats.max) == (3, 0.90, 0.93)
    assert stats.mean == pytest.approx(statistics.fmean(accs))
    assert stats.std == pytest.approx(statistics.stdev(accs), rel=1e-6)
    assert found[0].name == "r18-s0" and found[0].project == "defects"
    assert found[0].id == found[0].key[8:20] and found[0].left_out == {}


def test_a_group_of_one_run_has_no_spread_and_cannot_be_compared(workspace, repo):
    one = _run(workspace, 0, 0.9)
    other = [_run(workspace, s, 0.92, params={**BASE, "lr": 2e-3}) for s in range(3)]
    (single,) = [g for g in registry.groups(workspace=workspace) if g.runs == 1]
    assert (single.n, single.metrics["val_acc"].std) == (1, None)
    c = compare_groups(one.id, other[0].id, "val_acc", workspace=workspace)
    assert c.low is None and c.better is None and not c.differs
    assert c.verdict.startswith("cannot tell with n=1") and "n=1 vs 3" in c.verdict


def test_nan_values_are_left_out_and_counted(workspace, repo):
    for seed, acc in enumerate([0.90, 0.92, math.nan, math.inf]):
        _run(workspace, seed, acc)
    (group,) = registry.groups(workspace=workspace)
    stats = group.metrics["val_acc"]
    assert (group.n, stats.n, stats.nonfinite, stats.missing) == (4, 2, 2, 0)
    assert stats.mean == pytest.approx(0.91) and math.isfinite(stats.std)
    other = [_run(workspace, s, 0.95, params={**BASE, "lr": 2e-3}) for s in range(2)]
    c = compare_groups(other[0].id, group.id, "val_acc", workspace=workspace)
    assert c.b.n == 2 and c.b.left_out == {"nan val_acc": 1, "inf val_acc": 1}
    assert "B: left out 1 inf val_acc, 1 nan val_acc" in c.notes


def test_running_runs_are_left_out_by_default_and_counted(workspace, repo):
    """Only FINISHED runs are counted; RUNNING (and FAILED, KILLED) ones stay members, listed
    as left out, and count with include_unfinished."""
    _run(workspace, 0, 0.90)
    _run(workspace, 1, 0.92)
    live = _run(workspace, 2, 0.50, status="RUNNING")
    _run(workspace, 3, 0.40, status="FAILED")
    try:
        (group,) = registry.groups(workspace=workspace)
        assert (group.runs, group.n, dict(group.left_out)) == (4, 2, {"FAILED": 1,
                                                                      "RUNNING": 1})
        assert group.metrics["val_acc"].mean == pytest.approx(0.91)
        (everything,) = registry.groups(workspace=workspace, include_unfinished=True)
        assert (everything.n, everything.left_out) == (4, {})
        assert registry.groups(workspace=workspace, include_unfinished=True,
                               sort="val_acc") == [everything]
        assert everything.metrics["val_acc"].mean == pytest.approx((0.9 + 0.92 + 0.5 + 0.4) / 4)
    finally:
        live.end()


def test_counted_runs_without_the_metric_are_missing(workspace, repo):
    _run(workspace, 0, 0.90)
    _run(workspace, 1, 0.92)
    _run(workspace, 2, None)
    _run(workspace, 3, 0.5, metric="val_loss")
    (group,) = registry.groups(workspace=workspace)
    assert group.metrics["val_acc"].missing == 2 and group.metrics["val_loss"].missing == 3
    (only,) = registry.groups(workspace=workspace, metric="val_acc")
    assert list(only.metrics) == ["val_acc"] and only.n == 4


def test_other_projects_params_data_or_code_are_other_groups(workspace, repo):
    for seed in range(2):
        _run(workspace, seed, 0.9, project="defects")
        _run(workspace, seed, 0.8, project="cracks")
        _run(workspace, seed, 0.9, params={**BASE, "epochs": 20})
        _run(workspace, seed, 0.9, data="1" * 32 + ".dir")
    (repo / "train.py").write_text("print(2)\n")
    git(repo, "commit", "-qam", "d")
    _run(workspace, 0, 0.9)
    found = registry.groups(workspace=workspace)
    assert sorted(g.runs for g in found) == [1, 2, 2, 2, 2]
    assert {g.project for g in found} == {"defects", "cracks"}
    same_config = [g for g in found if g.runs == 2 and g.metrics["val_acc"].mean < 0.85]
    assert [g.project for g in same_config] == ["cracks"]
    assert len({g.key for g in found if g.runs == 2}) == 3  # same key in both projects
    defects = registry.groups("project = defects", workspace=workspace)
    assert {g.project for g in defects} == {"defects"} and len(defects) == 4


def test_seed_params_are_matched_by_last_name_and_configurable(workspace, repo):
    _run(workspace, 0, 0.9, params={**BASE, "init_seed": 1})
    _run(workspace, 1, 0.9, params={**BASE, "init_seed": 2})
    assert sorted(g.runs for g in registry.groups(workspace=workspace)) == [1, 1]
    both = replace(workspace, seed_params=("seed", "init_seed"))
    assert [g.runs for g in registry.groups(workspace=both)] == [2]  # rekeyed: new settings
    assert sorted(g.runs for g in registry.groups(workspace=workspace)) == [1, 1]  # and back


def test_fingerprint_ignored_params_are_ignored_by_groups_too(workspace, repo):
    ws = replace(workspace, fingerprint_ignore=("workers",))
    _run(ws, 0, 0.9, params={**BASE, "workers": 4})
    _run(ws, 1, 0.9, params={**BASE, "workers": 8})
    assert [g.runs for g in registry.groups(workspace=ws)] == [2]


def test_query_errors_and_filters(workspace, repo):
    _run(workspace, 0, 0.9, owner="ana")
    _run(workspace, 1, 0.8, owner="ben")
    assert [g.runs for g in registry.groups("owner = ben", workspace=workspace)] == [1]
    assert registry.groups("owner = nobody", workspace=workspace) == []
    assert registry.groups(workspace=workspace, min_runs=3) == []
    with pytest.raises(QueryError):
        registry.groups("val_acc >=", workspace=workspace)


def test_sorted_by_a_metric_mean_or_size(workspace, repo):
    for seed in range(3):
        _run(workspace, seed, 0.80 + seed / 100, params={**BASE, "lr": 1e-1})
    for seed in range(2):
        _run(workspace, seed, 0.90, params={**BASE, "lr": 1e-2})
    _run(workspace, 0, None, params={**BASE, "lr": 1e-4})
    best = registry.groups(workspace=workspace, metric="val_acc", sort="-val_acc")
    assert [g.runs for g in best] == [2, 3, 1]  # groups without the metric last
    full = registry.groups(workspace=workspace, sort="-n")
    assert [g.runs for g in full] == [3, 2, 1]
    page = registry.groups(workspace=workspace, sort="-n", limit=1, offset=1)
    assert page == [full[1]]  # statistics for the page alone: the same
    second = registry.groups(workspace=workspace, sort="-val_acc", limit=1, offset=1)
    assert second == [full[0]] and set(second[0].metrics) == {"val_acc"}
    with pytest.raises(ValueError):
        registry.groups(workspace=workspace, limit=-1)


# -- stored keys ------------------------------------------------------------------------------


def _stored_keys(ws):
    store = ws.open_store()
    return {r.id: store_key(store, r.id) for r in store.list_runs(limit=1000)}


def store_key(store, run_id):
    from sqlalchemy import select

    from registry.store.schema import run

    with store.reading() as conn:
        return conn.execute(select(run.c.group_key).where(run.c.id == run_id)).scalar()


def test_the_key_start_run_would_store_is_the_key_made_from_the_rows(workspace, repo):
    """What registry/tracking/_start.py stores (``group_key(spec, ws.seed_params)``) and what
    a rekey makes from the stored rows agree: runs keyed either way group together."""
    run = registry.start_run(project="defects", params={**BASE, "seed": 3}, owner="ana",
                             workspace=workspace)
    _use(run, "2" * 32 + ".dir")
    run.end()
    record = registry.get_run(run.id, workspace=workspace)
    code = {"commit": record.code["commit"], "diff_sha256": record.code["diff_sha256"],
            "entry_point": os.path.basename(record.entry_point or "")}
    params = {k: typed_value(k, v)[0] for k, v in record.params.items()}
    data = tuple((d.role, d.hash, d.path) for d in record.datasets)
    spec = RunSpec(params, data, code, workspace.fingerprint_ignore)
    assert spec.fingerprint == record.fingerprint
    registry.groups(workspace=workspace)
    assert _stored_keys(workspace)[run.id] == group_key(spec, workspace.seed_params)
    other = replace(spec, params={**params, "seed": typed_value("seed", 4)[0]})
    assert group_key(other, workspace.seed_params) == group_key(spec, workspace.seed_params)


def test_new_data_makes_the_key_again(workspace, repo):
    run = _run(workspace, 0, 0.9, status="RUNNING")
    store = workspace.open_store()
    try:
        registry.groups(workspace=workspace)
        before = store_key(store, run.id)
        assert before is not None
        _use(run, "3" * 32 + ".dir")  # the fingerprint changes: the key is made again
        after = store_key(store, run.id)
        assert after not in (None, before)
        registry.groups(workspace=workspace)
        assert store_key(store, run.id) == after
    finally:
        run.end()


def test_a_read_only_store_groups_without_writing(workspace, repo):
    runs = [_run(workspace, s, 0.9 + s / 100) for s in range(3)]
    store = SqlStore(workspace.store_url)
    for r in runs:
        store.update_run(store.resolve(r.id), group_key=None)  # as a restore leaves them
    reader = replace(workspace, readonly=True)
    (group,) = registry.groups(workspace=reader)
    assert group.n == 3 and group.metrics["val_acc"].mean == pytest.approx(0.91)
    assert registry.groups(workspace=reader, sort="-val_acc") == [group]
    assert set(_stored_keys(workspace).values()) == {None}
    other = [_run(workspace, s, 0.95, params={**BASE, "lr": 2e-3}) for s in range(2)]
    c = compare_groups(other[0].id, group.id, "val_acc", workspace=reader)  # by run, by id
    assert (c.a.n, c.b.n, c.b.mean) == (2, 3, pytest.approx(0.91))
    assert compare_groups(runs[0].id, other[1].id, "val_acc", workspace=reader).b.n == 2
    assert set(_stored_keys(workspace).values()) == {None} | {
        store_key(store, r.id) for r in other}  # the new runs' keys: made by the writer


# -- two groups compared ----------------------------------------------------------------------


def _two_groups(ws, a_values, b_values, metric="val_acc"):
    a = [_run(ws, s, v, metric=metric) for s, v in enumerate(a_values)]
    b = [_run(ws, s, v, metric=metric, params={**BASE, "lr": 2e-3})
         for s, v in enumerate(b_values)]
    return a[0], b[0]


def test_a_clear_difference_with_enough_seeds_is_welch(workspace, repo):
    a_values = [0.900, 0.905, 0.910, 0.903, 0.907, 0.902]
    b_values = [0.920, 0.915, 0.925, 0.918, 0.922, 0.921]
    a, b = _two_groups(workspace, a_values, b_values)
    c = compare_groups(a.id, b.id, "val_acc", workspace=workspace)
    low, high, _ = welch_interval(a_values, b_values)
    assert (c.method, c.mode, c.better, c.scale, c.unit) == ("welch", "max", "B", 100.0,
                                                              "points")
    assert (c.low, c.high) == pytest.approx((low, high))
    gap, half = (c.difference * 100), (high - low) * 50
    assert c.verdict == f"B is better by {gap:.2f} +/- {half:.2f} points (95%), n=6 vs 6"
    flipped = compare_groups(b.id, a.id, "val_acc", workspace=workspace)
    assert flipped.better == "A" and flipped.verdict.startswith("A is better by 1.")


def test_small_groups_use_the_bootstrap_no_narrower_than_welch(workspace, repo):
    a, b = _two_groups(workspace, [0.90, 0.91, 0.92], [0.905, 0.915, 0.925])
    c = compare_groups(a.id, b.id, "val_acc", workspace=workspace)
    assert c.method == "bootstrap" and not c.differs and c.better is None
    assert c.verdict == "no difference beyond seed noise (n=3 vs 3)"
    welch = welch_interval([0.90, 0.91, 0.92], [0.905, 0.915, 0.925])
    assert c.low <= welch[0] and c.high >= welch[1]
    again = compare_groups(a.id, b.id, "val_acc", workspace=workspace)
    assert (again.low, again.high) == (c.low, c.high)  # seeded: reproducible


def test_lower_is_better_for_losses_and_units_are_the_metrics(workspace, repo):
    a, b = _two_groups(workspace, [2.1, 2.0, 2.2, 2.1, 2.05], [1.5, 1.6, 1.55, 1.5, 1.45],
                       metric="val_loss")
    c = compare_groups(a.id, b.id, "val_loss", workspace=workspace)
    assert (c.mode, c.better, c.scale, c.unit) == ("min", "B", 1.0, "val_loss")
    assert c.verdict == "B is better by 0.570 +/- 0.098 val_loss (95%), n=5 vs 5"


def test_a_metric_of_no_known_direction_is_higher_or_lower(workspace, repo):
    a, b = _two_groups(workspace, [10.0, 11, 10.5, 10.2, 10.8], [20.0, 21, 20.5, 20.2, 20.8],
                       metric="throughput_imgs")
    c = compare_groups(a.id, b.id, "throughput_imgs", workspace=workspace)
    assert c.mode is None and c.better is None and c.differs
    assert c.verdict == "B is higher by 10.00 +/- 0.60 throughput_imgs (95%), n=5 vs 5"


def test_a_project_mode_overrides_the_name(workspace, repo):
    ws = replace(workspace, projects={"defects": {"metric": "val_acc", "mode": "min"}})
    a, b = _two_groups(ws, [0.90, 0.905, 0.91, 0.903, 0.907], [0.95, 0.955, 0.96, 0.953, 0.957])
    assert compare_groups(a.id, b.id, "val_acc", workspace=ws).better == "A"


def test_groups_of_different_projects_are_compared_with_a_note(workspace, repo):
    a = [_run(workspace, s, 0.9 + s / 1000, project="defects") for s in range(3)]
    b = [_run(workspace, s, 0.8 + s / 1000, project="cracks") for s in range(3)]
    c = compare_groups(a[0].id, b[0].id, "val_acc", workspace=workspace)
    assert c.a.project == "defects" and c.b.project == "cracks" and c.better == "A"
    assert "the groups are of different projects (defects, cracks)" in c.notes


def test_group_references(workspace, repo):
    a, b = _two_groups(workspace, [0.9, 0.91], [0.92, 0.93])
    ids = {g.runs: g.id for g in registry.groups(workspace=workspace)}
    group_a = registry.groups("params.lr = 0.001", workspace=workspace)[0]
    by_id = compare_groups(group_a.id, b.name or b.id[:10], "val_acc", workspace=workspace)
    assert by_id.a.id == group_a.id and by_id.a.n == 2 and len(ids) == 1
    with pytest.raises(GroupError, match="same group"):
        compare_groups(a.id, group_a.id, "val_acc", workspace=workspace)
    with pytest.raises(GroupError, match="no group id or run"):
        compare_groups("fedcba9876543", b.id, "val_acc", workspace=workspace)
    missing = compare_groups(a.id, b.id, "no_such_metric", workspace=workspace)
    assert missing.verdict.startswith("cannot tell with n=0")
    assert missing.a.left_out == {"without no_such_metric": 2}


# -- has this been tried? ---------------------------------------------------------------------


def test_the_tried_warning_names_the_group(workspace, repo):
    for seed, acc in enumerate([0.908, 0.912, 0.916]):
        _run(workspace, seed, acc, owner="bob")
    registry.groups(workspace=workspace)  # keys the runs (start_run stores them itself)
    again = _run(workspace, 1, 0.91, owner="ann")
    line = next(w for w in again.warnings if " times (group " in w)
    assert line.startswith("bob ran this 3 times (group ")
    assert line.endswith(": val_acc 0.912 +/- 0.004 (n=3)")


def test_no_group_line_for_a_single_prior(workspace, repo):
    _run(workspace, 0, 0.9, owner="bob")
    registry.groups(workspace=workspace)
    again = _run(workspace, 0, 0.9, owner="ann")
    assert any("same experiment" in w for w in again.warnings)
    assert not any(" times (group " in w for w in again.warnings)


# -- the migration and the command line -------------------------------------------------------


def test_runs_recorded_before_0005_get_keys_with_the_default_settings(store_url, tmp_path):
    from tests.test_migrations import PARAMS, RUNS, _workspace, make_old_store

    make_old_store(store_url, "0004")
    store = SqlStore(store_url)  # upgrades: 0005 keys every run
    keys = {ref: store_key(store, spec["id"]) for ref, spec in RUNS.items()}
    params = {k: ParamValue(vtype, text, number)
              for k, (vtype, text, number, _) in PARAMS["base"].items()}
    data = [("train", "a" * 32 + ".dir", "data/train"), ("val", None, "data/val")]
    code = code_of("1" * 40, None, "train.py")
    assert keys["base"] == Keying().key(code, params, data)
    assert all(k.startswith(Keying().tag) for k in keys.values())
    ws = _workspace(store_url, tmp_path)
    # "vit" and "crashed": the same project, no params, code or data: one group
    assert sorted(g.runs for g in registry.groups(workspace=ws)) == [1, 1, 2]
    assert {ref: store_key(store, spec["id"]) for ref, spec in RUNS.items()} == keys


@pytest.fixture
def cairn(workspace, monkeypatch):
    from click.testing import CliRunner

    from registry.cli import cli

    monkeypatch.setenv("CAIRN_STORE", workspace.store_url)
    monkeypatch.setenv("CAIRN_ARTIFACTS", workspace.artifact_root)
    return lambda *args: CliRunner().invoke(cli, list(args))


def test_cli_groups(cairn, workspace, repo):
    _two_groups(workspace, [0.90, 0.91, 0.92], [0.95, 0.96])
    _run(workspace, 9, math.nan)
    out = cairn("runs", "groups", "--metric", "val_acc")
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].split()[:4] == ["group", "project", "n", "left"]
    assert "0.955" in lines[2] and "0.91" in lines[3] and "1 NaN/inf" in lines[3]
    rows = [json.loads(line) for line in cairn("runs", "groups", "--json").output.splitlines()]
    assert sorted(r["runs"] for r in rows) == [2, 4]
    assert cairn("runs", "groups", "--limit", "1").output.count("defects") == 1
    assert cairn("runs", "groups", "owner = nobody").output.strip() == "no groups match"


def test_cli_compare_groups(cairn, workspace, repo):
    a, b = _two_groups(workspace, [0.90, 0.905, 0.91, 0.903, 0.907],
                       [0.95, 0.955, 0.96, 0.953, 0.957])
    out = cairn("runs", "compare", "--groups", a.id[:8], b.id[:8], "--metric", "val_acc")
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[-1].startswith("B is better by 5.00 +/- 0.")
    assert "n=5 vs 5" in out.output and "(welch)" in out.output
    data = json.loads(cairn("runs", "compare", "--groups", a.id, b.id, "--metric", "val_acc",
                            "--json").output)
    assert data["better"] == "B" and data["a"]["n"] == 5 and data["level"] == 0.95
    assert cairn("runs", "compare", "--groups", a.id, b.id).exit_code == 2
    assert cairn("runs", "compare", a.id, b.id, "--metric", "val_acc").exit_code == 2
    unknown = cairn("runs", "compare", "--groups", a.id, "zzz-none", "--metric", "val_acc")
    assert unknown.exit_code == 1 and "no group id or run" in unknown.output


def test_seeds_that_agree_exactly_give_a_gap_without_spread(workspace, repo):
    a, b = _two_groups(workspace, [0.90] * 5, [0.91] * 5)
    c = compare_groups(a.id, b.id, "val_acc", workspace=workspace)
    assert c.verdict == "B is better by 1 +/- 0 point (95%), n=5 vs 5"
