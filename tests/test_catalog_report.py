"""``cairn report PROJECT``: a handover report from the registry and the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import catalog
import registry
from catalog.cli import report as report_cli
from catalog.errors import CatalogError
from registry.config import Workspace

CARD = Path(__file__).parent / "data" / "cards" / "cairn_complete.md"


def recorded_project(ws: Workspace) -> dict[str, str]:
    """Three runs of project 'defects' by two people, a MoV, and a card of the best run."""
    registry.define_mov("defects", "escape_rate", unit="ppm", direction="lower", baseline=420,
                        target=100, stakeholder="Quality", workspace=ws)
    ids = {}
    for name, owner, acc, text in [
        ("r18-base", "ana", 0.81, {"question": "Is a ResNet-18 enough for dents?",
                                   "notes": "Glare hurts.\n\nOpen question: do night images "
                                            "need their own model?",
                                   "conclusion": "Baseline: 0.81, glare is the main error."}),
        ("r18-mixup", "ben", 0.93, {"question": "Does mixup help? | <script>x</script>",
                                    "conclusion": "Mixup adds 12 points."}),
        ("vit-try", "ben", 0.77, {"question": "Would a ViT beat it?"}),
    ]:
        with registry.start_run("defects", name, owner=owner, workspace=ws,
                                question=text["question"], notes=text.get("notes")) as run:
            run.log_metric("val_acc", acc - 0.1, step=0)
            run.log_metric("val_acc", acc, step=1)
            if text.get("conclusion"):
                run.set_conclusion(text["conclusion"])
            if name == "r18-mixup":
                run.log_mov("escape_rate", 180, evidence="plant audit week 46")
        ids[name] = run.id
    with registry.start_run("other", "elsewhere", workspace=ws) as run:
        run.log_metric("val_acc", 0.99)
    card = ws.catalog_dir / "scratch-r18" / "README.md"
    card.parent.mkdir(parents=True)
    card.write_text(CARD.read_text().replace("0123456789abcdef0123456789abcdef",
                                             ids["r18-mixup"]))
    return ids


def test_report_markdown_and_html(workspace: Workspace, tmp_path: Path) -> None:
    ids = recorded_project(workspace)
    written = catalog.report("defects", out=tmp_path / "out", workspace=workspace)
    md = written.markdown.read_text()
    assert written.markdown.name == "defects-handover.md"
    assert "## The question" in md and "- Is a ResNet-18 enough for dents?" in md
    assert "| ana | 1 |" in md and "| ben | 2 |" in md
    assert "elsewhere" not in md  # another project's run
    best = md.split("## Best models")[1].split("##")[0]
    assert best.index(ids["r18-mixup"][:8]) < best.index(ids["r18-base"][:8])
    assert "val_acc 0.93" in best and "card `scratch-r18@3` (reviewed" in best
    assert f"cairn catalog new --from-run {ids['r18-base'][:8]}" in best
    assert "| escape_rate | ppm | 420 | 100 | 180 | 180 | 75% | 1 |" in md
    opened = md.split("## Open questions")[1].split("##")[0]
    assert "Would a ViT beat it?" in opened  # a question nobody concluded
    assert "Open question: do night images need their own model?" in opened
    assert "Is a ResNet-18 enough" not in opened  # concluded
    assert "Mixup adds 12 points." in md.split("## Conclusions")[1]

    page = written.html.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<h2>Measured organisational value</h2>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_report_of_an_unknown_project(workspace: Workspace) -> None:
    with pytest.raises(CatalogError, match="'nothing' has no runs"):
        catalog.report("nothing", workspace=workspace)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_report_cli(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    recorded_project(workspace)
    monkeypatch.setenv("CAIRN_STORE", workspace.store_url)
    monkeypatch.setenv("CAIRN_CATALOG", str(workspace.catalog_dir))
    out = CliRunner().invoke(report_cli, ["defects"])
    assert out.exit_code == 0, out.output
    assert (workspace.root / "reports" / "defects-handover.html").is_file()
    out = CliRunner().invoke(report_cli, ["nothing"])
    assert out.exit_code == 1 and "has no runs" in out.output
