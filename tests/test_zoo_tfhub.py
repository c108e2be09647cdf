"""The TF Hub source: the curated listing, where weights are looked for (hub's own cache
folder, the team folder, local SavedModels) and models built from tiny SavedModels made here:
one saved from ``tf_keras`` (Keras 2, callable, hub's format) and one exported by Keras 3
(``model.export``: called through ``serving_default``). Nothing is downloaded."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if any(importlib.util.find_spec(m) is None for m in ("tensorflow", "tensorflow_hub", "tf_keras")):
    pytest.skip("the tfhub extra is not installed: pip install 'cairn[tfhub]'",
                allow_module_level=True)

import numpy as np
from click.testing import CliRunner

import zoo
from zoo.errors import (
    ScratchUnsupportedError,
    UnknownModelError,
    WeightsMismatchError,
    WeightsNotFoundError,
)
from zoo.sources.tfhub import CURATED, hub_cache_dir, import_tf, inspect_saved_model

_mods = import_tf()
tf, tf_keras, hub = _mods.tf, _mods.tf_keras, _mods.hub


def _keras3() -> object | None:
    """Keras 3 where it is installed (tf_keras is Keras 2; ``keras`` may be either)."""
    if importlib.util.find_spec("keras") is None:
        return None
    import keras

    return keras if int(keras.__version__.split(".")[0]) >= 3 else None


KERAS3 = _keras3()
needs_keras3 = pytest.mark.skipif(KERAS3 is None, reason="Keras 3 is not installed, so no "
                                  "SavedModel can be exported the Keras 3 way (model.export)")


def feature_extractor(size: int | None, width: int = 4) -> object:
    """A tiny tf_keras conv net: image -> ``width`` features (``size`` None: any size)."""
    inputs = tf_keras.Input((size, size, 3))
    x = tf_keras.layers.Conv2D(width, 3, activation="relu")(inputs)
    x = tf_keras.layers.BatchNormalization()(x)
    return tf_keras.Model(inputs, tf_keras.layers.GlobalAveragePooling2D()(x))


def save_keras2(path: Path, size: int | None = 32) -> Path:
    """A hub-style SavedModel (``tf.saved_model.save`` of a tf_keras model: callable)."""
    tf.saved_model.save(feature_extractor(size), str(path))
    return path


def save_keras3(path: Path, size: int = 32) -> Path:
    """A SavedModel exported by Keras 3 (``model.export``): no ``__call__``, one signature."""
    keras = KERAS3
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x)).export(str(path),
                                                                         verbose=False)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("savedmodels")
    built = {"k2": save_keras2(root / "k2"), "k2_any_size": save_keras2(root / "dyn", None)}
    if KERAS3 is not None:
        built["k3"] = save_keras3(root / "k3")
    return built


@pytest.fixture(autouse=True)
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """TF Hub's cache and the team's weights folder, both empty, in tmp_path."""
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub"))
    monkeypatch.setenv(zoo.WEIGHTS_ENV, str(tmp_path / "weights"))
    return {"hub": tmp_path / "hub", "team": tmp_path / "weights" / "tfhub"}


def test_listing_imports_no_framework():
    code = ("import sys, zoo; n = len(zoo.list(source='tfhub')); "
            "print(n, [m for m in ('tensorflow', 'tensorflow_hub', 'tf_keras') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split(maxsplit=1)
    assert out == [str(len(CURATED)), "[]\n"]


@pytest.mark.parametrize("alias", list(CURATED))
def test_curated_entries_carry_their_metadata(alias):
    entry = zoo.info(f"tfhub:{alias}")
    assert entry.name == f"tfhub:{alias}" and entry.source == "tfhub"
    assert entry in zoo.list(source="tfhub")
    assert entry.origin_url.startswith("https://tfhub.dev/google/")
    c, h, w = entry.input_size
    assert c == 3 and h == w and h in (224, 299, 384)
    assert entry.mean == (0.0, 0.0, 0.0) and entry.std == (1.0, 1.0, 1.0)
    assert "[0, 1]" in entry.description
    assert entry.license == "Apache-2.0" and entry.has_pretrained
    assert entry.paper_ids.startswith("arXiv:")
    assert entry.num_params is None or entry.num_params > 1_000_000
    assert not entry.weights_available
    assert entry.weights_location == str(hub_cache_dir(entry.origin_url))


def test_curated_set_is_the_well_known_one():
    assert {e.architecture for e in zoo.list(source="tfhub")} == {
        "efficientnetv2_b0", "efficientnetv2_s", "mobilenet_v3_large_100", "resnet_v2_50",
        "bit_resnet50x1", "inception_v3"}


@pytest.mark.parametrize(("query", "expected"), [
    ("EFFICIENTNET", {"tfhub:efficientnetv2-b0", "tfhub:efficientnetv2-s"}),
    ("tfhub:*-b0", {"tfhub:efficientnetv2-b0"}),
    ("bit/s-r50x1", {"tfhub:bit_s-r50x1"}),  # a substring of the handle
    ("no-such-model", set()),
])
def test_query_is_a_substring_or_glob(query, expected):
    assert {m.name for m in zoo.list(query, source="tfhub")} == expected


def test_cache_folder_is_the_one_tensorflow_hub_uses(caches):
    from tensorflow_hub import compressed_module_resolver

    for info in CURATED.values():
        assert compressed_module_resolver._module_dir(info.origin_url) == str(
            hub_cache_dir(info.origin_url))
    assert hub_cache_dir("https://x/1").parent == caches["hub"]


def test_a_model_in_the_hub_cache_is_available_and_loads(models, caches):
    handle = CURATED["efficientnetv2-b0"].origin_url
    folder = caches["hub"] / hub_cache_dir(handle).name
    folder.mkdir(parents=True)  # an interrupted download: an empty folder is not a model
    assert not zoo.info("tfhub:efficientnetv2-b0").weights_available
    shutil.copytree(models["k2"], folder, dirs_exist_ok=True)
    listed = {m.name: m for m in zoo.list("efficientnetv2", source="tfhub", available_only=True)}
    assert list(listed) == ["tfhub:efficientnetv2-b0"]
    assert listed["tfhub:efficientnetv2-b0"].weights_location == str(folder)
    model = zoo.create(f"tfhub:{handle}", num_classes=3)  # the handle names it too
    assert model.cairn_info.name == "tfhub:efficientnetv2-b0"
    assert model.cairn_info.weights_location == str(folder)
    assert model.output_shape == (None, 3)


def test_the_team_folder_comes_first(models, caches):
    shutil.copytree(models["k2"], caches["team"] / "resnet_v2_50")
    shutil.copytree(models["k2"], hub_cache_dir(CURATED["resnet_v2_50"].origin_url))
    assert zoo.info("tfhub:resnet_v2_50").weights_location == str(caches["team"] / "resnet_v2_50")


def test_missing_weights_say_what_to_put_where(caches):
    handle = CURATED["inception_v3"].origin_url
    with pytest.raises(WeightsNotFoundError) as err:
        zoo.create("tfhub:inception_v3", num_classes=2)
    folder = str(hub_cache_dir(handle))
    assert err.value.name == "tfhub:inception_v3" and err.value.expected == folder
    message = str(err.value)
    assert folder in message and handle in message and "saved_model.pb" in message
    assert str(caches["team"] / "inception_v3") in message
    assert "TFHUB_CACHE_DIR" in message and "weights=PATH" in message
    assert "pretrained=False" not in message  # a SavedModel has no random initialisation


def test_weights_option_stands_in_for_the_handle(models, tmp_path):
    model = zoo.create("tfhub:inception_v3", num_classes=2, weights=models["k2"])
    assert model.cairn_info.weights_location == str(models["k2"])
    assert model.input_shape == (None, 32, 32, 3)  # the SavedModel's own input size wins
    with pytest.raises(WeightsNotFoundError, match="SavedModel folder"):
        zoo.create("tfhub:inception_v3", num_classes=2, weights=tmp_path / "nothing")


def test_a_local_keras2_savedmodel(models):
    name = f"tfhub:{models['k2']}"
    info = zoo.info(name)
    assert info.weights_available and info.pretrained_tag == "local"
    assert info.input_size == (3, 32, 32)
    assert info.num_params == 3 * 3 * 3 * 4 + 4 + 4 * 4  # conv, batch norm
    facts = inspect_saved_model(models["k2"])
    assert facts.callable and facts.signature is None
    model = zoo.create(name, num_classes=5)
    assert isinstance(model, tf_keras.Model)
    backbone = model.get_layer("backbone")
    assert isinstance(backbone, hub.KerasLayer) and backbone.trainable
    assert model.cairn_info.num_params == model.count_params() == info.num_params + 4 * 5 + 5
    out = model(np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32))
    assert out.shape == (2, 5)


@needs_keras3
def test_a_keras3_export_is_called_through_its_signature(models):
    facts = inspect_saved_model(models["k3"])
    assert not facts.callable
    assert (facts.signature, facts.output_key) == ("serving_default", "output_0")
    model = zoo.create(f"tfhub:{models['k3']}", num_classes=2)
    backbone = model.get_layer("backbone")
    assert not backbone.trainable  # hub runs signatures frozen only
    assert model.cairn_info.input_size == (3, 32, 32)
    assert model(np.zeros((3, 32, 32, 3), np.float32)).shape == (3, 2)


def test_image_size_applies_where_the_savedmodel_takes_any(models):
    source = zoo._registry.get_source("tfhub")
    model = source.create(str(models["k2_any_size"]), 2, image_size=48)
    assert model.input_shape == (None, 48, 48, 3)
    assert zoo.info(f"tfhub:{models['k2_any_size']}").input_size == (3, 224, 224)
    with pytest.raises(WeightsMismatchError, match="32x32 images only"):
        source.create(str(models["k2"]), 2, image_size=48)


def test_num_classes_zero_gives_the_feature_vector(models):
    model = zoo.create(f"tfhub:{models['k2']}", num_classes=0)
    assert model.output_shape == (None, 4)
    with pytest.raises(ValueError, match="non-negative integer"):
        zoo.create(f"tfhub:{models['k2']}", num_classes=-1)


def test_pretrained_false_is_refused(models):
    with pytest.raises(ScratchUnsupportedError, match="cannot be created without pretrained"):
        zoo.create(f"tfhub:{models['k2']}", num_classes=2, pretrained=False)


def test_unknown_names_and_missing_paths(tmp_path):
    with pytest.raises(UnknownModelError, match="tfhub:efficientnetv2-b0"):
        zoo.info("tfhub:efficientnetv2")
    missing = tmp_path / "no-model"
    assert not zoo.info(f"tfhub:{missing}").weights_available
    with pytest.raises(WeightsNotFoundError, match="no SavedModel folder"):
        zoo.create(f"tfhub:{missing}", num_classes=2)


def test_a_folder_that_is_not_a_savedmodel(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "saved_model.pb").write_bytes(b"\x00not a protobuf")
    with pytest.raises(WeightsMismatchError, match="not a readable SavedModel"):
        zoo.create(f"tfhub:{tmp_path / 'bad'}", num_classes=2)


def test_a_handle_outside_the_curated_set():
    handle = "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/4"
    info = zoo.info(f"tfhub:{handle}")
    assert info.architecture == "mobilenet_v2_100_224" and info.origin_url == handle
    assert info.weights_location == str(hub_cache_dir(handle))
    with pytest.raises(WeightsNotFoundError, match=hub_cache_dir(handle).name):
        zoo.create(f"tfhub:{handle}", num_classes=2)


def test_cli_lists_the_tfhub_source():
    from zoo.cli import zoo as zoo_cli

    result = CliRunner().invoke(zoo_cli, ["list", "--source", "tfhub"])
    assert result.exit_code == 0, result.output
    assert all(f"tfhub:{alias}" in result.output for alias in CURATED)
