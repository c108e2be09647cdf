"""Best-effort capture of the software environment a run trains in.

`capture_environment` never raises. Installed distributions are scanned once per process
(scanning is the slow part); the allow-listed environment variables and the notebook flag are
read on every call, because a script may set them after its first run. Every call returns a
fresh copy.
"""

from __future__ import annotations

import copy
import functools
import os
import platform
import re
import sys

__all__ = ["ENV_VARS", "KEY_PACKAGES", "capture_environment"]

KEY_PACKAGES: tuple[str, ...] = (
    "torch", "torchvision", "torchaudio", "timm", "lightning", "pytorch-lightning",
    "accelerate", "safetensors", "huggingface-hub", "transformers",
    "tensorflow", "tf-keras", "keras", "tensorflow-hub",
    "jax", "jaxlib",
    "numpy", "pillow", "opencv-python", "opencv-python-headless", "albumentations",
    "scikit-learn", "scikit-image", "pandas",
    "onnx", "onnxruntime", "onnxruntime-gpu",
    "nvidia-ml-py", "dvc", "mlflow", "sqlalchemy", "cairn",
)
"""Distributions (normalised names) whose versions matter when comparing runs."""

ENV_VARS: tuple[str, ...] = (
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_LAUNCH_BLOCKING",
    "CUBLAS_WORKSPACE_CONFIG", "PYTORCH_CUDA_ALLOC_CONF", "NVIDIA_PYTORCH_VERSION",
    "NVIDIA_TENSORFLOW_VERSION",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PYTHONHASHSEED",
    "TF_DETERMINISTIC_OPS", "TF_CUDNN_DETERMINISTIC", "TF_ENABLE_ONEDNN_OPTS",
    "TF_FORCE_GPU_ALLOW_GROWTH", "KERAS_BACKEND",
    "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "SLURM_JOB_ID",
)
"""The only environment variables recorded: settings that change results, never secrets."""


def capture_environment() -> tuple[dict, list[str]]:
    """Describe the Python environment: (info, warnings). Never raises."""
    try:
        static, warnings = _probe()
        info, warnings = copy.deepcopy(static), list(warnings)
    except Exception as exc:  # best effort: a capture bug must not end a training run
        info, warnings = {}, [f"could not describe the Python environment: {exc!r}"]
    info["env_vars"] = {name: os.environ[name] for name in ENV_VARS if name in os.environ}
    info["notebook"] = "ipykernel" in sys.modules
    return info, warnings


def _normalise(name: str) -> str:
    """The PEP 503 form of a distribution name: `Scikit_Learn` -> `scikit-learn`."""
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def _probe() -> tuple[dict, tuple[str, ...]]:
    warnings: list[str] = []
    try:
        installed = _installed()
    except Exception as exc:
        warnings.append(f"could not list installed distributions: {exc!r}")
        installed = {}
    in_venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
    info = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "os": platform.platform(),
        "virtualenv": sys.prefix if in_venv else None,
        "conda_env": os.environ.get("CONDA_DEFAULT_ENV") or None,
        "packages": {name: installed[name] for name in KEY_PACKAGES if name in installed},
        "all_packages": sorted(f"{name}=={version}" for name, version in installed.items()),
    }
    return info, tuple(warnings)


def _installed() -> dict[str, str]:
    """{normalised name: version} of every distribution on sys.path, the first one winning
    (as imports do) when a name is installed twice."""
    from importlib.metadata import distributions

    found: dict[str, str] = {}
    for dist in distributions():
        name, version = _name_version(dist)
        if name:
            found.setdefault(_normalise(name), version or "unknown")
    return found


def _name_version(dist) -> tuple[str | None, str | None]:
    """Name and Version from a distribution's metadata headers. Faster than `dist.metadata`,
    which parses the whole file (long descriptions included) as an e-mail message."""
    try:
        text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    except Exception:  # an unreadable or half-deleted distribution: skip it
        return None, None
    headers: dict[str, str] = {}
    for line in text.partition("\n\n")[0].splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key in ("name", "version"):
            headers.setdefault(key, value.strip())
            if len(headers) == 2:
                break
    return headers.get("name"), headers.get("version")
