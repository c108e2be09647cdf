"""Keras input pipelines over an image folder split: ``tf.data`` batches of normalised images
and one-hot labels, decoded by TensorFlow where it can (PIL otherwise)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from zoo.sources.tfhub import import_tf
from zoo.training.data import Sample

__all__ = ["dataset", "preprocessing"]

tf = import_tf().tf
_TF_DECODES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})  # others go through PIL


def dataset(samples: list[Sample], info: Any, size: int, k: int, batch: int, *,
            training: bool = False, seed: int = 0) -> Any:
    """A batched, prefetched tf.data pipeline of (normalised image, one-hot label)."""
    paths = [str(p) for p, _ in samples]
    labels = np.array([label for _, label in samples], dtype=np.int32)
    mean = tf.constant(info.mean or (0.0, 0.0, 0.0), tf.float32)
    std = tf.constant(info.std or (1.0, 1.0, 1.0), tf.float32)
    decode = _tf_decode if all(Path(p).suffix.lower() in _TF_DECODES for p in paths) \
        else _pil_decode

    def load(path: Any, label: Any) -> tuple[Any, Any]:
        image = decode(path)
        image = _augment(image, size, seed) if training else tf.image.resize(image, (size, size))
        image = (tf.cast(image, tf.float32) / 255.0 - mean) / std
        return image, tf.one_hot(label, k)

    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    if training:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)


def preprocessing(info: Any, size: int) -> dict[str, Any]:
    """The model's preprocessing at input ``size``, as plain values (JSON)."""
    cfg = replace(info, input_size=(3, size, size)).data_config()
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}


def _tf_decode(path: Any) -> Any:
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _pil_decode(path: Any) -> Any:
    def read(raw: bytes) -> np.ndarray:
        from PIL import Image

        with Image.open(raw.decode()) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)

    image = tf.numpy_function(read, [path], tf.uint8, stateful=False)
    image.set_shape([None, None, 3])
    return image


def _augment(image: Any, size: int, seed: int) -> Any:
    """A random resized crop (8-100% of the area, aspect 3/4-4/3) and a horizontal flip."""
    begin, extent, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image), tf.zeros([1, 0, 4], tf.float32), min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0), max_attempts=10,
        use_image_if_no_bounding_boxes=True, seed=seed)
    image = tf.image.resize(tf.slice(image, begin, extent), (size, size))
    return tf.image.random_flip_left_right(image, seed=seed)
