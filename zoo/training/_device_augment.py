"""timm's image preprocessing done on whole batches on the training device.

The same steps as timm's ``create_transform`` (which the worker loader runs per image with
PIL), expressed as batched tensor operations on decoded ``uint8`` images:

- training: a random resized crop (torchvision's sampling: area in ``scale``, aspect in
  ``ratio``, ten tries, then a centre crop), horizontal and vertical flips, colour jitter
  (brightness, contrast, saturation, in that order, each clamped to [0, 1]);
- evaluation: timm's ``crop_pct`` centre crop (``crop_mode`` 'center' or 'squash');
- then normalisation by the backbone's mean and std.

Every crop (and flip) is one ``affine_grid`` + ``grid_sample`` per group of same-sized
images, pure PyTorch: each output pixel averages ``ceil(crop / output)`` (at most 4) bilinear
samples per axis, which anti-aliases a downscale much as PIL's filters do. It is not
bit-identical to PIL's bicubic resampling; the difference is of the order of JPEG noise.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

__all__ = ["DEVICE_AUGMENT_OPTIONS", "DeviceAugment", "unsupported_augment"]

# The ``augment`` options the device pipeline carries out; any other needs the workers.
DEVICE_AUGMENT_OPTIONS = ("scale", "ratio", "hflip", "vflip", "color_jitter")
_CROP_MODES = ("center", "squash")
_GRAY = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as PIL and torchvision use
_MAX_SUPERSAMPLE = 4
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of the decoded image


def unsupported_augment(augment: bool | Mapping[str, Any], config: Mapping[str, Any]) -> str | None:
    """Why the device pipeline cannot reproduce this preprocessing, or None if it can."""
    if config.get("crop_mode", "center") not in _CROP_MODES:
        return f"crop_mode {config.get('crop_mode')!r} (supported: {', '.join(_CROP_MODES)})"
    if isinstance(augment, bool):
        return None
    other = sorted(set(augment) - set(DEVICE_AUGMENT_OPTIONS))
    if other:
        return f"augment option {other[0]!r} (supported: {', '.join(DEVICE_AUGMENT_OPTIONS)})"
    jitter = augment.get("color_jitter", 0.4)
    if isinstance(jitter, (list, tuple)) and (len(jitter) not in (3, 4)
                                              or (len(jitter) == 4 and jitter[3])):
        return "color_jitter with hue (supported: brightness, contrast, saturation)"
    return None


@dataclass(frozen=True)
class DeviceAugment:
    """One split's preprocessing: ``train`` samples random crops, flips and jitter."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    train: bool = False
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    vflip: float = 0.0
    jitter: tuple[float, float, float] = (0.4, 0.4, 0.4)
    crop_pct: float = 0.875
    crop_mode: str = "center"

    @classmethod
    def from_config(cls, config: Mapping[str, Any], augment: bool | Mapping[str, Any] = True,
                    *, train: bool) -> DeviceAugment:
        """From timm's data config (``input_size``, ``mean``, ``std``, ``crop_pct``,
        ``crop_mode``) and the fine-tune's ``augment`` (True, False or options)."""
        base = cls(size=int(config["input_size"][-1]), mean=tuple(config["mean"]),
                   std=tuple(config["std"]), crop_pct=float(config.get("crop_pct") or 0.875),
                   crop_mode=config.get("crop_mode") or "center")
        if not train or augment is False:
            return base
        options = {} if augment is True else dict(augment)
        jitter = options.get("color_jitter", 0.4)
        jitter = (0.0,) * 3 if jitter is None else (
            tuple(float(j) for j in jitter[:3]) if isinstance(jitter, (list, tuple))
            else (float(jitter),) * 3)
        return cls(**{**base.__dict__, "train": True, "jitter": jitter,
                      "scale": tuple(options.get("scale", base.scale)),
                      "ratio": tuple(options.get("ratio", base.ratio)),
                      "hflip": float(options.get("hflip", base.hflip)),
                      "vflip": float(options.get("vflip", base.vflip))})

    def __call__(self, images: Sequence[torch.Tensor], rng: random.Random) -> torch.Tensor:
        """Decoded ``uint8`` (3, H, W) images, all on one device, as one normalised float
        batch (N, 3, size, size); ``rng`` draws every random choice."""
        device = images[0].device
        boxes = [self._box(img.shape[-2], img.shape[-1], rng) for img in images]
        flips = ([(rng.random() < self.hflip, rng.random() < self.vflip) for _ in images]
                 if self.train else None)
        out = _crop_resize(images, boxes, self.size, flips)
        if self.train and any(self.jitter):
            out = self._jitter(out, rng)
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1) * 255.0
        return out.sub_(mean).div_(std)

    # -- crops -------------------------------------------------------------------------------

    def _box(self, height: int, width: int, rng: random.Random) -> Box:
        return (self._random_box(height, width, rng) if self.train
                else self._center_box(height, width))

    def _center_box(self, height: int, width: int) -> Box:
        """timm's eval crop: resize to ``floor(size / crop_pct)`` (the shorter side, or both
        sides for 'squash'), then take the centre ``size`` x ``size``."""
        fraction = self.size / math.floor(self.size / self.crop_pct)
        if self.crop_mode == "squash":
            h, w = height * fraction, width * fraction
        else:
            h = w = min(height, width) * fraction
        y0, x0 = (height - h) / 2, (width - w) / 2
        return (x0, y0, x0 + w, y0 + h)

    def _random_box(self, height: int, width: int, rng: random.Random) -> Box:
        """torchvision's ``RandomResizedCrop.get_params``, drawing from ``rng``."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                y0, x0 = rng.randint(0, height - h), rng.randint(0, width - w)
                return (x0, y0, x0 + w, y0 + h)
        w, h = width, height  # the fallback: the whole image, cut to the nearest allowed ratio
        if width / height < min(self.ratio):
            h = round(w / min(self.ratio))
        elif width / height > max(self.ratio):
            w = round(h * max(self.ratio))
        y0, x0 = (height - h) // 2, (width - w) // 2
        return (x0, y0, x0 + w, y0 + h)

    # -- photometric -------------------------------------------------------------------------

    def _jitter(self, batch: torch.Tensor, rng: random.Random) -> torch.Tensor:
        """ColorJitter(brightness, contrast, saturation) with one factor per image each,
        on 0..255 values."""
        n, device = len(batch), batch.device
        b, c, s = ([rng.uniform(max(0.0, 1 - j), 1 + j) for _ in range(n)] for j in self.jitter)
        gray = torch.tensor(_GRAY, device=device).view(1, 3, 1, 1)
        batch = (batch * _factors(b, device)).clamp_(0, 255)
        means = (batch * gray).sum(1, keepdim=True).mean((2, 3), keepdim=True)
        batch = torch.lerp(means, batch, _factors(c, device)).clamp_(0, 255)
        luma = (batch * gray).sum(1, keepdim=True)
        return torch.lerp(luma, batch, _factors(s, device)).clamp_(0, 255)


def _crop_resize(images: Sequence[torch.Tensor], boxes: list[Box], size: int,
                 flips: list[tuple[bool, bool]] | None = None) -> torch.Tensor:
    """Each image's box resampled to ``size`` x ``size`` (and flipped as ``flips`` say):
    one ``grid_sample`` per image shape."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(i)
    if len(groups) == 1:
        return _resample_group(images, boxes, flips, size)
    device = images[0].device
    out = torch.empty((len(images), 3, size, size), device=device)
    for members in groups.values():
        out[torch.tensor(members, device=device)] = _resample_group(
            [images[i] for i in members], [boxes[i] for i in members],
            [flips[i] for i in members] if flips else None, size)
    return out


