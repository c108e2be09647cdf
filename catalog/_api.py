"""The catalog's reading functions: index the card files, search them, get one card, find
the dataset card of a DVC hash. Model and dataset cards share one index and one namespace
of names; ``kind`` tells them apart."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from catalog._card import ModelCard
from catalog._dataset_schema import dataset_facts, dataset_hash, dataset_labels
from catalog._files import latest, load_cards, split_ref, version_key
from catalog._index import IndexResult, index_cards, stored_cards, to_card
from catalog._inference import MEASURES, card_measures, matches, split_conditions
from catalog._schema import card_kind
from catalog.errors import CardNotFoundError, CatalogError
from registry.config import Workspace, load_workspace

__all__ = ["FIELD_FILTERS", "CardSummary", "dataset_card_for", "get", "index", "list_cards",
           "search", "summarise"]

# Field filters in a search string (``status:reviewed tag:scratch``): columns of model_card,
# then values held in the front matter's lists.
_COLUMNS = {"name": "name", "version": "version", "status": "status", "project": "project",
            "owner": "owner", "backbone": "backbone"}
_LISTED = {"tag": "tags", "dataset": "datasets", "license": "license", "label": "labels",
           "kind": "kind"}
FIELD_FILTERS = tuple(sorted([*_COLUMNS, *_LISTED]))
_FILTER = re.compile(rf"^({'|'.join(FIELD_FILTERS)}):(.+)$", re.IGNORECASE)
_TOKEN = re.compile(r'(?:(?P<field>[A-Za-z]+):)?"(?P<quoted>[^"]*)"|(?P<word>[^\s"]+)'
                    r'|(?P<stray>")')


@dataclass(frozen=True)
class CardSummary:
    """One search result: what a listing shows of a card."""

    name: str
    version: str
    status: str
    project: str | None
    owner: str | None
    backbone: str | None
    path: str
    license: str | None = None
    tags: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    summary: str = ""
    score: float = 0.0
    latency_ms: float | None = None  # best p50 at batch 1 of its inference profiles
    throughput: float | None = None
    accuracy: float | None = None
    kind: str = "model"  # or "dataset"
    dvc_hash: str | None = None  # a dataset card's DVC md5: runs with this data link to it

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ref": self.ref}


def index(*, workspace: Workspace | None = None) -> IndexResult:
    """Read every card of the catalog directory into the registry store (rows of changed
    cards are rewritten, rows of removed cards dropped)."""
    ws = workspace or load_workspace()
    if not ws.catalog_dir.is_dir():  # a wrong setting must not empty the index
        raise CatalogError(f"the catalog directory {ws.catalog_dir} does not exist (workspace "
                           "setting 'catalog', or CAIRN_CATALOG)")
    cards, broken = load_cards(ws.catalog_dir)
    result = index_cards(_store(ws), cards)
    from catalog._schema import CardProblem

    result.skipped += [CardProblem(e.path, e.line, None, f"not indexed: {e.reason}")
                       for e in broken]
    return result


def search(query: str = "", *, project: str | None = None, status: str | None = None,
           kind: str | None = None, limit: int = 50,
           workspace: Workspace | None = None) -> list[CardSummary]:
    """Indexed cards matching ``query``: free words (every one must appear: name, tags,
    labels, body...) and field filters ``name: version: status: project: owner: backbone:
    tag: dataset: license: label: kind:`` (``tag:"surface defects"``, ``kind:dataset``), and
    numeric conditions on ``latency_ms``, ``throughput`` and ``accuracy`` (``latency_ms < 10
    and accuracy >= 0.9``, see :mod:`catalog._inference`). Best matches first."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    query, conditions = split_conditions(query)
    words, columns, listed = _parse(query)
    if project is not None:
        columns["project"] = project
    if status is not None:
        columns["status"] = status
    if kind is not None:
        listed["kind"] = kind
    from registry.store import cards as stored

    store = _store(workspace or load_workspace())
    found = (stored.search(store, " ".join(words), columns) if words
             else [(row, 0.0) for row in stored.rows(store, columns)])
    results = [summarise(to_card(row), score) for row, score in found]
    results = [r for r in results if _listed_match(r, listed)
               and matches({m: getattr(r, m) for m in MEASURES}, conditions)]
    results.sort(key=lambda r: -r.score)
    return results[:limit]


def get(name: str, version: str | None = None, *, kind: str | None = "model",
        workspace: Workspace | None = None) -> ModelCard:
    """The card ``name`` (``name@version`` works too) of ``kind`` (``"model"``,
    ``"dataset"``, or None for either): from the catalog directory when it is there (the
    files are the truth), else from the store. Without a version: the newest version that
    is not deprecated."""
    ws = workspace or load_workspace()
    base, ref_version = split_ref(name)
    version = str(version) if version is not None else ref_version
    cards = list_cards(kind=kind, workspace=ws)
    try:
        return latest(cards, base, version)
    except CardNotFoundError:
        pass
    stored = _of_kind(stored_cards(_store(ws)), kind)
    try:
        return latest(stored, base, version)
    except CardNotFoundError:
        known = sorted({c.name for c in cards} | {c.name for c in stored})
        raise CardNotFoundError(base, version, known, kind=kind) from None


