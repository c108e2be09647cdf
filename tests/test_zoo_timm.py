"""The timm source: listing, metadata, creation and local weights, over timm's tiny test
architectures (real code paths at CPU speed). Every weights file is built here; nothing is
downloaded (HF_HUB_OFFLINE=1, caches pointed at tmp_path)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

if importlib.util.find_spec("timm") is None:
    pytest.skip("the zoo extra is not installed: pip install 'cairn[zoo]'",
                allow_module_level=True)

import torch
from safetensors.torch import save_file

import zoo
from zoo._compat import import_timm
from zoo.errors import UnknownModelError, WeightsMismatchError, WeightsNotFoundError

timm = import_timm()
TINY = timm.list_models("test_*")
TINY_PRETRAINED = timm.list_pretrained("test_*")


@pytest.fixture(autouse=True)
def weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The team's weights folder in tmp_path; the Hugging Face and torch hub caches empty."""
    from huggingface_hub import constants

    monkeypatch.setenv(zoo.WEIGHTS_ENV, str(tmp_path / "weights"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "weights" / "timm"


def save_weights(name: str, path: Path) -> dict[str, torch.Tensor]:
    """A freshly initialised timm model's state dict, saved as safetensors at ``path``."""
    state = {k: v.detach().clone().contiguous()
             for k, v in timm.create_model(name, pretrained=False).state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return state


def is_head(key: str, model: torch.nn.Module) -> bool:
    heads = model.pretrained_cfg["classifier"]
    return any(key.startswith(h + ".") for h in ([heads] if isinstance(heads, str) else heads))


def forward(model: torch.nn.Module) -> torch.Tensor:
    c, h, w = model.cairn_info.input_size
    with torch.no_grad():
        return model.eval()(torch.randn(2, c, h, w))


def test_list_covers_every_tiny_architecture():
    listed = {m.name: m for m in zoo.list("test_*")}
    assert set(TINY_PRETRAINED) <= set(listed)
    assert {m.architecture for m in listed.values()} == set(TINY)
    assert all(m.source == "timm" and m.num_params is None for m in listed.values())
    weightless = [m for m in listed.values() if m.pretrained_tag is None]
    assert weightless and all(m.name == m.architecture for m in weightless)


@pytest.mark.parametrize("query", ["TEST_RESNET", "test_res*", "*RESNET.r160*", "esnet.r16"])
def test_query_is_a_case_insensitive_substring_or_glob(query):
    assert "test_resnet.r160_in1k" in [m.name for m in zoo.list(query)]


def test_query_without_match_lists_nothing():
    assert list(zoo.list("no-such-model*")) == []


def test_pretrained_only_leaves_out_architectures_without_weights():
    names = {m.name for m in zoo.list("test_*", pretrained_only=True)}
    assert names == set(TINY_PRETRAINED)


@pytest.mark.parametrize("arch", TINY)
def test_info_carries_timm_metadata_and_a_parameter_count(arch):
    info = zoo.info(arch)
    cfg = timm.models.get_pretrained_cfg(arch)
    assert info.architecture == arch and info.source == "timm"
    assert info.input_size == cfg.input_size and info.mean == tuple(cfg.mean)
    assert (info.interpolation, info.crop_pct, info.license) == (
        cfg.interpolation, cfg.crop_pct, cfg.license)
    assert info.num_classes == cfg.num_classes
    built = timm.create_model(info.name, pretrained=False)
    assert info.num_params == sum(p.numel() for p in built.parameters())
    assert info.name == (f"{arch}.{cfg.tag}" if info.pretrained_tag else arch)
    assert not info.weights_available
    assert info.to_dict()["input_size"] == list(cfg.input_size)


@pytest.mark.parametrize("arch", TINY)
def test_create_random_init_when_asked(arch):
    model = zoo.create(arch, num_classes=3, pretrained=False)
    assert forward(model).shape == (2, 3)
    assert model.cairn_info.architecture == arch
    assert model.pretrained_cfg["architecture"] == arch
    assert "file" not in model.pretrained_cfg


@pytest.mark.parametrize("name", TINY_PRETRAINED)
def test_weights_file_loads_the_backbone_and_a_new_head(name, tmp_path):
    path = tmp_path / "given.safetensors"
    state = save_weights(name, path)
    model = zoo.create(name, num_classes=5, weights=path)
    assert forward(model).shape == (2, 5)
    loaded = model.state_dict()
    backbone = [k for k in state if not is_head(k, model)]
    assert backbone and all(torch.equal(loaded[k], state[k]) for k in backbone)
    heads = [k for k in loaded if is_head(k, model) and k.endswith("weight")]
    assert heads and all(loaded[k].shape[0] == 5 for k in heads)
    assert model.cairn_info.weights_location == str(path)
    assert model.pretrained_cfg["file"] == str(path)


def test_same_num_classes_keeps_the_pretrained_head(tmp_path):
    state = save_weights("test_resnet.r160_in1k", tmp_path / "w.safetensors")
    model = zoo.create("test_resnet", num_classes=1000, weights=tmp_path / "w.safetensors")
    assert torch.equal(model.fc.weight, state["fc.weight"])


def test_pretrained_without_local_weights_fails_fast_saying_where(weights_dir):
    start = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as caught:
        zoo.create("test_resnet", num_classes=3)
    assert time.perf_counter() - start < 2.0
    expected = weights_dir / "test_resnet.r160_in1k.safetensors"
    assert caught.value.expected == str(expected) and str(expected) in str(caught.value)
    message = str(caught.value)
    assert "HF_HUB_OFFLINE=1" in message and "timm/test_resnet.r160_in1k" in message
    assert "pretrained=False" in message


def test_file_under_the_convention_is_available_and_loaded(weights_dir):
    path = weights_dir / "test_resnet.r160_in1k.safetensors"
    assert zoo.info("test_resnet").weights_location == str(path)
    state = save_weights("test_resnet.r160_in1k", path)
    info = zoo.info("test_resnet.r160_in1k")
    assert info.weights_available and info.weights_location == str(path)
    assert [m.name for m in zoo.list("test_*", available_only=True)] == [info.name]
    model = zoo.create("test_resnet", num_classes=4)
    assert torch.equal(model.conv1[0].weight, state["conv1.0.weight"])
    assert model.fc.out_features == 4 and model.cairn_info.weights_available


def test_hugging_face_cache_counts_as_local(tmp_path):
    commit = "0" * 40
    repo = tmp_path / "hf" / "models--timm--test_vit.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    state = save_weights("test_vit.r160_in1k", repo / "snapshots" / commit / "model.safetensors")
    info = zoo.info("test_vit")
    assert info.weights_available and info.weights_location.startswith(str(repo))
    model = zoo.create("test_vit", num_classes=2)
    assert torch.equal(model.patch_embed.proj.weight, state["patch_embed.proj.weight"])


def test_architecture_without_published_weights(weights_dir):
    info = zoo.info("test_vit4")
    assert info.pretrained_tag is None and info.hf_hub_id is None
    with pytest.raises(WeightsNotFoundError, match="publishes no pretrained weights"):
        zoo.create("test_vit4", num_classes=3)
    state = save_weights("test_vit4", weights_dir / "test_vit4.safetensors")
    model = zoo.create("test_vit4", num_classes=3)
    assert torch.equal(model.patch_embed.proj.weight, state["patch_embed.proj.weight"])


def test_weights_of_another_architecture_are_refused_not_ignored(tmp_path):
    save_weights("test_vit.r160_in1k", tmp_path / "vit.safetensors")
    with pytest.raises(WeightsMismatchError, match="does not fit model 'test_resnet"):
        zoo.create("test_resnet", num_classes=3, weights=tmp_path / "vit.safetensors")


def test_corrupt_weights_file_is_a_clear_error(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsMismatchError, match=r"bad\.safetensors"):
        zoo.create("test_resnet", num_classes=3, weights=tmp_path / "bad.safetensors")


def test_missing_weights_argument_file(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="no such file"):
        zoo.create("test_resnet", num_classes=3, weights=tmp_path / "nope.safetensors")


@pytest.mark.parametrize("bad", [-1, 2.5, True, "3"])
def test_num_classes_must_be_a_non_negative_integer(bad):
    with pytest.raises(ValueError, match="num_classes"):
        zoo.create("test_resnet", num_classes=bad, pretrained=False)


@pytest.mark.parametrize(("name", "suggested"), [
    ("test_resnt", "test_resnet"),
    ("resnet50.a1", "resnet50.a1_in1k"),
    ("test_resnet.bogus", "test_resnet.r160_in1k"),
])
def test_unknown_names_come_with_suggestions(name, suggested):
    with pytest.raises(UnknownModelError) as caught:
        zoo.info(name)
    assert suggested in caught.value.suggestions and suggested in str(caught.value)


def test_torch_hub_download_of_a_url_only_model_counts_as_local(tmp_path):
    from types import SimpleNamespace

    from zoo.sources._timm_local import LocalWeights

    cfg = SimpleNamespace(hf_hub_id=None, hf_hub_filename=None,
                          url="https://example.org/releases/gcvit_tiny-ac783954.pth")
    assert LocalWeights.scan().find("gcvit_tiny.in1k", cfg) == (None, False)
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "gcvit_tiny-ac783954.pth").write_bytes(b"")
    found = LocalWeights.scan().find("gcvit_tiny.in1k", cfg)
    assert found == (checkpoints / "gcvit_tiny-ac783954.pth", True)


def test_url_only_model_without_weights_says_which_file():
    url_only = [n for n in timm.list_pretrained()
                if not timm.models.get_pretrained_cfg(n).hf_hub_id]
    if not url_only:
        pytest.skip("every pretrained timm model is on the Hugging Face hub in this timm")
    entry = next(e for e in zoo.list(url_only[0]) if e.name == url_only[0])
    assert entry.has_pretrained and entry.hf_hub_id is None
    with pytest.raises(WeightsNotFoundError, match="converted from https://"):
        zoo.create(url_only[0], num_classes=2)


def test_encoder_without_a_head_refuses_num_classes_instead_of_ignoring_it():
    from types import SimpleNamespace

    from zoo.errors import NoClassifierError
    from zoo.sources.timm import _check_head

    encoder = SimpleNamespace(num_classes=0)  # timm's VLM encoders ignore num_classes
    _check_head(encoder, "qwen3_vit_88m_enc", 0)
    with pytest.raises(NoClassifierError, match="num_classes=0"):
        _check_head(encoder, "qwen3_vit_88m_enc", 5)