def _resample_group(images: Sequence[torch.Tensor], boxes: list[Box],
                    flips: list[tuple[bool, bool]] | None, size: int) -> torch.Tensor:
    """Same-sized images' boxes resampled in one ``grid_sample``."""
    _, height, width = images[0].shape
    # Sample k x k points per output pixel and average them: a downscale by up to k is
    # anti-aliased (as roi_align's adaptive sampling does).
    longest = max(max(x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes)
    k = min(_MAX_SUPERSAMPLE, max(1, math.ceil(longest / size)))
    theta = torch.tensor([_affine(box, height, width, *(flips[j] if flips else (False, False)))
                          for j, box in enumerate(boxes)])
    grid = F.affine_grid(theta.to(images[0].device, non_blocking=True),
                         [len(images), 3, size * k, size * k], align_corners=False)
    resized = F.grid_sample(torch.stack(list(images)).float(), grid, mode="bilinear",
                            padding_mode="border", align_corners=False)
    return F.avg_pool2d(resized, k) if k > 1 else resized


def _affine(box: Box, height: int, width: int, hflip: bool, vflip: bool) -> list[list[float]]:
    """The ``affine_grid`` matrix mapping output coordinates (-1..1) onto ``box`` of an
    image (-1..1 spanning its pixels' outer edges), mirrored for a flip."""
    x0, y0, x1, y1 = box
    sx, sy = (x1 - x0) / width, (y1 - y0) / height
    cx, cy = (x0 + x1) / width - 1, (y0 + y1) / height - 1
    return [[-sx if hflip else sx, 0.0, cx], [0.0, -sy if vflip else sy, cy]]


def _factors(values: list[float], device: torch.device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).to(device, non_blocking=True).view(-1, 1, 1, 1)
