"""``cairn zoo profile`` of a Keras fine-tune (a ``tfhub:`` model): its SavedModel converted to
TensorFlow Lite in fp32, fp16 and int8, each checked against the Keras model, timed with the
TFLite interpreter and recorded on the run. No timing is asserted."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

if any(importlib.util.find_spec(m) is None
       for m in ("tensorflow", "tensorflow_hub", "tf_keras", "timm")):
    pytest.skip("the tfhub and zoo extras are not installed", allow_module_level=True)

import registry
import zoo
from registry.config import Workspace
from tests.test_zoo_keras import image_folder
from tests.test_zoo_tfhub import save_keras2
from zoo._profile import profile
from zoo.errors import ProfileError

FAST = {"batches": (1, 4), "repeats": 3}


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, str]]:
    root = tmp_path_factory.mktemp("tflite")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for key in [k for k in os.environ if k.startswith("CAIRN_")]:
            mp.delenv(key)
        mp.setenv("CAIRN_SYSTEM_INTERVAL", "0")
        ws = Workspace(root=root, store_url=f"sqlite:///{root / 'registry.db'}",
                       artifact_root=str(root / "artifacts"), catalog_dir=root / "catalog",
                       owner="tester", system_interval=0)
        backbone = save_keras2(root / "backbone")
        data = image_folder(root / "data", per_class=8)
        result = zoo.finetune(f"tfhub:{backbone}", data, epochs=2, batch_size=4, lr=0.05,
                              project="edge", run_name="hub", workspace=ws)
        yield ws, result.run_id


def test_a_keras_fine_tune_is_profiled_with_tflite_in_three_precisions(keras_run):
    ws, run_id = keras_run
    report = profile(run_id, workspace=ws, **FAST)
    assert report.runtime == "tflite" and not report.failures
    assert [p.precision for p in report.profiles] == ["fp32", "fp16", "int8"]
    fp32, fp16, int8 = report.profiles
    for p in report.profiles:
        assert p.file.suffix == ".tflite" and p.runtime == "tflite"
        assert [b["batch"] for b in p.batches] == [1, 4]
        assert all(0 < b["p50"] <= b["p90"] <= b["p99"] and b["throughput"] > 0
                   for b in p.batches)
        assert p.n_eval == 4 and 0 <= p.accuracy <= 1
        assert set(p.checked) == {"max_abs_diff", "top1_agreement"}
    assert fp32.checked["max_abs_diff"] < 1e-4 and fp32.checked["top1_agreement"] == 1.0
    assert fp16.checked["max_abs_diff"] < 0.05
    assert report.accuracy_delta(int8) == pytest.approx(int8.accuracy - fp32.accuracy)
    # (Files sizes are not compared: on a model this tiny the quantized files' extra ops
    # outweigh the weights they shrink; benchmarks/bench_profile.py shows real models.)
    record = registry.get_run(run_id, workspace=ws)
    # The fp32 file on the run's validation split scores what the Keras evaluation did.
    assert fp32.accuracy == pytest.approx(record.metrics["eval/accuracy"].last)
    for key in ("infer/tflite_fp16/b1/latency_ms_p50", "infer/tflite_int8/b4/throughput",
                "infer/tflite_int8/accuracy_delta", "infer/tflite_fp32/max_abs_diff"):
        assert key in record.metrics, key
    assert record.tags["infer.runtime"].startswith("tflite ")
    again = profile(run_id, workspace=ws, precisions=("fp16",), record=False, **FAST)
    assert again.profiles[0].file == fp16.file  # the converted file is reused


def test_data_that_moved_is_said_and_another_folder_can_be_given(keras_run):
    ws, run_id = keras_run
    folder = Path(registry.get_run(run_id, workspace=ws).datasets[0].path)
    moved = folder.rename(folder.with_name("moved"))
    try:
        with pytest.raises(ProfileError, match="pass --data DIR"):
            profile(run_id, workspace=ws, record=False, batches=(1,), repeats=2)
        report = profile(run_id, workspace=ws, record=False, batches=(1,), repeats=2,
                         precisions=("fp32", "int8"), data=moved)
    finally:
        moved.rename(folder)
    assert [p.precision for p in report.profiles] == ["fp32", "int8"]
    assert report.data == f"every image of {moved}: 16 images" and report.profiles[0].n_eval == 16
