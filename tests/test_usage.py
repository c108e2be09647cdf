"""A run's system metrics, energy, cost and idle-GPU warning, end to end through start_run.

The GPU is a stand-in pynvml module (there is no GPU here); the host is this machine.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

import pytest

import registry
from tests.test_sampler import FakeGpu, FakeNvml


def test_a_run_records_system_metrics_while_it_trains(workspace):
    ws = replace(workspace, system_interval=0.05)
    with registry.start_run(project="s", workspace=ws) as run:
        for step in range(8):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
            time.sleep(0.05)
    record = registry.get_run(run.id, workspace=ws)
    system = {k for k in record.metrics if k.startswith("system/")}
    assert {"system/cpu/util", "system/mem/used_mb", "system/mem/process_rss_mb"} <= system
    assert record.metrics["system/mem/used_mb"].count >= 3
    assert record.tags["cairn.energy.method"].startswith("gpu: ")
    history = registry.metric_history(run.id, workspace=ws)["system/mem/process_rss_mb"]
    assert all(p.value > 0 for p in history)


def test_an_idle_gpu_is_told_and_its_energy_counted(workspace, monkeypatch):
    nvml = FakeNvml(FakeGpu(util=12, joules_per_read=360))  # 0.1 Wh per reading
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    ws = replace(workspace, system_interval=0.02, costs={"currency": "EUR", "kwh": 0.25,
                                                         "cpu_core": 0.04})
    with registry.start_run(project="s", workspace=ws) as run:
        for step in range(20):
            run.log_metric("loss", 1.0, step=step)
            time.sleep(0.02)
    record = registry.get_run(run.id, workspace=ws)
    assert record.metrics["system/gpu0/util"].last == 12
    assert any("GPU 0 was busy 12% of the time" in w for w in record.warnings), record.warnings
    gpu_kwh = record.metrics["energy.gpu_kwh"].last
    assert gpu_kwh > 0 and record.metrics["energy_kwh"].last >= gpu_kwh
    assert "gpu: counter" in record.tags["cairn.energy.method"]
    assert record.metrics["cost"].last > 0.25 * gpu_kwh  # energy is priced in
    assert record.status == "FINISHED"


def test_sampling_off_records_no_system_metrics(workspace):
    with registry.start_run(project="s", workspace=replace(workspace, system_interval=0)) as r:
        r.log_metric("loss", 1.0)
    assert not [k for k in registry.get_run(r.id, workspace=workspace).metrics
                if k.startswith("system/")]


NODE1 = {"GROUP_RANK": "1", "LOCAL_RANK": "0", "RANK": "2", "WORLD_SIZE": "4",
         "LOCAL_WORLD_SIZE": "2"}


def test_another_node_samples_its_host_into_the_run(workspace, monkeypatch):
    nvml = FakeNvml(FakeGpu(util=5, joules_per_read=360))
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with registry.start_run(project="s", workspace=workspace) as run:  # rank 0: no sampling
        run.log_metric("loss", 1.0, step=0)
        node_ws = replace(workspace, system_interval=0.02)
        with registry.sample_node(run.id, workspace=node_ws, env=NODE1) as node:
            time.sleep(0.3)
        assert node.node == 1
    record = registry.get_run(run.id, workspace=workspace)
    assert record.metrics["system/node1/cpu/util"].count >= 3
    assert record.metrics["system/node1/gpu0/util"].last == 5
    assert record.metrics["energy.node1.gpu_kwh"].last > 0
    assert not any(k.startswith("system/cpu") for k in record.metrics)
    assert record.tags["cairn.warning.node1"] == (
        "GPU 0 of node 1 was busy 5% of the time: the data loader may be the bottleneck")


@pytest.mark.parametrize("env", [
    {},                                                                  # one process
    {**NODE1, "GROUP_RANK": "0", "RANK": "0"},                           # the recording node
    {**NODE1, "LOCAL_RANK": "1", "RANK": "3"},                           # not first on node 1
])
def test_only_the_first_process_of_another_node_samples(workspace, env):
    with registry.start_run(project="s", workspace=workspace) as run:
        assert registry.sample_node(run.id, workspace=replace(workspace, system_interval=1),
                                    env=env) is None


def test_a_node_that_cannot_reach_the_store_is_left_out(workspace, tmp_path):
    lost = replace(workspace, system_interval=1,
                   store_url=f"sqlite:///{tmp_path}/missing/none.db", readonly=True)
    assert registry.sample_node("0" * 32, workspace=lost, env=NODE1) is None
    with registry.start_run(project="s", workspace=workspace):
        assert registry.sample_node("no-such-run", workspace=replace(
            workspace, system_interval=1), env=NODE1) is None
