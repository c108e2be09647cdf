"""Hardware and environment capture: shape, caching, NVML and /proc oddities, import cost."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import textwrap
import types
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.capture import environment, hardware
from registry.capture.environment import KEY_PACKAGES, capture_environment
from registry.capture.hardware import capture_hardware

GPU_KEYS = {"index", "name", "memory_bytes", "driver", "uuid"}


def python(code: str) -> str:
    """Run code in a fresh interpreter (so sys.modules starts clean); its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def fresh_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An empty hardware cache, no NVIDIA driver in /proc, and the cache emptied afterwards."""
    monkeypatch.setattr(hardware, "_NVIDIA_PROC", tmp_path / "no-nvidia")
    hardware._probe.cache_clear()
    yield tmp_path
    hardware._probe.cache_clear()


class FakeNVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return f"NVML error {self.value}"


def fake_pynvml(
    monkeypatch: pytest.MonkeyPatch, names: list[str], init_error: int | None = None,
    broken_index: int | None = None,
) -> types.ModuleType:
    """Install a stand-in `pynvml` module describing GPUs called `names`."""
    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = FakeNVMLError
    nvml.NVML_ERROR_LIBRARY_NOT_FOUND = 12
    nvml.shutdowns = 0

    def init() -> None:
        if init_error is not None:
            raise FakeNVMLError(init_error)

    def handle(index: int) -> int:
        if index == broken_index:
            raise FakeNVMLError(15)  # GPU is lost
        return index

    def shutdown() -> None:
        nvml.shutdowns += 1

    nvml.nvmlInit = init
    nvml.nvmlShutdown = shutdown
    nvml.nvmlSystemGetDriverVersion = lambda: "550.54.15"
    nvml.nvmlSystemGetCudaDriverVersion = lambda: 12040
    nvml.nvmlDeviceGetCount = lambda: len(names)
    nvml.nvmlDeviceGetHandleByIndex = handle
    nvml.nvmlDeviceGetName = lambda h: names[h].encode()  # old bindings return bytes
    nvml.nvmlDeviceGetUUID = lambda h: f"GPU-{h:08d}"
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=80 * 2**30)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    return nvml


def fake_proc_driver(root: Path, models: list[str]) -> Path:
    """A /proc/driver/nvidia tree like the kernel module's."""
    proc = root / "nvidia"
    (proc / "gpus").mkdir(parents=True)
    (proc / "version").write_text(
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build\n"
    )
    for i, model in enumerate(models):
        folder = proc / "gpus" / f"0000:{i + 10:02x}:00.0"
        folder.mkdir()
        (folder / "information").write_text(
            f"Model: \t\t {model}\nIRQ:   \t\t 42\nGPU UUID: \t GPU-proc-{i}\n"
            f"Bus Location: \t 0000:{i + 10:02x}:00.0\nDevice Minor: \t {i}\n"
        )
    return proc


# --- hardware ---------------------------------------------------------------------------


def test_hardware_describes_this_machine() -> None:
    info, warnings = capture_hardware()
    assert set(info) >= {
        "hostname", "machine", "cpu", "ram_bytes", "gpus", "cuda_driver_version", "container",
        "torch",
    }
    assert info["machine"] == platform.machine()
    assert info["cpu"]["logical_cores"] >= 1
    assert info["ram_bytes"] > 0
    assert all(set(gpu) == GPU_KEYS for gpu in info["gpus"])
    assert set(info["container"]) == {"image", "in_container", "runtime"}
    assert all(isinstance(w, str) for w in warnings)
    json.dumps(info)


def test_hardware_copies_are_independent() -> None:
    first, _ = capture_hardware()
    first["cpu"]["model"] = "mutated"
    first["gpus"].append({"index": 99})
    first["container"]["image"] = "mutated"
    second, _ = capture_hardware()
    assert second["cpu"]["model"] != "mutated"
    assert {"index": 99} not in second["gpus"]
    assert second["container"]["image"] != "mutated"


