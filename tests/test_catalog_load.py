"""Reusing catalogued models: ``zoo.create("catalog:...")`` for fine-tuning and
``catalog.load`` for inference, with sha256-verified safetensors weights only."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

import catalog
import zoo
from catalog.errors import CatalogError
from registry.config import Workspace
from tests.test_catalog_draft import CLASSES, finetune_run, save_weights, tiny_model

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@pytest.fixture
def card(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, object]:
    """A drafted card of a recorded run, in the workspace the zoo finds from the cwd."""
    monkeypatch.setenv("CAIRN_STORE", workspace.store_url)
    monkeypatch.setenv("CAIRN_CATALOG", str(workspace.catalog_dir))
    run_id, model = finetune_run(workspace)
    return catalog.draft_from_run(run_id, workspace=workspace), model


def same_weights(a, b, skip: str = "") -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(k.startswith(skip) or (sa[k] == sb[k]).all() for k in sa) if skip else \
        sa.keys() == sb.keys() and all((sa[k] == sb[k]).all() for k in sa)


def test_zoo_create_loads_the_documented_weights(card, monkeypatch: pytest.MonkeyPatch) -> None:
    _, trained = card

    def no_pickle(*args, **kwargs):
        raise AssertionError("weights must never be unpickled")

    import torch

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    model = zoo.create("catalog:scratch-r18@1", num_classes=3)
    assert same_weights(model, trained)
    assert model.cairn_info.name == "catalog:scratch-r18@1"
    assert model.cairn_info.architecture == "test_resnet"
    assert model.cairn_info.num_classes == 3


def test_another_head_keeps_the_backbone(card) -> None:
    _, trained = card
    model = zoo.create("catalog:scratch-r18", num_classes=5)
    assert model.fc.out_features == 5
    assert same_weights(model, trained, skip="fc.")
    assert model.cairn_info.num_params == sum(p.numel() for p in model.parameters())


def test_tampered_and_missing_weights(card) -> None:
    path, _ = card
    weights = path.parent / "model.safetensors"
    save_weights(tiny_model(CLASSES, seed=9), weights, CLASSES)
    with pytest.raises(zoo.errors.WeightsMismatchError, match="sha256 is"):
        zoo.create("catalog:scratch-r18", num_classes=3)
    weights.unlink()
    with pytest.raises(zoo.WeightsNotFoundError, match=r"model\.safetensors"):
        zoo.create("catalog:scratch-r18", num_classes=3)
    # Random initialisation only when asked for.
    assert zoo.create("catalog:scratch-r18", num_classes=3, pretrained=False).fc.out_features == 3


def test_unknown_cards_are_suggested(card) -> None:
    with pytest.raises(zoo.UnknownModelError, match="catalog:scratch-r18@1"):
        zoo.create("catalog:scratch", num_classes=3)
    with pytest.raises(zoo.UnknownModelError):
        zoo.create("catalog:scratch-r18@7", num_classes=3)


def test_listing_and_info(card) -> None:
    [entry] = zoo.list("scratch", source="catalog")
    assert entry.name == "catalog:scratch-r18@1" and entry.weights_available
    assert entry.input_size == (3, 64, 64) and entry.mean == (0.5, 0.5, 0.5)
    info = zoo.info("catalog:scratch-r18@1")
    assert info.num_params == sum(p.numel() for p in card[1].parameters())
    assert zoo.list("nothing-like-it", source="catalog") == []


def test_a_cards_framework_is_its_backbones(card) -> None:
    path, _ = card
    [entry] = zoo.list("scratch", source="catalog")
    assert entry.framework == "pytorch" == zoo.framework_of("catalog:scratch-r18@1")
    path.write_text(path.read_text().replace("backbone: test_resnet",
                                             "backbone: tfhub:efficientnetv2-b0"))
    assert zoo.framework_of("catalog:scratch-r18@1") == "keras"
    path.write_text(path.read_text().replace("backbone: tfhub:efficientnetv2-b0",
                                             "backbone: catalog:scratch-r18@1"))
    assert zoo.framework_of("catalog:scratch-r18@1") == "pytorch"  # itself: create says why
    with pytest.raises(zoo.UnknownModelError, match="catalog:scratch-r18@1"):
        zoo.framework_of("catalog:scratch")


def test_catalog_load_predicts_like_the_trained_model(card, workspace: Workspace) -> None:
    import torch
    from PIL import Image

    _, trained = card
    loaded = catalog.load("scratch-r18", workspace=workspace)
    assert loaded.labels == CLASSES and not loaded.model.training
    images = [Image.new("RGB", (90, 70), colour) for colour in ("red", "gray")]
    top = loaded.predict(images, top_k=2)
    batch = torch.stack([loaded.preprocess(img) for img in images])
    assert batch.shape == (2, 3, 64, 64)
    with torch.inference_mode():
        expected = trained.eval()(batch).softmax(-1)
    for row, probs in zip(top, expected, strict=True):
        assert len(row) == 2 and row[0][1] >= row[1][1]
        assert row[0] == (CLASSES[int(probs.argmax())], pytest.approx(float(probs.max())))


def test_a_card_that_is_its_own_backbone(card, workspace: Workspace) -> None:
    path, _ = card
    text = path.read_text().replace("backbone: test_resnet", "backbone: catalog:scratch-r18@1")
    path.write_text(text)
    with pytest.raises(CatalogError, match="its own backbone"):
        catalog.load("scratch-r18", workspace=workspace)
