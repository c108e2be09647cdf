"""Keras fine-tunes (``tfhub:`` models) measured with TensorFlow Lite on this machine's CPU.

A run's ``saved_model`` artifact is converted to ``.tflite`` at each precision: ``fp32``,
``fp16`` (float16 weights) and ``int8`` (full-integer quantization of weights and activations,
calibrated on the run's validation images, float input and output). Each file is first
checked against the Keras model on a sample of those images (the largest logit difference,
and how often the top class agrees), then timed with the TFLite interpreter in a child process
(``python -m zoo._profile_tflite SPEC``) exactly as :mod:`zoo._profile_ort` times ONNX
Runtime: warm-up, percentiles, peak memory, accuracy. Images are prepared as the Keras
fine-tune evaluates them (resized, scaled to [0, 1], normalised; NHWC).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo._profile_data import EvalSet
from zoo._profile_ort import _peak_increase_mb, _reset_peak, _rss_kb, summarise, timed_runs
from zoo._profile_ort import measure as ort_measure
from zoo.errors import ProfileError, QuantizationError

__all__ = ["PRECISIONS", "check_against_keras", "convert", "eval_set", "measure",
           "saved_model_of"]

PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATION = 64  # images for int8
CHECKED = 8  # images compared with the Keras model
EVAL_BATCH = 32


def saved_model_of(record: Any, store: Any, folder: Path) -> Path:
    """The run's ``saved_model`` artifact (a folder of files) as a local folder."""
    from zoo.export import KERAS_CHECKPOINT as CHECKPOINT

    files = [a for a in record.artifacts if a.name.startswith(CHECKPOINT + "/")]
    if not files:
        raise ProfileError(record.id[:8], f"the run logged no {CHECKPOINT}/ artifact")
    target = folder / CHECKPOINT
    if not (target / "saved_model.pb").is_file():
        for a in files:
            store.get(a.sha256, folder / a.name)
    return target


def eval_set(samples: Sequence[tuple[Path, int]], classes: Sequence[str],
             model_classes: Sequence[str] | None, config: Mapping[str, Any], folder: Path,
             description: str) -> EvalSet:
    """The samples as the Keras fine-tune evaluates them, written to ``folder`` (NHWC)."""
    import numpy as np
    from PIL import Image

    from zoo._profile_data import _label_map

    mapping = _label_map(classes, model_classes)
    _, h, w = config["input_size"]
    mean = np.array(config.get("mean") or (0.0, 0.0, 0.0), dtype=np.float32)
    std = np.array(config.get("std") or (1.0, 1.0, 1.0), dtype=np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    images = np.lib.format.open_memmap(folder / "images.npy", mode="w+", dtype=np.float32,
                                       shape=(len(samples), h, w, 3))
    for i, (path, _) in enumerate(samples):
        try:
            with Image.open(path) as image:
                pixels = image.convert("RGB").resize((w, h), Image.Resampling.BILINEAR)
        except OSError as exc:
            raise ProfileError(str(path), f"cannot read this image ({exc})") from exc
        images[i] = (np.asarray(pixels, dtype=np.float32) / 255.0 - mean) / std
    images.flush()
    np.save(folder / "labels.npy", np.array([mapping[label] for _, label in samples]))
    return EvalSet(folder / "images.npy", folder / "labels.npy", len(samples),
                   f"{description}: {len(samples)} images")


def convert(saved_model: Path, precision: str, out: Path, data: EvalSet | None) -> Path:
    """``saved_model`` as a ``.tflite`` file at ``precision`` (kept: reused next time)."""
    if out.is_file():
        return out
    import numpy as np

    from zoo.sources.tfhub import import_tf

    tf = import_tf().tf
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        if data is None:
            raise QuantizationError(str(saved_model), "int8 needs calibration images")
        images = np.load(data.images, mmap_mode="r")
        step = max(1, len(images) // CALIBRATION)
        chosen = np.ascontiguousarray(images[::step][:CALIBRATION], dtype=np.float32)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([chosen[i:i + 1]]
                                                    for i in range(len(chosen)))
    try:
        flat = converter.convert()
    except Exception as exc:  # the converter's errors are untyped (ConverterError, ...)
        error = QuantizationError if precision == "int8" else ProfileError
        raise error(str(saved_model), f"TFLite conversion to {precision} failed: "
                                      f"{str(exc).strip().splitlines()[-1][:300]}") from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    partial.write_bytes(flat)
    os.replace(partial, out)
    return out


def check_against_keras(saved_model: Path, tflite: Path, data: EvalSet) -> dict[str, float]:
    """The largest logit difference from the Keras model on the first ``CHECKED`` images,
    and the share of them whose top class agrees."""
    import numpy as np

    from zoo.sources.tfhub import import_tf

    tf = import_tf()
    x = np.ascontiguousarray(np.load(data.images, mmap_mode="r")[:CHECKED], dtype=np.float32)
    expected = tf.tf_keras.models.load_model(str(saved_model))(x, training=False).numpy()
    got = _invoke(_interpreter(tf.tf.lite, str(tflite), 1, x.shape), x)
    return {"max_abs_diff": float(np.max(np.abs(got - expected))),
            "top1_agreement": float(np.mean(got.argmax(1) == expected.argmax(1)))}


def measure(model: Path, *, batches: list[int], threads: int, repeats: int | None = None,
            images: Path | None = None, labels: Path | None = None) -> dict[str, Any]:
    """As :func:`zoo._profile_ort.measure`, with the TFLite interpreter."""
    return ort_measure(model, batches=batches, threads=threads, repeats=repeats, images=images,
                       labels=labels, child="zoo._profile_tflite",
                       runtime="the TFLite interpreter")


# -- the child process ----------------------------------------------------------------------

def _interpreter(lite: Any, model: str, threads: int, shape: Sequence[int]) -> Any:
    """An interpreter for inputs of ``shape``, allocated once: one per batch size, as
    XNNPACK may fail to prepare again for a resized input."""
    with warnings.catch_warnings():  # TF 2.20+ points to LiteRT; the interpreter still runs
        warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated")
        interpreter = lite.Interpreter(model_path=model, num_threads=threads)
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], list(shape))
    interpreter.allocate_tensors()
    return interpreter


