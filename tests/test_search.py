"""The query language: every field kind, logic, free text, sorting, paging, errors and hostile
input, on SQLite and PostgreSQL, through the Python API and ``cairn runs search``."""

from __future__ import annotations

import itertools
import json
import math
import random
import time
from datetime import datetime

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, inspect, select

import registry
from registry._params import typed_value
from registry.cli import cli
from registry.cli.runs import runs as runs_group
from registry.cli.search import search as search_command
from registry.entities import DatasetUse, MetricSummary
from registry.errors import QueryError
from registry.query import _plan, count, search, search_pks, where
from registry.query._plan import Policy
from registry.query._sort import order, parse_sort
from registry.store import SqlStore, _writes, open_store, textindex
from registry.store.schema import run as run_table

HASH_TRAIN, HASH_VAL, HASH_OTHER = "61c531c3" + "0" * 24, "77aa" + "1" * 28, "9f00" + "2" * 28


def _at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# name -> how to record it; the letters in the expectations below are the names' initials.
RUNS = {
    "alpha": dict(
        project="defects", owner="ana", question="Does mixup help?", tags={"team": "vision"},
        params={"lr": 1e-4, "optimizer": {"name": "adamw"}, "batch_size": 32, "aug": "mixup"},
        metrics={"val_acc": [0.8, 0.93], "val/acc": [0.5], "val_loss": [0.4, 0.2]},
        data=[("data/train", "train", HASH_TRAIN), ("data/val", "val", HASH_VAL)],
        row=dict(start_time=_at("2026-10-15T09:00"), end_time=_at("2026-10-15T10:00"),
                 git_commit="abc123" + "0" * 34, git_branch="feat/mixup", git_dirty=True,
                 hostname="gpu-01", fingerprint="f00d" + "0" * 60, model_family="resnet")),
    "bravo": dict(
        project="defects", owner="ben", notes="baseline without augmentation",
        tags={"team": "nlp"}, params={"lr": 1e-2, "optimizer": {"name": "sgd"}, "batch_size": 64},
        metrics={"val_acc": [0.85], "val_loss": [0.5], "grad_norm": [1.0, math.nan]},
        data=[("data/train", "train", HASH_TRAIN)], status="FAILED",
        row=dict(start_time=_at("2026-11-01T10:00"), end_time=_at("2026-11-01T10:10"),
                 git_commit="abd999" + "0" * 34, git_branch="main", git_dirty=False,
                 hostname="gpu-02", model_family="resnet")),
    "charlie": dict(
        project="inspection", owner="chen", tags={"team": "vision", "stage": "prod"},
        params={"lr": 5e-4, "optimizer": {"name": "AdamW-fused"}}, metrics={"val_loss": [0.3]},
        data=[("data/other", "train", HASH_OTHER)], status="KILLED",
        row=dict(start_time=_at("2026-11-02T12:00"), end_time=_at("2026-11-02T15:00"),
                 git_branch="main", hostname="gpu-01", model_family="vit",
                 conclusion="cutmix beats mixup")),
    "delta": dict(  # its process died: RUNNING, heartbeat long gone
        project="defects", owner="dia", params={"lr": 0.1},
        row=dict(start_time=_at("2026-11-03T08:00"), status="RUNNING", end_time=None,
                 heartbeat_time=time.time() - 3600)),
    "echo": dict(  # alive: RUNNING, heartbeat fresh
        project="inspection", owner="ana",
        row=dict(start_time=_at("2026-11-04T08:00"), status="RUNNING", end_time=None,
                 heartbeat_time=time.time() + 3600)),
}


@pytest.fixture
def corpus(workspace) -> dict[str, registry.Run]:
    """The five runs above, recorded through the public API, then pinned in time."""
    store = open_store(workspace.store_url)
    recorded = {}
    for name, spec in RUNS.items():
        with registry.start_run(spec["project"], name, params=spec.get("params"),
                                tags=spec.get("tags"), question=spec.get("question"),
                                notes=spec.get("notes"), owner=spec["owner"],
                                workspace=workspace) as run:
            for key, values in spec.get("metrics", {}).items():
                for v in values:
                    run.log_metric(key, v)
            for path, role, digest in spec.get("data", []):
                store.add_dataset_use(run._pk, DatasetUse(path, role, True, hash=digest))
        store.update_run(run._pk, **{"status": spec.get("status", "FINISHED"), **spec["row"]})
        recorded[name] = run
    return recorded


