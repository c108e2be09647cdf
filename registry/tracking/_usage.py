"""What a run used: device hours, energy and cost, recorded on the run as it ends.

Recorded as ordinary metrics at step 0 (``gpu_hours``, ``energy_kwh``, ``energy.gpu_kwh``,
``energy.cpu_kwh``, ``cost``; a run without GPUs, prices or measured energy records none),
so search (``cost < 20 and val_acc > 0.9``), sorting, compare and the MLflow export take
them as they take any metric; and as tags: ``cairn.cost.prices`` (the prices used, JSON),
``cairn.cost.currency``, ``cairn.energy.method``, and ``cairn.cost.unknown`` with the reason
when a price was missing. Nothing here may end a run: a bad ``[costs]`` table is a warning
on the run, and its cost is then unknown, never 0.

A job over several nodes (torchrun: ``WORLD_SIZE`` / ``LOCAL_WORLD_SIZE`` of them) is counted
as that many nodes like the recording one (tag ``cairn.cost.nodes``); the other nodes' energy
is recorded by their own samplers (``energy.node<N>.*``, see ``registry.tracking._node``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from registry.capture.cost import Prices, cost_of, prices_from
from registry.errors import ConfigError

__all__ = ["Usage"]


class Usage:
    """Started with the run; ``finish`` records what it used before the writer closes."""

    def __init__(self, run: Any, hardware: Mapping[str, Any] | None, workspace: Any) -> None:
        self.run, self.hardware, self.start = run, dict(hardware or {}), time.time()
        self.prices: Prices | None = None
        try:
            self.prices = prices_from(workspace.costs, _where(workspace))
        except ConfigError as exc:
            run._warn(f"cost not computed: {exc}")

    def finish(self, energy: Any = None) -> None:
        """Record device hours, energy (an energy report, if measured) and cost."""
        energy_kwh, method = _energy(energy)
        nodes = node_count(os.environ)
        cost = cost_of(self.hardware, time.time() - self.start, energy_kwh,
                       self.prices or Prices(), nodes=nodes)
        priced = self.prices is None or not self.prices.empty
        metrics = _energy_metrics(energy)
        if priced or cost.gpu_hours or metrics:  # a CPU run in a workspace without prices:
            metrics["gpu_hours"] = cost.gpu_hours  # nothing to say
        if cost.total is not None:
            metrics["cost"] = cost.total
        if metrics:
            self.run.log_metrics(metrics, step=0)
        tags = _tags(cost, method if energy is not None else None, self.prices)
        self.run.set_tags({**tags, **({"cairn.cost.nodes": str(nodes)} if nodes > 1 else {})})
        if cost.unknown and self.prices is not None and not self.prices.empty:
            self.run._warn(f"cost unknown: {cost.unknown}")


def node_count(env: Mapping[str, str]) -> int:
    """Nodes of a torchrun job (``WORLD_SIZE // LOCAL_WORLD_SIZE``), 1 outside one."""
    try:
        return max(1, int(env["WORLD_SIZE"]) // int(env["LOCAL_WORLD_SIZE"]))
    except (KeyError, ValueError, ZeroDivisionError):
        return 1


def _tags(cost: Any, method: str | None, prices: Prices | None) -> dict[str, str]:
    """The prices used and what was unknown (with prices set), and how energy was measured
    (with sampling on); nothing for a workspace that asks for neither."""
    tags = {"cairn.energy.method": method} if method else {}
    if prices is None or not prices.empty:
        tags["cairn.cost.prices"] = json.dumps(cost.prices, sort_keys=True)
        tags.update({"cairn.cost.currency": cost.currency} if cost.currency else {})
        tags.update({"cairn.cost.unknown": cost.unknown} if cost.unknown else {})
    return tags


def _energy(report: Any) -> tuple[float | None, str]:
    """Total kWh measured (None: nothing measured) and how, from a sampler's report."""
    if report is None:
        return None, "unavailable: no system sampling (runs.system_interval = 0)"
    parts = [v for v in (report.gpu_kwh, report.cpu_kwh) if v is not None]
    method = f"gpu: {report.gpu_method}; cpu: {report.cpu_method}"
    return (sum(parts) if parts else None), method


def _energy_metrics(report: Any) -> dict[str, float]:
    if report is None:
        return {}
    found = {"energy.gpu_kwh": report.gpu_kwh, "energy.cpu_kwh": report.cpu_kwh}
    known = {k: float(v) for k, v in found.items() if v is not None}
    if known:
        known["energy_kwh"] = sum(known.values())
    return known


def _where(workspace: Any) -> str | None:
    return str(workspace.config_file) if getattr(workspace, "config_file", None) else None
