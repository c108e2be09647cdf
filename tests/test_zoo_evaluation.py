"""zoo.evaluation: metrics checked against confusion matrices worked out by hand, properties
over random predictions, inference with evaluate() and what a registry run records."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

if importlib.util.find_spec("torch") is None:
    pytest.skip("the zoo extra is not installed: pip install 'cairn[zoo]'",
                allow_module_level=True)

import torch
from PIL import Image

import registry
from registry.artifacts import ArtifactStore
from zoo.errors import ZooError
from zoo.evaluation import (
    Evaluation,
    EvaluationInputError,
    evaluate,
    from_predictions,
    metric_names,
)

CLASSES = ["cat", "dog", "fox"]
# By hand: rows = true, columns = predicted.
#   true cat: cat cat dog      -> [2, 1, 0]
#   true dog: dog fox          -> [0, 1, 1]
#   true fox: fox fox cat cat  -> [2, 0, 2]
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2]
Y_PRED = [0, 0, 1, 1, 2, 2, 2, 0, 0]
CONFUSION = [[2, 1, 0], [0, 1, 1], [2, 0, 2]]


def test_known_confusion_matrix_gives_known_metrics():
    ev = from_predictions(Y_TRUE, Y_PRED, CLASSES)
    assert ev.confusion == CONFUSION
    assert ev.n == 9 and ev.accuracy == pytest.approx(5 / 9)
    assert ev.precision == pytest.approx([2 / 4, 1 / 2, 2 / 3])  # over columns
    assert ev.recall == pytest.approx([2 / 3, 1 / 2, 2 / 4])  # over rows
    assert ev.support == [3, 2, 4]


def test_precision_and_recall_are_zero_where_undefined():
    # "fox" is never predicted (no precision) and "dog" never occurs (no recall).
    ev = from_predictions([0, 0, 2, 2], [0, 1, 0, 1], CLASSES)
    assert ev.confusion == [[1, 1, 0], [0, 0, 0], [1, 1, 0]]
    assert ev.precision == [0.5, 0.0, 0.0]
    assert ev.recall == [0.5, 0.0, 0.0]
    assert ev.accuracy == 0.25


@pytest.mark.parametrize("convert", [list, np.asarray, torch.tensor, lambda v: iter(v)],
                         ids=["list", "numpy", "torch", "iterator"])
def test_accepts_lists_arrays_tensors_and_iterators(convert):
    ev = from_predictions(convert(Y_TRUE), convert(Y_PRED), CLASSES)
    assert ev.confusion == CONFUSION


@pytest.mark.parametrize(("y_true", "y_pred", "names", "field", "words"), [
    ([0, 1], [0], CLASSES, "y_pred", "1 values but y_true has 2"),
    ([], [], CLASSES, "y_true", "empty"),
    ([0, 3], [0, 1], CLASSES, "y_true", "outside 0..2, e.g. 3"),
    ([0, 1], [-1, 1], CLASSES, "y_pred", "outside 0..2, e.g. -1"),
    ([0.0, 1.5], [0, 1], CLASSES, "y_true", "integer class indices"),
    ([[0, 1]], [[0, 1]], CLASSES, "y_true", "one-dimensional"),
    ([0], [0], [], "class_names", "empty"),
    ([0], [0], ["a", "a"], "class_names", "repeat names: a"),
    ([0], [0], "ab", "class_names", "list of strings"),
    ([0], [0], ["a", 1], "class_names", "must all be strings"),
])
def test_bad_input_gets_a_typed_error_naming_the_field(y_true, y_pred, names, field, words):
    with pytest.raises(EvaluationInputError) as info:
        from_predictions(y_true, y_pred, names)
    assert isinstance(info.value, ZooError)
    assert info.value.field == field and words in str(info.value)


def test_metrics_are_flat_registry_keys():
    metrics = from_predictions(Y_TRUE, Y_PRED, CLASSES).metrics()
    assert set(metrics) == {"eval/accuracy", "eval/macro_precision", "eval/macro_recall",
                            *(f"eval/{m}/{c}" for m in ("precision", "recall") for c in CLASSES)}
    assert metrics["eval/precision/fox"] == pytest.approx(2 / 3)
    assert metrics["eval/recall/fox"] == pytest.approx(2 / 4)
    assert metrics["eval/macro_recall"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 4) / 3)
    test_metrics = from_predictions([0], [0], ["a"]).metrics("test/")
    assert "test/accuracy" in test_metrics and "accuracy" in from_predictions(
        [0], [0], ["a"]).metrics("")


def test_class_names_become_valid_unique_metric_key_parts():
    names = ["a/b", "a_b", "tab\there", " ", "x" * 300]
    parts = metric_names(names)
    assert parts == ["a_b", "a_b~1", "tab_here", "class_3", "x" * 100]
    metrics = from_predictions([0, 1, 2, 3, 4], [0, 1, 2, 3, 4], names).metrics()
    assert all(k.isprintable() and len(k) <= 250 for k in metrics)
    assert len(metrics) == 3 + 2 * len(names)


def test_round_trips_through_json():
    ev = from_predictions(Y_TRUE, Y_PRED, CLASSES)
    data = json.loads(json.dumps(ev.to_dict()))
    assert data["support"] == [3, 2, 4]
    assert Evaluation.from_dict(data) == ev


@pytest.mark.parametrize("k", [3, 40])
def test_confusion_png_is_a_labelled_image(tmp_path, k):
    rng = np.random.default_rng(k)
    names = [f"class number {i}" for i in range(k)]
    ev = from_predictions(rng.integers(0, k, 200), rng.integers(0, k, 200), names)
    path = ev.confusion_png(tmp_path / "plots" / "cm.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) >= 300
        # A heat map, not a blank canvas: many distinct colours.
        assert len(image.convert("RGB").getcolors(maxcolors=100_000)) > 20


def test_log_to_records_metrics_and_artifacts(workspace):
    ev = from_predictions(Y_TRUE, Y_PRED, CLASSES)
    with registry.start_run(project="zoo", workspace=workspace) as run:
        ev.log_to(run)
    record = registry.get_run(run.id, workspace=workspace)
    assert {k: s.last for k, s in record.metrics.items()} == pytest.approx(ev.metrics())
    by_name = {a.name: a for a in record.artifacts}
    assert set(by_name) == {"eval/confusion_matrix.png", "eval/evaluation.json"}
    store = ArtifactStore(workspace.artifact_root)
    doc = json.loads(store.open(by_name["eval/evaluation.json"].sha256).read())
    assert Evaluation.from_dict(doc) == ev
    assert store.open(by_name["eval/confusion_matrix.png"].sha256).read(8) == b"\x89PNG\r\n\x1a\n"


# -- evaluate(): inference ---------------------------------------------------------------------

class ChannelMean(torch.nn.Module):
    """Logits = each channel's mean: the brightest channel is the predicted class."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) * self.scale


