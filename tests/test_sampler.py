"""System metrics over a run: the host through /proc and psutil, GPUs through a stand-in NVML,
CPU energy through a RAPL tree in tmp_path, the torchrun rule, the idle-GPU warning."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from registry.capture import sampler as sampler_module
from registry.capture.energy import EnergyReport, GpuMeter, GpuUse, Rapl
from registry.capture.sampler import Placement, SystemSampler, placement, start_sampler

MIB = 2**20
NO_DRIVER = 12  # NVML_ERROR_LIBRARY_NOT_FOUND


# -- a stand-in for pynvml ------------------------------------------------------------------


class NVMLError(Exception):
    MESSAGES = {3: "Not Supported", 12: "NVML Shared Library Not Found", 15: "GPU is lost",
                999: "Unknown Error"}

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return self.MESSAGES.get(self.value, f"NVML error {self.value}")


class NVMLError_NotSupported(NVMLError):  # pynvml names it so
    def __init__(self) -> None:
        super().__init__(3)


class FakeGpu:
    """One GPU: fixed readings; an energy counter that rises ``joules_per_read`` per read
    (None: no counter); ``fail_after`` reads of utilisation, then the GPU is lost."""

    def __init__(self, *, util=87, used=3 * 2**30, power_mw=250_000, temp=61, sm_mhz=1410,
                 joules_per_read=None, uuid="GPU-0000", fail_after=None, unsupported=()):
        self.util, self.used, self.power_mw, self.temp, self.sm_mhz = (
            util, used, power_mw, temp, sm_mhz)
        self.joules_per_read, self.uuid, self.fail_after = joules_per_read, uuid, fail_after
        self.unsupported = set(unsupported)
        self.reads = 0
        self.energy_mj = 5_000_000
        self.gate: threading.Event | None = None  # set: a read waits on it (a hung GPU)

    def check(self, what: str) -> None:
        if what in self.unsupported:
            raise NVMLError_NotSupported()


class FakeNvml:
    """pynvml's module surface, as far as the sampler uses it."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1

    def __init__(self, *gpus: FakeGpu, init_error: int | None = None) -> None:
        self.gpus, self.init_error = list(gpus), init_error
        self.inits = self.shutdowns = 0

    def nvmlInit(self):
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        return self.gpus[index]

    def nvmlDeviceGetUUID(self, gpu):
        return gpu.uuid

    def nvmlDeviceGetUtilizationRates(self, gpu):
        if gpu.gate is not None:
            gpu.gate.wait()
        gpu.reads += 1
        if gpu.fail_after is not None and gpu.reads > gpu.fail_after:
            raise NVMLError(15)
        return SimpleNamespace(gpu=gpu.util, memory=10)

    def nvmlDeviceGetMemoryInfo(self, gpu):
        return SimpleNamespace(total=80 * 2**30, used=gpu.used, free=80 * 2**30 - gpu.used)

    def nvmlDeviceGetPowerUsage(self, gpu):
        gpu.check("power")
        return gpu.power_mw

    def nvmlDeviceGetTemperature(self, gpu, sensor):
        assert sensor == self.NVML_TEMPERATURE_GPU
        gpu.check("temp")
        return gpu.temp

    def nvmlDeviceGetClockInfo(self, gpu, clock):
        assert clock == self.NVML_CLOCK_SM
        return gpu.sm_mhz

    def nvmlDeviceGetTotalEnergyConsumption(self, gpu):
        if gpu.joules_per_read is None:
            raise NVMLError_NotSupported()
        gpu.energy_mj += gpu.joules_per_read * 1000
        return gpu.energy_mj


# -- helpers --------------------------------------------------------------------------------


class Recorder:
    """An emit callback: keeps (step, metrics, thread name); ``after`` runs on each call."""

    def __init__(self, after=None) -> None:
        self.samples: list[tuple[int, dict[str, float], str]] = []
        self.after = after
        self.enough = threading.Event()
        self.want = 0

    def __call__(self, metrics: dict[str, float], step: int) -> None:
        self.samples.append((step, dict(metrics), threading.current_thread().name))
        if self.after is not None:
            self.after(len(self.samples))
        if len(self.samples) >= self.want:
            self.enough.set()

    def names(self) -> set[str]:
        return {k for _, metrics, _ in self.samples for k in metrics}


