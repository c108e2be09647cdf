"""zoo.export: safetensors round trips (wrapped, tied and non-contiguous weights, no pickle),
ONNX export of a timm CNN and ViT checked against PyTorch on batches of 1 and 3, mismatches
caught, and a fine-tune checkpoint exported end to end. Every model is built here, tiny."""

from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path

import pytest

if importlib.util.find_spec("timm") is None or importlib.util.find_spec("onnx") is None:
    pytest.skip("the zoo and export extras are not installed: pip install 'cairn[zoo,export]'",
                allow_module_level=True)

import numpy as np
import onnx
import onnxruntime as ort
import torch
from safetensors import safe_open

import zoo
from zoo import export
from zoo._compat import import_timm
from zoo.errors import WeightsMismatchError, ZooError
from zoo.export import (
    CheckpointError,
    ExportError,
    OnnxMismatchError,
    export_checkpoint,
    export_onnx,
    load_safetensors,
    read_metadata,
    save_safetensors,
    unwrap_model,
)

timm = import_timm()
TINY = {"cnn": ("test_resnet", {}), "vit": ("test_vit", {"img_size": 32})}


def tiny(kind: str, num_classes: int = 3) -> torch.nn.Module:
    name, kwargs = TINY[kind]
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs).eval()


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- safetensors --------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_round_trip_through_a_compiled_wrapper_with_metadata(tmp_path):
    model = tiny("cnn")
    meta = {"model": "test_resnet", "class_names": ["a", "b", "c"], "image_size": 32}
    path = save_safetensors(torch.compile(model), tmp_path / "ckpt" / "m.safetensors",
                            metadata=meta)
    assert read_metadata(path) == {"format": "pt", "model": "test_resnet",
                                   "class_names": '["a", "b", "c"]', "image_size": "32"}
    with safe_open(str(path), framework="pt") as f:
        assert not any(k.startswith("_orig_mod") for k in f.keys())  # noqa: SIM118
    fresh = tiny("cnn")
    torch.nn.init.zeros_(fresh.fc.weight)
    assert not same_weights(model, fresh)
    assert load_safetensors(fresh, path) == ([], [])
    assert same_weights(model, fresh)


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_unwraps_distributed_data_parallel(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0,
                            world_size=1)
    try:
        model = tiny("cnn")
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        assert unwrap_model(torch.compile(ddp)) is model
        path = save_safetensors(ddp, tmp_path / "m.safetensors")
        with safe_open(str(path), framework="pt") as f:
            assert set(f.keys()) == set(model.state_dict())
    finally:
        dist.destroy_process_group()


class Tied(torch.nn.Module):
    """Shared embedding/head weights and a non-contiguous (transposed) parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(5, 4)
        self.head = torch.nn.Linear(4, 5, bias=False)
        self.head.weight = self.embed.weight
        self.proj = torch.nn.Parameter(torch.randn(4, 6).t())


def test_shared_tensors_are_stored_once_and_stay_tied(tmp_path):
    model = Tied()
    assert not model.proj.is_contiguous()
    path = save_safetensors(model, tmp_path / "tied.safetensors")
    with safe_open(str(path), framework="pt") as f:
        assert len({"embed.weight", "head.weight"} & set(f.keys())) == 1
    fresh = Tied()
    load_safetensors(fresh, path)
    assert fresh.head.weight is fresh.embed.weight
    assert torch.equal(fresh.embed.weight, model.embed.weight)
    assert torch.equal(fresh.proj, model.proj)


def test_mismatched_weights_raise_or_are_reported(tmp_path):
    path = save_safetensors(tiny("cnn", num_classes=3), tmp_path / "m.safetensors")
    with pytest.raises(WeightsMismatchError, match=r"fc\.weight"):
        load_safetensors(tiny("cnn", num_classes=4), path)
    missing, unexpected = load_safetensors(torch.nn.Linear(2, 2), path, strict=False)
    assert missing == ["bias", "weight"] and "fc.weight" in unexpected


class Boom:
    def __reduce__(self):
        return (Path.touch, (Path("unpickled-marker"),))


def test_loading_never_unpickles(tmp_dir):
    torch.save({"w": Boom()}, tmp_dir / "evil.safetensors", _use_new_zipfile_serialization=False)
    (tmp_dir / "also.safetensors").write_bytes(pickle.dumps(Boom()))
    for name in ("evil.safetensors", "also.safetensors"):
        with pytest.raises(CheckpointError, match="not a readable safetensors file"):
            load_safetensors(tiny("cnn"), tmp_dir / name)
        with pytest.raises(CheckpointError):
            read_metadata(tmp_dir / name)
    assert not (tmp_dir / "unpickled-marker").exists()
    with pytest.raises(CheckpointError, match="no such file"):
        load_safetensors(tiny("cnn"), tmp_dir / "missing.safetensors")


# -- ONNX ---------------------------------------------------------------------------------------

def onnx_outputs(path: Path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.numpy()})[0]


@pytest.mark.parametrize("exporter", [pytest.param("dynamo", marks=pytest.mark.slow), "legacy"])
@pytest.mark.parametrize("kind", ["cnn", "vit"])
def test_onnx_matches_pytorch_on_batches_of_1_and_3(tmp_path, kind, exporter):
    model = tiny(kind)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    report = export_onnx(model, tmp_path / f"{kind}.onnx", sample=x[:1], exporter=exporter,
                         metadata={"class_names": ["a", "b", "c"]})
    assert report.exporter == exporter and report.path.is_file()
    assert 0.0 <= report.max_abs_diff <= 1e-4 and report.opset >= 17
    proto = onnx.load(str(report.path))
    onnx.checker.check_model(proto)
    assert {p.key: p.value for p in proto.metadata_props}["class_names"] == '["a", "b", "c"]'
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value  # a dynamic batch axis
    with torch.no_grad():
        for n in (1, 3):
            np.testing.assert_allclose(onnx_outputs(report.path, x[:n]), model(x[:n]).numpy(),
                                       atol=1e-4, rtol=0)
    assert not model.training


@pytest.mark.slow
def test_a_batch_of_3_exports_with_the_default_exporter(tmp_path):
    model = tiny("cnn").train()
    x = torch.randn(3, 3, 32, 32)
    report = export_onnx(model, tmp_path / "m.onnx", sample=x)
    assert report.exporter in ("dynamo", "legacy") and report.max_abs_diff <= 1e-4
    assert model.training  # the caller's mode is restored
    with torch.no_grad():
        np.testing.assert_allclose(onnx_outputs(report.path, x[:1]), model.eval()(x[:1]).numpy(),
                                   atol=1e-4, rtol=0)


class Noisy(torch.nn.Module):
    """Adds fresh random noise: ONNX Runtime draws other numbers than PyTorch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) + torch.rand_like(x.flatten(1))


