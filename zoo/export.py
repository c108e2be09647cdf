"""Export fine-tuned PyTorch models: safetensors (weights, never pickle) and ONNX (how the
models reach CPU and edge inference), each ONNX file checked and compared with PyTorch.

    save_safetensors(model, "model.safetensors", metadata={"model": "resnet18",
                     "class_names": classes})
    report = export_onnx(model, "model.onnx", sample=images[:4])  # raises if outputs differ
    export_checkpoint(None, run_dir / "model.safetensors", "export/")  # a run's best model

Checkpoint metadata (contract 1) uses the run's param names: ``model`` (zoo name),
``class_names`` (JSON list), ``num_classes`` and ``image_size``; values that are not strings
are stored as JSON. torch, safetensors, onnx and onnxruntime are imported when used.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import CheckpointError, ExportError, OnnxMismatchError, WeightsMismatchError

__all__ = [
    "CheckpointError",
    "ExportError",
    "OnnxMismatchError",
    "OnnxReport",
    "checkpoint_artifact",
    "export_checkpoint",
    "export_onnx",
    "load_safetensors",
    "read_metadata",
    "save_safetensors",
    "unwrap_model",
]

log = logging.getLogger("zoo")
FORMATS = ("safetensors", "onnx")
CHECKPOINT = "model.safetensors"  # the artifact a fine-tune run keeps its best weights in
KERAS_CHECKPOINT = "saved_model"  # a Keras fine-tune's: a SavedModel folder
_EXTERNAL_DATA_BYTES = 1_500_000_000  # ONNX protobufs stop at 2 GiB; larger weights go beside


def checkpoint_artifact(record: Any) -> Any | None:
    """The artifact of a run record holding its fine-tuned weights (``model.safetensors``,
    at the top level first), or None when the run logged none."""
    found = [a for a in record.artifacts if a.name.rsplit("/", 1)[-1] == CHECKPOINT]
    return min(found, key=lambda a: (a.name != CHECKPOINT, a.name)) if found else None


@dataclass(frozen=True)
class OnnxReport:
    """An exported, checked and compared ONNX file."""

    path: Path
    opset: int
    max_abs_diff: float
    exporter: str = "dynamo"
    atol: float = 1e-4


def unwrap_model(model: Any) -> Any:
    """The module inside ``DistributedDataParallel``/``DataParallel`` and ``torch.compile``."""
    import torch

    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    while True:
        if isinstance(model, wrappers):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), torch.nn.Module):
            model = model._orig_mod
        else:
            return model


def save_safetensors(model: Any, path: str | Path, *,
                     metadata: Mapping[str, Any] | None = None) -> Path:
    """Write the (unwrapped) model's weights to ``path``: contiguous tensors, shared tensors
    stored once (safetensors' ``save_model``), ``metadata`` as strings (JSON where not)."""
    from safetensors.torch import save_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": "pt", **_string_metadata(metadata or {})}
    save_model(unwrap_model(model), str(path), metadata=meta, force_contiguous=True)
    return path


def load_safetensors(model: Any, path: str | Path, *,
                     strict: bool = True) -> tuple[list[str], list[str]]:
    """Load weights written by :func:`save_safetensors` into ``model`` (no pickle), onto the
    device of its parameters. Returns ``(missing, unexpected)`` names (empty when strict)."""
    from safetensors.torch import load_model

    path = _existing(path)
    inner = unwrap_model(model)
    device = next((p.device for p in inner.parameters()), "cpu")
    try:
        missing, unexpected = load_model(inner, str(path), strict=strict, device=str(device))
    except RuntimeError as exc:  # safetensors/torch: missing, unexpected or misshapen tensors
        name = getattr(getattr(inner, "cairn_info", None), "name", type(inner).__name__)
        raise WeightsMismatchError(name, str(path), str(exc).strip()) from exc
    except Exception as exc:  # SafetensorError: not a safetensors file
        raise CheckpointError(str(path), f"not a readable safetensors file ({exc})") from exc
    return sorted(missing), sorted(unexpected)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file (without loading its tensors)."""
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as exc:  # SafetensorError: header missing or corrupt
        raise CheckpointError(str(path), f"not a readable safetensors file ({exc})") from exc


def export_onnx(model: Any, path: str | Path, *, sample: Any, atol: float = 1e-4,
                exporter: str = "auto", metadata: Mapping[str, Any] | None = None) -> OnnxReport:
    """Export ``model`` to ONNX with a dynamic batch axis, check it with ``onnx.checker`` and
    compare onnxruntime's output on ``sample`` (a float image batch) with PyTorch's.

    ``exporter``: ``"dynamo"`` (torch.export), ``"legacy"`` (TorchScript) or ``"auto"``
    (dynamo, falling back to legacy where torch.export cannot trace the model). ``metadata``
    goes into the file's ``metadata_props``. Raises :class:`OnnxMismatchError` when the
    outputs differ by more than ``atol``, :class:`ExportError` when export or check fails."""
    import torch

    if exporter not in ("auto", "dynamo", "legacy"):
        raise ValueError(f"exporter must be 'auto', 'dynamo' or 'legacy', got {exporter!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net, sample = _cpu_model(model), _sample(sample, path)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            expected = _outputs(net(sample))
        used = _export(net, sample, path, len(expected), exporter)
    finally:
        net.train(was_training)
    opset = _check(path, _string_metadata(metadata or {}))
    diff = _max_abs_diff(expected, _run_onnx(path, sample))
    if not diff <= atol:
        raise OnnxMismatchError(str(path), diff, atol, used)
    return OnnxReport(path=path, opset=opset, max_abs_diff=diff, exporter=used, atol=atol)


def export_checkpoint(model_name: str | None, checkpoint: str | Path, out_dir: str | Path, *,
                      formats: Iterable[str] = FORMATS, image_size: int | None = None,
                      atol: float = 1e-4) -> dict[str, Path]:
    """Rebuild a fine-tuned model from its checkpoint (``zoo.create(name, num_classes,
    pretrained=False)`` + the weights) and write it to ``out_dir`` as ``model.safetensors``
    and/or ``model.onnx``. ``model_name`` None takes the checkpoint's ``model`` metadata;
    the image size defaults to its ``image_size``, else the model's input size."""
    formats = list(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be among {', '.join(FORMATS)}, got {formats!r}")
    meta = read_metadata(checkpoint)
    name = model_name or _required(meta, "model", checkpoint)
    model = _rebuild(name, meta, checkpoint)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keep = {k: v for k, v in meta.items() if k != "format"}
    written: dict[str, Path] = {}
    if "safetensors" in formats:
        written["safetensors"] = save_safetensors(model, out / "model.safetensors", metadata=keep)
    if "onnx" in formats:
        import torch

        size = image_size or _image_size(model, meta, checkpoint)
        sample = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        written["onnx"] = export_onnx(model, out / "model.onnx", sample=sample, atol=atol,
                                      metadata={**keep, "image_size": str(size)}).path
    return written


# -- ONNX steps -------------------------------------------------------------------------------

def _export(net: Any, sample: Any, path: Path, n_outputs: int, exporter: str) -> str:
    """Write the ONNX file with the chosen exporter; the name of the one that worked."""
    if exporter in ("auto", "dynamo"):
        try:
            _export_dynamo(net, sample, path, n_outputs)
            return "dynamo"
        except Exception as exc:  # torch.export fails in many model-specific ways
            if exporter == "dynamo":
                raise ExportError(str(path), f"torch.export could not trace the model: "
                                  f"{_first_line(exc)}") from exc
            log.warning("zoo: the dynamo ONNX exporter failed (%s); using the TorchScript "
                        "exporter", _first_line(exc))
    try:
        _export_legacy(net, sample, path, n_outputs)
    except Exception as exc:  # the TorchScript tracer's errors are untyped
        raise ExportError(str(path), f"ONNX export failed: {_first_line(exc)}") from exc
    return "legacy"


def _names(n_outputs: int) -> list[str]:
    return ["logits"] if n_outputs == 1 else [f"output_{i}" for i in range(n_outputs)]


def _export_dynamo(net: Any, sample: Any, path: Path, n_outputs: int) -> None:
    import torch

    # torch.export specialises a size-1 axis to the constant 1, so trace at batch >= 2.
    traced = sample if sample.shape[0] > 1 else sample.expand(2, *sample.shape[1:]).clone()
    big = sum(p.numel() * p.element_size() for p in net.parameters()) > _EXTERNAL_DATA_BYTES
    with warnings.catch_warnings():  # torch's internal deprecations are not the user's
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (traced,), str(path), input_names=["input"],
                          output_names=_names(n_outputs), dynamo=True, external_data=big,
                          dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)


def _export_legacy(net: Any, sample: Any, path: Path, n_outputs: int) -> None:
    import torch

    axes = {name: {0: "batch"} for name in ["input", *_names(n_outputs)]}
    with warnings.catch_warnings():  # its deprecation and tracer warnings are not the user's
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (sample,), str(path), input_names=["input"],
                          output_names=_names(n_outputs), dynamo=False, dynamic_axes=axes,
                          opset_version=18)


