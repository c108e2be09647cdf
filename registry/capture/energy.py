"""GPUs through NVML and CPU packages through RAPL: what a system sampler reads from them, and
the report it gives at stop: the energy a run used, and how busy its GPUs were.

Each GPU is read through NVML at every sample (utilisation, memory used, power, temperature,
SM clock, and its energy counter where it has one); a reading NVML does not support on that GPU
is left out with a warning. The report keeps each GPU's median utilisation, from which
``EnergyReport.idle_warning`` tells a training run that left its GPUs waiting.

Each of ``gpu_kwh`` and ``cpu_kwh`` says how it was measured (``gpu_method``, ``cpu_method``):

- ``"counter"``: a hardware energy counter, read at every sample; the run's energy is its rise.
  GPUs: NVML's total energy (``nvmlDeviceGetTotalEnergyConsumption``, mJ since the driver
  loaded; Volta and later). CPUs: RAPL's package counters (``intel-rapl:N/energy_uj``, µJ,
  wrapping at ``max_energy_range_uj``; AMD Zen exposes the same interface under that name).
- ``"integrated"``: GPU power (``nvmlDeviceGetPowerUsage``) integrated over the samples by the
  trapezoid rule, for GPUs without the counter; as close as the sampling interval is short.
- ``"unavailable: <why>"``: nothing measured; the kWh is then None, never 0. A measurement
  that stops answering mid-run is unavailable too: a part of a run's energy is not its energy.

Only RAPL's package domains (``intel-rapl:0``, ``intel-rapl:1``, ...) are counted: their
sub-zones (core, uncore, dram) are parts of them and ``psys`` contains them. Both counters
measure the whole device or host, not only this process. A RAPL counter that wraps twice
between two samples (at 250 W, a package range of 262 kJ lasts about 17 minutes) loses a range.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RAPL_ROOT", "EnergyReport", "GpuMeter", "GpuSource", "GpuUse", "Rapl", "gpu_energy",
           "open_gpus"]

RAPL_ROOT = Path("/sys/class/powercap")
J_PER_KWH = 3.6e6
IDLE_THRESHOLD = 50.0  # median GPU utilisation (%) below which a training run is warned
MIN_SAMPLES = 5  # fewer samples than this say too little about a run to warn on
_PACKAGE_ZONE = re.compile(r"intel-rapl:\d+")
MIB = float(2**20)
_NVML_ABSENT = (9, 12)  # NVML_ERROR_DRIVER_NOT_LOADED, NVML_ERROR_LIBRARY_NOT_FOUND
_NVML_NOT_SUPPORTED = 3


@dataclass(frozen=True)
class GpuUse:
    """One GPU over the run: how busy it was and what it used."""

    number: int  # as in the metric names: the process's CUDA ordinal (gpu0, gpu1, ...)
    node: int | None  # the node in multi-node names (system/node1/gpu0/...), None on one node
    util_median: float | None  # median utilisation (%) over the samples, None if unread
    util_samples: int
    kwh: float | None
    method: str

    @property
    def label(self) -> str:
        return f"GPU {self.number}" + (f" of node {self.node}" if self.node is not None else "")


@dataclass(frozen=True)
class EnergyReport:
    """What a system sampler measured over a run; see the module doc for the methods."""

    gpu_kwh: float | None
    gpu_method: str
    cpu_kwh: float | None
    cpu_method: str
    gpus: tuple[GpuUse, ...] = ()
    samples: int = 0
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()  # the sampler's warnings, as it gave them

    @property
    def gpu_util_median(self) -> dict[str, float]:
        """Median utilisation (%) per GPU, keyed as in the metric names (``gpu0``)."""
        return {_key(g): g.util_median for g in self.gpus if g.util_median is not None}

    def idle_warning(self, logged_steps: bool, threshold: float = IDLE_THRESHOLD) -> str | None:
        """A warning when a training run (one that logged steps) left its GPUs waiting: the
        median utilisation of a GPU under ``threshold`` (%) over at least 5 samples."""
        if not logged_steps:
            return None
        known = [g for g in self.gpus
                 if g.util_median is not None and g.util_samples >= MIN_SAMPLES]
        unused = [g for g in known if g.util_median < 1.0]
        slow = [g for g in known if 1.0 <= g.util_median < threshold]
        parts = []
        if slow:
            busy = ", ".join(f"{g.label} {g.util_median:.0f}%" for g in slow[1:])
            parts.append(f"{slow[0].label} was busy {slow[0].util_median:.0f}% of the time"
                         + (f", {busy}" if busy else "")
                         + ": the data loader may be the bottleneck")
        if unused:
            names = ", ".join(g.label for g in unused)
            parts.append(f"{names} {'was' if len(unused) == 1 else 'were'} idle: "
                         "does the run place its work there?")
        return "; ".join(parts) or None


def _key(gpu: GpuUse) -> str:
    return (f"node{gpu.node}/" if gpu.node is not None else "") + f"gpu{gpu.number}"


class GpuMeter:
    """One GPU's energy and utilisation over the samples, fed by the sampler."""

    def __init__(self, number: int, node: int | None) -> None:
        self.number, self.node = number, node
        self.joules = 0.0
        self.method: str | None = None  # "counter" or "integrated", fixed by the first reading
        self.lost: str | None = None  # why the GPU stopped being read mid-run
        self._last_mj: float | None = None
        self._last_power: tuple[float, float] | None = None  # (time, watts)
        self._util = [0] * 101  # a histogram of whole percents: an exact median in O(1) memory

    def add(self, now: float, util: float | None, power_w: float | None,
            energy_mj: float | None) -> None:
        if util is not None:
            self._util[min(100, max(0, round(util)))] += 1
        if self.method is None:
            self.method = ("counter" if energy_mj is not None
                           else "integrated" if power_w is not None else "none")
        if self.method == "counter" and energy_mj is not None:
            if self._last_mj is not None:
                self.joules += max(0.0, energy_mj - self._last_mj) / 1000
            self._last_mj = energy_mj
        elif self.method == "integrated" and power_w is not None:
            if self._last_power is not None:
                then, watts = self._last_power
                self.joules += (watts + power_w) / 2 * max(0.0, now - then)
            self._last_power = (now, power_w)

    def use(self) -> GpuUse:
        samples = sum(self._util)
        if self.lost:
            kwh, method = None, f"unavailable: {self.lost}"
        elif self.method in ("counter", "integrated"):
            kwh, method = self.joules / J_PER_KWH, self.method
        else:
            kwh, method = None, "unavailable: NVML reports neither its energy nor its power"
        return GpuUse(self.number, self.node, _median(self._util, samples), samples, kwh, method)