def list_cards(*, kind: str | None = "model",
               workspace: Workspace | None = None) -> list[ModelCard]:
    """The readable cards of ``kind`` (None: every kind) in the catalog directory
    (unreadable ones: see validate)."""
    root = (workspace or load_workspace()).catalog_dir
    return _of_kind(load_cards(root)[0], kind) if root.is_dir() else []


def dataset_card_for(dvc_hash: str | None, *,
                     workspace: Workspace | None = None) -> ModelCard | None:
    """The dataset card documenting the data of DVC hash ``dvc_hash`` (a run's data version,
    ``DatasetUse.hash``), or None: from the catalog directory when it is there, else from
    the index. Of several, the newest version that is not deprecated."""
    if not dvc_hash:
        return None
    ws = workspace or load_workspace()
    cards = (list_cards(kind="dataset", workspace=ws) if ws.catalog_dir.is_dir()
             else _of_kind(stored_cards(_store(ws)), "dataset"))
    same = [c for c in cards if dataset_hash(c) == dvc_hash]
    return max(same, key=lambda c: (c.status != "deprecated", version_key(c.version)),
               default=None)


def _of_kind(cards: list[ModelCard], kind: str | None) -> list[ModelCard]:
    return cards if kind is None else [c for c in cards if card_kind(c) == kind]


def summarise(card: ModelCard, score: float = 0.0) -> CardSummary:
    fm = card.front_matter
    tags = fm.get("tags") if isinstance(fm.get("tags"), list) else []
    datasets = fm.get("datasets") if isinstance(fm.get("datasets"), list) else []
    license_ = fm.get("license") if isinstance(fm.get("license"), str) else None
    return CardSummary(name=card.name, version=card.version, status=card.status,
                       project=card.project, owner=card.owner, backbone=card.backbone,
                       path=str(card.path or ""), license=license_,
                       tags=[str(t) for t in tags],
                       datasets=[str(d) for d in datasets],
                       labels=card.labels or dataset_labels(card),
                       summary=_first_paragraph(card), score=score, kind=card_kind(card),
                       dvc_hash=dataset_hash(card), **card_measures(card))


def _first_paragraph(card: ModelCard) -> str:
    """The intended use, else the body's first written paragraph; for a dataset card, one
    in its description (before its second heading), else its facts."""
    intended = card.front_matter.get("intended_use")
    if isinstance(intended, str) and intended.strip() and "TODO(cairn)" not in intended:
        return " ".join(intended.split())[:300]
    dataset = card_kind(card) == "dataset"
    body = card.body
    if dataset:
        body = "\n## ".join(body.split("\n## ")[:2])
    skip = ("#", "<!--", "```", "|", "- ") if dataset else ("#", "<!--", "```", "|")
    for block in body.split("\n\n"):
        block = block.strip()
        if block and not block.startswith(skip) and "TODO(cairn)" not in block:
            return " ".join(block.split())[:300]
    return dataset_facts(card) if dataset else ""


def _parse(query: str) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Free words, column filters and front-matter filters of a search string. Double
    quotes group words (``tag:"surface defects"``); single quotes are ordinary text."""
    words: list[str] = []
    columns: dict[str, str] = {}
    listed: dict[str, str] = {}
    # Control characters (NUL above all) mean nothing in a search and upset FTS5.
    query = "".join(ch if ch.isprintable() else " " for ch in query)
    for match in _TOKEN.finditer(query):
        if match.group("stray"):
            raise CatalogError(f"bad catalog search {query!r}: a double quote is not closed")
        key = (match.group("field") or "").lower()
        token = match.group("word") or ""
        if not key and (found := _FILTER.match(token)):
            key, token = found.group(1).lower(), found.group(2)
        value = match.group("quoted") if match.group("quoted") is not None else token
        if key in _COLUMNS:
            columns[_COLUMNS[key]] = value
        elif key in _LISTED:
            listed[_LISTED[key]] = value
        else:
            words.extend(f"{key}:{value}".split() if key else value.split())
    return words, columns, listed


def _listed_match(summary: CardSummary, listed: dict[str, str]) -> bool:
    values = {"tags": summary.tags, "labels": summary.labels, "datasets": summary.datasets,
              "license": [summary.license or ""], "kind": [summary.kind]}
    return all(any(v.lower() == wanted.lower() for v in values[key])
               for key, wanted in listed.items())


def _store(ws: Workspace) -> Any:
    return ws.open_store()