def names(workspace, query: str, **options) -> set[str]:
    return {r.name for r in search(query, limit=100, workspace=workspace, **options).runs}


def ordered(workspace, query: str = "", **options) -> list[str]:
    return [r.name for r in search(query, limit=100, workspace=workspace, **options).runs]


def expect(workspace, cases: dict[str, str]) -> None:
    """Each query finds exactly the runs whose initials are given ('' for none)."""
    wrong = {}
    for query, initials in cases.items():
        found = "".join(sorted(n[0] for n in names(workspace, query)))
        if found != initials:
            wrong[query] = f"found {found!r}, expected {initials!r}"
    assert not wrong, wrong


def test_attributes(workspace, corpus):
    alpha = corpus["alpha"].id
    expect(workspace, {
        "owner = ana": "ae", "owner == ana": "ae", "owner != ana": "bcd", "owner ~ AN": "ae",
        "name = alpha": "a", "name ~ LPH": "a", "project = inspection": "ce",
        f"id = {alpha[:6]}": "a", f"id = {alpha[:6].upper()}": "a", f"id ~ {alpha[3:9]}": "a",
        "commit = abc1": "a", "code.commit = ab": "ab", "commit != abc1": "bcde",
        "branch = main": "bc", "code.branch = feat/mixup": "a", "host = gpu-01": "ac",
        "dirty = true": "a", "dirty = no": "b", "dirty != true": "bcde", "code.dirty = 1": "a",
        "fingerprint = F00D": "a", "family = resnet": "ab", "family = vit": "c",
        "question ~ mixup": "a", "notes ~ Augmentation": "b", "conclusion ~ 'beats'": "c",
    })


def test_times_and_durations(workspace, corpus):
    expect(workspace, {
        "started >= 2026-11-01": "bcde", "started < 2026-11-01": "a",
        "started = 2026-11-02": "c", "started <= 2026-11-02": "abc",
        "started > 2026-11-02": "de", "started >= 2026-11-01T10:00": "bcde",
        "started > 2026-11-01T10:00": "cde", f"started > {_at('2026-11-03T00:00')}": "de",
        "ended < 2026-11-02": "ab", "ended >= 2026-11-02": "c",
        "duration > 30m": "ac", "duration <= 600": "b", "duration >= 1h": "ac",
        "duration < 2h and duration > 59m": "a", "duration > 1d": "",
    })


def test_status_including_crashed(workspace, corpus):
    expect(workspace, {
        "status = finished": "a", "status = FAILED": "b", "status = Killed": "c",
        "status = crashed": "d", "status = running": "e", "status != running": "abcd",
        "not status = crashed": "abce",
    })
    assert {r.status for r in search("status = crashed", workspace=workspace).runs} == {
        "CRASHED"}


def test_params(workspace, corpus):
    expect(workspace, {
        "params.lr < 1e-3": "ac", "params.lr >= 1e-2": "bd", "params.lr = 0.0001": "a",
        "params.lr == 1e-4": "a", "params.lr != 1e-4": "bcde", "param.lr > -1": "abcd",
        "params.optimizer.name = adamw": "a", "params.optimizer.name ~ ADAMW": "ac",
        "params.optimizer.name = 'AdamW-fused'": "c", "params.optimizer.name = ADAMW": "",
        "params.batch_size = 64": "b", "params.batch_size > 16": "ab",
        "params.batch_size = '64'": "b", "params.aug = mixup": "a", "params.nothing = 1": "",
    })


def test_metrics(workspace, corpus):
    expect(workspace, {
        "val_acc >= 0.9": "a", "val_acc > 0.8": "ab", "metrics.val_acc.min <= 0.8": "a",
        "metrics.val_acc.max > 0.9": "a", "metrics.val_acc.count = 2": "a",
        "val_acc.count = 1": "b", "metrics.val_acc.last = 0.85": "b",
        "metrics.val/acc = 0.5": "a", "val/acc >= 0.5": "a", "val_loss.min < 0.25": "a",
        "val_acc != 0.93": "bcde", "metrics.val_acc < 1e9": "ab", "grad_norm = nan": "b",
        "metric.grad_norm.max = 1": "b", "metrics.val_acc.count = 1e30": "",
    })


