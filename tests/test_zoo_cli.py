"""``cairn zoo list`` and ``cairn zoo info``, on the group object and through ``cairn``'s
entry-point plugins."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

if importlib.util.find_spec("timm") is None:
    pytest.skip("the zoo extra is not installed: pip install 'cairn[zoo]'",
                allow_module_level=True)

from registry.cli import cli
from zoo.cli import zoo

README = Path(__file__).parents[1] / "README.md"


@pytest.fixture(autouse=True)
def weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    monkeypatch.setenv("CAIRN_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "weights" / "timm"


def run(*args: str) -> click.testing.Result:
    result = CliRunner().invoke(zoo, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_list_prints_a_table_with_weights_status():
    out = run("list", "test_res*").output
    header, _rule, row, *_ = out.splitlines()
    assert header.split() == ["name", "source", "params", "input", "license", "tag", "weights"]
    assert row.split() == ["test_resnet.r160_in1k", "timm", "-", "3x160x160", "apache-2.0",
                           "r160_in1k", "missing"]


def test_list_json_limit_and_filters(weights_dir):
    lines = run("list", "test_", "--json", "--limit", "3").output.splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["source"] == "timm"
    assert "3 of" in run("list", "test_", "--limit", "3").output
    unpublished = run("list", "test_vit", "--pretrained-only", "--limit", "0").output
    assert "test_vit4" not in unpublished and "test_vit2.r160_in1k" in unpublished
    assert run("list", "test_", "--available").output.strip() == "no model matches"
    weights_dir.mkdir(parents=True)
    (weights_dir / "test_vit.r160_in1k.safetensors").write_bytes(b"")
    available = run("list", "--available", "--source", "timm").output
    assert "test_vit.r160_in1k" in available and "local" in available


def test_info_shows_everything_and_where_weights_go(weights_dir):
    out = run("info", "test_resnet").output
    assert "test_resnet.r160_in1k" in out and "470k" in out and "bilinear" in out
    assert f"put the weights file at {weights_dir / 'test_resnet.r160_in1k.safetensors'}" in out
    as_json = json.loads(run("info", "test_resnet", "--json").output)
    assert as_json["num_params"] == 469688 and as_json["weights_available"] is False


def test_cairn_loads_the_zoo_group_through_its_entry_point():
    result = CliRunner().invoke(cli, ["zoo", "info", "test_resnt"])
    assert result.exit_code == 1 and "did you mean test_resnet" in result.output
    assert "zoo" in cli.list_commands(click.Context(cli))


def test_zoo_commands_are_documented_in_the_readme():
    readme = README.read_text()
    assert "`cairn zoo`" in readme
    for name in zoo.commands:
        assert f"cairn zoo {name}" in readme, f"'cairn zoo {name}' is not in README.md"