def _median(histogram: list[int], n: int) -> float | None:
    if not n:
        return None
    low, high, seen = None, None, 0
    for value, count in enumerate(histogram):
        seen += count
        if low is None and seen >= (n + 1) // 2:
            low = value
        if seen >= n // 2 + 1:
            high = value
            break
    return (low + high) / 2 if low is not None and high is not None else None


def gpu_energy(uses: tuple[GpuUse, ...], none_why: str) -> tuple[float | None, str]:
    """The GPUs' total kWh and how it was measured (``none_why``: why there are no GPUs)."""
    if not uses:
        return None, f"unavailable: {none_why}"
    missing = [u for u in uses if u.kwh is None]
    if missing:
        return None, "; ".join(f"{u.label} {u.method}" for u in missing)
    methods = {u.method for u in uses}
    if len(methods) == 1:
        return sum(u.kwh or 0.0 for u in uses), methods.pop()
    return (sum(u.kwh or 0.0 for u in uses),
            ", ".join(f"{u.method} ({u.label})" for u in uses))


class Rapl:
    """The host's RAPL package counters. ``why`` says why they are unavailable (else None).
    A sampler source: ``read`` adds the energy since the last read and records no metric."""

    what = "CPU energy (RAPL)"

    def __init__(self, root: Path = RAPL_ROOT) -> None:
        self.joules = 0.0
        self.why: str | None = None
        self._zones: list[tuple[Path, int]] = []  # (energy_uj, max_energy_range_uj)
        self._last: list[int] = []
        try:
            zones = sorted(p for p in root.iterdir() if _PACKAGE_ZONE.fullmatch(p.name))
        except OSError:
            zones = []
        if not zones:
            self.why = f"no RAPL interface ({root}/intel-rapl:N absent)"
            return
        try:
            for zone in zones:
                if _is_package(zone):
                    limit = int(_read(zone / "max_energy_range_uj"))
                    self._zones.append((zone / "energy_uj", limit))
            self._last = [int(_read(path)) for path, _ in self._zones]
        except (OSError, ValueError) as exc:
            self._zones, self.why = [], f"RAPL present but not readable: {_reason(exc)}"
            return
        if not self._zones:
            self.why = f"RAPL has no package domain under {root}"

    @property
    def available(self) -> bool:
        return self.why is None

    def read(self, now: float = 0.0) -> dict[str, float]:
        """Add the energy since the last read; raises OSError or ValueError if one fails."""
        counts = [int(_read(path)) for path, _ in self._zones]
        for (_, limit), before, after in zip(self._zones, self._last, counts, strict=True):
            self.joules += ((after - before) if after >= before else after + limit - before) / 1e6
        self._last = counts
        return {}

    def lose(self, why: str) -> None:
        self._zones, self.why = [], f"RAPL {why}"

    def result(self) -> tuple[float | None, str]:
        """(kWh, method) for the report."""
        if self.why is not None:
            return None, f"unavailable: {self.why}"
        return self.joules / J_PER_KWH, "counter"


def _is_package(zone: Path) -> bool:
    try:
        return _read(zone / "name").startswith("package")
    except FileNotFoundError:  # no name to tell: a top-level zone is a package
        return True


