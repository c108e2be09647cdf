"""PyTorch datasets and loaders over an image folder split, preprocessed as the backbone
was trained (timm's ``resolve_data_config`` + ``create_transform``)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from zoo._compat import import_timm
from zoo.errors import FinetuneConfigError
from zoo.training._device_augment import DeviceAugment, unsupported_augment
from zoo.training._device_loader import (
    JPEG_SUFFIXES,
    DeviceBatches,
    EncodedImages,
    collate_encoded,
    device_decode_error,
)
from zoo.training.data import Sample, open_rgb

__all__ = ["ImageDataset", "Loaders", "ShardSampler", "choose_decode", "data_config",
           "make_loaders"]


class ImageDataset(Dataset):
    """(path, label) samples decoded with PIL as RGB and passed through ``transform``."""

    def __init__(self, samples: Sequence[Sample], transform: Any) -> None:
        self.samples, self.transform = list(samples), transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return self.transform(open_rgb(path)), label


class ShardSampler(Sampler[int]):
    """Every ``world``-th index from ``rank``: each sample seen once across processes, no
    padding (evaluation must not count duplicates)."""

    def __init__(self, size: int, rank: int, world: int) -> None:
        self.indices = range(rank, size, world)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class Loaders:
    """The training loader (shuffled, sharded under DDP, drops a ragged last batch), the
    validation loader (this process's shard) and the whole validation set (for evaluation)."""

    train: DataLoader | DeviceBatches
    val: DataLoader | DeviceBatches
    val_full: DataLoader | DeviceBatches
    train_sampler: DistributedSampler | None
    generator: torch.Generator
    seed: int
    data_config: dict[str, Any]

    def set_epoch(self, epoch: int) -> None:
        """Shuffle epoch ``epoch`` the same way every time (so a resumed run sees the order
        an uninterrupted one would have)."""
        if self.train_sampler is not None:
            self.train_sampler.set_epoch(epoch)
        self.generator.manual_seed(self.seed + epoch)


def data_config(model: Any, image_size: int | None = None) -> dict[str, Any]:
    """The backbone's preprocessing config; ``image_size`` replaces its input size."""
    timm = import_timm()
    config = timm.data.resolve_data_config({}, model=model)
    if image_size is not None:
        config["input_size"] = (config["input_size"][0], image_size, image_size)
    return config


def make_loaders(train: Sequence[Sample], val: Sequence[Sample], *, config: dict[str, Any],
                 batch_size: int, workers: int, seed: int, rank: int = 0, world: int = 1,
                 pin_memory: bool = False, augment: bool | Mapping[str, Any] = True,
                 decode: str = "workers", device: torch.device | None = None) -> Loaders:
    """Loaders that keep an accelerator fed: worker processes that persist across epochs,
    pinned memory on CUDA, a few batches prefetched per worker. ``augment``: timm's standard
    training augmentation (True), none (False), or timm ``create_transform`` options.
    ``decode='device'``: the workers only read the files; decoding and augmentation happen
    on ``device`` (:mod:`zoo.training._device_loader`), and batches come out on it."""
    on_device = decode == "device"
    train_set, val_set = ((EncodedImages(train), EncodedImages(val)) if on_device
                          else _image_datasets(train, val, config, augment))
    sampler = None
    if world > 1:
        sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True,
                                     seed=seed, drop_last=False)
    generator = torch.Generator().manual_seed(seed)
    common = _loader_options(workers, pin_memory and not on_device, on_device)
    train_loader = DataLoader(train_set, batch_size=batch_size, sampler=sampler,
                              shuffle=sampler is None, generator=generator,
                              drop_last=len(train_set) // world > batch_size, **common)
    val_loader = DataLoader(val_set, batch_size=batch_size,
                            sampler=ShardSampler(len(val_set), rank, world), **common)
    full = val_loader if world == 1 else DataLoader(
        val_set, batch_size=batch_size, **_loader_options(0, pin_memory, on_device))
    if on_device:
        device = torch.device(device or "cpu")
        train_tf = DeviceAugment.from_config(config, augment, train=True)
        eval_tf = DeviceAugment.from_config(config, train=False)
        train_loader = DeviceBatches(train_loader, train, train_tf, device, generator, rank)
        val_loader, full = (DeviceBatches(loader, val, eval_tf, device, torch.Generator(), rank)
                            for loader in (val_loader, full))
    return Loaders(train_loader, val_loader, full, sampler, generator, seed, config)


def choose_decode(requested: str, device: torch.device, samples: Sequence[Sample],
                  augment: bool | Mapping[str, Any], config: Mapping[str, Any],
                  ) -> tuple[str, str | None]:
    """Where to decode (``'device'`` or ``'workers'``) and, when ``'auto'`` on CUDA falls
    back to the workers, why. ``'device'`` that cannot be honoured is a FinetuneConfigError."""
    if requested == "workers" or (requested == "auto" and device.type != "cuda"):
        return "workers", None
    why = (_not_jpeg(samples) or unsupported_augment(augment, config)
           or (device_decode_error(device) if device.type == "cuda" else None))
    if why is None:
        return "device", None
    if requested == "device":
        raise FinetuneConfigError("decode", requested, f"cannot decode on {device}: {why}")
    return "workers", why


def default_workers(local_world: int = 1) -> int:
    """Loader processes per training process: the cores this process may use, less one for
    the training loop itself, at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(8, (cores or 1) // max(local_world, 1) - 1))


def _image_datasets(train: Sequence[Sample], val: Sequence[Sample], config: dict[str, Any],
                    augment: bool | Mapping[str, Any]) -> tuple[ImageDataset, ImageDataset]:
    """Datasets decoded by PIL and transformed by timm in the loader processes."""
    timm = import_timm()
    eval_tf = timm.data.create_transform(**config, is_training=False)
    train_tf = eval_tf
    if augment is not False:
        options = {} if augment is True else {k: (tuple(v) if isinstance(v, list) else v)
                                              for k, v in augment.items()}
        train_tf = timm.data.create_transform(**config, **options, is_training=True)
    return ImageDataset(train, train_tf), ImageDataset(val, eval_tf)


def _not_jpeg(samples: Sequence[Sample]) -> str | None:
    other = next((path for path, _ in samples if path.suffix.lower() not in JPEG_SUFFIXES), None)
    return None if other is None else f"{other.name} is not a JPEG"


def _loader_options(workers: int, pin_memory: bool, encoded: bool = False) -> dict[str, Any]:
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": pin_memory}
    if encoded:
        options["collate_fn"] = collate_encoded
    if workers > 0:
        options.update(persistent_workers=True, prefetch_factor=4)
    return options
