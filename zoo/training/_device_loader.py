"""Batches decoded on the training device: loader workers only read JPEG files, nvJPEG
(``torchvision.io.decode_jpeg(..., device=...)``) decodes a whole batch at once on the GPU,
and :class:`DeviceAugment` crops and jitters it there.

A thread prepares the next batches on a side CUDA stream while the training step runs, so
the step waits for neither the disk, the decoder nor the augmentation. On a CPU device the
same code decodes with torchvision on the CPU, or with PIL where torchvision's decoder does
not load (useful for tests; slower than the workers).

A batch nvJPEG refuses (a CMYK or otherwise unusual JPEG) is decoded image by image, and an
image it still cannot read is decoded with PIL, as the worker loader would; an image PIL
cannot read either raises :class:`DataFolderError` naming it.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import random
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from zoo.errors import DataFolderError
from zoo.training._device_augment import DeviceAugment
from zoo.training.data import Sample, open_rgb

__all__ = ["JPEG_SUFFIXES", "DeviceBatches", "EncodedImages", "collate_encoded",
           "device_decode_error"]

JPEG_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif"})
_AHEAD = 3  # batches prepared ahead of the training step


class EncodedImages(Dataset):
    """(file bytes, label, index) of each sample: all a worker does is read the file."""

    def __init__(self, samples: Sequence[Sample]) -> None:
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[bytes, int, int]:
        path, label = self.samples[index]
        try:
            return Path(path).read_bytes(), label, index
        except OSError as exc:
            raise DataFolderError(str(path), f"cannot read this image ({exc})") from exc


def collate_encoded(batch: list[tuple[bytes, int, int]]) -> tuple[torch.Tensor, ...]:
    """A batch as three tensors (all files' bytes end to end, each file's length, labels)
    and the sample indices: a handful of shared-memory blocks per batch, not one per file."""
    data, labels, indices = zip(*batch, strict=True)
    return (torch.frombuffer(bytearray(b"".join(data)), dtype=torch.uint8),
            torch.tensor([len(d) for d in data]), torch.tensor(labels), torch.tensor(indices))


@functools.cache
def device_decode_error(device: torch.device) -> str | None:
    """Why this device cannot decode JPEGs (None if it can), tried once per process on a
    tiny image."""
    try:
        _decode([_tiny_jpeg()], device)
    except Exception as exc:  # any failure means: use the workers instead
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


class DeviceBatches:
    """Iterates like a DataLoader of (images, labels), both already on ``device``.

    ``loader`` yields :func:`collate_encoded` batches of ``samples``; the seed of
    ``generator`` (the loader's, reseeded each epoch) seeds the augmentation, so an epoch's
    crops and its order come from the same seed; ``rank`` keeps processes' crops apart.
    """

    def __init__(self, loader: DataLoader, samples: Sequence[Sample], augment: DeviceAugment,
                 device: torch.device, generator: torch.Generator, rank: int = 0) -> None:
        if device.type == "cuda" and device.index is None:  # the thread must know which
            device = torch.device("cuda", torch.cuda.current_device())
        self.loader, self.samples, self.augment = loader, list(samples), augment
        self.device, self.generator, self.rank = device, generator, rank
        # Where torchvision's decoder cannot load (a CPU-only machine with a CUDA build of
        # torchvision), PIL decodes in the thread instead.
        self.nvjpeg = device_decode_error(device) is None

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # The generator's seed (the epoch's, after Loaders.set_epoch), not a draw from it: a
        # draw would move the shuffle that the sampler makes from it.
        rng = random.Random(f"augment:{self.generator.initial_seed()}:{self.rank}")
        ahead = _Ahead(self._prepare, iter(self.loader), rng, self.device)
        try:
            yield from ahead
        finally:
            ahead.close()

    def _prepare(self, batch: tuple[torch.Tensor, ...], rng: random.Random,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        data, lengths, labels, indices = batch
        files = list(torch.split(data, lengths.tolist()))
        images = self._decode(files, indices.tolist())
        return self.augment(images, rng), labels.to(self.device, non_blocking=True)

    def _decode(self, files: list[torch.Tensor], indices: list[int]) -> list[torch.Tensor]:
        if self.nvjpeg:
            try:
                return _decode(files, self.device)
            except RuntimeError:  # one image spoils the batch: find it
                pass
        return [self._decode_one(f, i) for f, i in zip(files, indices, strict=True)]

    def _decode_one(self, data: torch.Tensor, index: int) -> torch.Tensor:
        if self.nvjpeg:
            try:
                return _decode([data], self.device)[0]
            except RuntimeError:
                pass
        return _pil_decode(data, self.samples[index][0]).to(self.device, non_blocking=True)


class _Ahead:
    """Runs ``prepare`` over ``batches`` in a thread, ``_AHEAD`` batches ahead, on a side
    stream when the device is CUDA; iterating gives the results in order."""

    _END = object()

    def __init__(self, prepare: Any, batches: Iterator, rng: random.Random,
                 device: torch.device) -> None:
        self.prepare, self.batches, self.rng, self.device = prepare, batches, rng, device
        self.results: queue.Queue = queue.Queue(_AHEAD)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._work, name="cairn-device-batches",
                                       daemon=True)
        self.thread.start()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            item = self._get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            images, labels, event = item
            if event is not None:  # the step's stream waits for the side stream's work
                stream = torch.cuda.current_stream(self.device)
                stream.wait_event(event)
                images.record_stream(stream)
                labels.record_stream(stream)
            yield images, labels

    def _get(self) -> Any:
        while True:
            try:
                return self.results.get(timeout=1.0)
            except queue.Empty:
                if not self.thread.is_alive() and self.results.empty():
                    raise RuntimeError("the batch-preparing thread ended without a word") from None

    def _work(self) -> None:
        cuda = self.device.type == "cuda"
        try:
            if cuda:
                torch.cuda.set_device(self.device)
            side = torch.cuda.Stream(self.device) if cuda else None
            for batch in self.batches:
                if self.stopping.is_set():
                    return
                with torch.cuda.stream(side) if cuda else contextlib.nullcontext():
                    images, labels = self.prepare(batch, self.rng)
                    event = torch.cuda.Event() if cuda else None
                    if event is not None:
                        event.record(side)
                self._put((images, labels, event))
            self._put(self._END)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def _put(self, item: Any) -> None:
        while not self.stopping.is_set():
            try:
                self.results.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Stop the thread (the consumer left early or is done) and drop what it made."""
        self.stopping.set()
        self.thread.join()
        del self.batches


def _decode(files: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg

    images = decode_jpeg(files, mode=ImageReadMode.RGB, device=device)
    return list(images)


def _pil_decode(data: torch.Tensor, path: Path) -> torch.Tensor:
    import io

    import numpy as np

    pixels = np.asarray(open_rgb(path, io.BytesIO(data.numpy().tobytes())))
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous()


def _tiny_jpeg() -> torch.Tensor:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, format="JPEG")
    return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)
