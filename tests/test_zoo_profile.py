"""``cairn zoo profile``: a tiny fine-tune measured with ONNX Runtime, fp32 and int8, its
figures recorded on the run and written into its card (validated, indexed, searchable); a
model ONNX cannot export; quantization that fails (fp32 still profiled). No timing is
asserted: how Cairn's figures compare with a plain onnxruntime loop is
benchmarks/bench_profile.py's job."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

if importlib.util.find_spec("timm") is None or importlib.util.find_spec("onnxruntime") is None:
    pytest.skip("the zoo and export extras are not installed: pip install 'cairn[zoo,export]'",
                allow_module_level=True)

from click.testing import CliRunner

import catalog
import registry
import zoo
from catalog._inference import split_conditions
from registry.config import Workspace
from registry.errors import RunStateError
from tests.test_zoo_data import make_folder
from zoo._profile import profile
from zoo.cli import zoo as zoo_cli
from zoo.errors import ExportError, ProfileError

CLASSES = {"cat": 6, "dog": 6, "eel": 6}  # 3 validation images each at val_fraction 0.5
FAST = {"batches": (1, 4), "repeats": 3}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A workspace of its own (cairn.toml in the working directory, no CAIRN_* overrides),
    so the catalog source finds the same store and catalog as the profiler."""
    root = tmp_path_factory.mktemp("profile")
    (root / "cairn.toml").write_text(f'store = "sqlite:///{root}/registry.db"\n'
                                     f'artifacts = "{root}/artifacts"\n'
                                     f'catalog = "{root}/catalog"\n')
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for key in [k for k in os.environ if k.startswith("CAIRN_")]:
            mp.delenv(key)
        mp.setenv("CAIRN_SYSTEM_INTERVAL", "0")
        mp.setenv("CAIRN_WEIGHTS_DIR", str(root / "weights"))
        yield registry.load_workspace()


@pytest.fixture(scope="module")
def run_id(ws: Workspace) -> str:
    """A real fine-tune of timm's test_resnet on a tiny image folder."""
    images = make_folder(ws.root / "data", CLASSES, size=32)
    result = zoo.finetune("test_resnet", images, pretrained=False, epochs=1, batch_size=8,
                          image_size=32, workers=0, val_fraction=0.5, workspace=ws,
                          progress=False, project="tests", run_name="tiny")
    return result.run_id


def test_a_run_profiled_in_fp32_and_int8_and_recorded(run_id: str, ws: Workspace) -> None:
    report = profile(run_id, workspace=ws, **FAST)
    fp32, int8 = report.get("fp32"), report.get("int8")
    assert fp32 is not None and int8 is not None and not report.failures
    for p in (fp32, int8):
        assert [b["batch"] for b in p.batches] == [1, 4]
        assert all(b["repeats"] == 3 and 0 < b["p50"] <= b["p90"] <= b["p99"]
                   and b["throughput"] > 0 for b in p.batches)
        assert p.file_mb == pytest.approx(p.file.stat().st_size / 2**20)
        assert p.peak_memory_mb is not None and p.peak_memory_mb > 0
        assert p.n_eval == 9 and 0 <= p.accuracy <= 1
    assert int8.file_mb < fp32.file_mb
    record = registry.get_run(run_id, workspace=ws)
    # The ONNX model on the run's own validation split scores what PyTorch's evaluation did.
    assert fp32.accuracy == pytest.approx(record.metrics["eval/accuracy"].last)
    assert report.accuracy_delta(int8) == pytest.approx(int8.accuracy - fp32.accuracy)
    assert record.status == "FINISHED" and report.run_id == run_id
    for key, value in report.metrics().items():
        assert record.metrics[key].last == pytest.approx(value), key
    assert "infer/onnx_int8/b4/throughput" in record.metrics
    assert record.tags["infer.threads"] == str(report.threads)
    assert record.tags["infer.hardware"] == report.hardware != ""
    assert record.tags["infer.runtime"].startswith("onnxruntime ")
    assert "Inference profile (onnxruntime" in (record.notes or "")

    cached = fp32.file
    stamp = cached.stat().st_mtime_ns
    again = profile(run_id, workspace=ws, batches=(1,), repeats=3, precisions=("fp32",))
    assert again.get("fp32").file == cached and cached.stat().st_mtime_ns == stamp  # reused
    history = registry.metric_history(run_id, ["infer/onnx_fp32/b1/latency_ms_p50"],
                                      workspace=ws)
    assert [p.step for p in history["infer/onnx_fp32/b1/latency_ms_p50"]] == [0, 1]