def test_outputs_that_differ_raise_a_typed_error(tmp_path):
    with pytest.raises(OnnxMismatchError) as info:
        export_onnx(Noisy(), tmp_path / "noisy.onnx", sample=torch.zeros(2, 3, 4, 4),
                    exporter="legacy", atol=0.0)
    err = info.value
    assert isinstance(err, ExportError) and isinstance(err, ZooError)
    assert 0.0 < err.max_abs_diff < 1.0 and err.atol == 0.0 and err.exporter == "legacy"


@pytest.mark.parametrize(("shift", "expected"), [(1e-3, 1e-3), (np.nan, np.inf)])
def test_a_runtime_that_answers_differently_is_caught(tmp_path, monkeypatch, shift, expected):
    real = export._run_onnx
    monkeypatch.setattr(export, "_run_onnx", lambda path, x: [o + np.float32(shift)
                                                               for o in real(path, x)])
    with pytest.raises(OnnxMismatchError) as info:
        export_onnx(torch.nn.Linear(4, 2), tmp_path / "m.onnx", sample=torch.ones(3, 4),
                    exporter="legacy")
    assert info.value.max_abs_diff == pytest.approx(expected, rel=1e-2)


def test_bad_export_input_gets_typed_errors(tmp_path):
    linear = torch.nn.Linear(4, 2)
    with pytest.raises(ExportError, match="floats"):
        export_onnx(linear, tmp_path / "m.onnx", sample=torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ExportError, match="at least one item"):
        export_onnx(linear, tmp_path / "m.onnx", sample=torch.ones(0, 4))
    with pytest.raises(ExportError, match=r"torch\.nn\.Module"):
        export_onnx(lambda x: x, tmp_path / "m.onnx", sample=torch.ones(1, 4))
    with pytest.raises(ValueError, match="exporter"):
        export_onnx(linear, tmp_path / "m.onnx", sample=torch.ones(1, 4), exporter="tf")


# -- a fine-tune checkpoint ---------------------------------------------------------------------

@pytest.mark.slow
def test_export_checkpoint_rebuilds_the_model_from_its_metadata(tmp_path):
    names = ["ok", "scratch", "dent", "crack"]
    model = zoo.create("test_resnet", len(names), pretrained=False)
    ckpt = save_safetensors(model, tmp_path / "run" / "model.safetensors",
                            metadata={"model": "test_resnet", "class_names": names,
                                      "image_size": 48})
    out = export_checkpoint(None, ckpt, tmp_path / "export")
    assert out == {"safetensors": tmp_path / "export" / "model.safetensors",
                   "onnx": tmp_path / "export" / "model.onnx"}
    assert json.loads(read_metadata(out["safetensors"])["class_names"]) == names
    rebuilt = zoo.create("test_resnet", len(names), pretrained=False)
    load_safetensors(rebuilt, out["safetensors"])
    assert same_weights(model, rebuilt)
    proto = onnx.load(str(out["onnx"]))
    assert {p.key: p.value for p in proto.metadata_props}["model"] == "test_resnet"
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        np.testing.assert_allclose(onnx_outputs(out["onnx"], x), model.eval()(x).numpy(),
                                   atol=1e-4, rtol=0)


def test_export_checkpoint_needs_a_model_name_and_known_formats(tmp_path):
    ckpt = save_safetensors(torch.nn.Linear(2, 2), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="no 'model'"):
        export_checkpoint(None, ckpt, tmp_path / "out")
    with pytest.raises(CheckpointError, match="no 'num_classes'"):
        export_checkpoint("test_resnet", ckpt, tmp_path / "out", formats=["safetensors"])
    keras = save_safetensors(torch.nn.Linear(2, 2), tmp_path / "k.safetensors",
                             metadata={"model": "tfhub:/m", "framework": "keras"})
    with pytest.raises(CheckpointError, match="keras model"):
        export_checkpoint(None, keras, tmp_path / "out")
    with pytest.raises(ValueError, match="formats"):
        export_checkpoint("test_resnet", ckpt, tmp_path / "out", formats=["tflite"])
    out = export_checkpoint("test_resnet", save_safetensors(
        zoo.create("test_resnet", 2, pretrained=False), tmp_path / "r.safetensors",
        metadata={"num_classes": 2}), tmp_path / "out", formats=["safetensors"])
    assert list(out) == ["safetensors"]
