"""A run's system metrics, energy, cost and idle-GPU warning, end to end through start_run.

The GPU is a stand-in pynvml module (there is no GPU here); the host is this machine.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

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
