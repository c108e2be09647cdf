"""What a team meets first: ``cairn zoo list`` without a query (catalog, local weights, common
backbones first), close names for an unknown ``cairn zoo info`` name, and a readable run name
for a fine-tune given none."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

if importlib.util.find_spec("timm") is None:
    pytest.skip("the zoo extra is not installed: pip install 'cairn[zoo]'",
                allow_module_level=True)

from click.testing import CliRunner

import registry
import zoo
from registry.cli import cli
from registry.config import Workspace
from tests.test_zoo_data import make_folder
from zoo import _registry
from zoo._compat import import_timm
from zoo._featured import COMMON, featured_order
from zoo._info import ModelInfo
from zoo.cli import zoo as zoo_group
from zoo.sources.tfhub import CURATED
from zoo.training.config import FinetuneConfig, default_run_name


@pytest.fixture(autouse=True)
def weights_dir(tmp_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No weights on this machine but those a test puts in ``weights_dir``."""
    from huggingface_hub import constants

    monkeypatch.setenv("CAIRN_WEIGHTS_DIR", str(tmp_dir / "weights"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_dir / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_dir / "torch"))
    return tmp_dir / "weights" / "timm"


def listed(*args: str) -> list[str]:
    """The model names of ``cairn zoo list ARGS``, in the order shown."""
    result = CliRunner().invoke(zoo_group, ["list", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [line.split()[0] for line in result.output.splitlines()[2:] if " of " not in line]


# -- the common backbones ---------------------------------------------------------------------


@pytest.mark.parametrize("name", COMMON)
def test_every_common_name_is_a_published_timm_name_or_a_tfhub_alias(name: str):
    if name.startswith("tfhub:"):
        assert name.removeprefix("tfhub:") in CURATED
    else:
        assert name in import_timm().list_pretrained(name), f"timm publishes no {name!r}"


def test_common_names_are_unique_and_a_short_list():
    assert len(set(COMMON)) == len(COMMON) and 15 <= len(COMMON) <= 25


def entry(name: str, source: str = "timm", local: bool = False) -> ModelInfo:
    return ModelInfo(name=name, source=source, architecture=name, weights_available=local)


def test_featured_order_is_catalog_then_local_then_common_then_the_rest():
    rest = [entry("aaa"), entry("zzz")]
    entries = [rest[0], entry(COMMON[1]), entry("mine", local=True), entry(COMMON[0]),
               entry("card@1", source="catalog"), rest[1]]
    names = [e.name for e in featured_order(entries)]
    assert names == ["card@1", "mine", COMMON[0], COMMON[1], "aaa", "zzz"]


class CardSource:
    """A stand-in for the catalog: one card."""

    def list(self, query: str | None = None) -> Iterator[ModelInfo]:
        yield entry("catalog:surface-r10t@1", source="catalog")


def test_list_without_query_shows_the_teams_and_common_models_first(
        weights_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(_registry._SOURCES, "catalog", CardSource())
    weights_dir.mkdir(parents=True)
    (weights_dir / "test_vit.r160_in1k.safetensors").write_bytes(b"")
    names = listed("--limit", str(len(COMMON) + 2))
    assert names == ["catalog:surface-r10t@1", "test_vit.r160_in1k", *COMMON]
    every = listed("--limit", "0", "--source", "timm")
    assert every[:3] == ["test_vit.r160_in1k", *COMMON[:2]] and len(every) > 1000


def test_list_without_query_says_how_to_search():
    result = CliRunner().invoke(zoo_group, ["list", "--limit", "3"], catch_exceptions=False)
    footer = result.output.splitlines()[-1]
    assert footer.startswith("3 of ") and "cairn zoo list QUERY" in footer
    assert "--limit 0" in footer


def test_a_query_keeps_the_sources_order():
    assert listed("resnet5*", "--pretrained-only", "--limit", "2") == [
        "resnet50.a1_in1k", "resnet50.a1h_in1k"]


# -- unknown names ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "close"), [
    ("resnt50", "resnet50"),
    ("convnext_tiny.fb_in1", "convnext_tiny.fb_in1k"),
    ("tfhub:efficientnet", "tfhub:efficientnetv2-b0"),
])
def test_info_of_an_unknown_name_is_one_line_with_close_names(name: str, close: str):
    result = CliRunner().invoke(cli, ["zoo", "info", name])
    assert result.exit_code == 1 and not isinstance(result.exception, zoo.UnknownModelError)
    (line,) = result.output.splitlines()
    assert line.startswith(f"Error: unknown model {name!r}; did you mean ")
    assert close in line and "cairn zoo list QUERY" in line


def test_info_without_close_names_says_which_names_exist():
    result = CliRunner().invoke(cli, ["zoo", "info", "hf-hub:timm/nothing-here"])
    assert result.exit_code == 1 and "'resnet50.a1_in1k'" in result.output


# -- the default run name ---------------------------------------------------------------------


@pytest.mark.parametrize(("data", "expected"), [
    ("data/defects", "resnet50.a1_in1k on defects"),
    ("data/defects/", "resnet50.a1_in1k on defects"),
    ("data/defects/../welds", "resnet50.a1_in1k on welds"),
])
def test_default_run_name_is_the_model_on_the_data_folder(data: str, expected: str):
    assert default_run_name("resnet50.a1_in1k", data) == expected
    assert FinetuneConfig.build("resnet50.a1_in1k", data).run_name == expected
    assert FinetuneConfig.build("resnet50.a1_in1k", data, run_name="mine").run_name == "mine"


def test_default_run_name_of_the_working_directory(tmp_dir: Path):
    assert default_run_name("tfhub:inception_v3", ".") == f"tfhub:inception_v3 on {tmp_dir.name}"


def test_a_finetune_without_a_name_records_model_on_folder(tmp_dir: Path):
    images = make_folder(tmp_dir / "defects", {"ok": 5, "scratch": 5}, size=32)
    ws = Workspace(root=tmp_dir, store_url=f"sqlite:///{tmp_dir / 'registry.db'}",
                   artifact_root=str(tmp_dir / "artifacts"), catalog_dir=tmp_dir / "catalog",
                   owner="tester", heartbeat_interval=0.5, flush_interval=0.05)
    result = zoo.finetune("test_resnet.r160_in1k", images, pretrained=False, epochs=1,
                          batch_size=4, image_size=32, workers=0, progress=False,
                          project="tests", workspace=ws)
    record = registry.get_run(result.run_id, workspace=ws)
    assert record.name == "test_resnet.r160_in1k on defects"