def sample(recorder: Recorder, n: int = 4, interval: float = 0.02, **kwargs) -> tuple[
        SystemSampler, EnergyReport]:
    """A sampler run until it has emitted ``n`` samples, then stopped."""
    kwargs.setdefault("rapl_root", Path("/nonexistent-powercap"))
    kwargs.setdefault("env", {})
    kwargs.setdefault("nvml", FakeNvml(init_error=NO_DRIVER))
    recorder.want = n
    sampler = SystemSampler(recorder, interval, **kwargs)
    sampler.start()
    assert recorder.enough.wait(10), "the sampler emitted too few samples"
    return sampler, sampler.stop()


def ticking(step: float = 10.0):
    """A clock that moves ``step`` seconds per reading: energy and rates become exact."""
    return itertools.count(0.0, step).__next__


def rapl_zone(root: Path, name: str, label: str | None, energy_uj: int,
              max_uj: int = 262_143_328_850) -> Path:
    zone = root / name
    zone.mkdir(parents=True)
    if label is not None:
        (zone / "name").write_text(label + "\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return zone


# -- the host -------------------------------------------------------------------------------


def open_files() -> int:
    return len(list(Path("/proc/self/fd").iterdir())) if Path("/proc/self/fd").is_dir() else 0


def test_the_host_is_sampled_in_a_thread_of_its_own_with_sane_values():
    recorder, files = Recorder(), open_files()
    sampler, report = sample(recorder, n=5, interval=0.05, nvml=None)  # pynvml, if any
    assert open_files() == files  # the /proc files it held are closed
    steps = [step for step, _, _ in recorder.samples]
    assert steps == list(range(len(steps))) and report.samples == len(steps) >= 5
    assert {thread for _, _, thread in recorder.samples} == {"cairn-sampler"}
    first, later = recorder.samples[0][1], [m for _, m, _ in recorder.samples[1:]]
    assert "system/cpu/util" not in first  # nothing to compare with yet
    assert "system/mem/process_rss_mb" in first
    total_mb = psutil.virtual_memory().total / MIB
    for metrics in later:
        assert 0.0 <= metrics["system/cpu/util"] <= 100.0
        assert 1.0 < metrics["system/mem/process_rss_mb"] < metrics["system/mem/used_mb"]
        assert metrics["system/mem/used_mb"] <= total_mb
        for key in ("net/sent_mbps", "net/recv_mbps"):
            assert 0.0 <= metrics[f"system/{key}"] < 100_000
    assert not sampler.warnings and 0 < sampler.busy_s < 1.0


def test_host_counters_from_proc_agree_with_psutil():
    if not sampler_module._on_proc():
        pytest.skip("no /proc here")
    proc = sampler_module._Proc()
    try:
        for _ in range(2):  # read again from the start of the files held open
            rss, used = proc.memory()
            memory = psutil.virtual_memory()
            assert rss == pytest.approx(psutil.Process().memory_info().rss, rel=0.05)
            assert used == pytest.approx(memory.total - memory.available, rel=0.05,
                                         abs=64 * MIB)
            assert proc.net() == pytest.approx(sampler_module._psutil_net(psutil), rel=0.01)
            busy, total = proc.cpu()
            assert 0 < busy < total
            read, written = proc.disk()
            assert read >= 0 and written >= 0
    finally:
        proc.close()


def test_disk_and_network_rates_in_mib_per_second():
    counts = iter([(0, 0), (10 * MIB, 30 * MIB), (10 * MIB, 30 * MIB)])
    rates = sampler_module._Rates("disk I/O", sampler_module._DISK, lambda: next(counts))
    assert rates.read(0.0) == {}
    assert rates.read(10.0) == {"disk/read_mbps": 1.0, "disk/write_mbps": 3.0}
    assert rates.read(20.0) == {"disk/read_mbps": 0.0, "disk/write_mbps": 0.0}


def test_without_proc_psutil_samples_the_host(monkeypatch):
    monkeypatch.setattr(sampler_module, "_on_proc", lambda: False)
    recorder = Recorder()
    sampler, _ = sample(recorder, n=3)
    assert {"system/cpu/util", "system/mem/used_mb", "system/net/recv_mbps"} <= recorder.names()
    assert not sampler.warnings


# -- GPUs -----------------------------------------------------------------------------------


def test_gpus_are_sampled_and_their_energy_counted_or_integrated():
    nvml = FakeNvml(FakeGpu(joules_per_read=1000.0, util=87),
                    FakeGpu(power_mw=250_000, util=42))  # the second has no energy counter
    recorder = Recorder()
    sampler, report = sample(recorder, n=4, nvml=nvml, clock=ticking(10.0))
    last = recorder.samples[-1][1]
    assert last["system/gpu0/util"] == 87 and last["system/gpu1/util"] == 42
    assert last["system/gpu0/mem_used_mb"] == 3 * 1024
    assert last["system/gpu0/power_w"] == 250.0
    assert last["system/gpu0/temp_c"] == 61 and last["system/gpu0/sm_clock_mhz"] == 1410
    reads = round(report.seconds / 10) + 1  # the clock moves 10 s per sample
    counted, integrated = 1000.0 * (reads - 1), 250.0 * report.seconds
    assert report.gpus[0].kwh == pytest.approx(counted / 3.6e6)
    assert report.gpus[1].kwh == pytest.approx(integrated / 3.6e6)
    assert report.gpu_kwh == pytest.approx((counted + integrated) / 3.6e6)
    assert report.gpu_method == "counter (GPU 0), integrated (GPU 1)"
    assert report.gpu_util_median == {"gpu0": 87.0, "gpu1": 42.0}
    assert nvml.inits == nvml.shutdowns == 1 and not sampler.warnings


def test_power_is_integrated_by_the_trapezoid_rule():
    meter = GpuMeter(0, None)
    for now, watts in [(0.0, 100.0), (10.0, 300.0), (30.0, 300.0)]:
        meter.add(now, 50, watts, None)
    use = meter.use()
    assert use.method == "integrated"
    assert use.kwh == pytest.approx((200.0 * 10 + 300.0 * 20) / 3.6e6)


@pytest.mark.parametrize(("utils", "median"), [([5, 31, 99], 31.0), ([10, 20, 90, 95], 55.0),
                                               ([0], 0.0), ([100, 100], 100.0)])
def test_the_median_utilisation_is_exact(utils, median):
    meter = GpuMeter(0, None)
    for util in utils:
        meter.add(0.0, util, None, None)
    assert meter.use().util_median == median and meter.use().util_samples == len(utils)


def test_a_gpu_lost_mid_run_is_dropped_with_one_warning_and_the_host_goes_on():
    nvml = FakeNvml(FakeGpu(joules_per_read=10.0, fail_after=2),
                    FakeGpu(joules_per_read=10.0, fail_after=2))
    recorder = Recorder()
    sampler, report = sample(recorder, n=5, nvml=nvml)
    gpu_steps = [s for s, m, _ in recorder.samples if "system/gpu0/util" in m]
    assert gpu_steps == [0, 1]
    assert all("system/mem/used_mb" in m for _, m, _ in recorder.samples)
    assert any("system/cpu/util" in m for s, m, _ in recorder.samples if s > 2)
    lost = [w for w in sampler.warnings if "GPU is lost" in w]
    assert len(lost) == 1 and lost[0].startswith("GPU 0, GPU 1 no longer recorded")
    assert report.gpu_kwh is None
    assert report.gpu_method.startswith("GPU 0 unavailable: stopped answering after ")
    assert report.gpu_method.endswith(" s (GPU is lost)")
    assert report.warnings == tuple(sampler.warnings)


def test_a_reading_nvml_does_not_support_is_left_out_with_a_warning():
    nvml = FakeNvml(FakeGpu(unsupported={"temp"}, joules_per_read=1.0))
    recorder = Recorder()
    sampler, report = sample(recorder, n=3, nvml=nvml)
    assert "system/gpu0/util" in recorder.names() and "system/gpu0/temp_c" not in recorder.names()
    assert sampler.warnings == ["GPU 0: NVML does not report temp_c; left out"]
    assert report.gpu_method == "counter"


def test_a_gpu_without_power_or_energy_counter_has_unknown_energy():
    nvml = FakeNvml(FakeGpu(unsupported={"power"}))
    _, report = sample(Recorder(), n=2, nvml=nvml)
    assert report.gpu_kwh is None
    assert report.gpu_method == ("GPU 0 unavailable: NVML reports neither its energy nor its "
                                 "power")


def test_no_nvidia_driver_is_normal_and_silent():
    sampler, report = sample(Recorder(), n=2, nvml=FakeNvml(init_error=NO_DRIVER))
    assert not sampler.warnings and report.gpus == ()
    assert report.gpu_kwh is None and report.gpu_method == "unavailable: no NVIDIA driver"


def test_nvml_that_cannot_start_warns_and_the_host_is_still_sampled():
    recorder = Recorder()
    sampler, report = sample(recorder, n=3, nvml=FakeNvml(init_error=999))
    assert sampler.warnings == ["GPU metrics not recorded: NVML could not start (Unknown Error)"]
    assert "system/cpu/util" in recorder.names()
    assert report.gpu_method == "unavailable: NVML could not start (Unknown Error)"


@pytest.mark.parametrize(("visible", "expected"), [
    ("2,0", [2, 0]),
    ("GPU-bbbb", [1]),
    ("1,7,0", [1]),  # CUDA stops at the first entry that names no GPU
    ("0,0", [0]),
    ("", []),
    ("-1", []),
    ("MIG-1234", []),
])
def test_cuda_visible_devices_chooses_the_gpus(visible, expected):
    gpus = [FakeGpu(util=10 * i, uuid=u) for i, u in enumerate(["GPU-aaaa", "GPU-bbbb", "GPU-cc"])]
    recorder = Recorder()
    _, report = sample(recorder, n=2, nvml=FakeNvml(*gpus),
                       env={"CUDA_VISIBLE_DEVICES": visible})
    utils = [recorder.samples[-1][1].get(f"system/gpu{n}/util") for n in range(len(expected))]
    assert utils == [10 * i for i in expected]
    assert f"system/gpu{len(expected)}/util" not in recorder.names()
    if not expected:
        assert report.gpu_method == (f"unavailable: CUDA_VISIBLE_DEVICES={visible!r} names "
                                     "none of the GPUs")


# -- RAPL -----------------------------------------------------------------------------------


def test_rapl_counts_package_domains_across_a_wraparound(tmp_path):
    zero = rapl_zone(tmp_path, "intel-rapl:0", "package-0", 999_000_000, max_uj=1_000_000_000)
    one = rapl_zone(tmp_path, "intel-rapl:1", "package-1", 5_000_000)
    rapl_zone(tmp_path, "intel-rapl:0:0", "core", 0)  # a sub-zone of package 0
    rapl_zone(tmp_path, "intel-rapl:2", "psys", 0)  # the platform: it contains the packages
    rapl_zone(tmp_path, "intel-rapl-mmio:0", "package-0", 0)
    rapl = Rapl(tmp_path)
    assert rapl.available
    (zero / "energy_uj").write_text("500000000\n")  # wrapped: +1 J to the top, +500 J after
    (one / "energy_uj").write_text("7000000\n")  # +2 J
    (tmp_path / "intel-rapl:2" / "energy_uj").write_text("9999999999\n")  # never counted
    rapl.read()
    assert rapl.result() == (pytest.approx(503.0 / 3.6e6), "counter")


def test_rapl_energy_over_a_run(tmp_path):
    zone = rapl_zone(tmp_path, "intel-rapl:0", "package-0", 0)

    def advance(_: int) -> None:  # 50 W for the 10 s each sample lasts
        now = int((zone / "energy_uj").read_text())
        (zone / "energy_uj").write_text(f"{now + 500_000_000}\n")

    _, report = sample(Recorder(after=advance), n=4, rapl_root=tmp_path, clock=ticking(10.0))
    assert report.cpu_method == "counter"
    assert report.cpu_kwh == pytest.approx(50.0 * report.seconds / 3.6e6)


def test_no_rapl_is_unavailable_and_silent(tmp_path):
    sampler, report = sample(Recorder(), n=2, rapl_root=tmp_path / "powercap")
    assert report.cpu_kwh is None and not sampler.warnings
    assert report.cpu_method == (f"unavailable: no RAPL interface ({tmp_path / 'powercap'}"
                                 "/intel-rapl:N absent)")


def test_rapl_present_but_unreadable(tmp_path):
    zone = rapl_zone(tmp_path, "intel-rapl:0", "package-0", 0)
    (zone / "energy_uj").unlink()
    (zone / "energy_uj").mkdir()  # tests run as root: a folder is what no one can read
    sampler, report = sample(Recorder(), n=2, rapl_root=tmp_path)
    assert report.cpu_kwh is None and not sampler.warnings
    assert report.cpu_method.startswith("unavailable: RAPL present but not readable: Is a "
                                        "directory on ")


def test_rapl_permission_denied_says_so(tmp_path, monkeypatch):
    zone = rapl_zone(tmp_path, "intel-rapl:0", "package-0", 0)
    real = Path.read_text

    def read_text(path, *args, **kwargs):
        if path == zone / "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    _, cpu_method = Rapl(tmp_path).result()
    assert cpu_method == (f"unavailable: RAPL present but not readable: permission denied on "
                          f"{zone / 'energy_uj'} (energy_uj is readable by root only since "
                          "Linux 5.10)")


def test_rapl_that_stops_answering_mid_run_is_dropped_with_a_warning(tmp_path):
    zone = rapl_zone(tmp_path, "intel-rapl:0", "package-0", 0)

    def break_it(count: int) -> None:
        if count == 2:
            (zone / "energy_uj").unlink()

    recorder = Recorder(after=break_it)
    sampler, report = sample(recorder, n=4, rapl_root=tmp_path)
    assert len(sampler.warnings) == 1
    assert sampler.warnings[0].startswith("CPU energy (RAPL) no longer recorded after")
    assert report.cpu_kwh is None
    assert report.cpu_method.startswith("unavailable: RAPL stopped answering after ")
    assert all("system/mem/used_mb" in m for _, m, _ in recorder.samples)


# -- the idle-GPU warning -------------------------------------------------------------------


def report_of(*medians: float | None, samples: int = 30, node: int | None = None):
    gpus = tuple(GpuUse(n, node, m, samples, 0.1, "counter") for n, m in enumerate(medians))
    return EnergyReport(0.1, "counter", None, "unavailable: x", gpus, samples, 60.0)


def test_an_idle_gpu_warns_a_training_run():
    assert report_of(31.0).idle_warning(logged_steps=True) == (
        "GPU 0 was busy 31% of the time: the data loader may be the bottleneck")
    assert report_of(31.0, 22.4).idle_warning(True) == (
        "GPU 0 was busy 31% of the time, GPU 1 22%: the data loader may be the bottleneck")
    assert report_of(31.0, node=1).idle_warning(True) == (
        "GPU 0 of node 1 was busy 31% of the time: the data loader may be the bottleneck")
    assert report_of(95.0, 0.0).idle_warning(True) == (
        "GPU 1 was idle: does the run place its work there?")


@pytest.mark.parametrize(("report", "logged_steps", "threshold"), [
    (report_of(31.0), False, 50.0),  # not a training run
    (report_of(75.0, 50.0), True, 50.0),
    (report_of(31.0, samples=4), True, 50.0),  # too few samples to tell
    (report_of(31.0), True, 30.0),
    (report_of(None), True, 50.0),
    (report_of(), True, 50.0),
])
def test_no_idle_warning(report, logged_steps, threshold):
    assert report.idle_warning(logged_steps, threshold=threshold) is None


def test_the_idle_warning_from_a_sampled_run():
    _, report = sample(Recorder(), n=6, nvml=FakeNvml(FakeGpu(util=31, joules_per_read=1.0)))
    assert report.idle_warning(logged_steps=True) == (
        "GPU 0 was busy 31% of the time: the data loader may be the bottleneck")


# -- torchrun and the run's side ------------------------------------------------------------


@pytest.mark.parametrize(("env", "expected"), [
    ({}, Placement(True, None)),
    ({"LOCAL_RANK": "1", "RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "4"},
     Placement(False, None)),
    ({"LOCAL_RANK": "0", "RANK": "0", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "4",
      "GROUP_RANK": "0"}, Placement(True, None)),
    ({"LOCAL_RANK": "0", "RANK": "0", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4",
      "GROUP_RANK": "0"}, Placement(True, 0)),
    ({"LOCAL_RANK": "0", "RANK": "4", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4",
      "GROUP_RANK": "1"}, Placement(True, 1)),
    ({"LOCAL_RANK": "2", "RANK": "6", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4",
      "GROUP_RANK": "1"}, Placement(False, 1)),
    ({"LOCAL_RANK": "0", "RANK": "8", "WORLD_SIZE": "12", "LOCAL_WORLD_SIZE": "4"},
     Placement(True, 2)),  # no GROUP_RANK: RANK // LOCAL_WORLD_SIZE
    ({"LOCAL_RANK": "0", "NODE_RANK": "3"}, Placement(True, 3)),  # Lightning's name
    ({"LOCAL_RANK": "zero", "GROUP_RANK": "x"}, Placement(True, None)),  # not numbers: absent
])
def test_one_process_per_node_samples_and_names_carry_the_node(env, expected):
    assert placement(env) == expected


def test_placement_prefixes():
    assert Placement(True).prefix == "system/"
    assert Placement(True, 1).prefix == "system/node1/"


def test_multi_node_names_carry_the_node():
    recorder = Recorder()
    sample(recorder, n=2, node=1, nvml=FakeNvml(FakeGpu(joules_per_read=1.0)))
    assert {"system/node1/gpu0/util", "system/node1/cpu/util"} <= recorder.names()
    assert not any(k.startswith("system/gpu") for k in recorder.names())


def test_start_sampler_follows_the_interval_and_the_torchrun_rule():
    assert start_sampler(Recorder(), 0) is None
    assert start_sampler(Recorder(), 10, env={"LOCAL_RANK": "1"}) is None
    recorder = Recorder()
    recorder.want = 1
    sampler = start_sampler(recorder, 10, env={"LOCAL_RANK": "0", "GROUP_RANK": "2"})
    assert sampler is not None and sampler.node == 2
    assert recorder.enough.wait(10)
    sampler.stop()
    assert next(iter(recorder.samples[0][1])).startswith("system/node2/")


def test_a_refusing_emit_warns_once_and_energy_is_still_measured():
    def refuse(metrics, step):
        raise RuntimeError("run closed")

    nvml = FakeNvml(FakeGpu(joules_per_read=100.0))
    sampler = SystemSampler(refuse, 0.02, nvml=nvml, env={}, rapl_root=Path("/nonexistent"))
    sampler.start()
    time.sleep(0.15)
    report = sampler.stop()
    assert sampler.warnings == ["could not record system metrics: RuntimeError('run closed')"]
    assert report.gpu_kwh is not None and report.gpu_kwh > 0


def test_stop_is_idempotent_and_works_before_start():
    sampler = SystemSampler(Recorder(), 10, env={}, nvml=FakeNvml(init_error=NO_DRIVER))
    report = sampler.stop()
    assert report.samples == 0 and report.gpu_kwh is None and report.cpu_kwh is None
    assert sampler.stop() is report
    sampler.start()  # after stop: nothing to start
    assert sampler.samples == 0


def test_stop_does_not_wait_forever_on_a_gpu_that_hangs():
    gpu = FakeGpu(joules_per_read=1.0)
    recorder = Recorder()
    recorder.want = 1
    sampler = SystemSampler(recorder, 0.02, nvml=FakeNvml(gpu), env={},
                            rapl_root=Path("/nonexistent"))
    sampler.start()
    assert recorder.enough.wait(10)
    gpu.gate = threading.Event()  # the next reading hangs
    time.sleep(0.1)
    began = time.monotonic()
    report = sampler.stop(timeout=0.2)
    try:
        assert time.monotonic() - began < 2.0
        assert any("did not stop within 0.2 s" in w for w in sampler.warnings)
        assert report.samples >= 1
    finally:
        gpu.gate.set()


def test_warnings_go_to_the_callback_as_they_happen():
    heard: list[str] = []
    sampler = SystemSampler(Recorder(), 0.02, nvml=FakeNvml(init_error=999), env={},
                            warn=heard.append, rapl_root=Path("/nonexistent"))
    sampler.start()
    sampler.stop()
    assert heard == sampler.warnings and len(heard) == 1


def test_a_bad_interval_is_refused():
    with pytest.raises(ValueError, match="must be positive"):
        SystemSampler(Recorder(), 0)


def test_importing_the_sampler_loads_neither_psutil_nor_nvml():
    code = ("import sys, registry.capture.sampler; "
            "print(sorted(m for m in ('psutil', 'pynvml') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
