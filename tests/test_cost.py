"""What a run cost: prices from [costs], device hours, unknown never 0, recorded and searchable."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from types import SimpleNamespace

import pytest

import registry
from registry.capture.cost import Prices, cost_of, prices_from
from registry.errors import ConfigError
from registry.tracking import _usage
from registry.tracking._usage import node_count

H100 = {"gpus": [{"name": "NVIDIA H100 80GB HBM3"}, {"name": "NVIDIA H100 80GB HBM3"}],
        "cpu": {"available_cores": 32}}
CPU = {"gpus": [], "cpu": {"available_cores": 4}}
PRICES = prices_from({"currency": "EUR", "kwh": 0.25, "cpu_core": 0.04,
                      "device_hour": {"H100": 2.9, "A100": 1.6, "H100 80GB": 3.1}})


def test_gpu_hours_priced_by_the_longest_matching_name_plus_energy():
    cost = cost_of(H100, 1800, 2.0, PRICES)  # two GPUs, half an hour, 2 kWh
    assert cost.gpu_hours == 1.0 and cost.device_cost == pytest.approx(3.1)
    assert cost.energy_cost == 0.5 and cost.total == pytest.approx(3.6)
    assert cost.prices["device_hour"] == {"NVIDIA H100 80GB HBM3": 3.1}
    assert cost.unknown is None


def test_a_machine_without_gpus_pays_for_its_cores():
    cost = cost_of(CPU, 3600, None, PRICES)
    assert cost.gpu_hours == 0 and cost.cpu_core_hours == 4
    assert cost.total == pytest.approx(0.16) and cost.energy_cost is None


def test_a_job_over_several_nodes_pays_for_each_node():
    cost = cost_of(H100, 1800, None, PRICES, nodes=3)
    assert cost.gpu_hours == 3.0 and cost.device_cost == pytest.approx(3 * 3.1)
    assert cost_of(CPU, 3600, None, PRICES, nodes=2).cpu_core_hours == 8


@pytest.mark.parametrize(("env", "nodes"), [
    ({}, 1), ({"WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4"}, 2),
    ({"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}, 1), ({"WORLD_SIZE": "8"}, 1),
    ({"WORLD_SIZE": "x", "LOCAL_WORLD_SIZE": "4"}, 1),
    ({"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "0"}, 1),
])
def test_the_nodes_of_a_torchrun_job(env, nodes):
    assert node_count(env) == nodes


def test_a_run_of_a_two_node_job_records_both_nodes_cost(workspace, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    clock = iter([1000.0, 1000.0 + 3600])  # the usage's start and end: an hour apart
    monkeypatch.setattr(_usage, "time", SimpleNamespace(time=lambda: next(clock)))
    ws = replace(workspace, costs={"currency": "EUR", "cpu_core": 0.04}, system_interval=0)
    with registry.start_run(project="c", workspace=ws) as run:
        run.log_metric("val_acc", 0.93)
    record = registry.get_run(run.id, workspace=ws)
    assert record.tags["cairn.cost.nodes"] == "2"
    cores = record.hardware["cpu"]["available_cores"]
    assert record.metrics["cost"].last == pytest.approx(2 * cores * 0.04)


@pytest.mark.parametrize(("hardware", "prices", "reason"), [
    ({"gpus": [{"name": "NVIDIA L4"}]}, PRICES, "no costs.device_hour price matches GPU"),
    (CPU, replace(PRICES, cpu_core=None), "no costs.cpu_core price"),
    (H100, Prices(), "no [costs] prices"),
])
def test_a_missing_price_makes_the_cost_unknown_never_zero(hardware, prices, reason):
    cost = cost_of(hardware, 60, 1.0, prices)
    assert cost.total is None and reason in cost.unknown


@pytest.mark.parametrize(("table", "problem"), [
    ({"kwh": -1}, "costs.kwh must not be negative"),
    ({"kwh": "cheap"}, "costs.kwh must be a number"),
    ({"cpu_core": True}, "costs.cpu_core must be a number"),
    ({"kwh": math.nan}, "costs.kwh must be a number"),
    ({"device_hour": {"H100": "2.9"}}, "costs.device_hour.'H100' must be a number"),
    ({"device_hour": 3}, "costs.device_hour must be a table"),
    ({"per_gpu": 1}, "unknown setting costs.'per_gpu'"),
])
def test_bad_prices_are_config_errors(table, problem):
    with pytest.raises(ConfigError, match=re.escape(problem)):
        prices_from(table)


def test_a_run_records_its_cost_and_the_prices_used(workspace):
    ws = replace(workspace, costs={"currency": "EUR", "cpu_core": 0.04}, system_interval=0)
    with registry.start_run(project="c", workspace=ws) as run:
        run.log_metric("val_acc", 0.93)
    record = registry.get_run(run.id, workspace=ws)
    assert record.metrics["cost"].last > 0 and record.metrics["gpu_hours"].last == 0
    assert json.loads(record.tags["cairn.cost.prices"])["cpu_core"] == 0.04
    assert record.tags["cairn.cost.currency"] == "EUR"
    found = registry.search("cost < 20 and val_acc > 0.9", workspace=ws)
    assert [r.id for r in found.runs] == [run.id]


def test_bad_prices_are_a_warning_on_the_run_never_a_crash(workspace):
    ws = replace(workspace, costs={"kwh": -3}, system_interval=0)
    with registry.start_run(project="c", workspace=ws) as run:
        run.log_metric("loss", 1.0)
    record = registry.get_run(run.id, workspace=ws)
    assert record.status == "FINISHED" and "cost" not in record.metrics
    assert any("costs.kwh must not be negative" in w for w in record.warnings)
    assert "no [costs] prices" in record.tags["cairn.cost.unknown"]


def test_value_for_money_counts_cost_and_progress_per_100(workspace):
    from click.testing import CliRunner

    from registry.knowledge.mov import define_mov, value_for_money

    ws = replace(workspace, costs={"currency": "EUR", "cpu_core": 0.04}, system_interval=0)
    define_mov("line3", "scrap", unit="ppm", direction="lower", baseline=100, target=50,
               workspace=ws)
    with registry.start_run(project="line3", workspace=ws) as run:
        run.log_mov("scrap", 80)  # 40% of the way to target
    with registry.start_run(project="line3", workspace=replace(ws, costs={})):
        pass  # a run without prices: counted, never free
    [v] = value_for_money("line3", workspace=ws)
    cost = registry.get_run(run.id, workspace=ws).metrics["cost"].last
    assert (v.currency, v.costed_runs, v.uncosted_runs) == ("EUR", 1, 1)
    assert v.total_cost == pytest.approx(cost)
    assert v.per_100["scrap"] == pytest.approx(40 / cost * 100)
    from registry.cli import cli

    out = CliRunner().invoke(cli, ["mov", "status"], env={"CAIRN_STORE": ws.store_url})
    assert "cost so far" in out.output and "1 more without a cost" in out.output, out.output


def test_the_handover_report_says_what_the_project_cost(workspace, tmp_path):
    import catalog

    ws = replace(workspace, costs={"currency": "EUR", "cpu_core": 0.04}, system_interval=0)
    with registry.start_run(project="line3", workspace=ws) as run:
        run.log_metric("val_acc", 0.9)
    text = catalog.report("line3", out=tmp_path / "r", workspace=ws).markdown.read_text()
    assert "## Cost and value for money" in text and "EUR** over 1 runs" in text
