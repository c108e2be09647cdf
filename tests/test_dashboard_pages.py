"""The dashboard's pages (Streamlit AppTest) on a store this test fills, and its read-only
engine, on each store dialect."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import func, insert, select
from streamlit.testing.v1 import AppTest

import registry
from registry.capture.dvc import DataVersion
from registry.config import load_workspace
from registry.errors import StoreError, StoreReadOnlyError

APP = Path(__file__).resolve().parent.parent / "dashboard" / "streamlit_app.py"
DATA_A, DATA_B = "a" * 32 + ".dir", "b" * 32 + ".dir"
BASE = {"model": {"backbone": "resnet18"}, "lr": 1e-3, "epochs": 3,
        "optimizer": {"name": "sgd"}}
CONFIG = """\
    owner = "tester"
    [runs]
    heartbeat_interval = 0.5
    flush_interval = 0.05
    [projects.defects.mov.escape_rate]
    unit = "ppm"
    direction = "lower"
    baseline = 420
    target = 100
    stakeholder = "Quality, plant 3"
"""
CARD = """\
---
name: scratch-detector
version: 1
status: reviewed
project: defects
owner: ana
backbone: resnet18
runs: [{run}]
---
# scratch-detector

## What it does
Finds scratches on painted panels.<script>alert("owned")</script>
"""


def _use(run, data_hash: str) -> None:
    version = DataVersion(path="data/train", tracked=True, hash=data_hash, hash_kind="md5",
                          size=10, nfiles=2, remote=None, source="data/train.dvc", dirty=False,
                          dirty_check="stat-cache")
    run._add_data(version, "train", [])


def _record(ws, name, owner, params, data_hash, accs, project="defects", status="FINISHED"):
    run = registry.start_run(project=project, name=name, params=params, owner=owner,
                             workspace=ws)
    _use(run, data_hash)
    for step, acc in enumerate(accs):
        run.log_metrics({"val_acc": acc, "train/loss": 1 - acc}, step=step)
    if project == "defects":
        run.log_mov("escape_rate", 400 - 100 * accs[-1], evidence="line 3 audit")
    run.end(status)
    return run


def fill_workspace(root: Path, store_url: str) -> dict[str, str]:
    """Four runs (an exact duplicate pair across owners, a near duplicate by another person,
    a failed run of another project), MoV measurements and an indexed card, in a workspace
    at ``root`` (the working directory) with ``CAIRN_STORE`` set to ``store_url``."""
    (root / "cairn.toml").write_text(textwrap.dedent(CONFIG))
    ws = load_workspace()
    assert ws.store_url == store_url
    runs = {
        "base": _record(ws, "r18-baseline", "ana", BASE, DATA_A, [0.7, 0.8, 0.85]),
        "again": _record(ws, "r18-again", "ben", BASE, DATA_A, [0.71, 0.79, 0.84]),
        "lr": _record(ws, "r18-lr", "ben", {**BASE, "lr": 2e-3}, DATA_A, [0.72, 0.83, 0.88]),
        "vit": _record(ws, "vit-small", "cara", {"model": {"backbone": "vit_small"},
                                                 "lr": 5e-4}, DATA_B, [0.5, 0.6],
                       project="cracks", status="FAILED"),
    }
    registry.record_mov("defects", "escape_rate", 250, who="quality", workspace=ws)
    card = root / "catalog" / "scratch-detector" / "README.md"
    card.parent.mkdir(parents=True)
    card.write_text(CARD.format(run=runs["base"].id))
    catalog = pytest.importorskip("catalog")
    if hasattr(catalog, "index"):
        catalog.index(workspace=ws)
    return {k: r.id for k, r in runs.items()}


def filled_by(fill, tmp_dir, store_url, monkeypatch):
    """The workspace ``fill(root, store_url)`` fills and its run ids, with Streamlit's
    caches emptied before and after."""
    monkeypatch.setenv("CAIRN_STORE", store_url)
    monkeypatch.delenv("CAIRN_CONFIG", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    ids = fill(tmp_dir, store_url)
    yield load_workspace(), ids
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def filled(tmp_dir, store_url, monkeypatch):
    """The workspace of :func:`fill_workspace`, with Streamlit's caches emptied."""
    yield from filled_by(fill_workspace, tmp_dir, store_url, monkeypatch)


