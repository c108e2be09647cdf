"""Best-effort capture of the machine a run trains on: CPU, memory, GPUs, container.

`capture_hardware` never raises: a missing NVML, an odd /proc or a lost GPU leave their field
empty and add a warning. A machine without NVIDIA GPUs is normal and warns about nothing.
The machine does not change within a process, so it is probed once; every call returns a fresh
copy. Torch is described only if the caller has already imported it: importing it here would
cost seconds.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import platform
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["CONTAINER_IMAGE_VARS", "capture_hardware"]

CONTAINER_IMAGE_VARS = (
    "CAIRN_CONTAINER_IMAGE",
    "CONTAINER_IMAGE",
    "DOCKER_IMAGE",
    "APPTAINER_CONTAINER",
    "SINGULARITY_CONTAINER",
)
"""Environment variables that may name the container image, the first one set wins."""

_CPUINFO = Path("/proc/cpuinfo")
_NVIDIA_PROC = Path("/proc/driver/nvidia")
_CGROUP_HINTS = ("kubepods", "docker", "libpod", "containerd", "lxc")


def capture_hardware() -> tuple[dict, list[str]]:
    """Describe this machine: (info, warnings). Never raises."""
    try:
        static, warnings = _probe()
        info, warnings = copy.deepcopy(static), list(warnings)
        info["torch"] = _torch_info(info, warnings) if "torch" in sys.modules else None
        return info, warnings
    except Exception as exc:  # best effort: a capture bug must not end a training run
        return {"gpus": [], "torch": None}, [f"could not describe the hardware: {exc!r}"]


@functools.cache
def _probe() -> tuple[dict, tuple[str, ...]]:
    warnings: list[str] = []
    gpus, cuda_driver = _guarded(lambda: _gpus(warnings), ([], None), warnings, "the GPUs")
    info = {
        "hostname": platform.node() or None,
        "machine": platform.machine(),
        "cpu": _guarded(_cpu, {}, warnings, "the CPU"),
        "ram_bytes": _guarded(_ram_bytes, None, warnings, "the memory size"),
        "gpus": gpus,
        "cuda_driver_version": cuda_driver,
        "container": _guarded(_container, {}, warnings, "the container"),
    }
    return info, tuple(warnings)


def _guarded(probe: Callable[[], Any], default: Any, warnings: list[str], what: str) -> Any:
    try:
        return probe()
    except Exception as exc:
        warnings.append(f"could not read {what}: {exc!r}")
        return default


def _cpu() -> dict:
    try:
        model, physical = _parse_cpuinfo(_CPUINFO.read_text(errors="replace"))
    except OSError:
        model, physical = None, None
    if physical is None:  # no /proc/cpuinfo topology (macOS, Windows, some VMs)
        with contextlib.suppress(Exception):  # psutil missing or unsupported: unknown
            import psutil

            physical = psutil.cpu_count(logical=False)
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "model": model or platform.processor() or None,
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "available_cores": available,
    }


def _parse_cpuinfo(text: str) -> tuple[str | None, int | None]:
    """(model name, physical core count) from /proc/cpuinfo text; None where absent."""
    model = None
    cores: set[tuple[str, str]] = set()
    physical_id = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "model name" and model is None and value:
            model = value
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            cores.add((physical_id, value))
    return model, len(cores) or None


def _ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        import psutil

        return int(psutil.virtual_memory().total)


def _gpus(warnings: list[str]) -> tuple[list[dict], str | None]:
    """GPUs and the CUDA driver version through NVML, else what the driver's /proc says."""
    try:
        import pynvml
    except ImportError:
        if _NVIDIA_PROC.is_dir():
            warnings.append(
                "an NVIDIA driver is loaded but nvidia-ml-py is not installed "
                "(pip install 'cairn[gpu]'); GPU memory and CUDA driver version not recorded"
            )
            return _proc_gpus(), None
        return [], None
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        no_library = getattr(pynvml, "NVML_ERROR_LIBRARY_NOT_FOUND", 12)
        if _nvml_code(pynvml, exc) == no_library and not _NVIDIA_PROC.is_dir():
            return [], None  # a machine without NVIDIA GPUs: normal, nothing to say
        warnings.append(f"NVML could not start ({exc}); GPU memory not recorded")
        return (_proc_gpus(), None) if _NVIDIA_PROC.is_dir() else ([], None)
    try:
        return _nvml_gpus(pynvml, warnings), _nvml_cuda_version(pynvml, warnings)
    finally:
        with contextlib.suppress(Exception):  # never fully up: nothing to release
            pynvml.nvmlShutdown()