def test_tags_and_data(workspace, corpus):
    expect(workspace, {
        "tags.team = vision": "ac", "tags.team != vision": "bde", "tags.team ~ V": "ac",
        "tag.stage = prod": "c", "tags.team = Vision": "",
        "data.train = 61c531c3": "ab", "data = 61C5": "ab", "data = 77aa": "a",
        "data.val = 77aa": "a", "data.train = 77aa": "", "data.hash = 9f": "c",
        "data.path = data/other": "c", "data.path ~ TRAIN": "ab", "data.val.path = data/val": "a",
        "data.train.path ~ other": "c", "data.train.hash = 9f00": "c", "not data = 61c5": "cde",
    })


def test_and_or_not_and_parentheses(workspace, corpus):
    expect(workspace, {
        "(owner = ana or owner = ben) and not status = failed": "ae",
        "owner = ana or owner = ben and status = failed": "abe",
        "owner = ana or owner = ben status = finished": "ae",
        "(owner = ana or owner = ben) status = failed": "b",
        "not not owner = ana": "ae", "NOT owner = ana AND project = defects": "bd",
        "not (owner = ana and project = defects)": "bcde", "OWNER = ana Or owner = chen": "ace",
        "((owner = ana))": "ae", "project = defects and (val_acc > 0.9 or params.lr > 0.05)": "ad",
        "val_acc >= 0.9 and params.lr < 1e-3 and data.train = 61c531c3 and \"mixup\"": "a",
    })


def test_free_text(workspace, corpus):
    expect(workspace, {
        "mixup": "ac", '"mixup"': "ac", "'does mixup'": "a", "mixup owner = chen": "c",
        "augmentation": "b", "vision": "ac", "mixup or augmentation": "abc",
        '"mixup" or "augmentation"': "abc", "not mixup": "bde", "nonexistentword": "",
        '""': "abcde", "mixup and not vision": "", "(mixup or augmentation) val_acc > 0": "ab",
    })


def test_empty_query_is_every_run_newest_first(workspace, corpus):
    assert ordered(workspace, "") == ["echo", "delta", "charlie", "bravo", "alpha"]
    assert ordered(workspace, "   ") == ordered(workspace, "")


@pytest.mark.parametrize(("sort", "expected"), [
    (None, "edcba"), ("started", "abcde"), ("-started", "edcba"), ("started desc", "edcba"),
    ("-val_acc", "abedc"), ("val_acc", "baedc"), ("val_acc ASC", "baedc"),
    ("metrics.val_loss.min", "acbed"), ("params.lr", "acbde"), ("-params.lr", "dbcae"),
    ("owner", "eabcd"), ("project", "dbaec"), ("duration", "baced"), ("tags.team", "bcaed"),
])
def test_sort(workspace, corpus, sort, expected):
    assert "".join(n[0] for n in ordered(workspace, sort=sort)) == expected


def test_pagination(workspace, corpus):
    pages = [search("", limit=2, offset=o, workspace=workspace) for o in (0, 2, 4)]
    assert [[r.name for r in p.runs] for p in pages] == [
        ["echo", "delta"], ["charlie", "bravo"], ["alpha"]]
    assert [p.has_more for p in pages] == [True, True, False]
    page = search("", sort="-val_acc", limit=2, offset=1, workspace=workspace)
    assert [r.name for r in page.runs] == ["bravo", "echo"] and page.has_more
    assert (page.query, page.sort, page.limit, page.offset) == ("", "-val_acc", 2, 1)
    assert page.runs[0].metrics["val_acc"].last == 0.85 and page.runs[0].params == {}


def test_connection_level_core(workspace, corpus):
    store = open_store(workspace.store_url)
    with store.reading() as conn:
        pks = search_pks(conn, "owner = ana", sort="started")
        assert pks == [corpus["alpha"]._pk, corpus["echo"]._pk]
        assert count(conn, "owner = ana") == 2 and count(conn, "") == 5
        assert search_pks(conn, "", limit=0) == []
        with pytest.raises(ValueError):
            search_pks(conn, "", offset=-1)


