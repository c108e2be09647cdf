"""Cards indexed into the registry store, searched and shown, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import catalog
from catalog.cli import catalog as catalog_cli
from catalog.errors import CardNotFoundError, CatalogError
from registry.config import Workspace

CARDS = Path(__file__).parent / "data" / "cards"
COMPLETE = (CARDS / "cairn_complete.md").read_text()


def write_card(ws: Workspace, folder: str, **changes: str) -> Path:
    """The complete fixture card with some front-matter lines replaced."""
    text = COMPLETE
    for old, new in changes.items():
        assert old.replace("_", " ") in text or old in text, old
        text = text.replace(old, new)
    path = ws.catalog_dir / folder / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def cards(workspace: Workspace) -> Workspace:
    write_card(workspace, "scratch-r18")
    write_card(workspace, "scratch-r18/v4", **{"version: 3": "version: 4",
                                                "status: reviewed": "status: draft"})
    write_card(workspace, "dent-vit", **{
        "name: scratch-r18": "name: dent-vit", "- scratch detection": "- dent detection",
        "Finds scratches and dents": "Finds dents under glare", "project: defects":
        "project: optics", "owner: ana": "owner: ben", "license: apache-2.0": "license: mit",
        "backbone: resnet18": "backbone: vit_tiny_patch16_224"})
    (workspace.catalog_dir / "README.md").write_text("# The team's catalog\n")  # not a card
    return workspace


def test_index_then_search_words_and_fields(cards: Workspace) -> None:
    result = catalog.index(workspace=cards)
    assert sorted(result.indexed) == ["dent-vit@3", "scratch-r18@3", "scratch-r18@4"]
    assert result.skipped == [] and result.removed == []

    hits = catalog.search("scratches panels", workspace=cards)
    assert {h.ref for h in hits} == {"scratch-r18@3", "scratch-r18@4"}
    # Every word must match, anywhere: the dent card's tag and labels hold these two.
    assert len(catalog.search("scratch detection", workspace=cards)) == 3
    assert [h.ref for h in catalog.search("glare", workspace=cards)] == ["dent-vit@3"]
    assert catalog.search("glare scratch nowhere", workspace=cards) == []
    assert [h.ref for h in catalog.search("status:reviewed owner:ANA", workspace=cards)] == [
        "scratch-r18@3"]
    assert {h.ref for h in catalog.search("license:mit", workspace=cards)} == {"dent-vit@3"}
    assert {h.ref for h in catalog.search('tag:"dent detection"', workspace=cards)} == {
        "dent-vit@3"}
    assert {h.ref for h in catalog.search("label:scratch dataset:data/line3/train",
                                          workspace=cards)} == {
        "scratch-r18@3", "scratch-r18@4", "dent-vit@3"}
    assert {h.ref for h in catalog.search("", project="optics", workspace=cards)} == {
        "dent-vit@3"}
    assert {h.ref for h in catalog.search(status="draft", workspace=cards)} == {
        "scratch-r18@4"}
    hit = catalog.search("backbone:vit_tiny_patch16_224", workspace=cards)[0]
    assert hit.summary.startswith("Sorting painted panels")
    assert len(catalog.search("", limit=2, workspace=cards)) == 2


INJECTIONS = [
    "'; DROP TABLE model_card; --", '"scratch" OR "1"="1"', "NEAR(scratch dent)", "scratch*",
    "status:reviewed' OR '1'='1", "\\", "a:b:c", "^scratch", "scratch AND NOT dent",
    "\x00", "ß∂ƒ©", "-scratch", "(scratch", "don't",
]


def test_search_injection_is_just_text(cards: Workspace) -> None:
    catalog.index(workspace=cards)
    for query in INJECTIONS:
        catalog.search(query, workspace=cards)  # no error, no effect
    assert len(catalog.search("", workspace=cards)) == 3
    assert [h.ref for h in catalog.search("'; DROP TABLE model_card; --",
                                          workspace=cards)] == []


@pytest.mark.parametrize("query", ['"scratch', 'scratch" OR 1=1 --', 'tag:"a'])
def test_unbalanced_quotes_are_a_typed_error(cards: Workspace, query: str) -> None:
    with pytest.raises(CatalogError, match="double quote is not closed"):
        catalog.search(query, workspace=cards)


def test_reindex_updates_changed_and_drops_removed_cards(cards: Workspace) -> None:
    catalog.index(workspace=cards)
    dent = cards.catalog_dir / "dent-vit" / "README.md"
    dent.write_text(dent.read_text().replace("under glare", "under floodlights"))
    (cards.catalog_dir / "scratch-r18" / "v4" / "README.md").unlink()
    result = catalog.index(workspace=cards)
    assert result.indexed == ["dent-vit@3"]
    assert result.unchanged == ["scratch-r18@3"]
    assert result.removed == ["scratch-r18@4"]
    assert [h.ref for h in catalog.search("floodlights", workspace=cards)] == ["dent-vit@3"]
    assert catalog.search("glare", workspace=cards) == []


def test_index_refuses_a_missing_catalog_directory(workspace: Workspace) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        catalog.index(workspace=workspace)


def test_broken_and_duplicate_cards_are_skipped_not_fatal(cards: Workspace) -> None:
    broken = cards.catalog_dir / "broken" / "README.md"
    broken.parent.mkdir()
    broken.write_text("---\nname: [unclosed\n---\n")
    write_card(cards, "copy")  # same name and version as scratch-r18
    result = catalog.index(workspace=cards)
    assert len(result.indexed) == 3
    reasons = "\n".join(str(p) for p in result.skipped)
    assert "broken/README.md:2" in reasons and "is also" in reasons


def test_get_prefers_files_then_store_and_picks_newest(cards: Workspace) -> None:
    assert catalog.get("scratch-r18", workspace=cards).version == "4"
    assert catalog.get("scratch-r18@3", workspace=cards).status == "reviewed"
    assert catalog.get("scratch-r18", "3", workspace=cards).line_of("weights.sha256") == 38
    catalog.index(workspace=cards)
    for path in cards.catalog_dir.rglob("README.md"):
        path.unlink()
    from_store = catalog.get("dent-vit", workspace=cards)  # another machine: only the index
    assert from_store.backbone == "vit_tiny_patch16_224" and from_store.lines == {}
    with pytest.raises(CardNotFoundError, match="dent-vit") as caught:
        catalog.get("dent", workspace=cards)
    assert "scratch-r18" in caught.value.known


def test_deprecated_versions_are_not_the_default(cards: Workspace) -> None:
    v4 = cards.catalog_dir / "scratch-r18" / "v4" / "README.md"
    v4.write_text(v4.read_text().replace("status: draft", "status: deprecated"))
    assert catalog.get("scratch-r18", workspace=cards).version == "3"


def test_cli_index_search_show(cards: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_STORE", cards.store_url)
    monkeypatch.setenv("CAIRN_CATALOG", str(cards.catalog_dir))
    runner = CliRunner()
    out = runner.invoke(catalog_cli, ["index"])
    assert out.exit_code == 0, out.output
    assert "3 card(s) indexed" in out.output
    out = runner.invoke(catalog_cli, ["search", "scratches panels", "--status", "reviewed"])
    assert out.exit_code == 0 and "scratch-r18@3" in out.output
    assert "dent-vit" not in out.output
    assert "scratch-r18@4" not in out.output
    out = runner.invoke(catalog_cli, ["search", "--json", "glare"])
    assert '"ref": "dent-vit@3"' in out.output
    out = runner.invoke(catalog_cli, ["show", "dent-vit"])
    assert out.exit_code == 0 and "vit_tiny_patch16_224" in out.output
    assert "## How to reuse" in out.output
    out = runner.invoke(catalog_cli, ["show", "nope"])
    assert out.exit_code == 1 and "no card named 'nope'" in out.output
    out = runner.invoke(catalog_cli, ["render", "dent-vit"])
    assert out.exit_code == 0 and "<h2>How to reuse</h2>" in out.output
