"""The ``cairn`` command: init, runs list/show/export/import, and its documentation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import registry
from registry.cli import cli


@pytest.fixture
def cairn(workspace, monkeypatch):
    monkeypatch.setenv("CAIRN_STORE", workspace.store_url)
    monkeypatch.setenv("CAIRN_ARTIFACTS", workspace.artifact_root)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


def test_init_writes_config_and_store(tmp_dir):
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 0, result.output
    assert (tmp_dir / "cairn.toml").exists() and (tmp_dir / ".cairn" / "registry.db").exists()
    assert registry.load_workspace(tmp_dir).store_url.endswith(".cairn/registry.db")


def test_list_show_export_import(cairn, workspace):
    with registry.start_run(project="defects", name="r18", params={"lr": 0.1},
                            workspace=workspace) as run:
        run.log_metric("val_acc", 0.93)
    listing = cairn("runs", "list")
    assert run.id[:8] in listing.output and "val_acc=0.93" in listing.output
    shown = cairn("runs", "show", run.id[:8])
    assert "FINISHED" in shown.output and "lr" in shown.output and "val_acc" in shown.output
    as_json = json.loads(cairn("runs", "show", run.id, "--json").output)
    assert as_json["params"] == {"lr": 0.1}
    exported = cairn("runs", "export").stdout
    assert json.loads(exported.splitlines()[0])["id"] == run.id
    again = cairn("runs", "import", input=exported)
    assert "skipped 1" in again.output


def test_unknown_run_is_a_one_line_error(cairn):
    result = CliRunner().invoke(cli, ["runs", "show", "deadbeef"])
    assert result.exit_code == 1 and "no run matches 'deadbeef'" in result.output


def test_import_with_bad_lines_exits_non_zero(cairn):
    result = CliRunner().invoke(cli, ["runs", "import"], input="garbage\n")
    assert result.exit_code == 1 and "line 1" in result.output


def _commands(group, prefix=()):
    """Every command path, plugin groups (loaded through entry points) included."""
    import click

    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        path = (*prefix, name)
        yield " ".join(path)
        if isinstance(command, click.Group):
            yield from _commands(command, path)


def test_every_command_is_documented_in_the_readme():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for command in _commands(cli):
        assert f"cairn {command}" in readme, f"'cairn {command}' is not in README.md"


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "registry.cli", "--help"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and "runs" in out.stdout
