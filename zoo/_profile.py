"""``profile``: a model measured with ONNX Runtime on this machine's CPU, fp32 and static int8,
recorded on its run and written into its model card.

    report = profile("1a2b3c4d", batches=(1, 8, 32), precisions=("fp32", "int8"))
    report.get("int8").at(1)["p50"], report.get("int8").accuracy

The model comes from a run (its ``model.onnx`` artifact, else its ``model.safetensors``
exported; a Keras fine-tune's ``saved_model`` goes to TensorFlow Lite instead, fp32, fp16
and int8, see :mod:`zoo._profile_tflite`), a model card (``catalog:NAME[@V]``, or a name no
run has) or a file (``.onnx`` or a ``.safetensors`` checkpoint with zoo metadata). Exports
are kept under the workspace's state folder by weights digest and reused. Accuracy and int8
calibration use the run's validation split, or ``data`` (an image folder); without either,
accuracy is skipped and int8 too.
Cards are reached through the ``catalog`` zoo source (the zoo imports no catalog).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo._profile_data import (
    EvalSet,
    config_from_params,
    folder_samples,
    preprocess,
    quantize_int8,
    run_samples,
)
from zoo._profile_ort import measure
from zoo._profile_report import PrecisionProfile, ProfileReport
from zoo.errors import ProfileError, QuantizationError, UnknownModelError

__all__ = ["PRECISIONS", "profile"]

PRECISIONS = ("fp32", "int8")  # ONNX Runtime; TFLite adds fp16
CARD_SOURCE = "catalog"
_IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
             "interpolation": "bilinear", "crop_pct": 0.875}


@dataclass
class _Target:
    """What to measure: an ONNX file, and what is known about the model and its data."""

    label: str
    onnx: Path
    cache: Path  # where derived files (the int8 model) are kept
    classes: list[str] | None = None
    preprocessing: dict[str, Any] | None = None
    run: Any = None  # registry.RunRecord
    card: str | None = None  # the card's name@version
    notes: list[str] = field(default_factory=list)
    saved_model: Path | None = None  # a Keras model, measured with TFLite instead

    @property
    def runtime(self) -> str:
        return "tflite" if self.saved_model is not None else "onnxruntime"

    @property
    def precisions(self) -> tuple[str, ...]:
        from zoo import _profile_tflite

        return _profile_tflite.PRECISIONS if self.saved_model is not None else PRECISIONS


def profile(source: str, *, batches: tuple[int, ...] = (1, 8, 32), threads: int | None = None,
            precisions: tuple[str, ...] | None = None, repeats: int | None = None,
            data: str | Path | None = None, card: str | None = None, record: bool = True,
            workspace: Any = None) -> ProfileReport:
    """Profile model ``source`` (a run, ``catalog:CARD`` or a file) at each batch size and
    precision (default: every one its runtime has); record it on the model's run and card
    (``card`` names another) unless ``record`` is False."""
    import registry

    _check(batches, threads, repeats)
    ws = workspace or registry.load_workspace()
    target = _resolve(source, ws)
    precisions = _precisions(target, precisions)
    threads = threads or _cores()
    with tempfile.TemporaryDirectory(prefix="cairn-profile-") as tmp:
        evalset = _eval_set(target, data, Path(tmp))
        report = _report(target, threads, evalset)
        _measure_all(report, target, sorted(set(batches)), threads, precisions, repeats,
                     evalset)
    if record:
        _record(report, target, card, ws)
    return report


def _check(batches: tuple[int, ...], threads: int | None, repeats: int | None) -> None:
    if not batches or any(not isinstance(b, int) or b < 1 for b in batches):
        raise ValueError(f"batch sizes must be positive integers, got {batches!r}")
    if any(n is not None and n < 1 for n in (threads, repeats)):
        raise ValueError("threads and repeats must be at least 1")


def _precisions(target: _Target, asked: tuple[str, ...] | None) -> tuple[str, ...]:
    known = target.precisions
    if asked is None:
        return known
    if not asked or any(p not in known for p in asked):
        raise ValueError(f"precisions of {target.runtime} must be among {', '.join(known)}, "
                         f"got {asked!r}")
    return asked


def _cores() -> int:
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return len(cores) if cores else os.cpu_count() or 1


def _report(target: _Target, threads: int, evalset: EvalSet | None) -> ProfileReport:
    from registry.capture.hardware import capture_hardware

    info, _ = capture_hardware()
    cpu = (info.get("cpu") or {}).get("model") or "unknown CPU"
    return ProfileReport(target=target.label, hardware=cpu, machine=info.get("machine") or "",
                         threads=threads, runtime_version=_runtime_version(target),
                         notes=list(target.notes), runtime=target.runtime,
                         data=evalset.description if evalset else None)


def _runtime_version(target: _Target) -> str:
    if target.saved_model is not None:
        from zoo.sources.tfhub import import_tf

        return import_tf().tf.__version__
    import onnxruntime as ort

    return ort.__version__


def _measure_all(report: ProfileReport, target: _Target, batches: list[int], threads: int,
                 precisions: tuple[str, ...], repeats: int | None,
                 evalset: EvalSet | None) -> None:
    if target.saved_model is not None:
        _measure_tflite(report, target, batches, threads, precisions, repeats, evalset)
        return

    def run(precision: str, path: Path) -> None:
        found = measure(path, batches=batches, threads=threads, repeats=repeats,
                        images=evalset.images if evalset else None,
                        labels=evalset.labels if evalset else None)
        report.profiles.append(PrecisionProfile(
            precision, path, path.stat().st_size / 2**20, found["batches"],
            found.get("peak_memory_mb"), found.get("accuracy"), found.get("n_eval")))

    if "fp32" in precisions:
        run("fp32", target.onnx)
    if "int8" not in precisions:
        return
    if evalset is None:
        report.notes.append("int8 skipped: static quantization needs calibration images "
                            "(a run with validation data, or --data DIR)")
        return
    try:
        run("int8", quantize_int8(target.onnx, target.cache / "model.int8.onnx", evalset))
    except (QuantizationError, ProfileError) as exc:
        report.failures["int8"] = str(exc)


def _measure_tflite(report: ProfileReport, target: _Target, batches: list[int], threads: int,
                    precisions: tuple[str, ...], repeats: int | None,
                    evalset: EvalSet | None) -> None:
    """Each precision converted, checked against the Keras model, then timed."""
    from zoo import _profile_tflite as tfl

    for precision in precisions:
        if precision == "int8" and evalset is None:
            report.notes.append("int8 skipped: full-integer quantization needs calibration "
                                "images (a run with validation data, or --data DIR)")
            continue
        try:
            path = tfl.convert(target.saved_model, precision,
                               target.cache / f"model.{precision}.tflite", evalset)
            checked = (tfl.check_against_keras(target.saved_model, path, evalset)
                       if evalset is not None else {})
            found = tfl.measure(path, batches=batches, threads=threads, repeats=repeats,
                                images=evalset.images if evalset else None,
                                labels=evalset.labels if evalset else None)
        except (QuantizationError, ProfileError) as exc:
            report.failures[precision] = str(exc)
            continue
        report.profiles.append(PrecisionProfile(
            precision, path, path.stat().st_size / 2**20, found["batches"],
            found.get("peak_memory_mb"), found.get("accuracy"), found.get("n_eval"),
            runtime="tflite", checked=checked))


def _eval_set(target: _Target, data: str | Path | None, tmp: Path) -> EvalSet | None:
    found = folder_samples(data) if data else (
        run_samples(target.run.params) if target.run is not None else None)
    if found is None:
        target.notes.append("accuracy skipped: no validation data (the model has no run "
                            "with a data folder; pass --data DIR)")
        return None
    if target.preprocessing is None:
        raise ProfileError(target.label, "its preprocessing is unknown, so accuracy cannot "
                           "be measured on images")
    samples, classes, description = found
    if target.saved_model is not None:
        from zoo import _profile_tflite

        return _profile_tflite.eval_set(samples, classes, target.classes, target.preprocessing,
                                        tmp / "eval", description)
    return preprocess(samples, classes, target.classes, target.preprocessing, tmp / "eval",
                      description)


def _record(report: ProfileReport, target: _Target, card: str | None, ws: Any) -> None:
    import registry

    if target.run is not None:
        registry.add_to_run(target.run.id, metrics=report.metrics(), tags=report.tags(),
                            note=report.note(), workspace=ws)
        report.run_id = target.run.id
    name = card or target.card
    if name:
        report.card_path = _card_hook().record_inference(name, report.card_entries())


# -- what to measure --------------------------------------------------------------------------

def _resolve(source: str, ws: Any) -> _Target:
    """A file, ``catalog:CARD``, a run, else a card of that name."""
    from registry.errors import RunNotFoundError

    if Path(source).is_file():
        return _file_target(Path(source), ws)
    if source.startswith(f"{CARD_SOURCE}:"):
        return _card_target(source.removeprefix(f"{CARD_SOURCE}:"), ws)
    import registry

    try:
        return _run_target(registry.get_run(source, workspace=ws), ws)
    except RunNotFoundError as exc:
        try:
            return _card_target(source, ws)
        except UnknownModelError:
            raise ProfileError(source, "no file, run or model card has this name") from exc


def _cache(ws: Any, key: str) -> Path:
    folder = ws.ensure_state_dir() / "profile" / key
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _run_target(record: Any, ws: Any) -> _Target:
    from registry.artifacts import ArtifactStore
    from zoo.export import checkpoint_artifact, export_checkpoint

    params = record.params
    store = ArtifactStore(ws.artifact_root)
    if params.get("framework") == "keras":
        return _keras_target(record, store, ws)
    if params.get("framework", "torch") != "torch":
        raise ProfileError(record.id[:8], f"a {params['framework']} model: only PyTorch "
                           "(ONNX Runtime) and Keras (TFLite) fine-tunes are profiled")
    onnx_art = next((a for a in record.artifacts if a.name.endswith(".onnx")), None)
    weights = onnx_art or checkpoint_artifact(record)
    if weights is None:
        raise ProfileError(record.id[:8], "the run logged neither model.onnx nor "
                           "model.safetensors")
    folder = _cache(ws, weights.sha256[:16])
    onnx = folder / "model.onnx"
    if not onnx.is_file():
        if onnx_art is not None:
            store.get(onnx_art.sha256, onnx)
        else:
            checkpoint = store.get(weights.sha256, folder / "model.safetensors")
            export_checkpoint(None, checkpoint, folder, formats=("onnx",))
    return _Target(label=f"run {record.id[:8]} ({record.name or ''})", onnx=onnx, cache=folder,
                   classes=_names(params.get("class_names")),
                   preprocessing=config_from_params(params), run=record)


def _keras_target(record: Any, store: Any, ws: Any) -> _Target:
    from zoo import _profile_tflite
    from zoo.export import KERAS_CHECKPOINT

    files = sorted(a.sha256 for a in record.artifacts
                   if a.name.startswith(KERAS_CHECKPOINT + "/"))
    folder = _cache(ws, hashlib.sha256("".join(files).encode()).hexdigest()[:16])
    saved = _profile_tflite.saved_model_of(record, store, folder)
    return _Target(label=f"run {record.id[:8]} ({record.name or ''})", onnx=saved,
                   cache=folder, classes=_names(record.params.get("class_names")),
                   preprocessing=config_from_params(record.params), run=record,
                   saved_model=saved)


def _card_target(name: str, ws: Any) -> _Target:
    import registry

    described = _card_hook().profile_target(name)
    folder = _cache(ws, f"{described['sha256'][:16]}")
    onnx = folder / "model.onnx"
    if not onnx.is_file():
        _export_card(described, onnx)
    run = None
    for ref in described.get("runs") or []:
        try:
            run = registry.get_run(ref, workspace=ws)
            break
        except registry.errors.CairnError:
            continue
    config = config_from_params(run.params) if run is not None else None
    return _Target(label=f"card {described['ref']}", onnx=onnx, cache=folder,
                   classes=described["labels"],
                   preprocessing=config or _card_config(described["input"]), run=run,
                   card=described["ref"])


def _export_card(described: dict[str, Any], onnx: Path) -> None:
    import torch

    import zoo
    from zoo.export import export_onnx

    model = zoo.create(f"{CARD_SOURCE}:{described['ref']}", len(described["labels"]))
    h, w = _card_config(described["input"])["input_size"][1:]
    sample = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    export_onnx(model, onnx, sample=sample)


def _card_config(spec: dict[str, Any]) -> dict[str, Any]:
    size = spec.get("size")
    h, w = (size, size) if isinstance(size, int) else (list(size) * 2)[-2:]
    return {**_IMAGENET, **{k: spec[k] for k in ("mean", "std", "interpolation", "crop_pct")
                            if spec.get(k) is not None}, "input_size": (3, h, w)}


def _file_target(path: Path, ws: Any) -> _Target:
    from zoo.export import export_checkpoint, read_metadata

    if path.suffix not in (".onnx", ".safetensors"):
        raise ProfileError(str(path), "a model file is .onnx or .safetensors")
    folder = _cache(ws, hashlib.sha256(path.read_bytes()).hexdigest()[:16])
    if path.suffix == ".safetensors":
        if not (folder / "model.onnx").is_file():
            export_checkpoint(None, path, folder, formats=("onnx",))
        meta, onnx = read_metadata(path), folder / "model.onnx"
    else:
        meta, onnx = _onnx_metadata(path), path
    target = _Target(label=str(path), onnx=onnx, cache=folder,
                     classes=_names(meta.get("class_names")))
    target.preprocessing = _file_config(meta, onnx, target.notes)
    return target


def _onnx_metadata(path: Path) -> dict[str, str]:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's decode errors are untyped
        raise ProfileError(str(path), f"not a readable ONNX file ({exc})") from exc
    return {p.key: p.value for p in proto.metadata_props}


def _file_config(meta: dict[str, str], onnx: Path, notes: list[str]) -> dict[str, Any]:
    """The zoo model's preprocessing named in the metadata, else ImageNet's (said so)."""
    import zoo

    size = _onnx_size(onnx)
    try:
        info = zoo.info(meta["model"])
        found = {"mean": info.mean, "std": info.std, "interpolation": info.interpolation,
                 "crop_pct": info.crop_pct}
        return {**_IMAGENET, **{k: v for k, v in found.items() if v}, "input_size": size}
    except (KeyError, UnknownModelError):
        notes.append("preprocessing assumed: ImageNet mean/std, bilinear, crop 0.875 (the "
                     "file names no zoo model)")
        return {**_IMAGENET, "input_size": size}


def _onnx_size(onnx: Path) -> tuple[int, int, int]:
    import onnx as onnx_lib

    dims = onnx_lib.load(str(onnx), load_external_data=False).graph.input[0].type \
        .tensor_type.shape.dim
    values = [d.dim_value for d in dims[1:]]
    if len(values) != 3 or not all(values):
        raise ProfileError(str(onnx), "its input has no fixed (channels, height, width)")
    return values[0], values[1], values[2]


def _names(value: Any) -> list[str] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return [str(v) for v in value] if isinstance(value, list) and value else None


def _card_hook() -> Any:
    """The catalog source, which finds cards and writes their ``inference:`` entries."""
    from zoo._registry import get_source

    source = get_source(CARD_SOURCE)
    if not hasattr(source, "record_inference"):
        raise ProfileError(CARD_SOURCE, "the installed catalog cannot take profiles")
    return source