def _nvml_code(pynvml: Any, exc: Exception) -> int | None:
    return getattr(exc, "value", None) if isinstance(exc, pynvml.NVMLError) else None


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _nvml_gpus(pynvml: Any, warnings: list[str]) -> list[dict]:
    driver = _text(pynvml.nvmlSystemGetDriverVersion())
    gpus = []
    for index in range(pynvml.nvmlDeviceGetCount()):
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            gpus.append({
                "index": index,
                "name": _text(pynvml.nvmlDeviceGetName(handle)),
                "memory_bytes": int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                "driver": driver,
                "uuid": _text(pynvml.nvmlDeviceGetUUID(handle)),
            })
        except Exception as exc:
            warnings.append(f"could not read GPU {index} through NVML: {exc}")
    return gpus


def _nvml_cuda_version(pynvml: Any, warnings: list[str]) -> str | None:
    try:
        version = int(pynvml.nvmlSystemGetCudaDriverVersion())
    except Exception as exc:
        warnings.append(f"could not read the CUDA driver version through NVML: {exc}")
        return None
    return f"{version // 1000}.{version % 1000 // 10}"


def _proc_gpus() -> list[dict]:
    """GPU names and UUIDs from the NVIDIA kernel module, ordered by PCI bus like NVML."""
    try:
        found = re.search(r"\s(\d+\.\d+(?:\.\d+)*)\s", (_NVIDIA_PROC / "version").read_text())
        driver = found.group(1) if found else None
    except OSError:
        driver = None
    gpus = []
    for index, folder in enumerate(sorted((_NVIDIA_PROC / "gpus").glob("*"))):
        fields = {}
        try:
            for line in (folder / "information").read_text(errors="replace").splitlines():
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        except OSError:
            pass
        gpus.append({
            "index": index,
            "name": fields.get("Model"),
            "memory_bytes": None,
            "driver": driver,
            "uuid": fields.get("GPU UUID"),
        })
    return gpus


def _container() -> dict:
    image = next((os.environ[v] for v in CONTAINER_IMAGE_VARS if os.environ.get(v)), None)
    runtime = _container_runtime()
    return {"image": image, "in_container": runtime is not None, "runtime": runtime}


def _container_runtime() -> str | None:
    if os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER"):
        return "apptainer"
    if os.path.exists("/run/.containerenv"):
        return "podman"
    if os.path.exists("/.dockerenv"):
        return "docker"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    # The systemd convention, lower case on purpose: podman, lxc, systemd-nspawn set it.
    if os.environ.get("container"):  # noqa: SIM112
        return os.environ["container"]  # noqa: SIM112
    try:
        cgroup = Path("/proc/self/cgroup").read_text(errors="replace")
    except OSError:
        return None
    return next((hint for hint in _CGROUP_HINTS if hint in cgroup), None)


def _torch_info(info: dict, warnings: list[str]) -> dict | None:
    """Torch's CUDA build and, when NVML found no GPU, the devices torch already uses."""
    try:
        torch_info = dict(_torch_static())
        if not info["gpus"]:
            info["gpus"] = _torch_gpus()
        return torch_info
    except Exception as exc:
        warnings.append(f"could not describe torch: {exc!r}")
        return None


@functools.cache
def _torch_static() -> dict:
    import torch
    import torch.backends.cudnn

    return {
        "version": str(torch.__version__),
        "cuda": torch.version.cuda,
        "hip": getattr(torch.version, "hip", None),
        "cudnn": torch.backends.cudnn.version(),
    }


def _torch_gpus() -> list[dict]:
    import torch

    # Only once the script itself has started CUDA: starting it here would break any
    # fork-based worker that later uses CUDA.
    if not torch.cuda.is_initialized():
        return []
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        uuid = getattr(props, "uuid", None)
        gpus.append({
            "index": index,
            "name": props.name,
            "memory_bytes": int(props.total_memory),
            "driver": None,
            "uuid": str(uuid) if uuid is not None else None,
        })
    return gpus
