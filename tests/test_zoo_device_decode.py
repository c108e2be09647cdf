"""Decoding and augmentation on the training device (``decode='device'``, the default on
CUDA): the batched preprocessing against timm's per-image transforms, its random crops,
determinism, bad images, the prefetch thread, and the fine-tune option. Here the device is
the CPU (and PIL decodes where torchvision's decoder cannot load); the nvJPEG path itself
runs in ``benchmarks/gpu_check.sh``."""

from __future__ import annotations

import importlib.util
import json
import math
import random
import threading
from pathlib import Path

import pytest

if importlib.util.find_spec("timm") is None:
    pytest.skip("the zoo extra is not installed: pip install 'cairn[zoo]'",
                allow_module_level=True)

import numpy as np
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import registry
from tests.test_zoo_data import make_folder
from tests.test_zoo_finetune import cli_args, tune, ws  # noqa: F401  (ws: the fixture)
from zoo._compat import import_timm
from zoo.errors import DataFolderError, FinetuneConfigError
from zoo.training._device_augment import DeviceAugment, unsupported_augment
from zoo.training._device_loader import DeviceBatches
from zoo.training._loaders import choose_decode, make_loaders
from zoo.training.data import scan_image_folder, split

CPU = torch.device("cpu")
CONFIG = {"input_size": (3, 32, 32), "interpolation": "bilinear", "mean": (0.485, 0.456, 0.406),
          "std": (0.229, 0.224, 0.225), "crop_pct": 0.875, "crop_mode": "center"}


def gradient(width: int, height: int) -> Image.Image:
    """A smooth image (resampling methods agree on it up to rounding)."""
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    pixels = np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2 + 0 * x], axis=2)
    return Image.fromarray(pixels.astype(np.uint8))


def as_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)


def jpeg_folder(root: Path, per_class: int = 6, sizes=((48, 40), (40, 52))) -> Path:
    for c in range(3):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = gradient(*sizes[i % len(sizes)]).rotate(30 * c)
            image.save(root / f"class{c}" / f"{i:02d}.jpg", quality=95)
    return root


def loaders(folder: Path, **options):
    train, val = split(scan_image_folder(folder), 0.25, seed=0)
    return make_loaders(train, val, config=CONFIG, **{"batch_size": 4, "workers": 0, "seed": 0,
                                                      "decode": "device", "device": CPU,
                                                      **options})


# -- the batched preprocessing against timm's --------------------------------------------------


@pytest.mark.parametrize("crop_mode", ["center", "squash"])
def test_evaluation_batch_matches_timms_eval_transform(crop_mode: str):
    config = {**CONFIG, "crop_mode": crop_mode}
    images = [gradient(64, 48), gradient(50, 70), gradient(64, 48)]  # two shapes, two groups
    timm_tf = import_timm().data.create_transform(**config, is_training=False)

    batch = DeviceAugment.from_config(config, train=False)([as_tensor(i) for i in images],
                                                           random.Random(0))

    expected = torch.stack([timm_tf(image) for image in images])
    assert batch.shape == expected.shape == (3, 3, 32, 32)
    assert (batch - expected).abs().mean() < 0.03  # normalised units: a few grey levels


def test_a_whole_image_crop_with_flips_is_the_flipped_image():
    image = as_tensor(gradient(40, 40))
    augment = DeviceAugment(size=40, mean=(0, 0, 0), std=(1 / 255,) * 3, train=True,
                            scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=1.0, vflip=1.0,
                            jitter=(0.0, 0.0, 0.0))

    out = augment([image], random.Random(0))[0]

    assert torch.allclose(out, image.flip(-1).flip(-2).float(), atol=1e-3)


def test_no_augmentation_trains_on_the_evaluation_crop():
    images = [as_tensor(gradient(60, 44))]
    train = DeviceAugment.from_config(CONFIG, False, train=True)
    evaluate = DeviceAugment.from_config(CONFIG, train=False)

    assert torch.equal(train(images, random.Random(1)), evaluate(images, random.Random(2)))


def test_colour_jitter_moves_each_image_within_its_range():
    image = as_tensor(gradient(32, 32))
    plain = DeviceAugment(size=32, mean=(0, 0, 0), std=(1 / 255,) * 3, train=True,
                          scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0, jitter=(0.0,) * 3)
    brighter = DeviceAugment(**{**plain.__dict__, "jitter": (0.4, 0.0, 0.0)})

    base = plain([image] * 8, random.Random(0))
    jittered = brighter([image] * 8, random.Random(0))

    assert jittered.min() >= 0 and jittered.max() <= 255
    ratios = jittered.sum((1, 2, 3)) / base.sum((1, 2, 3))
    assert len({round(r, 3) for r in ratios.tolist()}) > 1  # one factor per image
    assert ratios.min() >= 0.6 - 1e-4 and ratios.max() <= 1.4 + 1e-4


@settings(max_examples=200, deadline=None)
@given(height=st.integers(1, 400), width=st.integers(1, 400),
       low=st.floats(0.01, 1.0), ratio=st.tuples(st.floats(0.2, 1.0), st.floats(1.0, 5.0)),
       seed=st.integers(0, 2**32))
def test_random_crops_lie_inside_the_image(height, width, low, ratio, seed):
    augment = DeviceAugment(size=8, mean=(0, 0, 0), std=(1, 1, 1), train=True,
                            scale=(low, 1.0), ratio=ratio)

    x0, y0, x1, y1 = augment._random_box(height, width, random.Random(seed))

    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    assert all(float(v).is_integer() for v in (x0, y0, x1, y1))


