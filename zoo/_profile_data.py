"""The labelled images a profile measures accuracy on and calibrates int8 with, and the
static int8 quantization itself.

Images are preprocessed once, as the model was evaluated (timm's eval transform of the
run's recorded ``preprocessing``, else the card's or the model's input spec), into a float32
``.npy`` file that the measuring process maps instead of loading.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import DataFolderError, ProfileError, QuantizationError
from zoo.training.data import Sample, open_rgb, prepare, scan_image_folder

__all__ = ["CALIBRATION_IMAGES", "EvalSet", "folder_samples", "preprocess", "quantize_int8",
           "run_samples"]

CALIBRATION_IMAGES = 64


@dataclass(frozen=True)
class EvalSet:
    """Preprocessed images and their labels (indices into the model's classes)."""

    images: Path
    labels: Path
    n: int
    description: str


def run_samples(params: Mapping[str, Any]) -> tuple[list[Sample], list[str], str] | None:
    """The validation split a fine-tune run recorded (its ``data``, ``val_fraction`` and
    ``seed`` params), its class names and a description; None when the run has no data."""
    data = params.get("data")
    if not data or params.get("val_fraction") is None:
        return None
    fraction, seed = float(params["val_fraction"]), int(params.get("seed") or 0)
    try:
        classes, _, val = prepare(data, None, fraction, seed)
    except DataFolderError as exc:
        raise ProfileError(str(data), f"the run's validation data is not readable here: "
                           f"{exc}; pass --data DIR") from exc
    return val, classes, (f"the run's validation split of {data} (val_fraction {fraction:g}, "
                          f"seed {seed})")


def folder_samples(root: str | Path) -> tuple[list[Sample], list[str], str]:
    """Every image of an image folder (one sub-folder per class), its classes, a description."""
    index = scan_image_folder(root)
    return index.samples, index.classes, f"every image of {root}"


def preprocess(samples: Sequence[Sample], classes: Sequence[str],
               model_classes: Sequence[str] | None, config: Mapping[str, Any], folder: Path,
               description: str) -> EvalSet:
    """Write the samples, transformed by timm's eval transform of ``config``, to ``folder``;
    labels are mapped to ``model_classes`` by name (the model's order)."""
    import numpy as np

    from zoo._compat import import_timm

    mapping = _label_map(classes, model_classes)
    transform = import_timm().data.create_transform(**_transform_args(config),
                                                    is_training=False)
    size = tuple(config["input_size"])
    folder.mkdir(parents=True, exist_ok=True)
    images = np.lib.format.open_memmap(folder / "images.npy", mode="w+", dtype=np.float32,
                                       shape=(len(samples), *size))
    for i, (path, _) in enumerate(samples):
        images[i] = transform(open_rgb(path)).numpy()
    images.flush()
    np.save(folder / "labels.npy", np.array([mapping[label] for _, label in samples]))
    return EvalSet(folder / "images.npy", folder / "labels.npy", len(samples),
                   f"{description}: {len(samples)} images")


def _label_map(classes: Sequence[str], model_classes: Sequence[str] | None) -> dict[int, int]:
    if not model_classes:
        return {i: i for i in range(len(classes))}
    unknown = sorted(set(classes) - set(model_classes))
    if unknown:
        raise ProfileError("the data", f"its classes {', '.join(unknown)} are not the model's "
                           f"({', '.join(model_classes)})")
    return {i: list(model_classes).index(name) for i, name in enumerate(classes)}


def _transform_args(config: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
    args = {k: config[k] for k in keys if config.get(k) is not None}
    args["input_size"] = tuple(args["input_size"])
    return args


def config_from_params(params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The preprocessing a fine-tune run recorded (its ``preprocessing`` JSON param)."""
    text = params.get("preprocessing")
    try:
        config = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return config if isinstance(config, dict) and config.get("input_size") else None


# -- int8 -------------------------------------------------------------------------------------

class _Calibration:
    """onnxruntime's CalibrationDataReader over an evenly spaced subset of the eval images."""

    def __init__(self, data: EvalSet, input_name: str, limit: int, batch: int = 8) -> None:
        import numpy as np

        images = np.load(data.images, mmap_mode="r")
        step = max(1, math.ceil(data.n / limit))
        chosen = np.ascontiguousarray(images[::step][:limit], dtype=np.float32)
        self._batches: Iterator[Any] = iter([{input_name: chosen[i:i + batch]}
                                             for i in range(0, len(chosen), batch)])

    def get_next(self) -> dict[str, Any] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # onnxruntime calls it for some calibration methods
        pass


def quantize_int8(fp32: Path, out: Path, data: EvalSet,
                  limit: int = CALIBRATION_IMAGES) -> Path:
    """Static int8 quantization (QDQ, per-channel weights) of ``fp32`` into ``out``,
    calibrated on up to ``limit`` of ``data``'s images. QuantizationError on failure."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    reader_type = type("CairnCalibration", (_Calibration, CalibrationDataReader), {})
    name = onnx.load(str(fp32), load_external_data=False).graph.input[0].name
    source = _preprocessed(fp32, out.with_name(out.stem + ".pre.onnx"))
    try:
        quantize_static(str(source), str(out), reader_type(data, name, limit),
                        quant_format=QuantFormat.QDQ, per_channel=True)
    except Exception as exc:  # onnxruntime's quantizer raises untyped errors per operator
        raise QuantizationError(str(fp32), _first_line(exc)) from exc
    return out


def _preprocessed(fp32: Path, out: Path) -> Path:
    """onnxruntime's recommended pre-processing (shape inference, graph optimisation) before
    quantizing; the file unchanged where that step cannot handle it."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(fp32), str(out))
        return out
    except Exception:  # optional step: quantizing the plain file still works
        return fp32


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
