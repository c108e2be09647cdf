"""Everything the dashboard shows comes through here: the only module that opens the store,
and the one that caches. The reads themselves are the registry's (``registry.store.overview``,
``registry.query``, ``registry.knowledge``) and :mod:`dashboard.reads`; this module adds only
Streamlit's caches on top.

The workspace is made read-only (``Workspace.read_only()``), so its store opens read-only
(SQLite: ``file:...?mode=ro&uri=true``; PostgreSQL: sessions with
``default_transaction_read_only=on``), is never migrated, refuses writes with
``StoreReadOnlyError``, and is shared by every session
(``st.cache_resource``); query results are cached for a short while (``st.cache_data``).
Every query is bounded: a page of runs, a capped count, a window of weeks, a sample of the
newest runs, so pages stay fast on a store of 100,000 runs.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import streamlit as st

from dashboard import reads
from dashboard._curves import Curves
from dashboard._format import quote
from dashboard._overlap import OverlapGroup
from dashboard.reads import COUNT_CAP, STATUSES, SeedGroups
from registry.artifacts import ArtifactStore
from registry.config import Workspace, load_workspace
from registry.entities import RunRecord
from registry.knowledge.comparison import Comparison, compare
from registry.knowledge.mov import MovMeasurement, MovProgress, ValueForMoney
from registry.knowledge.mov import mov_progress as registry_mov_progress
from registry.knowledge.mov import value_for_money as registry_value_for_money
from registry.knowledge.similarity import Prior, primary_metric
from registry.query import SearchPage, count_up_to, search
from registry.store import SqlStore, overview
from registry.store.overview import Facets

__all__ = [
    "COUNT_CAP", "STATUSES", "Facets", "activity", "artifact_bytes", "artifact_download",
    "artifact_reader", "best_runs", "cards_of_runs", "catalog_card", "catalog_cards",
    "catalog_problem", "comparison", "count_runs", "counting", "dataset_cards_of",
    "exact_duplicates", "facets", "get_runs", "known_runs", "metric_keys", "mlflow_links",
    "mov_progress", "near_duplicates", "primary_metrics", "recent_runs", "run", "run_curves",
    "run_mov", "search_runs", "seed_groups", "similar_runs", "store", "value_for_money",
    "weekly_runs", "workspace", "zoo_models", "zoo_sources",
]

RUNS_TTL, SUMMARY_TTL, ZOO_TTL = 30, 300, 3600  # seconds: runs change often, models rarely


# -- the store ---------------------------------------------------------------------------------


@st.cache_resource
def workspace() -> Workspace:
    """The workspace ``cairn dashboard`` was started in (``CAIRN_STORE`` names its store),
    read-only: everything opened through it (the catalog's index, MoV) cannot write."""
    return load_workspace().read_only()


@st.cache_resource
def store() -> SqlStore:
    """The workspace's store, read-only, shared by every session."""
    return workspace().open_store()


# -- runs --------------------------------------------------------------------------------------


@st.cache_data(ttl=SUMMARY_TTL, show_spinner=False)
def facets() -> Facets:
    """What the Runs page filters on: every value present in the store."""
    return overview.facets(store())


@st.cache_data(ttl=SUMMARY_TTL, show_spinner=False)
def metric_keys(runs: int = 200) -> list[str]:
    """Metric keys the newest runs logged (the sort and column choices)."""
    return overview.metric_keys(store(), runs)


@st.cache_data(ttl=RUNS_TTL, show_spinner=False)
def search_runs(query: str, sort: str | None, limit: int, offset: int) -> SearchPage:
    """One page of runs matching ``query`` (the registry's search language), sorted."""
    return search(query, sort=sort, limit=limit, offset=offset, store=store())


def count_runs(query: str, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """(how many runs match, whether counting stopped at ``cap``)."""
    return counting(query, cap).result()


@st.cache_resource(ttl=RUNS_TTL, max_entries=256, show_spinner=False)
def counting(query: str, cap: int = COUNT_CAP) -> Future[tuple[int, bool]]:
    """:func:`count_runs` under way in a background thread, shared by every session: a count
    can take a second on a cold store, and a page that waits for it in short steps can be
    interrupted by the next search (Streamlit cannot interrupt a statement)."""
    return _counters().submit(count_up_to, store(), query, cap)


@st.cache_resource
def _counters() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="cairn-count")


@st.cache_data(ttl=RUNS_TTL, show_spinner=False)
def get_runs(refs: tuple[str, ...]) -> list[RunRecord]:
    """Full records (params, tags, data, artifacts) of runs given by id, prefix or name."""
    return reads.get_runs(store(), refs)


@st.cache_data(ttl=RUNS_TTL, show_spinner=False)
def known_runs(refs: tuple[str, ...]) -> list[RunRecord]:
    """Summaries of those runs that the store holds (a card may name runs of another store)."""
    return reads.known_runs(store(), refs)


@st.cache_data(ttl=RUNS_TTL, show_spinner=False)
def comparison(refs: tuple[str, ...], max_points: int = 500) -> Comparison:
    """The registry's comparison of these runs, histories thinned to ``max_points``."""
    return compare(list(refs), store=store(), max_points=max_points)


@st.cache_data(ttl=RUNS_TTL, show_spinner=False)
def seed_groups(refs: tuple[str, ...], metric: str | None) -> SeedGroups:
    """The groups of seeds of these runs and, for two groups or more, their verdicts."""
    return reads.seed_groups(store(), workspace(), get_runs(refs), metric)


# -- one run -----------------------------------------------------------------------------------


@st.cache_data(ttl=RUNS_TTL, show_spinner=False)
def run(ref: str) -> tuple[int, RunRecord]:
    """(integer key, full record) of the run given by id, id prefix or name."""
    return reads.run_of(store(), ref)


@st.cache_data(ttl=RUNS_TTL, max_entries=64, show_spinner=False)
def run_curves(pk: int, keys: tuple[str, ...], axis: str, buckets: int) -> Curves:
    """Histories of ``keys`` thinned for drawing (summaries: the record's metrics)."""
    return reads.run_curves(store(), pk, keys, axis, buckets)


@st.cache_data(ttl=SUMMARY_TTL, show_spinner=False)
def similar_runs(pk: int, _record: RunRecord) -> list[Prior]:
    """What this run repeats or resembles (``_record``: the run's, not hashed: ``pk`` is)."""
    return reads.similar_runs(store(), workspace().fingerprint_ignore, pk, _record)


@st.cache_data(ttl=RUNS_TTL, show_spinner=False)
def run_mov(pk: int) -> list[MovMeasurement]:
    return reads.run_mov(store(), pk)


@st.cache_data(ttl=RUNS_TTL, show_spinner=False)
def mlflow_links(pk: int) -> list[tuple[str, str, str]]:
    return reads.mlflow_links(store(), pk)


@st.cache_resource
def artifact_reader() -> ArtifactStore:
    """The workspace's artifact store; the dashboard only ever opens blobs for reading."""
    return ArtifactStore(workspace().artifact_root)


@st.cache_data(ttl=ZOO_TTL, max_entries=32, show_spinner=False)
def artifact_bytes(sha256: str, limit: int) -> bytes:
    """The first ``limit`` + 1 bytes of a blob (more than ``limit``: it was cut). Blobs are
    content-addressed, so what is cached never goes stale."""
    with artifact_reader().open(sha256) as blob:
        return blob.read(limit + 1)


def artifact_download(sha256: str) -> Callable[[], bytes]:
    """What a download button calls when clicked (and only then): the blob's bytes."""
    return functools.partial(_read_blob, artifact_reader(), sha256)


def _read_blob(reader: ArtifactStore, sha256: str) -> bytes:
    with reader.open(sha256) as blob:
        return blob.read()


# -- overview ----------------------------------------------------------------------------------


@st.cache_data(ttl=SUMMARY_TTL, show_spinner=False)
def weekly_runs(project: str | None, weeks: int = 26) -> list[dict[str, Any]]:
    """Runs per week and owner over the last ``weeks`` weeks of activity."""
    return overview.weekly_runs(store(), project, weeks)


@st.cache_data(ttl=SUMMARY_TTL, show_spinner=False)
def activity(project: str | None, days: int = 30) -> list[dict[str, Any]]:
    """Who ran what (owner, project, model family) in the last ``days`` days of activity."""
    return overview.activity(store(), project, days)


@st.cache_data(ttl=RUNS_TTL, show_spinner=False)
def recent_runs(project: str | None, limit: int = 15) -> list[RunRecord]:
    return store().list_runs(project_name=project, limit=limit)


@st.cache_data(ttl=SUMMARY_TTL, show_spinner=False)
def primary_metrics() -> dict[str, tuple[str, str]]:
    """Per project, the (metric, 'max'|'min') that ranks its runs: the configured one, else
    one guessed from its newest finished run."""
    chosen = {}
    for name in facets().projects:
        page = search_runs(f"project = {quote(name)} and status = FINISHED", None, 1, 0)
        settings = workspace().projects
        metric = primary_metric(page.runs[0], settings) if page.runs else None
        if metric is None and settings.get(name, {}).get("metric"):
            metric = (str(settings[name]["metric"]), str(settings[name].get("mode", "max")))
        if metric:
            chosen[name] = metric
    return chosen


@st.cache_data(ttl=SUMMARY_TTL, show_spinner=False)
def best_runs(project: str, limit: int = 5) -> list[RunRecord]:
    """The project's finished runs with the best final value of its primary metric."""
    metric = primary_metrics().get(project)
    if metric is None:
        return []
    sort = ("-" if metric[1] == "max" else "") + "metrics." + metric[0]
    query = f"project = {quote(project)} and status = FINISHED"
    return search_runs(query, sort, limit, 0).runs


@st.cache_data(ttl=SUMMARY_TTL, show_spinner=False)
def mov_progress(project: str | None) -> list[MovProgress]:
    """Each MoV of the project with its measurements, declared ones not measured yet included
    (the read-only workspace writes nothing)."""
    return registry_mov_progress(project, workspace=workspace())


@st.cache_data(ttl=SUMMARY_TTL, show_spinner=False)
def value_for_money(project: str | None) -> list[ValueForMoney]:
    """Per project, its cost so far and each MoV's progress per 100 currency units."""
    return registry_value_for_money(project, workspace=workspace())


# -- overlap -----------------------------------------------------------------------------------


@st.cache_data(ttl=SUMMARY_TTL, show_spinner=False)
def exact_duplicates(project: str | None, days: int, across_owners: bool = True,
                     limit: int = 30) -> list[OverlapGroup]:
    """Experiments run more than once (same code, params and data), newest first."""
    return reads.exact_duplicates(store(), project, days, across_owners, limit)


@st.cache_data(ttl=SUMMARY_TTL, show_spinner=False)
def near_duplicates(project: str | None, days: int, sample: int = 40) -> list[OverlapGroup]:
    """Nearly the same experiment run by different people (see ``reads.near_duplicates``)."""
    return reads.near_duplicates(store(), workspace().fingerprint_ignore, project, days, sample)


# -- zoo and catalog ---------------------------------------------------------------------------


@st.cache_data(ttl=ZOO_TTL, show_spinner=False)
def zoo_sources() -> list[str]:
    import zoo

    return zoo.list_sources()


@st.cache_data(ttl=ZOO_TTL, show_spinner=False)
def zoo_models(query: str | None, source: str | None, pretrained_only: bool,
               available_only: bool) -> list[dict[str, Any]]:
    """The zoo's backbones with their metadata and whether their weights are on this machine."""
    import zoo

    return [m.to_dict() for m in zoo.list(query or None, source, pretrained_only=pretrained_only,
                                          available_only=available_only)]


def catalog_problem() -> str | None:
    """Why the catalog cannot be shown (its package missing or broken), or None."""
    try:
        module = importlib.import_module("catalog")
        missing = [n for n in ("search", "get", "render_html", "reuse_snippet")
                   if not hasattr(module, n)]
    except Exception as exc:  # a broken optional package must not break the dashboard
        return f"the catalog package cannot be imported: {exc}"
    return f"the catalog package lacks {', '.join(missing)}" if missing else None


@st.cache_data(ttl=RUNS_TTL, show_spinner=False)
def catalog_cards(query: str, project: str | None, status: str | None,
                  kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Card summaries (model and dataset cards, or one ``kind``) matching ``query``."""
    import catalog

    found = catalog.search(query, project=project, status=status, kind=kind, limit=limit,
                           workspace=workspace())
    return [_plain(card) for card in found]


@st.cache_data(ttl=RUNS_TTL, show_spinner=False)
def catalog_card(name: str, version: str | None) -> dict[str, Any]:
    """A card of either kind: its fields, sanitised HTML, how to reuse it, its runs."""
    import catalog

    card = catalog.get(name, version, kind=None, workspace=workspace())
    kind = catalog.card_kind(card)
    fields = {k: getattr(card, k, None) for k in _CARD_FIELDS}
    snippet = (_data_snippet(card.front_matter.get("dvc")) if kind == "dataset"
               else catalog.reuse_snippet(card))
    return {**fields, "kind": kind, "path": str(getattr(card, "path", "") or ""),
            "runs": [str(r) for r in getattr(card, "runs", None) or []],
            "html": catalog.render_html(card), "snippet": snippet}


def _data_snippet(dvc: Any) -> str:
    """Shell commands that fetch the documented version of a dataset."""
    def quote(text: str) -> str:  # always single-quoted, so a card's text stays one word
        return "'" + text.replace("'", "'\\''") + "'"

    dvc = dvc if isinstance(dvc, dict) else {}
    path, md5 = str(dvc.get("path") or "PATH"), str(dvc.get("md5") or "?")
    return (f"# this card documents the DVC md5 {quote(md5)} of {quote(path)}\n"
            f"git log -n 1 -S {quote(md5)} -- {quote(path + '.dvc')}   # the commit that "
            f"recorded it\ndvc pull {quote(path)}\n")


@st.cache_data(ttl=RUNS_TTL, show_spinner=False)
def dataset_cards_of(hashes: tuple[str, ...]) -> dict[str, str]:
    """The dataset card (``name@version``) documenting each of these DVC hashes, if any."""
    import catalog

    found = {}
    for digest in hashes:
        card = catalog.dataset_card_for(digest, workspace=workspace())
        if card is not None:
            found[digest] = f"{card.name}@{card.version}"
    return found


@st.cache_data(ttl=RUNS_TTL, show_spinner=False)
def cards_of_runs() -> list[dict[str, Any]]:
    """Every card of the catalog folder with the runs it names (name, version, status, runs)."""
    import catalog

    return [{"name": c.name, "version": c.version, "status": c.status, "runs": list(c.runs)}
            for c in catalog.list_cards(workspace=workspace())]


_CARD_FIELDS = ("name", "version", "status", "project", "owner", "backbone")


def _plain(obj: Any) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    return {k: getattr(obj, k, None) for k in _CARD_FIELDS}