def test_unsupported_preprocessing_is_named():
    assert unsupported_augment(True, CONFIG) is None
    assert unsupported_augment({"scale": (0.5, 1), "vflip": 0.5}, CONFIG) is None
    assert "auto_augment" in unsupported_augment({"auto_augment": "rand-m9"}, CONFIG)
    assert "hue" in unsupported_augment({"color_jitter": (0.4, 0.4, 0.4, 0.1)}, CONFIG)
    assert "border" in unsupported_augment(True, {**CONFIG, "crop_mode": "border"})


# -- loaders ------------------------------------------------------------------------------------


def test_device_batches_come_out_normalised_and_in_the_workers_order(tmp_path: Path):
    folder = jpeg_folder(tmp_path / "data")
    on_device, by_workers = loaders(folder), loaders(folder, decode="workers")

    for pair in (on_device, by_workers):
        pair.set_epoch(0)
    device_batches, worker_batches = list(on_device.train), list(by_workers.train)

    assert [y.tolist() for _, y in device_batches] == [y.tolist() for _, y in worker_batches]
    assert all(x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 for x, _ in device_batches)
    evaluated = [x for x, _ in on_device.val]
    expected = [x for x, _ in by_workers.val]
    assert torch.cat(evaluated).sub(torch.cat(expected)).abs().mean() < 0.05


def test_an_epoch_is_the_same_every_time_and_epochs_differ(tmp_path: Path):
    folder = jpeg_folder(tmp_path / "data")

    def epoch(n: int) -> torch.Tensor:
        fresh = loaders(folder)
        fresh.set_epoch(n)
        return torch.cat([x for x, _ in fresh.train])

    assert torch.equal(epoch(3), epoch(3))
    assert not torch.equal(epoch(3), epoch(4))


def test_unusual_jpegs_decode_and_a_broken_one_is_named(tmp_path: Path):
    folder = jpeg_folder(tmp_path / "data")
    gradient(40, 40).convert("L").save(folder / "class0" / "gray.jpg")
    gradient(40, 40).convert("CMYK").save(folder / "class1" / "cmyk.jpg")
    assert len(list(loaders(folder, batch_size=32).train)) == 1

    (folder / "class2" / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    with pytest.raises(DataFolderError, match=r"broken\.jpg"):
        for _ in loaders(folder, batch_size=32).train:
            pass


def test_leaving_an_epoch_early_stops_its_thread(tmp_path: Path):
    batches = loaders(jpeg_folder(tmp_path / "data", per_class=12)).train
    assert isinstance(batches, DeviceBatches)

    epoch = iter(batches)
    next(epoch)
    epoch.close()

    assert not [t for t in threading.enumerate() if t.name == "cairn-device-batches"]


def test_a_preparing_thread_that_dies_is_reported_not_waited_on(tmp_path: Path, monkeypatch):
    from zoo.training import _device_loader

    monkeypatch.setattr(_device_loader._Ahead, "_work", lambda self: None)  # dies silently
    batches = loaders(jpeg_folder(tmp_path / "data")).train

    with pytest.raises(RuntimeError, match="ended without a word"):
        next(iter(batches))


def test_where_to_decode():
    jpegs = [(Path("a.jpg"), 0), (Path("b.JPEG"), 1)]
    cuda = torch.device("cuda")

    assert choose_decode("auto", CPU, jpegs, True, CONFIG) == ("workers", None)
    assert choose_decode("device", CPU, jpegs, True, CONFIG) == ("device", None)
    assert choose_decode("workers", cuda, jpegs, True, CONFIG) == ("workers", None)
    mixed = [*jpegs, (Path("c.png"), 1)]
    assert choose_decode("auto", cuda, mixed, True, CONFIG) == ("workers", "c.png is not a JPEG")
    with pytest.raises(FinetuneConfigError, match=r"decode='device'.*auto_augment"):
        choose_decode("device", CPU, jpegs, {"auto_augment": "rand-m9"}, CONFIG)


# -- the fine-tune option -----------------------------------------------------------------------


def test_a_finetune_decoded_on_the_device_is_recorded_so(tmp_path: Path, ws):  # noqa: F811
    folder = jpeg_folder(tmp_path / "data", per_class=8)

    result = tune(folder, ws, decode="device", epochs=2)
    default = tune(folder, ws)

    assert registry.get_run(result.run_id, workspace=ws).params["decode"] == "device"
    assert registry.get_run(default.run_id, workspace=ws).params["decode"] == "workers"
    assert math.isfinite(result.history[-1]["train/loss"])
    assert result.evaluation is not None and sum(result.evaluation.support) == 6


def test_decode_option_is_checked(tmp_path: Path, ws):  # noqa: F811
    pngs = make_folder(tmp_path / "png", {"a": 4, "b": 4}, size=32)
    with pytest.raises(FinetuneConfigError, match=r"decode='device'.*not a JPEG"):
        tune(pngs, ws, decode="device")
    with pytest.raises(FinetuneConfigError, match="decode='gpu'"):
        tune(pngs, ws, decode="gpu")


def test_the_cli_takes_decode(tmp_path: Path, ws, monkeypatch):  # noqa: F811
    from registry.cli import cli

    folder = jpeg_folder(tmp_path / "data", per_class=4)
    args = [*cli_args(folder, ws, monkeypatch), "--scratch", "--no-progress", "--json"]

    result = CliRunner().invoke(cli, [*args, "--decode", "device"], catch_exceptions=False)
    refused = CliRunner().invoke(cli, [*args, "--decode", "gpu"])

    assert result.exit_code == 0, result.output
    run_id = json.loads(result.output.splitlines()[-1])["run_id"]
    assert registry.get_run(run_id, workspace=ws).params["decode"] == "device"
    assert refused.exit_code == 2 and "'gpu' is not one of" in refused.output