def _invoke(interpreter: Any, x: Any) -> Any:
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _accuracy(lite: Any, spec: dict[str, Any], dims: list[int]) -> tuple[float, int]:
    """Top-1 accuracy in batches of one size (the last one padded)."""
    import numpy as np

    x, y = np.load(spec["images"], mmap_mode="r"), np.load(spec["labels"])
    size = min(EVAL_BATCH, len(y))
    interpreter = _interpreter(lite, spec["model"], spec["threads"], (size, *dims))
    correct = 0
    for start in range(0, len(y), size):
        batch = np.zeros((size, *dims), dtype=np.float32)
        part = x[start:start + size]
        batch[:len(part)] = part
        found = _invoke(interpreter, batch)[:len(part)].argmax(1)
        correct += int((found == y[start:start + size]).sum())
    return correct / len(y), len(y)


def _main(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import tensorflow as tf

    reset = _reset_peak()
    base = _rss_kb("VmRSS")
    started = time.perf_counter()
    first = tf.lite.Interpreter(model_path=spec["model"], num_threads=spec["threads"])
    first.allocate_tensors()
    load_s = time.perf_counter() - started
    dims = [int(d) for d in first.get_input_details()[0]["shape"][1:]]
    del first
    rng = np.random.default_rng(0)
    results = []
    for batch in spec["batches"]:
        x = rng.standard_normal((batch, *dims), dtype=np.float32)
        interpreter = _interpreter(tf.lite, spec["model"], spec["threads"], x.shape)
        results.append(summarise(timed_runs(lambda i=interpreter, b=x: _invoke(i, b),
                                            spec["repeats"]), batch))
    out = {"batches": results, "peak_memory_mb": _peak_increase_mb(base, reset),
           "session_load_s": load_s, "input_shape": dims, "tensorflow": tf.__version__}
    if spec.get("images"):
        out["accuracy"], out["n_eval"] = _accuracy(tf.lite, spec, dims)
    return out


if __name__ == "__main__":
    print(json.dumps(_main(json.loads(sys.argv[1]))))