@pytest.mark.parametrize(("query", "position", "expected"), [
    ("val_acc >= ", 11, "a value after '>='"),
    ("(owner = ana", 12, "')'"),
    ("owner = ana)", 11, "closes nothing"),
    ("and owner = ana", 0, "a field or search text"),
    ("owner = ana and", 15, "a field or search text"),
    ("owner = ana = ben", 12, "a field or search text"),
    ("owner = not", 8, "a value after '='"),
    ("status = weird", 9, "running, finished, failed, killed, crashed"),
    ("status > running", 7, "'=' or '!='"),
    ("params.lr ~ 3", 12, "text after '~'"),
    ("metrics.val_acc ~ 3", 16, "'~' searches text"),
    ("duration ~ 3", 9, "'~' searches text"),
    ("ownr = ana", 0, "a known attribute"),
    ("code.cmt = abc", 5, "a known attribute"),
    ("metrics.val_acc = high", 18, "a number after '='"),
    ("params. = 3", 7, "a param name"),
    ('name = "unterminated', 7, "a closing \""),
    ("started > 2026-13-01", 10, "a date"),
    ("dirty = maybe", 8, "true or false"),
    ("duration > soon", 11, "a duration"),
    ("id < abc", 3, "'=', '!=' or '~'"),
    ("owner ! ana", 6, "'!='"),
    ("params.lr", 9, "an operator"),
    ("x = \x00", 4, "NUL"),
    ("(" * 40 + "a" + ")" * 40, 32, "nested"),
])
def test_malformed_queries_point_at_the_problem(workspace, query, position, expected):
    with pytest.raises(QueryError) as caught:
        search(query, workspace=workspace)
    error = caught.value
    assert (error.query, error.position) == (query, position) and expected in error.expected
    lines = str(error).splitlines()
    assert lines[-2] == "  " + query and lines[-1] == "  " + " " * position + "^"


@pytest.mark.parametrize(("sort", "position", "expected"), [
    ("val_acc sideways", 8, "'asc' or 'desc'"), ("data.train", 0, "a field to sort by"),
    ("-val_acc desc", 9, "either"), ("code.nope", 5, "a known attribute"),
])
def test_malformed_sorts(workspace, sort, position, expected):
    with pytest.raises(QueryError) as caught:
        search("", sort=sort, workspace=workspace)
    assert caught.value.position == position and expected in caught.value.expected


def _plans(store: SqlStore, query: str, sort: str | None, policy: Policy) -> list[list[str]]:
    """The SQLite query plan of every statement ``search_pks`` runs for ``query``."""
    statements = []

    def grab(_conn, _cursor, statement, parameters, _context, _many) -> None:
        statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", grab)
    try:
        with store.reading() as conn:
            search_pks(conn, query, sort=sort, limit=20, policy=policy)
    finally:
        event.remove(store.engine, "before_cursor_execute", grab)
    with store.reading() as conn:
        return [[row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)]
                for sql, params in statements if sql.lstrip().startswith("SELECT")]


DRIVE = Policy(drive_cost=0, estimate=True)  # drive from the smallest countable condition
WALK = Policy(drive_cost=math.inf, estimate=True)  # walk the sort order, unbounded


@pytest.mark.parametrize(("query", "index"), [
    ("params.lr < 1e-3", "ix_param_key_value_num_run_pk (key=? AND value_num<?)"),
    ("val_acc >= 0.9", "ix_metric_summary_key_last_run_pk (key=? AND last>?)"),
    ("tags.team = vision", "ix_tag_key_value_run_pk (key=? AND value=?)"),
    ("data.train = 61c5", "ix_dataset_hash_path (hash>? AND hash<?)"),
    ("data.train = 61c5", "ix_run_dataset_dataset_id (dataset_id=?)"),
    ("id = abc", "sqlite_autoindex_run_1 (id>? AND id<?)"),
    ("commit = ab", "ix_run_git_commit"), ("owner = ana", "ix_run_owner_start_time"),
    ("status = failed", "ix_run_status"), ("project = defects", "sqlite_autoindex_project_1"),
    # The smallest list drives (here the text: every count is 0), the rest probe primary keys.
    ("mixup val_acc >= 0.9 params.lr < 1e-3", "SCAN run_fts VIRTUAL TABLE"),
    ("mixup val_acc >= 0.9 params.lr < 1e-3", "param USING PRIMARY KEY (run_pk=? AND key=?)"),
    ("mixup val_acc >= 0.9 params.lr < 1e-3", "metric_summary USING PRIMARY KEY (run_pk=?"),
])
def test_sqlite_driving_plans_use_the_indexes(tmp_path, query, index):
    store = SqlStore(f"sqlite:///{tmp_path / 'registry.db'}")
    *counts, plan = _plans(store, query, None, DRIVE)
    assert any(index in line for line in plan), plan
    assert not any(line.split(" ")[:2] == ["SCAN", "run"] for line in plan), plan
    # The counts behind the choice read indexes only (each up to the cap), or the largest key.
    for line in (line for lines in counts for line in lines):
        assert line in ("SEARCH run", "SCAN CONSTANT ROW") or "COVERING INDEX" in line or (
            not line.startswith(("SEARCH", "SCAN"))) or line.startswith(
            ("SCAN anon", "SCAN run_fts VIRTUAL TABLE")), counts
    store.close()