def images_for(predicted: list[int], k: int = 3) -> torch.Tensor:
    """8x8 images whose brightest channel is ``predicted``."""
    x = torch.rand(len(predicted), k, 8, 8) * 0.5
    x[torch.arange(len(predicted)), torch.tensor(predicted)] += 1.0
    return x


def batches(y_true: list[int], y_pred: list[int], size: int = 4) -> list[tuple]:
    x, y = images_for(y_pred), torch.tensor(y_true)
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(y_true), size)]


@pytest.mark.parametrize(("amp_dtype", "channels_last"), [
    (None, False), (torch.bfloat16, False), (None, True), (torch.bfloat16, True)])
def test_evaluate_runs_the_model_over_the_loader(amp_dtype, channels_last):
    model = ChannelMean().train()
    ev = evaluate(model, batches(Y_TRUE, Y_PRED), device="cpu", class_names=CLASSES,
                  amp_dtype=amp_dtype, channels_last=channels_last)
    assert ev == from_predictions(Y_TRUE, Y_PRED, CLASSES)
    assert model.training  # the caller's mode is restored


def test_evaluate_uses_eval_mode_and_no_gradients():
    seen = []

    class Spy(ChannelMean):
        def forward(self, x):
            seen.append((self.training, torch.is_inference_mode_enabled()))
            return super().forward(x)

    evaluate(Spy(), torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images_for(Y_PRED), torch.tensor(Y_TRUE)), batch_size=5),
        device=torch.device("cpu"), class_names=CLASSES)
    assert seen == [(False, True), (False, True)]


def test_evaluate_a_timm_model():
    from zoo._compat import import_timm

    model = import_timm().create_model("test_resnet", pretrained=False, num_classes=3)
    loader = [(torch.randn(3, 3, 32, 32), torch.tensor([0, 1, 2])) for _ in range(2)]
    ev = evaluate(model, loader, device="cpu", class_names=CLASSES, channels_last=True)
    assert ev.n == 6 and sum(map(sum, ev.confusion)) == 6 and ev.support == [2, 2, 2]


def test_evaluate_rejects_bad_models_and_loaders():
    with pytest.raises(EvaluationInputError, match=r"shape \(4, 3\), expected \(batch, 2\)"):
        evaluate(ChannelMean(), batches(Y_TRUE, Y_PRED), device="cpu", class_names=["a", "b"])
    with pytest.raises(EvaluationInputError, match="no batches"):
        evaluate(ChannelMean(), [], device="cpu", class_names=CLASSES)
    with pytest.raises(EvaluationInputError, match=r"\(images, labels\)"):
        evaluate(ChannelMean(), [images_for([0])], device="cpu", class_names=CLASSES)
    with pytest.raises(EvaluationInputError, match=r"outside 0\.\.2"):
        evaluate(ChannelMean(), batches([0, 5], [0, 1]), device="cpu", class_names=CLASSES)


# -- properties -----------------------------------------------------------------------------

@st.composite
def predictions(draw):
    k = draw(st.integers(1, 8))
    n = draw(st.integers(1, 60))
    labels = st.lists(st.integers(0, k - 1), min_size=n, max_size=n)
    return draw(labels), draw(labels), [f"c{i}" for i in range(k)]


@settings(max_examples=150, deadline=None)
@given(predictions())
def test_from_predictions_properties(case):
    y_true, y_pred, names = case
    ev = from_predictions(y_true, y_pred, names)
    cm = np.asarray(ev.confusion)
    assert cm.shape == (len(names), len(names)) and cm.sum() == ev.n == len(y_true)
    assert cm.sum(axis=1).tolist() == [y_true.count(i) for i in range(len(names))]
    assert cm.sum(axis=0).tolist() == [y_pred.count(i) for i in range(len(names))]
    hits = sum(t == p for t, p in zip(y_true, y_pred, strict=True))
    assert ev.accuracy == pytest.approx(hits / len(y_true)) == pytest.approx(np.trace(cm) / ev.n)
    assert all(0.0 <= v <= 1.0 for v in [ev.accuracy, *ev.precision, *ev.recall])
    # Support-weighted recall is accuracy; prediction-weighted precision is too.
    assert np.dot(ev.recall, cm.sum(axis=1)) / ev.n == pytest.approx(ev.accuracy)
    assert np.dot(ev.precision, cm.sum(axis=0)) / ev.n == pytest.approx(ev.accuracy)