def test_the_card_gets_an_inference_list_validated_and_searchable(run_id: str,
                                                                  ws: Workspace) -> None:
    card_path = catalog.draft_from_run(run_id, name="tiny-r", track="none", workspace=ws)
    report = profile("catalog:tiny-r", workspace=ws, precisions=("fp32",), **FAST)
    assert report.card_path == card_path and report.run_id == run_id
    card = catalog.read_card(card_path)
    entries = card.front_matter["inference"]
    assert [(e["precision"], e["batch"]) for e in entries] == [("fp32", 1), ("fp32", 4)]
    first = entries[0]
    assert first["runtime"] == "onnxruntime" and first["threads"] == report.threads
    assert first["hardware"] == report.hardware and first["run"] == run_id
    assert first["latency_ms"]["p50"] == pytest.approx(report.get("fp32").at(1)["p50"],
                                                       abs=1e-4)
    problems = catalog.validate(card_path, workspace=ws)
    assert [p for p in problems if p.severity == "error"] == []

    profile("catalog:tiny-r", workspace=ws, precisions=("fp32",), batches=(1,), repeats=3)
    entries = catalog.read_card(card_path).front_matter["inference"]
    assert [(e["precision"], e["batch"]) for e in entries] == [("fp32", 4), ("fp32", 1)]
    best = min(e["latency_ms"]["p50"] for e in entries if e["batch"] == 1)

    catalog.index(workspace=ws)
    hits = catalog.search(f"latency_ms < {best * 2} and accuracy >= 0", workspace=ws)
    assert [h.ref for h in hits] == ["tiny-r@1"] and hits[0].latency_ms == best
    assert catalog.search(f"latency_ms < {best / 2}", workspace=ws) == []
    assert catalog.search("tiny accuracy > 1", workspace=ws) == []

    text = card_path.read_text()
    card_path.write_text(text.replace("  batch: 4\n", "  batch: 0\n", 1))
    found = [p for p in catalog.validate(card_path, workspace=ws) if p.severity == "error"]
    assert [p.field for p in found] == ["inference[0].batch"]


def test_an_onnx_file_without_data_skips_accuracy_and_int8(run_id: str, ws: Workspace,
                                                           tmp_path: Path) -> None:
    onnx_file = profile(run_id, workspace=ws, batches=(1,), repeats=3, precisions=("fp32",),
                        record=False).get("fp32").file
    report = profile(str(onnx_file), workspace=ws, batches=(2,), repeats=3)
    assert [p.precision for p in report.profiles] == ["fp32"]
    assert report.get("fp32").accuracy is None and report.run_id is None
    notes = " / ".join(report.notes)
    assert "accuracy skipped" in notes and "int8 skipped" in notes
    with_data = profile(str(onnx_file), workspace=ws, batches=(1,), repeats=3,
                        data=ws.root / "data")
    assert with_data.get("int8") is not None and with_data.get("fp32").n_eval == 18