@pytest.mark.parametrize(("query", "sort", "walks", "checks"), [
    # Newest first: the start_time index in order, no sort; nothing else drives.
    ('mixup val_acc >= 0.9 params.lr < 1e-3 data.train = 61c5', None,
     "SCAN run USING COVERING INDEX ix_run_start_time",
     ["LIST SUBQUERY", "SCAN run_fts VIRTUAL TABLE",
      "param USING PRIMARY KEY (run_pk=? AND key=?)",
      "run_dataset USING COVERING INDEX sqlite_autoindex_run_dataset_1 (run_pk=?)"]),
    ("params.lr < 1e-3 tags.team = vision", "started",
     "SCAN run USING COVERING INDEX ix_run_start_time",
     ["tag USING PRIMARY KEY (run_pk=? AND key=?)"]),
    # By a metric: its (key, last, run_pk) index in order, then each run by its key.
    ("owner = ana status = finished", "-val_acc",
     "SEARCH sort_metric USING COVERING INDEX ix_metric_summary_key_last_run_pk (key=? AND last>?)",
     ["SEARCH run USING INTEGER PRIMARY KEY (rowid=?)", "RIGHT PART OF ORDER BY"]),
    ("project = defects tags.stage = sweep val_loss < 0.5", "val_loss",
     "SEARCH sort_metric USING COVERING INDEX ix_metric_summary_key_last_run_pk (key=? AND last>?)",
     ["tag USING PRIMARY KEY (run_pk=? AND key=?)"]),
])
def test_sqlite_walking_plans_follow_the_sort_index(tmp_path, query, sort, walks, checks):
    store = SqlStore(f"sqlite:///{tmp_path / 'registry.db'}")
    with store.writing() as conn:  # a few runs, so that a bounded walk has a bound
        for i in range(3):
            pk = _writes.insert_run(conn, {
                "id": f"{i:032x}", "project_id": _writes.ensure_project(conn, "defects"),
                "owner": "ana", "status": "FINISHED", "start_time": 1e9 + i})
            _writes.upsert_summaries(conn, pk, [MetricSummary(k, 0.1 * i, 1, 1e9, 0, 1, 2)
                                                for k in ("val_acc", "val_loss")])
    plans = _plans(store, query, sort, WALK)
    walk = plans[1]  # after the counts
    assert walk[0] == walks, walk
    assert all(any(check in line for line in walk) for check in checks), walk
    assert "USE TEMP B-TREE FOR ORDER BY" not in walk, walk
    # A bounded walk finds where to stop in the same index, then walks a range of it.
    _, cutoff, walk, *_ = _plans(store, query, sort, Policy(
        drive_cost=math.inf, walk_bound=2, estimate=True))
    index = walks.split(" USING COVERING INDEX ")[1].split(" ")[0]
    assert index in cutoff[0] and index in walk[0], (cutoff, walk)
    assert walk[0].startswith("SEARCH") and ("<?" in walk[0] or ">?" in walk[0]), walk
    store.close()


_PIECES = st.sampled_from([
    "(", ")", " and ", " or ", " not ", "=", "!=", "~", ">=", "<", "'", '"', "\\", " ",
    "params.lr", "params.x", "val_acc", "metrics.val_acc.max", "tags.team", "data.train",
    "data", "status", "crashed", "started", "duration", "2026-11-01", "1e-3", "-1", "owner",
    "ana", "mixup", "; DROP TABLE run; --", "1' OR '1'='1", "%", "_", "/", "*", "NaN", "inf",
    "9" * 400, "'; DELETE FROM param; --", "\"); DROP TABLE tag; --", "*:*", "NEAR(a b)",
])
_QUERIES = st.one_of(st.text(max_size=40), st.lists(_PIECES, max_size=10).map("".join),
                     st.lists(_PIECES, max_size=10).map(" ".join))