def _app(page: str | None = None, **query) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    if page:
        at.query_params.update(query)
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def _cells(at: AppTest) -> str:
    """Everything the page's tables hold, as one text."""
    return "\n".join(df.value.to_csv() for df in at.dataframe)


def _texts(at: AppTest) -> str:
    parts = [*at.markdown, *at.caption, *at.info, *at.warning, *at.error, *at.metric]
    return "\n".join(str(getattr(p, "label", "")) + " " + str(p.value) for p in parts)


def test_overview_shows_mov_activity_recent_and_best_runs(filled):
    at = _app()
    assert at.title[0].value == "Overview"
    mov = at.metric[0]
    assert "escape_rate" in mov.label and mov.value == "250"  # lower is better: the best
    assert "53% of the way from 420 to 100" in mov.delta
    cells = _cells(at)
    for name in ("r18-baseline", "r18-again", "vit-small", "ana", "cara"):
        assert name in cells
    best = next(df.value for df in at.dataframe if "final value" in df.value.columns)
    assert list(best["run"])[:1] == ["r18-lr"] and set(best["project"]) == {"defects"}


def test_runs_page_searches_filters_and_reports_bad_queries(filled):
    at = _app("runs")
    assert set(at.dataframe[0].value["name"]) == {"r18-baseline", "r18-again", "r18-lr",
                                                  "vit-small"}
    at.text_input(key="q").input("owner = ben").run()
    assert sorted(at.dataframe[0].value["name"]) == ["r18-again", "r18-lr"]
    assert "Runs 1 to 2 of 2 matching" in _texts(at)
    at.multiselect(key="f_status").select("FAILED").run()
    assert at.dataframe[0].value.empty
    at.text_input(key="q").input("").run()
    assert list(at.dataframe[0].value["name"]) == ["vit-small"]
    at.multiselect(key="f_status").unselect("FAILED")
    at.multiselect(key="f_project").select("defects").run()
    at.selectbox(key="sort").select("metrics.val_acc").run()
    assert list(at.dataframe[0].value["name"]) == ["r18-lr", "r18-baseline", "r18-again"]
    assert at.button(key="compare").disabled
    at.text_input(key="q").input("val_acc >= and").run()
    assert "bad query" in at.error[0].value


def test_runs_are_counted_in_the_background_shared_and_capped(filled):
    from dashboard import data

    counting = data.counting("owner = ben")
    assert counting.result(timeout=30) == (2, False)
    assert data.counting("owner = ben") is counting  # every session shares one count
    assert data.count_runs("", cap=3) == (3, True)
    assert data.count_runs("status = KILLED") == (0, False)


def test_compare_shows_differences_side_by_side(filled):
    _, ids = filled
    at = _app("compare", runs=f"{ids['base']},{ids['lr']}")
    params = next(df.value for df in at.dataframe if "key" in df.value.columns)
    assert list(params["key"]) == ["lr"]
    assert sorted(params.iloc[0, 1:]) == ["0.001", "0.002"]
    assert [c.label for c in at.toggle] == ["Only differences"]
    at.toggle(key="only_diff").set_value(False).run()
    params = next(df.value for df in at.dataframe if "key" in df.value.columns)
    assert {"lr", "epochs", "model.backbone", "optimizer.name"} <= set(params["key"])
    assert "val_acc" in at.multiselect(key="curves").value


def test_compare_asks_for_two_runs_and_names_unknown_ones(filled):
    at = _app("compare")
    assert "Pick two or more runs" in at.info[0].value
    at.text_input(key="compare_text").input("r18-baseline, no-such-run").run()
    assert "no-such-run" in at.error[0].value