def test_nvml_gpus_and_cuda_driver(fresh_probe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_pynvml(monkeypatch, ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"])
    info, warnings = capture_hardware()
    assert warnings == []
    assert info["cuda_driver_version"] == "12.4"
    assert info["gpus"] == [
        {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_bytes": 80 * 2**30,
         "driver": "550.54.15", "uuid": "GPU-00000000"},
        {"index": 1, "name": "NVIDIA A100-SXM4-40GB", "memory_bytes": 80 * 2**30,
         "driver": "550.54.15", "uuid": "GPU-00000001"},
    ]
    assert nvml.shutdowns == 1
    capture_hardware()
    assert nvml.shutdowns == 1, "the machine is probed once per process"


def test_no_nvml_library_on_a_cpu_machine_is_silent(
    fresh_probe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_pynvml(monkeypatch, [], init_error=12)
    info, warnings = capture_hardware()
    assert info["gpus"] == []
    assert info["cuda_driver_version"] is None
    assert warnings == []


def test_no_nvidia_ml_py_on_a_cpu_machine_is_silent(
    fresh_probe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    info, warnings = capture_hardware()
    assert info["gpus"] == []
    assert warnings == []


def test_driver_without_nvidia_ml_py_falls_back_to_proc(
    fresh_probe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hardware, "_NVIDIA_PROC", fake_proc_driver(fresh_probe, ["GPU A", "B"]))
    monkeypatch.setitem(sys.modules, "pynvml", None)
    info, warnings = capture_hardware()
    assert [g["name"] for g in info["gpus"]] == ["GPU A", "B"]
    assert info["gpus"][0] == {
        "index": 0, "name": "GPU A", "memory_bytes": None, "driver": "550.54.15",
        "uuid": "GPU-proc-0",
    }
    assert any("nvidia-ml-py" in w for w in warnings)


def test_nvml_failing_to_start_warns(fresh_probe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pynvml(monkeypatch, ["x"], init_error=9)  # driver not loaded
    info, warnings = capture_hardware()
    assert info["gpus"] == []
    assert any("NVML could not start" in w for w in warnings)


def test_one_lost_gpu_does_not_hide_the_others(
    fresh_probe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_pynvml(monkeypatch, ["a", "b", "c"], broken_index=1)
    info, warnings = capture_hardware()
    assert [g["name"] for g in info["gpus"]] == ["a", "c"]
    assert any("GPU 1" in w for w in warnings)


def test_a_failing_probe_becomes_a_warning(
    fresh_probe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> dict:
        raise RuntimeError("odd /proc")

    monkeypatch.setattr(hardware, "_cpu", broken)
    info, warnings = capture_hardware()
    assert info["cpu"] == {}
    assert info["ram_bytes"] > 0
    assert any("odd /proc" in w for w in warnings)


@pytest.mark.parametrize("var", hardware.CONTAINER_IMAGE_VARS)
def test_container_image_from_the_environment(
    fresh_probe: Path, monkeypatch: pytest.MonkeyPatch, var: str
) -> None:
    for other in hardware.CONTAINER_IMAGE_VARS:
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(var, "registry.example.com/cv/train:1.2")
    container = capture_hardware()[0]["container"]
    assert container["image"] == "registry.example.com/cv/train:1.2"


def test_kubernetes_counts_as_a_container(
    fresh_probe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hardware.os.path, "exists", lambda path: False)
    for var in (*hardware.CONTAINER_IMAGE_VARS, "container"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert capture_hardware()[0]["container"] == {
        "image": None, "in_container": True, "runtime": "kubernetes",
    }


CPUINFO = """\
processor\t: 0
model name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
physical id\t: 0
core id\t\t: 0

processor\t: 1
model name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
physical id\t: 0
core id\t\t: 0

processor\t: 2
physical id\t: 1
core id\t\t: 0

processor\t: 3
physical id\t: 1
core id\t\t: 1
"""


def test_cpuinfo_model_and_physical_cores() -> None:
    assert hardware._parse_cpuinfo(CPUINFO) == ("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", 3)


def test_cpuinfo_without_model_or_topology() -> None:
    assert hardware._parse_cpuinfo("processor : 0\nBogoMIPS : 50.00\nCPU part : 0xd0c\n") == (
        None, None,
    )


def test_cpu_without_proc_topology_asks_psutil(
    fresh_probe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psutil

    cpuinfo = fresh_probe / "cpuinfo"
    cpuinfo.write_text("processor : 0\nmodel name : Test CPU\n")
    monkeypatch.setattr(hardware, "_CPUINFO", cpuinfo)
    cpu = capture_hardware()[0]["cpu"]
    assert cpu["model"] == "Test CPU"
    assert cpu["physical_cores"] == psutil.cpu_count(logical=False)


def test_cpu_without_proc_cpuinfo(fresh_probe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "_CPUINFO", fresh_probe / "missing")
    info, warnings = capture_hardware()
    assert info["cpu"]["model"] == (platform.processor() or None)
    assert info["cpu"]["logical_cores"] >= 1
    assert warnings == []


@given(st.text(max_size=500))
def test_cpuinfo_parser_never_raises(text: str) -> None:
    hardware._parse_cpuinfo(text)


def test_torch_is_described_only_once_imported_by_the_caller() -> None:
    out = python("""
        import json, sys
        from registry.capture.hardware import capture_hardware
        before = capture_hardware()[0]["torch"]
        imported_by_capture = "torch" in sys.modules
        import torch
        after = capture_hardware()[0]["torch"]
        print(json.dumps([before, imported_by_capture, after, torch.version.cuda]))
    """)
    before, imported_by_capture, after, cuda = json.loads(out)
    assert before is None
    assert imported_by_capture is False
    assert set(after) == {"version", "cuda", "hip", "cudnn"}
    assert after["cuda"] == cuda  # None on the CPU build the tests run with
    assert after["version"] == installed_version("torch")


def test_importing_capture_modules_stays_light() -> None:
    out = python("""
        import sys
        import registry.capture.git, registry.capture.hardware, registry.capture.environment
        print(sorted(m for m in ("torch", "psutil", "pynvml") if m in sys.modules))
    """)
    assert out == "[]"


# --- environment ------------------------------------------------------------------------


def test_environment_describes_this_interpreter() -> None:
    info, warnings = capture_environment()
    assert warnings == []
    assert info["python"] == platform.python_version()
    assert info["implementation"] == platform.python_implementation()
    assert info["executable"] == sys.executable
    assert info["os"] == platform.platform()
    assert info["virtualenv"] == (sys.prefix if sys.prefix != sys.base_prefix else None)
    assert info["notebook"] is False
    json.dumps(info)


def test_key_packages_and_all_packages() -> None:
    info, _ = capture_environment()
    assert set(info["packages"]) <= set(KEY_PACKAGES)
    assert info["packages"]["torch"] == installed_version("torch")
    assert info["packages"]["sqlalchemy"] == installed_version("sqlalchemy")
    assert info["all_packages"] == sorted(info["all_packages"])
    assert f"pytest=={installed_version('pytest')}" in info["all_packages"]
    assert all("==" in line for line in info["all_packages"])


@pytest.mark.parametrize("name", KEY_PACKAGES)
def test_key_package_names_are_normalised(name: str) -> None:
    assert environment._normalise(name) == name
    assert KEY_PACKAGES.count(name) == 1


def test_environment_copies_are_independent() -> None:
    first, _ = capture_environment()
    first["packages"]["torch"] = "0.0"
    first["all_packages"].clear()
    second, _ = capture_environment()
    assert second["packages"]["torch"] == installed_version("torch")
    assert second["all_packages"]


def test_only_allow_listed_variables_are_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    capture_environment()  # the variables are read per call, not cached
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
    monkeypatch.setenv("CAIRN_STORE", "postgresql://bob:hunter2@db/registry")
    info, _ = capture_environment()
    assert info["env_vars"]["CUDA_VISIBLE_DEVICES"] == "1,0"
    assert set(info["env_vars"]) <= set(environment.ENV_VARS)
    assert "hunter2" not in json.dumps(info)


def test_notebook_is_detected_from_ipykernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert capture_environment()[0]["notebook"] is True


class FakeDist:
    def __init__(self, files: dict[str, str] | Exception) -> None:
        self.files = files

    def read_text(self, name: str) -> str | None:
        if isinstance(self.files, Exception):
            raise self.files
        return self.files.get(name)


def test_odd_distributions_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    dists = [
        FakeDist({"METADATA": "Metadata-Version: 2.1\nName: Scikit_Learn\nVersion: 1.5\n\nbody"}),
        FakeDist({"PKG-INFO": "Name: old.egg\nVersion: 0.1\n"}),
        FakeDist({"METADATA": "Name: scikit-learn\nVersion: 9.9\n"}),  # shadowed: first wins
        FakeDist({"METADATA": "Summary: no name\n"}),
        FakeDist({"METADATA": "Name: noversion\n"}),
        FakeDist({}),
        FakeDist(PermissionError("half-deleted")),
    ]
    monkeypatch.setattr("importlib.metadata.distributions", lambda: iter(dists))
    assert environment._installed() == {
        "scikit-learn": "1.5", "old-egg": "0.1", "noversion": "unknown",
    }


def test_a_failing_scan_becomes_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken():
        raise OSError("sys.path entry vanished")

    monkeypatch.setattr("importlib.metadata.distributions", broken)
    environment._probe.cache_clear()
    try:
        info, warnings = capture_environment()
    finally:
        environment._probe.cache_clear()
    assert info["packages"] == {}
    assert info["python"] == platform.python_version()
    assert any("vanished" in w for w in warnings)
