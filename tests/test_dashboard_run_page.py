"""The dashboard's run page (Streamlit AppTest), the group verdict of the Compare page and the
Overview's value for money, on a store this test fills, on each store dialect."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import streamlit as st

import registry
from registry.config import load_workspace
from registry.knowledge.mov import value_for_money
from tests.test_dashboard_pages import BASE, DATA_A, DATA_B, _app, _cells, _texts, _use, filled_by
from tests.test_dashboard_pages import fill_workspace as fill_basics

COSTS = """
[costs]
currency = "EUR"
cpu_core = 0.04
"""
IDLE = "GPU 0 was busy 31% of the time: the data loader may be the bottleneck"
STEPS = 30


def png(path: Path) -> Path:
    """A small real PNG: the confusion matrix of the tests."""
    from PIL import Image

    image = Image.new("RGB", (24, 16), (200, 30, 30))
    image.putpixel((3, 3), (0, 0, 255))
    image.save(path, format="PNG")
    return path


def _seeded(ws, name: str, params: dict, acc: float) -> str:
    run = registry.start_run(project="defects", name=name, params=params, owner="ben",
                             workspace=ws)
    _use(run, DATA_A)
    run.log_metrics({"val_acc": acc}, step=0)
    run.end()
    return run.id


def _rich(ws, root: Path) -> registry.Run:
    """A run with everything the page shows: curves with NaN and inf, system metrics, a
    warning, artifacts (an image among them), MoV, cost, notes and tags."""
    run = registry.start_run(project="defects", name="r18-rich", owner="dan",
                             params={**BASE, "lr": 1.5e-3}, tags={"team": "vision"},
                             question="Does a middle lr help?", notes="First try\n\nwarm up",
                             workspace=ws)
    _use(run, DATA_A)
    for step in range(STEPS):
        run.log_metrics({"val_acc": 0.5 + step / 100, "train/loss": 1 - step / 50,
                         "system/gpu0/util": 31.0 + step % 3}, step=step)
    run.log_metric("val_acc", math.nan, step=STEPS)
    run.log_metric("train/loss", math.inf, step=STEPS)
    run._warn(IDLE)  # what the sampler records when the GPU idles
    files = root / "files"
    files.mkdir()
    run.log_artifact(png(files / "confusion.png"), name="plots/confusion.png")
    (files / "model.bin").write_bytes(bytes(range(256)) * 40)
    run.log_artifact(files / "model.bin", name="weights/model.bin")
    run.log_mov("escape_rate", 180, evidence="line 3 audit, rich run")
    run.set_conclusion("A middle lr is no better")
    run.end()
    return run


def fill_workspace(root: Path, store_url: str) -> dict[str, str]:
    """The runs of ``tests/test_dashboard_pages.fill_workspace``, then, with prices set: a
    rich run, seeds of the baseline and of the lr run (groups of three), a crashed run."""
    ids = fill_basics(root, store_url)
    with (root / "cairn.toml").open("a") as config:
        config.write(COSTS)
    ws = load_workspace()
    ids["rich"] = _rich(ws, root).id
    for seed, acc in ((1, 0.86), (2, 0.83)):
        ids[f"base-seed{seed}"] = _seeded(ws, f"base-seed{seed}", {**BASE, "seed": seed}, acc)
    for seed, acc in ((1, 0.89), (2, 0.90)):
        ids[f"lr-seed{seed}"] = _seeded(ws, f"lr-seed{seed}",
                                        {**BASE, "lr": 2e-3, "seed": seed}, acc)
    stuck = registry.start_run(project="cracks", name="vit-stuck", owner="cara",
                               params={"model": {"backbone": "vit_small"}, "lr": 1e-4},
                               workspace=ws)
    _use(stuck, DATA_B)
    stuck.log_metrics({"val_acc": 0.4}, step=0)
    stuck.end()
    store = ws.open_store()  # as if its process had died: RUNNING, and no heartbeat since
    store.update_run(store.resolve(stuck.id), status="RUNNING", end_time=None,
                     heartbeat_time=time.time() - 3600, heartbeat_interval=0.5)
    ids["stuck"] = stuck.id
    return ids


@pytest.fixture
def filled(tmp_dir, store_url, monkeypatch):
    """The workspace of :func:`fill_workspace`, with Streamlit's caches emptied."""
    yield from filled_by(fill_workspace, tmp_dir, store_url, monkeypatch)