_SORTS = st.one_of(st.none(), st.sampled_from(["-val_acc", "params.lr", "owner desc"]),
                   st.text(max_size=12))


def test_any_input_is_results_or_a_query_error_and_harms_nothing(workspace, corpus):
    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(query=_QUERIES, sort=_SORTS)
    @example(query="'; DROP TABLE run; --", sort=None)
    @example(query="params.x = \"1' OR '1'='1\"", sort=None)
    @example(query="name = 'x\\'); DROP TABLE run; --'", sort="name; DROP TABLE run")
    @example(query='"a" OR "b" "c*" NEAR', sort=None)
    def check(query: str, sort: str | None) -> None:
        try:
            page = search(query, sort=sort, limit=5, workspace=workspace)
        except QueryError as error:
            assert 0 <= error.position <= len(error.query)
        else:
            assert len(page.runs) <= 5

    check()
    store = open_store(workspace.store_url)
    with store.reading() as conn:
        assert {"run", "param", "tag", "metric_summary", "dataset"} <= set(
            inspect(conn).get_table_names())
        assert conn.execute(select(func.count()).select_from(run_table)).scalar_one() == 5
    assert names(workspace, "params.lr > 0") == {"alpha", "bravo", "charlie", "delta"}


@pytest.fixture
def cairn(workspace, monkeypatch):
    """``cairn runs search`` as it will be registered, in this workspace."""
    monkeypatch.setenv("CAIRN_STORE", workspace.store_url)
    monkeypatch.setenv("CAIRN_ARTIFACTS", workspace.artifact_root)
    monkeypatch.setitem(runs_group.commands, "search", search_command)

    def invoke(*args: str):
        return CliRunner().invoke(cli, ["runs", "search", *args])

    return invoke


def test_cli_prints_the_runs_table(cairn, corpus):
    result = cairn("owner = ana")
    assert result.exit_code == 0, result.output
    header, _rule, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["id", "project", "name"]
    assert [row.split()[0] for row in rows] == [corpus["echo"].id[:8], corpus["alpha"].id[:8]]
    assert "val_acc=0.93" in result.stdout


def test_cli_sorts_pages_and_writes_json(cairn, corpus):
    result = cairn("", "--sort", "-val_acc", "--limit", "1")
    assert result.exit_code == 0 and corpus["alpha"].id[:8] in result.stdout
    assert "--offset 1" in result.output
    lines = cairn("val_acc > 0", "--json", "--sort", "val_acc").stdout.splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["bravo", "alpha"]
    assert "no runs match" in cairn("nonexistentword").stdout


def test_cli_reports_a_bad_query_with_a_caret(cairn, corpus):
    result = cairn("val_acc >= ")
    assert result.exit_code == 1
    assert "bad query at position 11: expected a value after '>='" in result.output
    assert "  val_acc >= \n" + " " * 13 + "^" in result.output


# -- walking and driving give the same pages --------------------------------------------------

WORDS = ("mixup", "cutmix", "baseline", "warmup", "ema", "mixup cutmix")


@pytest.fixture
def many(store_url) -> SqlStore:
    """360 varied runs written straight into a store: ties in start times and metric values,
    runs without a metric or with a NaN one, three data versions, crashed runs."""
    store = open_store(store_url)
    rng, t0, pks = random.Random(3), _at("2026-01-01T00:00"), []
    with store.writing() as conn:
        for i in range(360):
            status = rng.choice(("FINISHED",) * 6 + ("FAILED", "KILLED", "RUNNING"))
            pk = _writes.insert_run(conn, {
                "id": f"{i:04x}" + "a" * 28, "project_id": _writes.ensure_project(
                    conn, rng.choice(("defects", "parcels", "wildlife"))),
                "name": f"r{i}", "owner": rng.choice(("ana", "ben", "chen")), "status": status,
                "start_time": t0 + 60 * (i - i % 3 * (i % 7 == 0)),  # some start together
                "heartbeat_time": t0 if status == "RUNNING" and i % 2 else time.time(),
                "heartbeat_interval": 30.0, "model_family": rng.choice(("resnet", "vit")),
                "notes": " ".join(rng.sample(WORDS, 2))})
            pks.append(pk)
            _writes.insert_params(conn, pk, {k: typed_value(k, v)[0] for k, v in {
                "lr": rng.choice((1e-4, 3e-4, 1e-3, 3e-3)), "batch": rng.choice((16, 64)),
                "opt": rng.choice(("adamw", "sgd"))}.items()})
            _writes.set_tags(conn, pk, {"stage": rng.choice(("sweep", "final", "ablation"))})
            summaries = []
            for key in ("val_acc", "val_loss"):
                if rng.random() < 0.85:
                    value = math.nan if rng.random() < 0.05 else rng.choice(range(40)) / 40
                    summaries.append(MetricSummary(key, value, 9, t0, value, value, 10))
            _writes.upsert_summaries(conn, pk, summaries)
            if rng.random() < 0.9:
                _writes.add_dataset_use(conn, pk, DatasetUse(
                    "data/train", "train", True, hash=rng.choice((HASH_TRAIN, HASH_VAL))))
        textindex.refresh(conn, pks)
    return store