def _check(path: Path, metadata: dict[str, str]) -> int:
    """Add ``metadata`` to the file, run onnx's full checker on it; its default opset."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    if metadata:
        onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props},
                                            **metadata})
        onnx.save(proto, str(path))
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(str(path), f"onnx.checker rejects the model: {exc}") from exc
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _run_onnx(path: Path, sample: Any) -> list[Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: sample.numpy()})


def _max_abs_diff(expected: list[Any], actual: list[Any]) -> float:
    """The largest absolute difference over all outputs; inf where shapes or NaNs differ."""
    import numpy as np

    if len(expected) != len(actual):
        return float("inf")
    worst = 0.0
    for want, got in zip(expected, actual, strict=True):
        want, got = want.detach().float().numpy(), np.asarray(got, dtype=np.float32)
        if want.shape != got.shape:
            return float("inf")
        same = (want == got) | (np.isnan(want) & np.isnan(got))
        diff = np.nan_to_num(np.where(same, 0.0, np.abs(want - got)), nan=np.inf)
        worst = max(worst, float(diff.max(initial=0.0)))
    return worst


# -- helpers ----------------------------------------------------------------------------------

def _cpu_model(model: Any) -> Any:
    """The unwrapped model on the CPU (a copy when it lives elsewhere: ORT runs on the CPU,
    and the caller's model stays where it is)."""
    import torch

    net = unwrap_model(model)
    if not isinstance(net, torch.nn.Module):
        raise ExportError(type(model).__name__, "ONNX export needs a torch.nn.Module")
    on_cpu = all(t.device.type == "cpu" for t in [*net.parameters(), *net.buffers()])
    return net if on_cpu else copy.deepcopy(net).cpu()


def _sample(sample: Any, path: Path) -> Any:
    import torch

    if not isinstance(sample, torch.Tensor) or sample.ndim < 1 or sample.shape[0] < 1:
        raise ExportError(str(path), "sample must be a tensor batch with at least one item")
    if not sample.is_floating_point():
        raise ExportError(str(path), f"sample must hold floats, got {sample.dtype}")
    return sample.detach().cpu().contiguous()


def _outputs(output: Any) -> list[Any]:
    import torch

    items = list(output) if isinstance(output, (tuple, list)) else [output]
    if not items or not all(isinstance(t, torch.Tensor) for t in items):
        raise ExportError("model", "ONNX export needs a model that returns tensors")
    return items


def _string_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(f"metadata keys must be strings, got {key!r}")
        out[key] = value if isinstance(value, str) else json.dumps(value)
    return out


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(str(path), "no such file")
    return path


def _required(meta: Mapping[str, str], key: str, path: str | Path) -> str:
    if not meta.get(key):
        raise CheckpointError(str(path), f"its metadata has no {key!r}; pass it explicitly or "
                              "save checkpoints with zoo.export.save_safetensors(metadata=...)")
    return meta[key]


def _rebuild(name: str, meta: Mapping[str, str], checkpoint: str | Path) -> Any:
    """``zoo.create(name, num_classes, pretrained=False)`` with the checkpoint's weights."""
    import zoo

    if meta.get("framework", "torch") != "torch":
        raise CheckpointError(str(checkpoint), f"holds a {meta['framework']} model; only "
                              "PyTorch checkpoints export to safetensors and ONNX")
    num_classes = _num_classes(meta, checkpoint)
    model = zoo.create(name, num_classes, pretrained=False)
    load_safetensors(model, checkpoint)
    return model.eval()


def _num_classes(meta: Mapping[str, str], path: str | Path) -> int:
    try:
        if meta.get("class_names"):
            names = json.loads(meta["class_names"])
            if not isinstance(names, list) or not names:
                raise ValueError("not a non-empty JSON list")
            return len(names)
        return int(_required(meta, "num_classes", path))
    except ValueError as exc:
        raise CheckpointError(str(path), f"bad class_names/num_classes metadata: {exc}") from exc


def _image_size(model: Any, meta: Mapping[str, str], path: str | Path) -> int:
    if meta.get("image_size"):
        try:
            return int(meta["image_size"])
        except ValueError as exc:
            raise CheckpointError(str(path), f"bad image_size metadata: {exc}") from exc
    size = getattr(getattr(model, "cairn_info", None), "input_size", None)
    return int(size[-1]) if size else 224


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
