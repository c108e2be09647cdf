"""Image folders for fine-tuning: scanning, the seeded stratified split, PyTorch loaders."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest
from PIL import Image

from zoo.errors import DataFolderError, FinetuneConfigError
from zoo.training.data import scan_image_folder, split


def make_folder(root: Path, counts: dict[str, int], size: int = 24, mode: str = "RGB",
                ext: str = ".png") -> Path:
    """``counts[class]`` small solid images per class folder."""
    for c, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            colour = (40 * c % 256, 10 * i % 256, 128)
            image = Image.new("RGB", (size, size + i % 3), colour).convert(mode)
            image.save(root / name / f"img_{i:03d}{ext}")
    return root


def test_scan_sorts_classes_and_samples_and_skips_what_is_not_an_image(tmp_path: Path):
    root = make_folder(tmp_path / "data", {"zebra": 2, "apple": 3})
    (root / "apple" / "notes.txt").write_text("not an image")
    (root / "apple" / ".hidden.png").write_bytes(b"")
    (root / ".cache").mkdir()
    (root / "readme.md").write_text("top-level files are not classes")
    nested = root / "zebra" / "more"
    nested.mkdir()
    Image.new("RGB", (8, 8)).save(nested / "deep.JPG")

    index = scan_image_folder(root)

    assert index.classes == ["apple", "zebra"]
    assert index.counts() == {"apple": 3, "zebra": 3}
    zebra = [p.relative_to(root).as_posix() for p, label in index.samples if label == 1]
    assert zebra == ["zebra/img_000.png", "zebra/img_001.png", "zebra/more/deep.JPG"]


@pytest.mark.parametrize(("setup", "reason"), [
    (lambda root: None, "no such folder"),
    (lambda root: make_folder(root, {"only": 3}), "need at least 2"),
    (lambda root: (make_folder(root, {"a": 2}), (root / "b").mkdir()), "holds no images"),
])
def test_scan_rejects_folders_it_cannot_train_on(tmp_path: Path, setup, reason: str):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(DataFolderError, match=reason) as info:
        scan_image_folder(root)
    assert info.value.path == str(root)


def test_split_is_stratified_and_keeps_each_sample_on_one_side(tmp_path: Path):
    index = scan_image_folder(make_folder(tmp_path, {"a": 10, "b": 5, "c": 2}))
    train, val = split(index, 0.2, seed=3)

    def per_class(samples):
        return {c: sum(1 for _, label in samples if label == i)
                for i, c in enumerate(index.classes)}

    assert per_class(val) == {"a": 2, "b": 1, "c": 1}  # at least one, never all
    assert per_class(train) == {"a": 8, "b": 4, "c": 1}
    assert sorted(train + val) == sorted(index.samples)
    assert not set(train) & set(val)


def test_split_depends_on_the_seed_and_paths_only(tmp_path: Path):
    index = scan_image_folder(make_folder(tmp_path, {"a": 30, "b": 30}))
    shuffled = type(index)(root=index.root, classes=index.classes,
                           samples=random.Random(1).sample(index.samples, len(index.samples)))
    assert split(index, 0.25, seed=7) == split(shuffled, 0.25, seed=7)
    assert split(index, 0.25, seed=7) != split(index, 0.25, seed=8)
    moved = scan_image_folder(make_folder(tmp_path / "copy", {"a": 30, "b": 30}))
    rel = [p.relative_to(moved.root) for p, _ in split(moved, 0.25, seed=7)[1]]
    assert rel == [p.relative_to(index.root) for p, _ in split(index, 0.25, seed=7)[1]]


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, "0.2", float("nan")])
def test_split_rejects_a_fraction_outside_zero_one(tmp_path: Path, fraction):
    index = scan_image_folder(make_folder(tmp_path, {"a": 3, "b": 3}))
    with pytest.raises(FinetuneConfigError, match="val_fraction"):
        split(index, fraction, seed=0)


def test_split_needs_two_images_per_class(tmp_path: Path):
    index = scan_image_folder(make_folder(tmp_path, {"a": 3, "b": 1}))
    with pytest.raises(DataFolderError, match="'b' has one image"):
        split(index, 0.5, seed=0)


# -- PyTorch loaders --------------------------------------------------------------------------

torch_only = pytest.mark.skipif(importlib.util.find_spec("timm") is None,
                                reason="the zoo extra is not installed: pip install 'cairn[zoo]'")


@pytest.fixture(scope="module")
def tiny_model():
    from zoo._compat import import_timm

    return import_timm().create_model("test_resnet", pretrained=False, num_classes=2)


@torch_only
def test_loaders_preprocess_as_the_backbone_says_and_decode_any_mode_as_rgb(tmp_path, tiny_model):
    from zoo.training._loaders import data_config, make_loaders

    root = make_folder(tmp_path / "gray", {"a": 4}, mode="L")
    make_folder(root, {"b": 4}, mode="RGBA")
    train, val = split(scan_image_folder(root), 0.25, seed=0)
    config = data_config(tiny_model, image_size=40)
    assert config["input_size"] == (3, 40, 40)
    assert config["mean"] == tiny_model.pretrained_cfg["mean"]

    loaders = make_loaders(train, val, config=config, batch_size=3, workers=0, seed=0)
    images, labels = next(iter(loaders.train))
    assert images.shape == (3, 3, 40, 40) and labels.dtype.is_floating_point is False
    val_images, _ = next(iter(loaders.val))
    assert val_images.shape[1:] == (3, 40, 40)
    assert len(loaders.val.dataset) == 2 and loaders.val_full is loaders.val


@torch_only
def test_training_order_is_the_same_for_the_same_epoch(tmp_path, tiny_model):
    from zoo.training._loaders import data_config, make_loaders

    train, val = split(scan_image_folder(make_folder(tmp_path, {"a": 8, "b": 8})), 0.25, 0)
    loaders = make_loaders(train, val, config=data_config(tiny_model, 16), batch_size=4,
                           workers=0, seed=5)

    def order(epoch):
        loaders.set_epoch(epoch)
        return [tuple(labels.tolist()) for _, labels in loaders.train]

    assert order(1) == order(1)
    assert order(0) != order(1) or order(0) != order(2)


@torch_only
def test_shards_cover_the_validation_set_once(tmp_path, tiny_model):
    from zoo.training._loaders import ShardSampler

    shards = [list(ShardSampler(7, rank, 3)) for rank in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(7))


@torch_only
def test_an_unreadable_image_names_its_file(tmp_path, tiny_model):
    from zoo.training._loaders import ImageDataset, data_config

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    from timm.data import create_transform

    dataset = ImageDataset([(bad, 0)], create_transform(**data_config(tiny_model, 16)))
    with pytest.raises(DataFolderError, match="cannot read this image") as info:
        dataset[0]
    assert info.value.path == str(bad)