SAME_QUERIES = (
    "", "owner = ana", "owner = ana and status = finished", "mixup", "mixup val_acc >= 0.5",
    "mixup params.lr < 1e-3 data.train = 61c5", "tags.stage = sweep family = vit val_loss < 0.5",
    "params.lr = 0.001", "val_acc > 0.96", "nonexistentword", "val_acc > 2",
    "(owner = ana or owner = ben) and not status = failed", "mixup or ema", "not mixup",
    "status = crashed", "project = defects val_acc >= 0.3", "params.opt = adamw val_acc < 0.5",
    "cutmix baseline owner != chen", "val_loss = nan",
)
SAME_SORTS = (None, "started", "-val_acc", "val_acc", "-val_loss", "metrics.val_acc.min",
              "params.lr", "-nosuchmetric")
SAME_POLICIES = {
    "drive": Policy(drive_cost=0, estimate=True),
    "walk": Policy(drive_cost=math.inf, estimate=True),
    "walk 25 runs, then drive": Policy(drive_cost=math.inf, walk_bound=25, estimate=True),
    "counts capped at 40": Policy(cap=40, estimate=True),
    "no counts": Policy(estimate=False),
}


def test_walking_and_driving_give_the_same_pages(many, monkeypatch):
    """Every plan gives the page that sorting all matches gives: the plain statement."""
    walks = []  # what each walk gave: a page, or None when it ran out of its bound
    for name in ("_started", "_metric"):
        method = getattr(_plan._Search, name)
        monkeypatch.setattr(_plan._Search, name, lambda self, *a, method=method: walks.append(
            method(self, *a)) or walks[-1])
    wrong = []
    with many.reading() as conn:
        for query, sort, (limit, offset) in itertools.product(
                SAME_QUERIES, SAME_SORTS, ((20, 0), (6, 4), (30, 250))):
            condition = where(conn, query)
            plain = select(run_table.c.pk).where(*(() if condition is None else (condition,)))
            expected = list(conn.execute(order(plain, parse_sort(sort)).limit(limit)
                                         .offset(offset)).scalars())
            for name, policy in SAME_POLICIES.items():
                found = search_pks(conn, query, sort=sort, limit=limit, offset=offset,
                                   policy=policy)
                if found != expected:
                    wrong.append((query, sort, limit, offset, name, found, expected))
    assert not wrong, wrong[:3]
    assert None in walks and any(walks)  # walks that filled pages, walks that gave way


def test_the_default_plan_is_chosen_by_counts(many, monkeypatch):
    """With the default policy a selective list drives and a common condition walks."""
    walked = []
    for name in ("_started", "_metric"):
        method = getattr(_plan._Search, name)
        monkeypatch.setattr(_plan._Search, name, lambda self, *a, method=method: walked.append(
            self.query) or method(self, *a))
    policy = Policy(estimate=True)  # SQLite's default, on PostgreSQL too
    with many.reading() as conn:
        assert len(search_pks(conn, "mixup", policy=policy)) == 20
        assert len(search_pks(conn, "status = finished", sort="-val_acc", policy=policy)) == 20
        assert walked == ["mixup", "status = finished"]
        search_pks(conn, "params.lr = 0.001 val_acc > 0.96", policy=policy)
        search_pks(conn, "tags.stage = final val_loss < 0.1", sort="val_loss", policy=policy)
        assert walked == ["mixup", "status = finished"]
