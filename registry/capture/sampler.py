"""System metrics over a run: a thread samples the host and its GPUs every interval.

Metrics (``system/`` then the name; ``system/node<N>/`` then the name on several nodes):

=============================================  ==================================================
``cpu/util``                                    % of the host's logical CPUs busy since the
                                                previous sample
``mem/process_rss_mb``                          resident memory of this process (not of its
                                                children, such as data loader workers)
``mem/used_mb``                                 host memory in use: total minus available
``disk/read_mbps``, ``disk/write_mbps``         host disks, since the previous sample
``net/sent_mbps``, ``net/recv_mbps``            host network interfaces, loopback left out
``gpu<N>/util``                                 % of NVML's last period in which a kernel ran
``gpu<N>/mem_used_mb``, ``gpu<N>/power_w``      device memory used; board power draw
``gpu<N>/temp_c``, ``gpu<N>/sm_clock_mhz``      core temperature (°C); SM clock (MHz)
=============================================  ==================================================

Units: ``_mb`` is MiB (2**20 bytes) and ``_mbps`` MiB per second (bytes, not bits), ``_w``
watts. The step of each metric is the sample's number. Sample 0 is taken as the sampler starts
(in its own thread, never the caller's); it has no CPU use and no rates, there being nothing
to compare with. Then one sample each interval, and a last one at stop, recorded unless the
previous one is under half an interval (or 0.5 s) old; its readings still count for energy.

GPUs are those ``CUDA_VISIBLE_DEVICES`` names (NVML indices, which follow the PCI bus, or
UUIDs), else every GPU NVML sees; ``gpu<N>`` is the N-th of them, the process's ``cuda:N``.

Who samples (:func:`placement`): one process per node, the one with ``LOCAL_RANK`` 0 or
without ``LOCAL_RANK``, as torchrun sets it. Names carry the node when the job spans several:
``WORLD_SIZE`` > ``LOCAL_WORLD_SIZE``, or a node number above 0; the node number is
``GROUP_RANK`` (torchrun), else ``NODE_RANK``, else ``RANK // LOCAL_WORLD_SIZE``.

Nothing here raises into the caller: a source that fails (the host's counters, NVML for one
GPU, RAPL) is dropped with one warning and the others go on; a machine without NVIDIA GPUs,
RAPL or disk counters is normal and warns about nothing. At stop, an
:class:`~registry.capture.energy.EnergyReport` tells the energy used and how busy each GPU was.
A run uses it so::

    sampler = start_sampler(run.log_metrics, workspace.system_interval, warn=run_warn)
    ...                                     # None: sampling off, or another process samples
    report = sampler.stop() if sampler is not None else None
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from registry.capture.energy import (
    MIB,
    RAPL_ROOT,
    EnergyReport,
    GpuSource,
    Rapl,
    gpu_energy,
    open_gpus,
)

__all__ = ["Placement", "SystemSampler", "placement", "start_sampler"]

log = logging.getLogger("registry")
STOP_TIMEOUT_S = 5.0  # longest stop() waits for a last sample (NVML can hang on a bad GPU)

Emit = Callable[[dict[str, float], int], None]


@dataclass(frozen=True)
class Placement:
    """Whether this process samples its host, and the node its metric names carry."""

    sample: bool
    node: int | None = None  # None: a single node, names carry none

    @property
    def prefix(self) -> str:
        return "system/" if self.node is None else f"system/node{self.node}/"


def placement(env: Mapping[str, str] | None = None) -> Placement:
    """Where this process stands under torchrun (see the module doc); ``os.environ`` by
    default. A variable that is not a number counts as absent."""
    env = os.environ if env is None else env
    local_rank, rank = _int(env, "LOCAL_RANK"), _int(env, "RANK")
    world, local_world = _int(env, "WORLD_SIZE"), _int(env, "LOCAL_WORLD_SIZE")
    node = _int(env, "GROUP_RANK")
    node = _int(env, "NODE_RANK") if node is None else node
    if node is None and rank is not None and local_world:
        node = rank // local_world
    several = bool(node) or (world is not None and local_world is not None
                             and world > local_world)
    return Placement(sample=local_rank in (None, 0), node=node if several else None)


def _int(env: Mapping[str, str], name: str) -> int | None:
    try:
        return int(env[name])
    except (KeyError, ValueError):
        return None


def start_sampler(emit: Emit, interval: float, *, warn: Callable[[str], None] | None = None,
                  env: Mapping[str, str] | None = None,
                  name: str = "cairn-sampler") -> SystemSampler | None:
    """A started sampler for this process, or None: ``interval`` 0 (sampling off), or another
    process on this node samples it. Never raises."""
    try:
        where = placement(env)
        if not interval > 0 or not where.sample:
            return None
        sampler = SystemSampler(emit, interval, node=where.node, warn=warn, env=env, name=name)
        sampler.start()
        return sampler
    except Exception as exc:  # best effort: sampling must never stop a run from starting
        _call(warn, f"system metrics not recorded: {exc!r}")
        return None


class SystemSampler:
    """Samples the host and its GPUs every ``interval`` seconds from a daemon thread.

    ``emit(metrics, step)`` is called from that thread. ``nvml`` is a pynvml-like module
    (default: ``pynvml``, imported when sampling starts); ``clock`` times rates and energy;
    ``env`` chooses GPUs (``CUDA_VISIBLE_DEVICES``). ``warn`` receives each warning as it
    happens, from either thread; ``warnings`` keeps them all.
    """

    def __init__(self, emit: Emit, interval: float, *, node: int | None = None,
                 nvml: Any = None, rapl_root: Path = RAPL_ROOT,
                 clock: Callable[[], float] = time.monotonic,
                 env: Mapping[str, str] | None = None,
                 warn: Callable[[str], None] | None = None, name: str = "cairn-sampler") -> None:
        if not interval > 0:
            raise ValueError(f"the sampling interval must be positive, not {interval!r}")
        self.interval, self.node = float(interval), node
        self.warnings: list[str] = []
        self.samples = 0  # samples emitted; the next one's step
        self.last_sample_s = 0.0  # seconds the latest sample took to read (emit not counted)
        self.busy_s = 0.0  # seconds spent reading samples, in all
        self._emit, self._warn_to, self._clock = emit, warn, clock
        self._nvml_given, self._rapl_root = nvml, rapl_root
        self._env = os.environ if env is None else env
        self._prefix = Placement(True, node).prefix
        self._sources: list[_Source] = []
        self._gpus: list[GpuSource] = []
        self._gpu_why = "nothing sampled"
        self._rapl: Rapl | None = None
        self._proc: _Proc | None = None  # the /proc files held open, closed by the thread
        self._nvml: Any = None  # the NVML this sampler started, to shut down
        self._first: float | None = None
        self._last: float | None = None
        self._emit_failed = self._abandoned = False
        self._report: EnergyReport | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread; it takes sample 0 at once. A second call does nothing."""
        with self._lock:
            if not self._thread.is_alive() and not self._stopping.is_set():
                self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> EnergyReport:
        """Take the last sample, stop the thread and report; the same report if called again.
        Waits at most ``timeout`` for a source that hangs."""
        with self._lock:
            if self._report is None:
                self._stopping.set()
                if self._thread.is_alive():
                    self._thread.join(timeout)
                if self._thread.is_alive():
                    self._abandoned = True
                    self._warn(f"the system sampler did not stop within {timeout:g} s (a GPU "
                               "that hangs?); its last sample is missing")
                self._report = self._build_report()
            return self._report

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._open()
            self._sample()
            due = time.monotonic() + self.interval
            while not self._stopping.wait(max(0.0, due - time.monotonic())):
                self._sample()  # late (a busy machine)? the next one still half an interval on
                due = max(due + self.interval, time.monotonic() + self.interval / 2)
            self._sample(final=True)
        except Exception as exc:  # a bug here must not reach the training thread
            self._warn(f"system sampling stopped: {exc!r}")
        finally:
            if self._proc is not None:
                self._proc.close()
            if self._nvml is not None:
                with contextlib.suppress(Exception):
                    self._nvml.nvmlShutdown()

    def _open(self) -> None:
        try:
            if _on_proc():
                self._proc = _Proc()
                self._sources += self._proc.sources()
            else:
                self._sources += _psutil_sources()
        except Exception as exc:
            self._warn(f"host metrics not recorded: {_text_of(exc)}")
        try:
            self._gpus, self._gpu_why, self._nvml = open_gpus(self._nvml_given, self._env,
                                                              self.node, self._warn)
        except Exception as exc:
            self._gpu_why = f"NVML failed ({_text_of(exc)})"
            self._warn(f"GPU metrics not recorded: {self._gpu_why}")
        self._sources += self._gpus
        self._rapl = Rapl(self._rapl_root)
        if self._rapl.available:
            self._sources.append(self._rapl)

    def _sample(self, final: bool = False) -> None:
        began = time.perf_counter()
        now = self._clock()
        metrics, failed = {}, {}
        for source in list(self._sources):
            try:
                for key, value in source.read(now).items():
                    metrics[self._prefix + key] = value
            except Exception as exc:
                self._sources.remove(source)
                failed.setdefault(_text_of(exc), []).append(source)
        self._drop(failed, now)
        recent = self._last is not None and now - self._last < min(self.interval / 2, 0.5)
        self._first = now if self._first is None else self._first
        self._last = now
        self.last_sample_s = time.perf_counter() - began
        self.busy_s += self.last_sample_s
        if metrics and not (final and recent) and not self._abandoned:
            self._send(metrics)

    def _drop(self, failed: dict[str, list[_Source]], now: float) -> None:
        """One warning per error for the sources it stopped."""
        after = now - (self._first if self._first is not None else now)
        for error, sources in failed.items():
            for source in sources:
                source.lose(f"stopped answering after {after:.0f} s ({error})")
            names = ", ".join(s.what for s in sources)
            self._warn(f"{names} no longer recorded after {after:.0f} s of sampling: {error}")

    def _send(self, metrics: dict[str, float]) -> None:
        try:
            self._emit(metrics, self.samples)
        except Exception as exc:  # the run refused them: say so once, keep measuring energy
            if not self._emit_failed:
                self._emit_failed = True
                self._warn(f"could not record system metrics: {exc!r}")
        self.samples += 1

    def _build_report(self) -> EnergyReport:
        uses = tuple(gpu.meter.use() for gpu in self._gpus)
        gpu_kwh, gpu_method = gpu_energy(uses, self._gpu_why)
        if self._rapl is None:
            cpu_kwh, cpu_method = None, "unavailable: nothing sampled"
        else:
            cpu_kwh, cpu_method = self._rapl.result()
        seconds = (self._last - self._first) if self._first is not None else 0.0
        return EnergyReport(gpu_kwh, gpu_method, cpu_kwh, cpu_method, uses, self.samples,
                            float(seconds or 0.0), tuple(self.warnings))

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        if self._warn_to is None:
            log.warning("cairn: %s", message)
        _call(self._warn_to, message)