def log_conv_onnx(path: Path) -> Path:
    """Log(Relu(x)) into a convolution: dark pixels give -inf activations and the
    convolution NaN, which fp32 runs through and int8 cannot scale (onnxruntime's quantizer
    fails on that operator)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).standard_normal((3, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Relu", ["input"], ["r"]), helper.make_node("Log", ["r"], ["l"]),
             helper.make_node("Conv", ["l", "W"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["g"]),
             helper.make_node("Flatten", ["g"], ["logits"])]
    graph = helper.make_graph(
        nodes, "logconv", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                         ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(weight, "W")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_quantization_that_fails_keeps_the_fp32_profile(ws: Workspace, tmp_path: Path) -> None:
    model = log_conv_onnx(tmp_path / "logconv.onnx")
    data = make_folder(tmp_path / "data", {"a": 2, "b": 2, "c": 2}, size=16)
    out = CliRunner().invoke(zoo_cli, ["profile", str(model), "--batch", "1", "--repeats",
                                       "3", "--data", str(data)])
    assert out.exit_code == 0, out.output
    assert "int8 failed: cannot quantize" in out.output and "scale" in out.output
    assert "fp32       1" in out.output and "int8       1" not in out.output
    assert "preprocessing assumed: ImageNet" in out.output
    report = profile(str(model), workspace=ws, batches=(1,), repeats=3, data=data)
    assert report.get("fp32") is not None and report.get("int8") is None
    assert "cannot quantize" in report.tags()["infer.onnx_int8.error"]


def test_a_model_onnx_cannot_export_is_a_clear_error(ws: Workspace, tmp_path: Path) -> None:
    import torch

    from zoo._registry import _SOURCES
    from zoo.export import save_safetensors

    class Eigen(torch.nn.Module):  # torch.linalg.eigvals has no ONNX operator
        def __init__(self, num_classes: int) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = x.mean(dim=(2, 3))
            return self.fc(m) + torch.linalg.eigvals(m[:, :, None] * m[:, None, :]).real

    @zoo.register_source("eigen")
    class EigenSource:
        def create(self, name: str, num_classes: int, pretrained: bool = True,
                   weights: str | None = None) -> torch.nn.Module:
            return Eigen(num_classes)

        def framework(self, name: str) -> str:
            return "pytorch"

    try:
        checkpoint = save_safetensors(Eigen(3), tmp_path / "eigen.safetensors", metadata={
            "model": "eigen:m", "class_names": ["a", "b", "c"], "image_size": 8})
        with pytest.raises(ExportError, match="aten::linalg_eigvals"):
            profile(str(checkpoint), workspace=ws, batches=(1,), repeats=3)
    finally:
        _SOURCES.pop("eigen", None)


def test_bad_sources_and_options(ws: Workspace, tmp_path: Path, run_id: str) -> None:
    with pytest.raises(ProfileError, match="no file, run or model card"):
        profile("no-such-thing", workspace=ws)
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(ProfileError, match=r"\.onnx or \.safetensors"):
        profile(str(tmp_path / "model.pt"), workspace=ws)
    with pytest.raises(ValueError, match="precisions of onnxruntime must be among fp32, int8"):
        profile(run_id, precisions=("fp16",), workspace=ws)  # fp16 is TFLite's
    out = CliRunner().invoke(zoo_cli, ["profile", "x", "--batch", "0"])
    assert out.exit_code != 0 and "positive numbers" in out.output
    out = CliRunner().invoke(zoo_cli, ["profile", "x", "--precision", "fp8"])
    assert out.exit_code != 0 and "fp32,fp16,int8" in out.output


def test_search_conditions_are_split_from_the_words() -> None:
    rest, found = split_conditions("scratch latency_ms < 10 and accuracy>=0.9 tag:x")
    assert rest.split() == ["scratch", "tag:x"]
    assert found == [("latency_ms", "<", 10.0), ("accuracy", ">=", 0.9)]


def test_add_to_run_refuses_a_running_run(ws: Workspace) -> None:
    with registry.start_run("tests", "live", workspace=ws) as run, \
            pytest.raises(RunStateError, match="running"):
        registry.add_to_run(run.id, metrics={"infer/x": 1.0}, workspace=ws)
    record = registry.add_to_run(run.id, metrics={"infer/x": 1.0}, tags={"k": "v"},
                                 workspace=ws)
    assert record.metrics["infer/x"].last == 1.0 and record.tags["k"] == "v"
