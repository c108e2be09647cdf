"""The zoo's surface: a cheap import, name routing between sources, ModelInfo, the
torchvision shim."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

import zoo
from zoo import _registry
from zoo._info import ModelInfo
from zoo.errors import SourceUnavailableError, UnknownSourceError
from zoo.sources import suggest

ROOT = Path(__file__).parents[1]


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_import_zoo_is_cheap_and_loads_no_framework():
    code = ("import sys, time; import registry; t = time.perf_counter(); import zoo; "
            "print(time.perf_counter() - t, *(m in sys.modules for m in "
            "('torch', 'timm', 'torchvision', 'huggingface_hub')))")
    seconds, *loaded = _python(code).split()
    assert loaded == ["False"] * 4
    assert float(seconds) < 0.2


@pytest.mark.skipif(not importlib.util.find_spec("timm"), reason="the zoo extra is not installed")
def test_shim_acts_only_when_torchvision_extension_fails():
    code = ("from zoo._compat import patch_torchvision; patched = patch_torchvision(); "
            "import timm, torchvision; print(patched, torchvision.extension._has_ops())")
    patched, has_ops = _python(code).split()
    assert patched == str(has_ops == "False")


class FakeSource:
    """A source that records what it was asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def list(self, query=None):
        self.calls.append(("list", query))
        yield ModelInfo(name="m1", source="tfhub", architecture="m1", weights_available=True)

    def info(self, name):
        self.calls.append(("info", name))
        return ModelInfo(name=name, source="tfhub", architecture=name)

    def create(self, name, num_classes, pretrained=True, weights=None):
        self.calls.append(("create", name, num_classes, pretrained, weights))
        return name


@pytest.fixture
def fake_tfhub(monkeypatch) -> FakeSource:
    _registry.source_names()  # built-in sources first
    monkeypatch.setitem(_registry._SOURCES, "tfhub", FakeSource())
    return _registry._SOURCES["tfhub"]


def test_prefix_routes_to_its_source_with_the_prefix_removed(fake_tfhub):
    assert zoo.create("tfhub:/models/effnet", num_classes=3) == "/models/effnet"
    assert zoo.info("tfhub:https://tfhub.dev/x/1").name == "https://tfhub.dev/x/1"
    assert fake_tfhub.calls[0] == ("create", "/models/effnet", 3, True, None)


def test_unprefixed_names_go_to_timm(fake_tfhub):
    source, name = _registry.resolve("resnet50.a1_in1k")
    assert source is _registry.get_source("timm") and name == "resnet50.a1_in1k"
    assert _registry.resolve("hf-hub:timm/x")[1] == "hf-hub:timm/x"


def test_list_filters_by_source(fake_tfhub):
    assert [m.name for m in zoo.list("m", source="tfhub")] == ["m1"]
    assert fake_tfhub.calls == [("list", "m")]
    assert zoo.list_sources()[0] == "timm" and "tfhub" in zoo.list_sources()


def test_unregistered_source_is_named_in_the_error(monkeypatch):
    sources = {k: v for k, v in _registry._SOURCES.items() if k == "timm"}
    monkeypatch.setattr(_registry, "_SOURCES", sources)
    monkeypatch.setattr(_registry, "entry_points", lambda group: [])  # no plugin installed
    with pytest.raises(UnknownSourceError, match=r"'catalog'.*available: timm"):
        zoo.info("catalog:defects@2")
    with pytest.raises(UnknownSourceError):
        zoo.list(source="nope")


def test_register_source_decorator(monkeypatch):
    monkeypatch.setattr(_registry, "_SOURCES", dict(_registry._SOURCES))

    @zoo.register_source("catalog")
    class Catalog(FakeSource):
        pass

    assert isinstance(_registry.get_source("catalog"), Catalog)
    assert zoo.create("catalog:defects@2", num_classes=4) == "defects@2"


PLUGIN = """
from tests.test_zoo_api import FakeSource

class PluginSource(FakeSource):
    def framework(self, name):
        return "keras"


class FailingSource(FakeSource):
    def list(self, query=None):
        raise TypeError("a bug in the plugin")
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch) -> str:
    """A package's ``cairn.zoo_sources`` entry point ``fake``, its module not imported yet."""
    from importlib.metadata import EntryPoint

    module = f"cairn_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [EntryPoint("fake", f"{module}:PluginSource", _registry.GROUP),
              EntryPoint("broken", "no_such_module_here:Source", _registry.GROUP),
              EntryPoint("failing", f"{module}:FailingSource", _registry.GROUP)]
    monkeypatch.setattr(_registry, "entry_points",
                        lambda group: [p for p in points if p.group == group])
    monkeypatch.setattr(_registry, "_SOURCES", dict(_registry._SOURCES))
    return module


def test_a_plugin_source_loads_only_when_its_prefix_is_used(plugin):
    assert zoo.framework_of("tfhub:/models/x") == "keras"
    assert plugin not in sys.modules
    assert zoo.create("fake:m2", num_classes=3) == "m2"
    assert plugin in sys.modules and zoo.framework_of("fake:m2") == "keras"
    with pytest.raises(SourceUnavailableError, match="no_such_module_here"):
        zoo.info("broken:m")


def test_listing_every_source_loads_the_plugins(plugin):
    with pytest.warns(UserWarning, match="the broken source needs no_such_module_here"):
        names = zoo.list_sources()
    assert names[0] == "timm" and {"fake", "tfhub"} <= set(names) and "broken" not in names
    assert plugin in sys.modules
    assert [m.name for m in zoo.list("m", source="fake")] == ["m1"]


def test_a_plugin_that_fails_to_list_is_left_out_of_every_source_only(plugin):
    with pytest.warns(UserWarning, match="'failing' left out: .*a bug in the plugin"):
        names = [m.name for m in zoo.list("resnet18")]
    assert "m1" in names  # the working plugin's model (FakeSource ignores the query)
    assert "resnet18.a1_in1k" in names  # and timm's: one plugin's bug hides nothing else
    with pytest.raises(TypeError, match="a bug in the plugin"):
        zoo.list(source="failing")


def test_the_catalog_is_a_plugin_loaded_on_first_use():
    code = ("import sys, zoo; zoo.framework_of('tfhub:/x'); before = 'catalog' in sys.modules; "
            "sources = zoo.list_sources(); print(before, 'catalog' in sys.modules, *sources)")
    assert _python(code).split() == ["False", "True", "timm", "catalog", "tfhub"]


def test_suggestions_prefer_names_starting_with_the_input():
    names = ["resnet50", "resnet50.a1_in1k", "resnet50.a1h_in1k", "resnet101", "vit_base"]
    assert suggest("resnet50.a1", names)[:2] == ["resnet50.a1_in1k", "resnet50.a1h_in1k"]
    assert suggest("zzz", names) == []


def test_model_info_is_frozen_data_with_plain_dict():
    info = ModelInfo(name="a.b", source="timm", architecture="a", pretrained_tag="b",
                     input_size=(3, 224, 224), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                     interpolation="bicubic", crop_pct=0.9)
    with pytest.raises(FrozenInstanceError):
        info.name = "c"  # type: ignore[misc]
    as_dict = json.loads(json.dumps(info.to_dict()))
    assert as_dict["input_size"] == [3, 224, 224] and as_dict["num_params"] is None
    assert info.data_config() == {"input_size": (3, 224, 224), "interpolation": "bicubic",
                                  "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
                                  "crop_pct": 0.9}
    assert info.has_pretrained and not ModelInfo("x", "timm", "x").has_pretrained