def test_overlap_groups_duplicates_across_people(filled):
    at = _app("overlap")
    labels = [e.label for e in at.expander]
    exact = [t for t in labels if t.startswith("same experiment")]
    near = [t for t in labels if t.startswith("similar")]
    assert exact == [next(t for t in labels if "2 runs by ana, ben" in t)]
    assert len(near) == 1 and "ana, ben" in near[0]
    cells = _cells(at)
    assert "r18-again" in cells and "r18-lr" in cells and "val_acc = 0.88" in cells


def test_catalog_renders_a_sanitised_card_its_runs_and_snippet(filled):
    catalog = pytest.importorskip("catalog")
    if not all(hasattr(catalog, n) for n in ("search", "get", "render_html", "reuse_snippet")):
        pytest.skip("the catalog package does not export its API yet")
    at = _app("catalog")
    html = at.get("html")[0].proto.body
    assert "Finds scratches" in html and "<script" not in html
    assert "scratch-detector" in at.code[0].value
    assert "r18-baseline" in _cells(at)


def test_catalog_page_says_so_when_the_catalog_is_unusable(filled, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "catalog", None)  # import catalog -> ImportError
    at = _app("catalog")
    assert "The catalog is not available" in at.warning[0].value


def test_zoo_lists_backbones_with_local_weight_availability(filled):
    at = _app("zoo")
    at.text_input(key="zoo_q").input("resnet18").run()
    models = at.dataframe[0].value
    assert len(models) and all("resnet18" in n for n in models["name"])
    assert set(models["weights_available"]) <= {True, False}
    assert "weights on this machine for" in at.caption[0].value


def test_the_dashboard_engine_cannot_write(filled):
    from dashboard import data
    from registry.store.schema import project

    ro = data.store()
    count = select(func.count()).select_from(project)
    with ro.reading() as conn:
        before = conn.execute(count).scalar_one()
    with pytest.raises(StoreReadOnlyError), ro.writing() as conn:
        conn.execute(insert(project).values(name="sneaky", created_time=0.0))
    # What the dashboard opens through its workspace (catalog, MoV) is this read-only store.
    assert data.workspace().readonly and data.workspace().open_store() is ro
    with pytest.raises(StoreError), ro.reading() as conn:
        conn.execute(insert(project).values(name="sneaky", created_time=0.0))
    with ro.reading() as conn:
        assert conn.execute(count).scalar_one() == before


def test_cairn_dashboard_refuses_a_missing_store_and_serves_read_only_flags(tmp_dir,
                                                                            monkeypatch):
    from click.testing import CliRunner

    from dashboard.cli import dashboard, streamlit_command

    monkeypatch.setenv("CAIRN_STORE", f"sqlite:///{tmp_dir / 'none' / 'registry.db'}")
    result = CliRunner().invoke(dashboard, ["--headless"])
    assert result.exit_code == 1 and "no registry store" in result.output
    assert not (tmp_dir / "none").exists()  # nothing was created
    args = streamlit_command(host="127.0.0.1", port=8765, headless=True)
    flags = dict(zip(args[6::2], args[7::2], strict=True))
    assert args[1:5] == ["-P", "-m", "streamlit", "run"]
    # These at least (the service's own flags, tests/test_dashboard_service.py, come beside).
    assert flags.items() >= {"--server.address": "127.0.0.1", "--server.port": "8765",
                             "--server.headless": "true", "--server.fileWatcherType": "none",
                             "--server.runOnSave": "false",
                             "--browser.gatherUsageStats": "false",
                             "--client.toolbarMode": "viewer"}.items()


@pytest.mark.parametrize("text", ["[owner](javascript:alert(1))", "**bold** _x_ `code`",
                                  "<b>tag</b> # not a heading", "<javascript:alert(1)>",
                                  ":material/home: $x$ ~~x~~"])
def test_card_fields_in_headers_are_shown_as_typed(text):
    from html import escape

    from markdown_it import MarkdownIt  # CommonMark, as Streamlit's frontend renders it

    from dashboard._format import literal

    html = MarkdownIt("commonmark").enable("strikethrough").render(literal(text))
    assert html.strip() == f"<p>{escape(text, quote=False)}</p>"
