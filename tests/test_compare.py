"""Comparing runs: params, metrics, aligned histories, code, data, machine; the CLI command."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

import registry
from registry.cli.compare import compare_command
from registry.entities import DatasetUse
from registry.errors import RunNotFoundError
from registry.knowledge.comparison import MISSING, CompareError, compare
from registry.store import SqlStore

ENV = {"python": "3.11.9", "packages": {"torch": "2.3.0", "numpy": "1.26.4"},
       "all_packages": ["numpy==1.26.4", "torch==2.3.0"], "env_vars": {}}


def _run(workspace, name, params, metrics, *, commit="a" * 40, data_hash="d1" * 16,
         env=ENV):
    """A finished run; ``metrics`` maps a key to (step, value) pairs in logging order."""
    with registry.start_run(project="p", name=name, params=params, workspace=workspace) as run:
        for key, points in metrics.items():
            for step, v in points:
                run.log_metric(key, v, step=step)
    store = SqlStore(workspace.store_url)
    store.update_run(run._pk, git_commit=commit, git_branch="main", git_dirty=False,
                     environment=env)
    store.add_dataset_use(run._pk, DatasetUse(path="data/train", role="train", tracked=True,
                                              hash=data_hash, hash_kind="md5"))
    return run


@pytest.fixture
def runs(workspace):
    base = _run(workspace, "base", {"lr": 0.1, "epochs": 10, "opt": {"name": "sgd"}},
                {"loss": [(0, 1.0), (2, 0.5), (4, 0.25)], "acc": [(0, 0.5), (4, 0.9)]})
    exp = _run(workspace, "exp", {"lr": 0.2, "epochs": 10.0, "opt": {"name": "sgd"},
                                  "warmup": None},
               {"loss": [(0, 1.0), (1, 0.8), (2, 0.7), (2, 0.6)], "acc": [(0, 0.5), (4, 0.9)],
                "grad_norm": [(0, math.nan)]},
               commit="b" * 40, data_hash="d2" * 16,
               env={**ENV, "packages": {**ENV["packages"], "torch": "2.4.0"},
                    "all_packages": ["torch==2.4.0"]})
    return base, exp


def test_params_differ_by_value_not_by_number_type(runs, workspace):
    base, exp = runs
    c = compare([base.id, "exp"], workspace=workspace)
    assert [r.id for r in c.runs] == [base.id, exp.id]
    assert c.params["lr"] == [0.1, 0.2] and c.params["warmup"] == [MISSING, None]
    assert c.param_differences == ["lr", "warmup"]  # epochs 10 == 10.0, opt.name equal
    assert list(c.params) == ["epochs", "lr", "opt.name", "warmup"]


def test_metrics_summaries_per_run(runs, workspace):
    c = compare(["base", "exp"], workspace=workspace)
    assert c.metrics["grad_norm"][0] is None and math.isnan(c.metrics["grad_norm"][1].last)
    assert c.metrics["loss"][1].last == 0.6
    assert c.metric_differences == ["grad_norm", "loss"]  # acc is the same in both


def test_histories_align_by_step_with_gaps_and_last_value_of_a_repeated_step(runs, workspace):
    c = compare(["base", "exp"], workspace=workspace)
    loss = c.histories["loss"]
    assert loss.steps == [0, 1, 2, 4]
    assert loss.values == [[1.0, None, 0.5, 0.25], [1.0, 0.8, 0.6, None]]
    assert c.histories["grad_norm"].values[0] == [None]
    assert set(c.histories) == {"acc", "grad_norm", "loss"}


def test_history_keys_and_thinning(workspace):
    a = _run(workspace, "a", {}, {"loss": [(s, s / 10) for s in range(101)], "acc": [(0, 1)]})
    b = _run(workspace, "b", {}, {"loss": [(s, 1.0) for s in range(0, 101, 2)]})
    c = compare([a.id, b.id], workspace=workspace, history_keys=["loss"], max_points=10)
    assert list(c.histories) == ["loss"]
    steps = c.histories["loss"].steps
    assert len(steps) <= 10 and steps[0] == 0 and steps[-1] == 100
    assert steps == sorted(steps) and len(c.histories["loss"].values[1]) == len(steps)
    assert compare(["a", "b"], workspace=workspace, history_keys=[]).histories == {}


def test_code_data_and_environment_differences(runs, workspace):
    c = compare(["base", "exp"], workspace=workspace)
    assert c.code["commit"] == ["a" * 40, "b" * 40] and c.code_differences == ["commit"]
    assert c.code_differs and c.commits == ["a" * 40, "b" * 40]
    assert c.data == {"train:data/train": ["d1" * 16, "d2" * 16]}
    assert c.data_differences == ["train:data/train"]
    assert c.environment_differences == ["packages.torch"]  # all_packages is not compared
    assert "all_packages" not in c.environment and c.hardware_differences == []
    assert c.differences()["environment"] == ["packages.torch"]


def test_same_code_on_another_branch_is_not_different_code(workspace):
    a = _run(workspace, "a", {}, {})
    b = _run(workspace, "b", {}, {})
    SqlStore(workspace.store_url).update_run(b._pk, git_branch="feature")
    c = compare([a.id, b.id], workspace=workspace)
    assert c.code_differences == ["branch"] and not c.code_differs and c.commits == ["a" * 40]


def test_a_path_used_in_two_versions_shows_both(workspace):
    _run(workspace, "a", {}, {"loss": [(0, 1.0)]})
    b = _run(workspace, "b", {}, {})
    SqlStore(workspace.store_url).add_dataset_use(
        b._pk, DatasetUse(path="data/train", role="train", tracked=True, hash="d0" * 16))
    c = compare(["a", "b"], workspace=workspace, history_keys="loss")
    assert c.data["train:data/train"] == ["d1" * 16, f"{'d0' * 16}, {'d1' * 16}"]
    assert list(c.histories) == ["loss"] and c.histories["loss"].values == [[1.0], [None]]


def test_to_dict_is_strict_json_and_round_trips(runs, workspace):
    c = compare(["base", "exp"], workspace=workspace)
    data = c.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["params"]["warmup"] == [None, None] and data["runs"][1]["params"]["warmup"] is None
    assert "warmup" not in data["runs"][0]["params"]  # the record tells missing from None
    assert data["metrics"]["grad_norm"][1]["last"] == "NaN"
    assert data["histories"]["loss"]["steps"] == [0, 1, 2, 4]
    assert data["code_differs"] is True and data["param_differences"] == ["lr", "warmup"]


def test_refs_that_cannot_be_compared(runs, workspace):
    base, _ = runs
    with pytest.raises(RunNotFoundError):
        compare(["base", "nosuchrun"], workspace=workspace)
    with pytest.raises(CompareError, match="at least two"):
        compare(["base"], workspace=workspace)
    with pytest.raises(CompareError, match="same run") as info:
        compare(["base", base.id[:8]], workspace=workspace)
    assert isinstance(info.value, ValueError) and info.value.refs == ["base", base.id[:8]]


@pytest.fixture
def invoke(workspace, monkeypatch):
    monkeypatch.setenv("CAIRN_STORE", workspace.store_url)
    monkeypatch.setenv("CAIRN_ARTIFACTS", workspace.artifact_root)

    def run(*args: str, color: bool = False):
        return CliRunner().invoke(compare_command, list(args), color=color)

    return run


def test_cli_shows_only_differences_marked(runs, invoke):
    result = invoke("base", "exp")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "params: 2 of 4 differ (2 identical hidden; --all shows them)" in out
    assert "0.2*" in out and "0.1*" not in out  # marked where it differs from the first run
    assert "epochs" not in out and "packages.torch" in out and "2.4.0*" in out
    assert "bbbbbbbbbbbb*" in out and "\x1b[" not in out
    assert "epochs" in invoke("base", "exp", "--all").output


def test_cli_highlights_with_colour(runs, invoke):
    out = invoke("base", "exp", color=True).output
    assert "\x1b[" in out and "0.2*" not in out


def test_cli_history_and_json(runs, invoke):
    lines = invoke("base", "exp", "--history", "loss").output.splitlines()
    assert lines[0].split() == ["step", "base", "exp"]
    assert [line.split() for line in lines[2:]] == [
        ["0", "1", "1"], ["1", "-", "0.8"], ["2", "0.5", "0.6"], ["4", "0.25", "-"]]
    data = json.loads(invoke("base", "exp", "--json", "--history", "loss").output)
    assert list(data["histories"]) == ["loss"] and data["param_differences"] == ["lr", "warmup"]


def test_cli_errors_are_one_line(runs, invoke):
    missing = invoke("base", "nosuchrun")
    assert missing.exit_code == 1 and "no run matches 'nosuchrun'" in missing.output
    single = invoke("base")
    assert single.exit_code == 1 and "at least two runs" in single.output
    unknown = invoke("base", "exp", "--history", "nope")
    assert unknown.exit_code == 1 and "'nope'" in unknown.output