def _table(at, column: str):
    """The first table of the page with this column."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


def test_the_run_page_shows_header_warnings_curves_and_summaries(filled):
    ws, ids = filled
    at = _app("run", id="r18-rich")
    record = registry.get_run(ids["rich"], workspace=ws)
    assert at.title[0].value == "r18\\-rich"  # Markdown-escaped: shown as typed
    texts = _texts(at).replace("\\", "")
    assert ":green-badge[FINISHED] **defects** · dan · started" in texts
    assert f"id {ids['rich']}" in texts
    assert IDLE in at.warning[0].value.replace("\\", "")
    for text in ("Does a middle lr help?", "First try", "A middle lr is no better"):
        assert text in texts
    assert "**Tags:** team = vision" in texts
    curves = at.multiselect(key="run_curves")
    assert curves.value == ["val_acc", "train/loss"]  # validation first, no system metric
    assert "system/gpu0/util" not in curves.options
    assert at.multiselect(key="run_system").value == ["system/gpu0/util"]
    summary = _table(at, "NaN or inf").set_index("metric")
    assert summary.loc["val_acc", "NaN or inf"] == 1 and summary.loc["val_acc", "last"] == "nan"
    assert summary.loc["val_acc", "max"] == f"{record.metrics['val_acc'].max:.6g}"
    assert "NaN or infinite points" in texts and "val_acc 1" in texts
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 2  # the run's own curves, and the system metric
    at.segmented_control(key="run_axis").set_value("time").run()
    at.toggle(key="run_split").set_value(True).run()
    assert not at.exception and len(at.get("vega_lite_chart")) >= 3


def test_curves_draw_every_point_of_a_short_history_and_mark_nonfinite_ones(filled):
    from dashboard import reads

    ws, ids = filled
    store = ws.open_store()
    curves = reads.run_curves(store, store.resolve(ids["rich"]), ["val_acc", "train/loss"])
    assert curves.points_in == {"val_acc": STEPS + 1, "train/loss": STEPS + 1}
    assert len(curves.points) == 2 * STEPS  # every finite point: nothing to thin
    marks = curves.marks.set_index("metric")
    assert marks.loc["val_acc", "kind"] == "NaN" and marks.loc["train/loss", "kind"] == "+inf"
    assert marks.loc["val_acc", "x"] == STEPS


def test_long_histories_are_thinned_for_drawing_but_keep_spikes_and_nonfinite_points():
    from array import array

    from dashboard._curves import buckets_for, downsample

    n = 100_000
    values = array("d", (math.sin(i / 700) for i in range(n)))
    values[54_321], values[777], values[99_000] = 50.0, -50.0, math.nan
    steps, times = array("q", range(n)), array("d", (1e9 + i for i in range(n)))
    buckets = buckets_for(4)
    curves = downsample({"loss": (steps, values, times)}, "step", buckets)
    drawn = curves.points.set_index("x")["value"]
    assert len(drawn) <= 2 * buckets + 1 and buckets_for(1) > buckets >= 100
    assert drawn[54_321] == 50.0 and drawn[777] == -50.0  # spikes survive the thinning
    assert drawn.index[-1] == n - 1  # and the last point
    assert curves.marks.to_dict("records") == [{"metric": "loss", "x": 99_000.0, "kind": "NaN"}]
    assert curves.points_in == {"loss": n} and curves.nonfinite_in == {"loss": 1}
    by_time = downsample({"loss": (steps, values, times)}, "time", buckets).points
    assert by_time["x"].min() >= 1e9 and len(by_time) == len(drawn)


def test_the_run_page_lists_artifacts_shows_the_image_and_offers_downloads(filled):
    ws, ids = filled
    at = _app("run", id=ids["rich"][:10])
    record = registry.get_run(ids["rich"], workspace=ws)
    listed = _table(at, "sha256")
    assert set(listed["name"]) == {a.name for a in record.artifacts}
    assert set(listed["sha256"]) == {a.sha256 for a in record.artifacts}
    images = at.get("image")
    assert len(images) == 1 and images[0].proto.imgs[0].url.endswith(".png")
    assert "plots/confusion" in images[0].proto.imgs[0].caption.replace("\\", "")
    picker = at.selectbox(key="artifact")
    assert len(picker.options) == 2
    buttons = at.get("download_button")
    assert len(buttons) == 1 and "Download" in buttons[0].proto.label


def test_a_large_artifact_is_never_read_into_the_page(filled, monkeypatch):
    from dashboard import _run_files, data

    ws, ids = filled
    monkeypatch.setattr(_run_files, "DOWNLOAD_MAX", 5_000)  # weights/model.bin is 10,240 B
    monkeypatch.setattr(_run_files, "IMAGE_MAX", 50)  # and the PNG 95 B or so
    read: list[str] = []
    original = data.artifact_download
    monkeypatch.setattr(data, "artifact_download",
                        lambda sha256: read.append(sha256) or original(sha256))
    at = _app("run", id="r18-rich")
    assert not at.get("image")  # too large to show
    at.selectbox(key="artifact").select(1).run()  # weights/model.bin
    record = registry.get_run(ids["rich"], workspace=ws)
    weights = next(a for a in record.artifacts if a.name == "weights/model.bin")
    assert not at.get("download_button") and weights.sha256 not in read
    assert [c.value for c in at.code if c.value == weights.uri]


def test_the_run_page_links_similar_runs_cards_mov_and_compare(filled):
    _, ids = filled
    at = _app("run", id="r18-baseline")
    similar = _table(at, "match")
    assert f"run?id={ids['again']}" in set(similar["id"])  # the same experiment, by ben
    assert "same experiment" in set(similar["match"])
    links = {link.proto.label.replace("\\", ""): link.proto.page
             for link in at.get("page_link")}
    assert any("scratch-detector" in label for label in links)  # the card built from it
    compare = next(link for link in at.get("page_link") if link.proto.label == "Compare with...")
    assert compare.proto.query_string == f"runs={ids['base']}"
    measured = _table(at, "MoV")
    assert list(measured["evidence"]) == ["line 3 audit"]


def test_the_run_page_shows_cost_and_energy(filled):
    ws, ids = filled
    at = _app("run", id="r18-rich")
    record = registry.get_run(ids["rich"], workspace=ws)
    cost = record.metrics["cost"].last
    figures = {m.label: m.value for m in at.metric}
    assert figures["Cost"] == f"{cost:.4g} EUR"
    assert figures["GPU hours"] == f"{record.metrics['gpu_hours'].last:.4g}"
    assert "Prices used" in [e.label for e in at.expander]


@pytest.mark.parametrize("ref, message", [("no-such-run", "no run matches"),
                                          ("0", "no run matches")])
def test_an_unknown_run_is_a_message_not_a_traceback(filled, ref, message):
    at = _app("run", id=ref)
    assert message in at.error[0].value.replace("\\", "")
    assert not at.get("vega_lite_chart")


def test_an_ambiguous_reference_says_which_runs_it_matches(filled):
    ws, ids = filled
    store = ws.open_store()
    store.update_run(store.resolve(ids["lr"]), name="twin")
    store.update_run(store.resolve(ids["vit"]), name="twin")
    at = _app("run", id="twin")
    error = at.error[0].value.replace("\\", "")
    assert "matches 2 runs" in error and ids["lr"] in error


def test_without_a_run_the_page_asks_for_one(filled):
    at = _app("run")
    assert "Open a run from the Runs page" in at.info[0].value
    at.text_input(key="run_ref").input("vit-small").run()
    assert at.title[0].value == "vit\\-small"
    assert at.query_params["id"] in ("vit-small", ["vit-small"])


def test_a_crashed_run_is_shown_as_crashed(filled):
    _, ids = filled
    at = _app("run", id=ids["stuck"])
    assert ":red-badge[CRASHED]" in _texts(at)
    assert "Crashed" in at.error[0].value and "never ended" in at.error[0].value


def test_run_tables_link_to_the_run_page(filled):
    _, ids = filled
    at = _app("runs")
    assert f"run?id={ids['base']}" in set(at.dataframe[0].value["id"])
    at = _app()  # Overview: recent and best runs
    assert f"run?id={ids['rich']}" in _cells(at)


def test_compare_gives_the_verdict_of_groups_of_seeds(filled):
    ws, ids = filled
    at = _app("compare", runs=f"{ids['base']},{ids['lr']}")
    groups = _table(at, "counted")
    assert list(groups["runs"]) == [4, 3]  # baseline, its repeat and two seeds; lr and two
    expected = registry.compare_groups(ids["base"], ids["lr"], "val_acc", workspace=ws)
    shown = [*(s.value for s in at.success), *(i.value for i in at.info)]
    assert any(expected.verdict in text.replace("\\", "") for text in shown), shown
    at.selectbox(key="group_metric").select("train/loss").run()
    assert not at.exception


def test_compare_of_one_group_says_so_and_runs_of_no_group_show_nothing(filled):
    _, ids = filled
    at = _app("compare", runs=f"{ids['base']},{ids['again']}")
    assert "all of one group" in _texts(at)
    at = _app("compare", runs=f"{ids['rich']},{ids['vit']}")
    assert not [df for df in at.dataframe if "counted" in df.value.columns]


def test_overview_shows_value_for_money(filled):
    ws, _ = filled
    at = _app()
    expected = {v.project: v for v in value_for_money(workspace=ws)}
    table = _table(at, "runs costed").set_index("project")
    defects = expected["defects"]
    assert table.loc["defects", "runs costed"] == defects.costed_runs > 0
    assert table.loc["defects", "runs without a cost"] == defects.uncosted_runs
    column = "escape_rate: points per 100 EUR"
    assert table.loc["defects", column] == pytest.approx(defects.per_100["escape_rate"])


DATASET_CARD = f"""---
kind: dataset
name: line3-images
version: "1"
status: reviewed
pretty_name: Line 3 images
dvc:
  path: data/train
  md5: {DATA_A}
classes:
  - name: scratch
    images: {{train: 10}}
---

# Line 3 images

Images of line 3, two classes.
"""


def test_a_runs_data_links_to_its_dataset_card_and_the_catalog_shows_both_kinds(filled):
    import catalog

    ws, _ = filled
    folder = ws.catalog_dir / "datasets" / "line3-images"
    folder.mkdir(parents=True)
    (folder / "README.md").write_text(DATASET_CARD)
    catalog.index(workspace=load_workspace())
    st.cache_data.clear()
    at = _app("run", id="r18-rich")
    data = _table(at, "card")
    assert list(data["card"]) == ["catalog?card=line3-images@1"]
    shown = _app("catalog", card="line3-images@1")
    listing = _table(shown, "kind")
    assert "dataset" in set(listing["kind"]) and "line3-images" in set(listing["name"])
    code = "\n".join(c.value for c in shown.code)
    assert "dvc pull 'data/train'" in code and DATA_A in code