def _read(path: Path) -> str:
    return path.read_text().strip()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, PermissionError):
        return (f"permission denied on {exc.filename} (energy_uj is readable by root only "
                "since Linux 5.10)")
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} on {exc.filename}"
    return str(exc)


def open_gpus(nvml: Any, env: Mapping[str, str], node: int | None,
              warn: Callable[[str], None]) -> tuple[list[GpuSource], str, Any]:
    """The GPUs to sample: (sources, why there are none, the NVML to shut down or None).
    ``nvml`` None imports pynvml. No NVIDIA driver is normal and warns about nothing."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return [], "no NVML (nvidia-ml-py is not installed)", None
    try:
        nvml.nvmlInit()
    except Exception as exc:
        if getattr(exc, "value", None) in _NVML_ABSENT:
            return [], "no NVIDIA driver", None
        warn(f"GPU metrics not recorded: NVML could not start ({exc})")
        return [], f"NVML could not start ({exc})", None
    try:
        count = int(nvml.nvmlDeviceGetCount())
        names = env.get("CUDA_VISIBLE_DEVICES")
        gpus = [GpuSource(nvml, nvml.nvmlDeviceGetHandleByIndex(index), GpuMeter(number, node),
                          warn) for number, index in enumerate(_visible(nvml, count, names))]
    except Exception:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()
        raise
    why = "no GPU" if not count else f"CUDA_VISIBLE_DEVICES={names!r} names none of the GPUs"
    return gpus, why, nvml


_GPU_FIELDS: tuple[tuple[str, Callable[[Any, Any], float]], ...] = (
    ("util", lambda nv, h: nv.nvmlDeviceGetUtilizationRates(h).gpu),
    ("mem_used_mb", lambda nv, h: nv.nvmlDeviceGetMemoryInfo(h).used / MIB),
    ("power_w", lambda nv, h: nv.nvmlDeviceGetPowerUsage(h) / 1000),  # NVML gives mW
    ("temp_c", lambda nv, h: nv.nvmlDeviceGetTemperature(
        h, getattr(nv, "NVML_TEMPERATURE_GPU", 0))),
    ("sm_clock_mhz", lambda nv, h: nv.nvmlDeviceGetClockInfo(h, getattr(nv, "NVML_CLOCK_SM", 1))),
)


class GpuSource:
    """One GPU through NVML, a sampler source. A reading NVML does not support is left out
    (with a warning, except the energy counter: its GPU's energy is then integrated)."""

    def __init__(self, nvml: Any, handle: Any, meter: GpuMeter,
                 warn: Callable[[str], None]) -> None:
        self.what = f"GPU {meter.number}"
        self.meter, self._nvml, self._handle, self._warn = meter, nvml, handle, warn
        self._fields = list(_GPU_FIELDS)
        self._counter: bool | None = None  # has an energy counter; None: not asked yet

    def read(self, now: float) -> dict[str, float]:
        values: dict[str, float] = {}
        for field in list(self._fields):
            try:
                values[field[0]] = float(field[1](self._nvml, self._handle))
            except Exception as exc:
                if not _not_supported(self._nvml, exc):
                    raise
                self._fields.remove(field)
                self._warn(f"{self.what}: NVML does not report {field[0]}; left out")
        energy = None
        if self._counter is not False:
            try:
                energy = float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
                self._counter = True
            except Exception as exc:
                if self._counter or not _not_supported(self._nvml, exc):
                    raise
                self._counter = False
        self.meter.add(now, values.get("util"), values.get("power_w"), energy)
        return {f"gpu{self.meter.number}/{key}": value for key, value in values.items()}

    def lose(self, why: str) -> None:
        self.meter.lost = why


def _not_supported(nvml: Any, exc: BaseException) -> bool:
    kind = getattr(nvml, "NVMLError_NotSupported", None)
    if isinstance(kind, type) and isinstance(exc, kind):
        return True
    code = getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", _NVML_NOT_SUPPORTED)
    return getattr(exc, "value", None) == code


def _visible(nvml: Any, count: int, names: str | None) -> list[int]:
    """NVML indices of the GPUs ``CUDA_VISIBLE_DEVICES`` names, in its order; as CUDA does,
    the list ends at its first entry that names no GPU (so "" and "-1" hide them all)."""
    if names is None:
        return list(range(count))
    chosen: list[int] = []
    uuids: list[str] | None = None
    for entry in (e.strip() for e in names.split(",")):
        if entry.lstrip("-").isdigit():
            index = int(entry)
        elif entry.startswith("GPU-"):  # a UUID, or a prefix of one that only it has
            if uuids is None:
                uuids = [_decoded(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i)))
                         for i in range(count)]
            found = [i for i, uuid in enumerate(uuids) if uuid.startswith(entry)]
            index = found[0] if len(found) == 1 else -1
        else:  # empty, or a MIG device, whose use NVML does not report
            break
        if not 0 <= index < count or index in chosen:
            break
        chosen.append(index)
    return chosen


def _decoded(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
