"""What a run cost: device hours, energy and money, from the workspace's ``[costs]`` prices.

    [costs]
    currency = "EUR"
    kwh = 0.25               # per kilowatt-hour of measured energy (optional)
    cpu_core = 0.04          # per CPU core-hour (runs without a GPU)
    [costs.device_hour]      # per GPU-hour, matched in the GPU's name (longest key first)
    "H100" = 2.9
    "A100" = 1.6

A run's cost is its device hours (GPU count x duration, each GPU priced by name; CPU cores x
duration on a machine without GPUs) plus its energy at ``kwh``. The prices used are recorded
with it, so a later change of prices does not rewrite history. A price that is missing for
what the run used makes the cost unknown (said why), never 0; a negative or non-numeric price
is a :class:`~registry.errors.ConfigError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from registry.errors import ConfigError

__all__ = ["Cost", "Prices", "cost_of", "prices_from"]

_KEYS = {"currency", "kwh", "cpu_core", "device_hour"}


@dataclass(frozen=True)
class Prices:
    """The ``[costs]`` table, checked."""

    currency: str = ""
    device_hour: Mapping[str, float] = field(default_factory=dict)
    cpu_core: float | None = None
    kwh: float | None = None

    @property
    def empty(self) -> bool:
        return not self.device_hour and self.cpu_core is None and self.kwh is None


@dataclass(frozen=True)
class Cost:
    """One run's cost. ``total`` is None when a price it needs is missing (``unknown``
    says which); ``prices`` are those used, as recorded."""

    currency: str
    gpu_hours: float
    cpu_core_hours: float
    energy_kwh: float | None
    device_cost: float | None
    energy_cost: float | None
    total: float | None
    unknown: str | None
    prices: dict[str, Any]


def prices_from(table: Mapping[str, Any], where: str | None = None) -> Prices:
    """Check the ``[costs]`` table: known keys, non-negative numbers."""
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(f"unknown setting costs.{unknown[0]!r}; known: "
                          f"{', '.join(sorted(_KEYS))}", where)
    devices = table.get("device_hour", {})
    if not isinstance(devices, Mapping):
        raise ConfigError("costs.device_hour must be a table of device name = price", where)
    return Prices(
        currency=str(table.get("currency", "")),
        device_hour={str(k): _price(v, f"costs.device_hour.{k!r}", where)
                     for k, v in devices.items()},
        cpu_core=_optional(table, "cpu_core", where), kwh=_optional(table, "kwh", where))


def cost_of(hardware: Mapping[str, Any], seconds: float, energy_kwh: float | None,
            prices: Prices, *, nodes: int = 1) -> Cost:
    """The cost of ``seconds`` on ``nodes`` machines like ``hardware`` (a run's captured
    hardware) that used ``energy_kwh`` (None: not measured)."""
    hours = max(seconds, 0.0) / 3600
    gpus = [str(g.get("name") or "") for g in hardware.get("gpus") or []] * nodes
    cores = int((hardware.get("cpu") or {}).get("available_cores") or 0) if not gpus else 0
    cores *= nodes
    reasons: list[str] = []
    device_cost = _device_cost(gpus, cores, hours, prices, reasons)
    energy_cost = (energy_kwh * prices.kwh
                   if energy_kwh is not None and prices.kwh is not None else None)
    total = None if reasons or device_cost is None else device_cost + (energy_cost or 0.0)
    if prices.empty:
        reasons = ["no [costs] prices in the workspace configuration"]
    return Cost(currency=prices.currency, gpu_hours=len(gpus) * hours,
                cpu_core_hours=cores * hours, energy_kwh=energy_kwh,
                device_cost=device_cost, energy_cost=energy_cost, total=total,
                unknown="; ".join(reasons) or None, prices=_used(gpus, prices))


def _device_cost(gpus: list[str], cores: int, hours: float, prices: Prices,
                 reasons: list[str]) -> float | None:
    if not gpus:
        if prices.cpu_core is None:
            reasons.append("no costs.cpu_core price for a run without GPUs")
            return None
        return cores * hours * prices.cpu_core
    total = 0.0
    for name in gpus:
        price = _match(name, prices.device_hour)
        if price is None:
            reasons.append(f"no costs.device_hour price matches GPU {name!r}")
            return None
        total += price * hours
    return total


def _match(name: str, table: Mapping[str, float]) -> float | None:
    lowered = name.lower()
    for key in sorted(table, key=len, reverse=True):
        if key.lower() in lowered:
            return table[key]
    return None


def _used(gpus: list[str], prices: Prices) -> dict[str, Any]:
    used: dict[str, Any] = {"currency": prices.currency, "kwh": prices.kwh}
    if gpus:
        used["device_hour"] = {n: _match(n, prices.device_hour) for n in sorted(set(gpus))}
    else:
        used["cpu_core"] = prices.cpu_core
    return used


def _optional(table: Mapping[str, Any], key: str, where: str | None) -> float | None:
    return None if table.get(key) is None else _price(table[key], f"costs.{key}", where)


def _price(value: Any, name: str, where: str | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number, not {value!r}", where)
    if value < 0:
        raise ConfigError(f"{name} must not be negative ({value})", where)
    return float(value)