def _call(warn: Callable[[str], None] | None, message: str) -> None:
    if warn is not None:
        with contextlib.suppress(Exception):  # a warning must never crash anything
            warn(message)


def _text_of(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


# -- sources: each reads its metrics (names without the prefix); one that raises is dropped --


class _Source(Protocol):
    """What the sampler reads: host metrics here, GPUs and RAPL in ``energy``."""

    what: str

    def read(self, now: float) -> dict[str, float]: ...

    def lose(self, why: str) -> None:
        """Called once, as the source is dropped."""


class _Host:
    what = "the host"

    def lose(self, why: str) -> None:
        pass


class _Cpu(_Host):
    what = "CPU utilisation"

    def __init__(self, times: Callable[[], tuple[float, float]]) -> None:
        self._times = times  # (busy, total) time of all CPUs, in any unit
        self._last: tuple[float, float] | None = None

    def read(self, now: float) -> dict[str, float]:
        busy, total = self._times()
        last, self._last = self._last, (busy, total)
        if last is None or total <= last[1]:
            return {}
        share = 100.0 * (busy - last[0]) / (total - last[1])
        return {"cpu/util": round(min(100.0, max(0.0, share)), 2)}


class _Memory(_Host):
    what = "memory use"

    def __init__(self, sizes: Callable[[], tuple[int, int]]) -> None:
        self._sizes = sizes  # (this process's RSS, host memory in use), bytes

    def read(self, now: float) -> dict[str, float]:
        rss, used = self._sizes()
        return {"mem/process_rss_mb": rss / MIB, "mem/used_mb": used / MIB}


class _Rates(_Host):
    """MiB per second of growing byte counters, since the previous sample."""

    def __init__(self, what: str, names: tuple[str, str],
                 counters: Callable[[], tuple[int, int]]) -> None:
        self.what, self._names, self._counters = what, names, counters
        self._last: tuple[float, tuple[int, int]] | None = None

    def read(self, now: float) -> dict[str, float]:
        values = self._counters()
        last, self._last = self._last, (now, values)
        if last is None or now <= last[0]:
            return {}
        seconds = now - last[0]
        return {name: max(0, value - before) / seconds / MIB
                for name, value, before in zip(self._names, values, last[1], strict=True)}


_DISK = ("disk/read_mbps", "disk/write_mbps")
_NET = ("net/sent_mbps", "net/recv_mbps")


def _on_proc() -> bool:
    return Path("/proc/stat").is_file() and Path("/proc/self/statm").is_file()


class _Proc:
    """The host's counters from /proc (Linux): tens of µs a sample where psutil's objects take
    several hundred. The files stay open and are read again from their start, which costs a
    third of opening them at every sample; ``close`` closes them."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}
        try:
            for name in ("stat", "self/statm", "meminfo", "net/dev"):
                self._fds[name] = os.open(f"/proc/{name}", os.O_RDONLY)
            with contextlib.suppress(OSError):  # some containers have no disk counters
                self._fds["diskstats"] = os.open("/proc/diskstats", os.O_RDONLY)
            self._page = os.sysconf("SC_PAGE_SIZE")
            self._disks = _physical_disks() if "diskstats" in self._fds else None
        except Exception:
            self.close()
            raise

    def sources(self) -> list[_Host]:
        sources = [_Cpu(self.cpu), _Memory(self.memory), _Rates("network I/O", _NET, self.net)]
        if self._disks is not None:  # None: no /sys/block to tell disks from partitions
            sources.append(_Rates("disk I/O", _DISK, self.disk))
        return sources

    def close(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = {}

    def _read(self, name: str, head: bool = False) -> bytes:
        """The file's text, or with ``head`` its first 4 KiB (the lines at its top)."""
        fd = self._fds[name]
        if head:
            return os.pread(fd, 4096, 0)
        chunks, offset = [], 0
        while chunk := os.pread(fd, 65536, offset):
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def cpu(self) -> tuple[int, int]:
        # user nice system idle iowait irq softirq steal (guest time is inside user and nice)
        ticks = [int(v) for v in self._read("stat", head=True).split(b"\n", 1)[0].split()[1:9]]
        total = sum(ticks)
        return total - ticks[3] - ticks[4], total

    def memory(self) -> tuple[int, int]:
        rss = int(self._read("self/statm", head=True).split()[1]) * self._page
        found = {}
        for line in self._read("meminfo", head=True).splitlines():
            key, _, rest = line.partition(b":")
            if key in (b"MemTotal", b"MemAvailable"):
                found[key] = int(rest.split()[0]) * 1024
        return rss, found[b"MemTotal"] - found[b"MemAvailable"]

    def disk(self) -> tuple[int, int]:
        read = written = 0
        disks = self._disks or frozenset()
        for line in self._read("diskstats").splitlines():
            fields = line.split()
            if fields[2] in disks:  # sectors read, sectors written: always 512 bytes
                read, written = read + int(fields[5]), written + int(fields[9])
        return read * 512, written * 512

    def net(self) -> tuple[int, int]:
        sent = received = 0
        for line in self._read("net/dev").splitlines()[2:]:
            name, _, counts = line.partition(b":")
            if name.strip() != b"lo":
                fields = counts.split()
                sent, received = sent + int(fields[8]), received + int(fields[0])
        return sent, received


def _physical_disks() -> frozenset[bytes] | None:
    """Block devices not stacked on others (LVM, RAID), nor loop or RAM disks: each byte
    read from or written to a disk is counted once."""
    disks = set()
    try:
        for device in Path("/sys/block").iterdir():
            slaves = device / "slaves"
            if device.name.startswith(("loop", "ram", "zram")) or (
                    slaves.is_dir() and any(slaves.iterdir())):
                continue
            disks.add(device.name.replace("!", "/").encode())
    except OSError:
        return None
    return frozenset(disks)


def _psutil_sources() -> list[_Host]:
    """CPU, memory, disk and network through psutil, where there is no /proc."""
    import psutil

    process = psutil.Process()
    sources = [
        _Cpu(lambda: _psutil_cpu(psutil.cpu_times())),
        _Memory(lambda: (process.memory_info().rss, _psutil_used(psutil.virtual_memory()))),
    ]
    if psutil.disk_io_counters(nowrap=False) is not None:  # None: no disk counters here
        sources.append(_Rates("disk I/O", _DISK, lambda: _psutil_disks(psutil)))
    return [*sources, _Rates("network I/O", _NET, lambda: _psutil_net(psutil))]


def _psutil_cpu(times: Any) -> tuple[float, float]:
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    return total - times.idle - getattr(times, "iowait", 0.0), total


def _psutil_used(memory: Any) -> int:
    return memory.total - memory.available


def _psutil_disks(psutil: Any) -> tuple[int, int]:
    counters = psutil.disk_io_counters(nowrap=False)
    return counters.read_bytes, counters.write_bytes


def _psutil_net(psutil: Any) -> tuple[int, int]:
    nics = [c for name, c in psutil.net_io_counters(pernic=True, nowrap=False).items()
            if name not in ("lo", "lo0") and not name.lower().startswith("loopback")]
    return sum(c.bytes_sent for c in nics), sum(c.bytes_recv for c in nics)
