"""Cairn's model catalog: documented models and datasets a new team member can find, trust
and reuse.

A card is a Markdown file with YAML front matter (Hugging Face's model or dataset card
metadata plus Cairn's fields) in the workspace's catalog directory: one folder per model,
weights tracked by DVC, and ``datasets/<name>/`` per dataset card (``kind: dataset``)::

    import catalog
    path = catalog.draft_from_run("1a2b3c4d", name="scratch-r18")   # then edit the TODOs
    problems = catalog.validate()                                     # CI: non-zero on errors
    catalog.index()
    for hit in catalog.search("scratch detection status:reviewed"):
        print(hit.ref, hit.summary)
    loaded = catalog.load("scratch-r18")          # model + preprocessing + labels
    html = catalog.render_html(catalog.get("scratch-r18"))
    draft = catalog.draft_dataset_card("data/defects")   # a DVC-tracked image folder
    card = catalog.dataset_card_for(run.datasets[0].hash)  # the card of a run's data

Importing this package loads neither torch nor the Markdown renderer.
"""

from catalog import errors as errors
from catalog._api import CardSummary as CardSummary
from catalog._api import dataset_card_for as dataset_card_for
from catalog._api import get as get
from catalog._api import index as index
from catalog._api import list_cards as list_cards
from catalog._api import search as search
from catalog._card import ModelCard as ModelCard
from catalog._card import parse_card as parse_card
from catalog._card import read_card as read_card
from catalog._dataset import DatasetDraft as DatasetDraft
from catalog._dataset import draft_dataset_card as draft_dataset_card
from catalog._draft import draft_from_run as draft_from_run
from catalog._draft_body import reuse_snippet as reuse_snippet
from catalog._index import IndexResult as IndexResult
from catalog._load import LoadedModel as LoadedModel
from catalog._load import load as load
from catalog._render import highlight_css as highlight_css
from catalog._render import render_html as render_html
from catalog._report import report as report
from catalog._schema import PLACEHOLDER as PLACEHOLDER
from catalog._schema import CardProblem as CardProblem
from catalog._schema import card_kind as card_kind
from catalog._validate import validate as validate

__all__ = [
    "PLACEHOLDER",
    "CardProblem",
    "CardSummary",
    "DatasetDraft",
    "IndexResult",
    "LoadedModel",
    "ModelCard",
    "card_kind",
    "dataset_card_for",
    "draft_dataset_card",
    "draft_from_run",
    "errors",
    "get",
    "highlight_css",
    "index",
    "list_cards",
    "load",
    "parse_card",
    "read_card",
    "render_html",
    "report",
    "reuse_snippet",
    "search",
    "validate",
]
