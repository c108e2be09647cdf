"""Dataset cards: drafted from a DVC-tracked image folder built here with Pillow (RGB PNG and
JPEG, a grayscale image, a corrupt file, a duplicate across splits, an empty class), then
validated, indexed, searched by kind, linked from runs and model cards, and flagged once the
data changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import catalog
import registry
from catalog.cli import catalog as catalog_cli
from catalog.cli import data as data_cli
from catalog.errors import CardExistsError, CardNotFoundError, DatasetError, DatasetNotTrackedError
from registry.config import Workspace
from tests.test_catalog_draft import dvc, finetune_run, init_git_dvc

sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
COMPLETE = (Path(__file__).parent / "data" / "cards" / "cairn_complete.md").read_text()


def image(path: Path, size: tuple[int, int], color: int, mode: str = "RGB") -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    fill = color if mode == "L" else (color, 255 - color, 7)
    Image.new(mode, size, fill).save(path)
    return path


def build_folder(root: Path, hostile: str | None = None) -> None:
    """train: ok 3 (PNG, one grayscale), scratch 2 (JPEG) + a corrupt file, an empty class;
    val: ok 1 + a copy of a training image, scratch 1."""
    for i, size in enumerate([(32, 24), (40, 30)]):
        image(root / "train" / "ok" / f"{i}.png", size, 10 + i)
    image(root / "train" / "ok" / "gray.png", (48, 48), 100, mode="L")
    for i in range(2):
        image(root / "train" / "scratch" / f"{i}.jpg", (64, 48), 150 + i)
    (root / "train" / "scratch" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    (root / "train" / "empty").mkdir()
    image(root / "val" / "ok" / "0.png", (32, 32), 60)
    (root / "val" / "ok" / "copy.png").write_bytes((root / "train/ok/0.png").read_bytes())
    image(root / "val" / "scratch" / "0.jpg", (64, 48), 200)
    if hostile:
        image(root / "train" / hostile / "0.png", (8, 8), 220)


@pytest.fixture
def dvc_ws(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """The workspace as a git + DVC repository (with a local remote) whose data/defects
    image folder is tracked by `dvc add`; CAIRN_* point the CLI at it."""
    root = workspace.root
    monkeypatch.setenv("CAIRN_STORE", workspace.store_url)
    monkeypatch.setenv("CAIRN_CATALOG", str(workspace.catalog_dir))
    monkeypatch.setenv("CAIRN_OWNER", "tester")
    init_git_dvc(root, monkeypatch)
    dvc(root, "remote", "add", "-d", "storage", str(root.parent / "dvc-remote"))
    build_folder(root / "data" / "defects")
    dvc(root, "add", "-q", "data/defects")
    return workspace


def _unpushed(problem) -> bool:
    """The warning that the data is not in the DVC remote (tested on its own below)."""
    return "not in the DVC remote" in problem.message


def recorded_md5(ws: Workspace, folder: str = "data/defects") -> str:
    return yaml.safe_load((ws.root / f"{folder}.dvc").read_text())["outs"][0]["md5"]


def draft(*args: str) -> str:
    out = CliRunner().invoke(data_cli, ["card", *args])
    assert out.exit_code == 0, out.output
    return out.output


def front(path: Path) -> dict:
    return catalog.read_card(path).front_matter


@sqlite_only
def test_card_of_an_image_folder(dvc_ws: Workspace) -> None:
    output = draft("data/defects", "--project", "line3")
    path = dvc_ws.catalog_dir / "datasets" / "defects" / "README.md"
    assert f"drafted dataset card defects@1: {path}" in output
    fm = front(path)
    assert (fm["kind"], fm["name"], fm["version"], fm["status"]) == (
        "dataset", "defects", "1", "draft")
    assert fm["dvc"]["md5"] == recorded_md5(dvc_ws)
    assert fm["dvc"]["path"] == "data/defects" and fm["dvc"]["source"] == "data/defects.dvc"
    assert fm["dvc"]["remote"] == str(dvc_ws.root.parent / "dvc-remote")
    assert fm["task_categories"] == ["image-classification"]
    assert fm["size_categories"] == ["n<1K"] and fm["project"] == "line3"
    assert fm["classes"] == [{"name": "empty", "images": {"train": 0, "val": 0}},
                             {"name": "ok", "images": {"train": 3, "val": 2}},
                             {"name": "scratch", "images": {"train": 2, "val": 1}}]
    assert fm["dataset_info"]["splits"] == [{"name": "train", "num_examples": 5},
                                            {"name": "val", "num_examples": 3}]
    images = fm["images"]
    assert (images["count"], images["unreadable"]) == (8, 1)
    assert images["modes"] == {"RGB": 7, "L": 1}
    assert images["formats"] == {"PNG": 5, "JPEG": 3}
    assert images["width"] == {"min": 32, "median": 44, "max": 64}
    assert fm["duplicates"] == {"groups": 1, "files": 1,
                                "examples": [["train/ok/0.png", "val/ok/copy.png"]]}
    assert fm["annotation"]["format"].startswith("imagefolder")
    issues = "\n".join(fm["known_issues"])
    for text in ("1 unreadable image(s), not counted: train/scratch/broken.png",
                 "class folder train/empty holds no images", "not RGB (L: 1)",
                 "span splits (evaluation sees training images), e.g. train/ok/0.png = "
                 "val/ok/copy.png"):
        assert text in issues
    assert str(dvc_ws.root) not in issues  # paths inside the folder, not this machine's
    body = catalog.read_card(path).body
    for text in ("## Dataset Description", "### Data Splits", "| class | train | val | total |",
                 "| ok | 3 | 2 | 5 |", "| total | 5 | 3 | 8 |", "| L | 1 |",
                 "## Dataset Creation", "## Known issues", "TODO(cairn)"):
        assert text in body

    problems = catalog.validate(workspace=dvc_ws)
    assert [p for p in problems if p.severity == "error"] == []
    fields = {p.field for p in problems}
    assert {"license", "annotation.tool", "collection.who"} <= fields  # TODO(cairn) to write


@sqlite_only
def test_a_card_is_not_overwritten(dvc_ws: Workspace) -> None:
    draft("data/defects")
    path = dvc_ws.catalog_dir / "datasets" / "defects" / "README.md"
    path.write_text(path.read_text().replace("pretty_name: Defects", "pretty_name: Mine"))
    out = CliRunner().invoke(data_cli, ["card", "data/defects"])
    assert out.exit_code == 1 and "already exists" in out.output and "--force" in out.output
    assert front(path)["pretty_name"] == "Mine"
    draft("data/defects", "--force")
    assert front(path)["pretty_name"] == "Defects"
    with pytest.raises(CardExistsError):
        catalog.draft_dataset_card("data/defects", workspace=dvc_ws)


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_indexed_and_searched_by_kind(dvc_ws: Workspace) -> None:
    model = dvc_ws.catalog_dir / "scratch-r18" / "README.md"
    model.parent.mkdir(parents=True)
    model.write_text(COMPLETE)
    draft("data/defects")
    result = catalog.index(workspace=dvc_ws)
    assert sorted(result.indexed + result.unchanged) == ["defects@1", "scratch-r18@3"]

    (hit,) = catalog.search("kind:dataset", workspace=dvc_ws)
    assert (hit.ref, hit.kind, hit.dvc_hash) == ("defects@1", "dataset", recorded_md5(dvc_ws))
    assert hit.labels == ["empty", "ok", "scratch"] and "8 images" in hit.summary
    assert [h.ref for h in catalog.search("kind:model", workspace=dvc_ws)] == ["scratch-r18@3"]
    assert {h.ref for h in catalog.search("", workspace=dvc_ws)} == {"defects@1",
                                                                    "scratch-r18@3"}
    assert [h.ref for h in catalog.search("scratch imagefolder kind:dataset",
                                          workspace=dvc_ws)] == ["defects@1"]
    assert [h.ref for h in catalog.search("label:ok", kind="dataset",
                                          workspace=dvc_ws)] == ["defects@1"]
    out = CliRunner().invoke(catalog_cli, ["search", "kind:dataset"])
    assert out.exit_code == 0 and "defects@1  dataset" in out.output
    assert "scratch-r18" not in out.output
    out = CliRunner().invoke(catalog_cli, ["show", "defects"])
    assert out.exit_code == 0 and recorded_md5(dvc_ws) in out.output


@sqlite_only
def test_kinds_stay_apart(dvc_ws: Workspace) -> None:
    draft("data/defects")
    assert catalog.list_cards(workspace=dvc_ws) == []  # model cards by default
    assert [c.name for c in catalog.list_cards(kind=None, workspace=dvc_ws)] == ["defects"]
    with pytest.raises(CardNotFoundError, match="no model card named 'defects'"):
        catalog.get("defects", workspace=dvc_ws)  # never loaded as a model (zoo, load)
    card = catalog.get("defects", kind="dataset", workspace=dvc_ws)
    assert catalog.card_kind(card) == "dataset"
    model = dvc_ws.catalog_dir / "defects-model" / "README.md"
    model.parent.mkdir(parents=True)
    model.write_text(COMPLETE.replace("name: scratch-r18", "name: defects-model"))
    with pytest.raises(DatasetError, match=r"model card .* is named 'defects-model'"):
        catalog.draft_dataset_card("data/defects", name="defects-model", workspace=dvc_ws)


@sqlite_only
def test_changed_data_is_flagged_and_gets_a_new_version(dvc_ws: Workspace) -> None:
    draft("data/defects")
    first = recorded_md5(dvc_ws)
    assert not [p for p in catalog.validate(workspace=dvc_ws)
                if p.field and "dvc" in p.field and not _unpushed(p)]
    image(dvc_ws.root / "data" / "defects" / "val" / "scratch" / "1.jpg", (64, 48), 90)
    out = CliRunner().invoke(data_cli, ["card", "data/defects"])
    assert out.exit_code == 1 and "differs from what data/defects.dvc recorded" in out.output
    assert "`dvc add data/defects`" in out.output
    dvc(dvc_ws.root, "add", "-q", "data/defects")
    second = recorded_md5(dvc_ws)

    (changed,) = [p for p in catalog.validate(workspace=dvc_ws) if p.field == "dvc.md5"]
    assert changed.severity == "warning" and first in changed.message
    assert second in changed.message and "cairn data card data/defects" in changed.message
    out = CliRunner().invoke(catalog_cli, ["validate", "--strict", "--no-runs"])
    assert out.exit_code == 1 and "the data changed since the card was written" in out.output

    draft("data/defects")
    v2 = dvc_ws.catalog_dir / "datasets" / "defects" / "v2" / "README.md"
    assert front(v2)["version"] == "2" and front(v2)["dvc"]["md5"] == second
    assert front(v2)["classes"][2]["images"] == {"train": 2, "val": 2}
    assert not [p for p in catalog.validate(v2, workspace=dvc_ws) if p.field == "dvc.md5"]
    assert catalog.dataset_card_for(first, workspace=dvc_ws).version == "1"  # old runs
    assert catalog.dataset_card_for(second, workspace=dvc_ws).version == "2"


@sqlite_only
def test_a_run_links_to_the_card_of_its_data(dvc_ws: Workspace) -> None:
    draft("data/defects")
    with registry.start_run("defects", "probe", workspace=dvc_ws) as run:
        run.use_data("data/defects", role="train")
    (used,) = registry.get_run(run.id, workspace=dvc_ws).datasets
    card = catalog.dataset_card_for(used.hash, workspace=dvc_ws)
    assert card is not None and card.name == "defects"
    assert catalog.dataset_card_for("0" * 32, workspace=dvc_ws) is None
    assert catalog.dataset_card_for(None, workspace=dvc_ws) is None
    catalog.index(workspace=dvc_ws)
    (dvc_ws.catalog_dir / "datasets" / "defects" / "README.md").unlink()
    dvc_ws.catalog_dir.rename(dvc_ws.root / "elsewhere")  # no catalog folder: the index
    assert catalog.dataset_card_for(used.hash, workspace=dvc_ws).name == "defects"


@pytest.mark.slow
@sqlite_only
def test_a_model_card_lists_the_dataset_cards_of_its_run(dvc_ws: Workspace) -> None:
    draft("data/defects")
    run_id, _ = finetune_run(dvc_ws, data="data/defects")
    path = catalog.draft_from_run(run_id, workspace=dvc_ws)
    assert front(path)["datasets"] == ["defects"]
    assert not [p for p in catalog.validate(path, workspace=dvc_ws)
                if p.field and p.field.startswith("datasets")]
    (dvc_ws.catalog_dir / "datasets" / "defects" / "README.md").unlink()
    (missing,) = [p for p in catalog.validate(path, workspace=dvc_ws)
                  if p.field == "datasets[0]"]
    assert missing.severity == "warning" and "no dataset card named 'defects'" in \
        missing.message


@sqlite_only
def test_a_run_on_data_without_a_card_says_how_to_draft_one(dvc_ws: Workspace) -> None:
    from catalog._draft import draft as draft_model

    run_id, _ = finetune_run(dvc_ws, data="data/defects")
    result = draft_model(run_id, track="none", workspace=dvc_ws)
    assert "datasets" not in front(result.path)
    assert any("`cairn data card data/defects`" in n for n in result.notes)


@sqlite_only
def test_untracked_and_misplaced_folders(dvc_ws: Workspace, tmp_path_factory) -> None:
    image(dvc_ws.root / "data" / "raw" / "a" / "0.png", (8, 8), 1)
    out = CliRunner().invoke(data_cli, ["card", "data/raw"])
    assert out.exit_code == 1 and "data/raw is not tracked by DVC" in out.output
    assert "run `dvc add data/raw`" in out.output and "Traceback" not in out.output
    with pytest.raises(DatasetNotTrackedError):
        catalog.draft_dataset_card("data/raw", workspace=dvc_ws)
    with pytest.raises(DatasetError, match="inside data/defects, which DVC tracks as a whole"):
        catalog.draft_dataset_card("data/defects/train", workspace=dvc_ws)
    with pytest.raises(DatasetError, match="does not exist"):
        catalog.draft_dataset_card("data/nope", workspace=dvc_ws)
    outside = tmp_path_factory.mktemp("no-dvc")
    image(outside / "a" / "0.png", (8, 8), 1)
    with pytest.raises(DatasetNotTrackedError, match=r"`dvc init`.*`dvc add"):
        catalog.draft_dataset_card(outside, workspace=dvc_ws)
    assert not (dvc_ws.catalog_dir / "datasets").exists()


@sqlite_only
def test_a_folder_without_splits_is_one_train_split(dvc_ws: Workspace) -> None:
    flat = dvc_ws.root / "data" / "flat"
    image(flat / "cat" / "0.png", (10, 10), 1)
    image(flat / "dog" / "0.png", (12, 10), 2)
    image(flat / "loose.png", (12, 10), 3)
    dvc(dvc_ws.root, "add", "-q", "data/flat")
    result = catalog.draft_dataset_card("data/flat", workspace=dvc_ws)
    fm = front(result.path)
    assert [c["images"] for c in fm["classes"]] == [{"train": 1}, {"train": 1}]
    assert fm["images"]["count"] == 3
    assert any("no split folders" in i for i in result.issues)
    assert any("1 image(s) lie directly in the dataset's folder" in i for i in result.issues)


@pytest.mark.parametrize(("change", "field", "message"), [
    ("md5: {md5}", "dvc.md5", "a DVC md5"),
    ("kind: dataset", "kind", "must be one of model, dataset"),
    ("size_categories:", "size_categories[0]", "must be one of n<1K"),
    ("status: draft", "status", "must be one of draft"),
])
@sqlite_only
def test_schema_errors(dvc_ws: Workspace, change: str, field: str, message: str) -> None:
    path = catalog.draft_dataset_card("data/defects", workspace=dvc_ws).path
    text = path.read_text()
    md5 = recorded_md5(dvc_ws)
    broken = {"md5: {md5}": ("md5: " + md5, "md5: not-a-hash"),
              "kind: dataset": ("kind: dataset", "kind: datset"),
              "size_categories:": ("- n<1K", "- tiny"),
              "status: draft": ("status: draft", "status: done")}[change]
    path.write_text(text.replace(*broken, 1))
    errors = [p for p in catalog.validate(path, workspace=dvc_ws) if p.severity == "error"]
    assert any(p.field == field and message in p.message for p in errors), errors


@sqlite_only
def test_hostile_class_names_render_inert(dvc_ws: Workspace) -> None:
    hostile = "<img src=x onerror=alert(1)> *b* [x](javascript:alert(2)) | `c`"
    folder = dvc_ws.root / "data" / "hostile"
    build_folder(folder, hostile=hostile)
    dvc(dvc_ws.root, "add", "-q", "data/hostile")
    card = catalog.read_card(catalog.draft_dataset_card("data/hostile",
                                                        workspace=dvc_ws).path)
    assert hostile in [c["name"] for c in card.front_matter["classes"]]
    html = catalog.render_html(card)
    for live in ("<img", 'href="javascript', "<em>b</em>", "<a ", "<code>c</code>"):
        assert live not in html, live
    assert "&lt;img src=x onerror=alert(1)&gt; *b* [x](" in html  # shown as written
    row = next(line for line in card.body.splitlines() if line.startswith("| &lt;img"))
    assert row.count(" | ") == 3  # class, train, val, total: the name's pipe is escaped
    assert [c for c in card.body.splitlines() if c.startswith("| total |")] == [
        "| total | 6 | 3 | 9 |"]


def test_scan_survives_odd_files(tmp_path: Path) -> None:
    from catalog._dataset_scan import scan_folder

    image(tmp_path / "train" / "a" / "0.png", (5, 7), 1, mode="RGB")
    image(tmp_path / "train" / "a" / "1.png", (5, 7), 1, mode="RGB")  # identical bytes
    (tmp_path / "train" / "a" / "cut.png").write_bytes(
        (tmp_path / "train" / "a" / "0.png").read_bytes()[:30])
    (tmp_path / "train" / "a" / ".hidden.png").write_bytes(b"x")
    (tmp_path / "train" / "a" / "empty.jpg").write_bytes(b"")
    os.symlink(tmp_path / "nowhere", tmp_path / "train" / "a" / "dangling.png")
    scan = scan_folder(tmp_path)
    assert scan.images == 2 and scan.duplicates == [["train/a/0.png", "train/a/1.png"]]
    assert sorted(p for p, _ in scan.unreadable) == ["train/a/cut.png", "train/a/dangling.png",
                                                    "train/a/empty.jpg"]


@sqlite_only
def test_a_pipeline_output_folder(dvc_ws: Workspace) -> None:
    import sys

    root = dvc_ws.root
    (root / "make.py").write_text(
        "import sys\nfrom pathlib import Path\nfrom PIL import Image\n"
        "for i in range(int(sys.argv[1])):\n"
        "    p = Path('gen/a') / f'{i}.png'\n    p.parent.mkdir(parents=True, exist_ok=True)\n"
        "    Image.new('RGB', (9, 9), (i, 0, 0)).save(p)\n")

    def stage(count: int) -> None:
        (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"make": {
            "cmd": f'"{sys.executable}" make.py {count}', "deps": ["make.py"],
            "outs": ["gen"]}}}))
        dvc(root, "repro", "-q")

    stage(2)
    result = catalog.draft_dataset_card("gen", workspace=dvc_ws)
    fm = front(result.path)
    assert fm["dvc"]["source"] == "dvc.lock" and fm["images"]["count"] == 2
    assert not [p for p in catalog.validate(result.path, workspace=dvc_ws)
                if p.field and p.field.startswith("dvc") and not _unpushed(p)]
    stage(3)
    (changed,) = [p for p in catalog.validate(result.path, workspace=dvc_ws)
                  if p.field == "dvc.md5"]
    assert fm["dvc"]["md5"] in changed.message and "dvc.lock now records" in changed.message


@sqlite_only
def test_validate_warns_until_the_data_is_pushed(dvc_ws: Workspace) -> None:
    draft("data/defects")

    def pushed_warnings() -> list[str]:
        return [p.message for p in catalog.validate(workspace=dvc_ws)
                if "not in the DVC remote" in p.message]

    (warning,) = pushed_warnings()
    assert warning.startswith("the data (data/defects, md5 ") and "`dvc push`" in warning
    dvc(dvc_ws.root, "push", "-q")
    assert pushed_warnings() == []


@sqlite_only
def test_validate_warns_until_the_weights_are_pushed(dvc_ws: Workspace) -> None:
    run_id, _ = finetune_run(dvc_ws)
    card = catalog.draft_from_run(run_id, track="add", workspace=dvc_ws)

    def pushed_warnings() -> list[str]:
        return [p.message for p in catalog.validate(card.parent, workspace=dvc_ws)
                if "not in the DVC remote" in p.message]

    (warning,) = pushed_warnings()
    assert warning.startswith("the weights (") and "`dvc push`" in warning
    dvc(dvc_ws.root, "push", "-q")
    assert pushed_warnings() == []
