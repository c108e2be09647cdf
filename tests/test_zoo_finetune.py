"""``zoo.finetune``: strategies, schedule, resume, early stopping, EMA, the run record, the
CLI. Tiny timm test models (random init or a weights file saved here), 32 px images."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("timm") is None:
    pytest.skip("the zoo extra is not installed: pip install 'cairn[zoo]'",
                allow_module_level=True)

import torch
from click.testing import CliRunner

import registry
import zoo
from registry.config import Workspace
from tests.test_zoo_data import make_folder
from zoo import FinetuneResult
from zoo._compat import import_timm
from zoo.errors import FinetuneConfigError, ResumeError, WeightsNotFoundError
from zoo.training import backends
from zoo.training.loop import EpochStats, Trainer
from zoo.training.schedule import WarmupCosine
from zoo.training.strategies import apply_strategy, param_groups, stage_groups, train_mode

CLASSES = {"cat": 8, "dog": 8, "eel": 8}  # 6 train + 2 val images each at val_fraction 0.2


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("images") / "data", CLASSES, size=32)


@pytest.fixture
def ws(tmp_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    from huggingface_hub import constants

    monkeypatch.setenv("CAIRN_WEIGHTS_DIR", str(tmp_dir / "weights"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_dir / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_dir / "torch"))
    return Workspace(root=tmp_dir, store_url=f"sqlite:///{tmp_dir / 'registry.db'}",
                     artifact_root=str(tmp_dir / "artifacts"), catalog_dir=tmp_dir / "catalog",
                     owner="tester", heartbeat_interval=0.5, flush_interval=0.05)


def tune(images: Path, ws: Workspace, model: str = "test_resnet", **options) -> FinetuneResult:
    defaults = dict(pretrained=False, epochs=1, batch_size=8, image_size=32, workers=0,
                    workspace=ws, progress=False, project="tests")
    return zoo.finetune(model, images, **{**defaults, **options})


def fixed_validation(monkeypatch: pytest.MonkeyPatch, accuracies: list[float]) -> None:
    """Make epoch k's validation accuracy ``accuracies[k]`` (and its loss 1 - accuracy)."""
    values = iter(accuracies)

    def validate(self, model, loader):
        acc = next(values)
        return EpochStats(loss=1.0 - acc, accuracy=acc, images=6, seconds=0.01)

    monkeypatch.setattr(Trainer, "validate", validate)


# -- the run record ---------------------------------------------------------------------------


def test_a_finetune_is_a_recorded_run(images: Path, workspace: Workspace):
    from zoo.export import read_metadata

    result = tune(images, workspace, epochs=2, lr=5e-3)

    record = registry.get_run(result.run_id, workspace=workspace)
    assert record.status == "FINISHED" and record.tags["cairn.kind"] == "finetune"
    p = record.params
    assert (p["model"], p["num_classes"], p["class_names"]) == ("test_resnet", 3, list(CLASSES))
    assert (p["image_size"], p["framework"], p["strategy"], p["n_val"]) == (32, "torch", "full", 6)
    assert p["lr"] == 5e-3 and p["world_size"] == 1 and p["trainable_params"] > 0
    assert [(d.path, d.role) for d in record.datasets] == [(str(images), "train")]
    history = registry.metric_history(result.run_id, workspace=workspace)
    for key in ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "lr",
                "images_per_second"):
        assert [pt.step for pt in history[key]] == [1, 2], key
    assert {"eval/accuracy", "eval/precision/cat", "eval/recall/eel"} <= set(record.metrics)
    assert {a.name for a in record.artifacts} == {
        "model.safetensors", "eval/confusion_matrix.png", "eval/evaluation.json"}

    assert len(result.history) == 2 and result.images_per_second > 0
    assert result.best_metric == max(h["val/accuracy"] for h in result.history)
    assert result.history[result.best_epoch - 1]["val/accuracy"] == result.best_metric
    assert result.evaluation.n == 6 and result.evaluation.class_names == list(CLASSES)
    meta = read_metadata(result.checkpoint)
    assert meta["model"] == "test_resnet" and json.loads(meta["class_names"]) == list(CLASSES)


def test_pretrained_without_weights_raises_and_records_nothing(images: Path, ws: Workspace):
    with pytest.raises(WeightsNotFoundError, match="not on this machine"):
        tune(images, ws, pretrained=True)
    assert registry.list_runs(workspace=ws) == []


def test_linear_probe_from_a_weights_file_trains_only_the_head(images: Path, ws: Workspace,
                                                                tmp_path: Path):
    from safetensors.torch import load_file, save_file

    source = import_timm().create_model("test_resnet", pretrained=False)
    weights = tmp_path / "test_resnet.safetensors"
    save_file(source.state_dict(), str(weights))

    result = tune(images, ws, weights=weights, strategy="linear", lr=1e-2)

    tuned, original = load_file(str(result.checkpoint)), load_file(str(weights))
    backbone = [k for k in original if not k.startswith("fc.")]
    assert all(torch.equal(tuned[k], original[k]) for k in backbone)  # BN statistics too
    assert tuned["fc.weight"].shape == (3, original["fc.weight"].shape[1])
    params = registry.get_run(result.run_id, workspace=ws).params
    assert params["weights"] == str(weights) and params["trainable_params"] == 3 * (
        original["fc.weight"].shape[1] + 1)


# -- strategies and optimizer groups ------------------------------------------------------------


@pytest.mark.parametrize("name", ["test_resnet", "test_vit", "test_convnext"])
def test_strategies_freeze_what_they_do_not_train(name: str):
    model = import_timm().create_model(name, pretrained=False, num_classes=3)
    classifier = {id(p) for p in model.get_classifier().parameters()}

    def trained(strategy: str, stages: int = 1) -> set[str]:
        apply_strategy(model, strategy, stages)
        return {n for n, p in model.named_parameters() if p.requires_grad}

    groups = stage_groups(model)
    assert trained("linear") == {n for n, p in model.named_parameters() if id(p) in classifier}
    assert trained("partial", 1) == set(groups[-1]) | set(groups[-2]) | trained("linear")
    assert trained("partial", 1) < trained("partial", 2) < trained("full")
    assert not trained("partial", len(groups) - 2) & set(groups[0])  # the stem never trains
    report = apply_strategy(model, "full")
    assert report.trainable == report.total == sum(p.numel() for p in model.parameters())
    with pytest.raises(FinetuneConfigError, match=f"has {len(groups) - 2} stages"):
        apply_strategy(model, "partial", len(groups) - 1)


def test_frozen_batch_norm_keeps_its_statistics():
    model = import_timm().create_model("test_resnet", pretrained=False, num_classes=3)
    apply_strategy(model, "linear")
    train_mode(model)
    before = model.bn1.running_mean.clone()
    model(torch.randn(4, 3, 32, 32))
    assert not model.bn1.training and torch.equal(model.bn1.running_mean, before)
    assert model.fc.training


def test_layer_decay_scales_the_lr_down_with_depth():
    model = import_timm().create_model("test_vit", pretrained=False, num_classes=3)
    apply_strategy(model, "partial", 2)
    groups = param_groups(model, weight_decay=0.05, layer_decay=0.5)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in groups for p in g["params"]} == trainable
    head = next(g for g in groups if any(p is model.head.weight for p in g["params"]))
    scales = sorted({g["lr_scale"] for g in groups})
    assert head["lr_scale"] == 1.0 == scales[-1] and scales[0] == 0.5 ** (len(scales) - 1)
    biases = next(g for g in groups if any(p is model.head.bias for p in g["params"]))
    assert biases["weight_decay"] == 0.0 and head["weight_decay"] == 0.05
    plain = param_groups(model, weight_decay=0.05)
    assert {g["lr_scale"] for g in plain} == {1.0} and len(plain) == 2


def test_warmup_then_cosine():
    schedule = WarmupCosine(base_lr=1.0, total_steps=10, warmup_steps=2)
    factors = [schedule.factor(s) for s in range(11)]
    assert factors[:3] == [0.5, 1.0, 1.0]
    assert all(a >= b for a, b in itertools.pairwise(factors[2:]))
    assert factors[10] == pytest.approx(0.0) and factors[6] == pytest.approx(0.5)
    optimizer = torch.optim.AdamW([{"params": [torch.zeros(1, requires_grad=True)],
                                    "lr_scale": 0.25}])
    assert schedule.apply(optimizer, 0) == 0.5 and optimizer.param_groups[0]["lr"] == 0.125


# -- resume, early stopping, EMA, accumulation --------------------------------------------------


def test_resume_continues_where_the_checkpoint_stopped(images: Path, ws: Workspace,
                                                        tmp_path: Path):
    folder = tmp_path / "ckpt"
    first = tune(images, ws, epochs=2, checkpoint_dir=folder)
    second = tune(images, ws, epochs=3, checkpoint_dir=folder, resume=True)

    assert second.history[:2] == first.history and len(second.history) == 3
    record = registry.get_run(second.run_id, workspace=ws)
    assert record.tags["cairn.resumed_from"] == first.run_id
    history = registry.metric_history(second.run_id, ["val/accuracy"], workspace=ws)
    assert [pt.step for pt in history["val/accuracy"]] == [1, 2, 3]
    state = torch.load(folder / "last.pt", weights_only=True)
    assert state["epoch"] == 3 and state["run_id"] == second.run_id

    with pytest.raises(FinetuneConfigError, match="already has 3 epochs"):
        tune(images, ws, epochs=3, resume=folder / "last.pt")
    with pytest.raises(ResumeError, match="strategy='full'"):
        tune(images, ws, epochs=4, strategy="linear", resume=folder / "last.pt")
    with pytest.raises(ResumeError, match="no such file"):
        tune(images, ws, epochs=4, resume=tmp_path / "nothing.pt")
    with pytest.raises(FinetuneConfigError, match="needs checkpoint_dir"):
        tune(images, ws, epochs=4, resume=True)


def test_early_stopping_stops_after_patience_epochs_without_progress(
        images: Path, ws: Workspace, monkeypatch: pytest.MonkeyPatch):
    fixed_validation(monkeypatch, [0.5, 0.5, 0.4, 0.9, 0.9])
    result = tune(images, ws, epochs=5, early_stopping=2)
    assert len(result.history) == 3 and result.best_epoch == 1 and result.best_metric == 0.5


def test_ema_weights_are_the_ones_validated_and_published(images: Path, ws: Workspace,
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    from safetensors.torch import load_file

    fixed_validation(monkeypatch, [0.2, 0.3])
    result = tune(images, ws, epochs=2, ema=0.5, lr=1e-2, checkpoint_dir=tmp_path / "c")
    state = torch.load(tmp_path / "c" / "last.pt", weights_only=True)
    published = load_file(str(result.checkpoint))
    assert result.best_epoch == 2
    assert torch.equal(published["fc.weight"], state["ema_state"]["fc.weight"])
    assert not torch.equal(state["ema_state"]["fc.weight"], state["model_state"]["fc.weight"])


def test_gradient_accumulation_steps_the_optimizer_every_n_batches(images: Path, ws: Workspace,
                                                                    tmp_path: Path):
    tune(images, ws, epochs=2, batch_size=4, accum_steps=2, checkpoint_dir=tmp_path / "c")
    state = torch.load(tmp_path / "c" / "last.pt", weights_only=True)
    assert state["step"] == 2 * 2  # 18 training images: 4 batches of 4 a epoch, 2 steps


def test_bf16_autocast_and_channels_last_on_cpu(images: Path, ws: Workspace):
    result = tune(images, ws, amp="bf16", channels_last=True)
    params = registry.get_run(result.run_id, workspace=ws).params
    assert params["amp"] == "bfloat16" and params["channels_last"] is True
    assert torch.isfinite(torch.tensor(result.history[0]["train/loss"]))


def test_torch_compile_traces_the_training_model(images: Path, ws: Workspace,
                                                  monkeypatch: pytest.MonkeyPatch):
    # Dynamo with the eager backend: the same graph capture as inductor, without its minutes
    # of C++ compilation on a small CPU (the real backend runs in benchmarks/bench_zoo.py).
    compiled, real_compile = [], torch.compile

    def eager_compile(model, **options):
        compiled.append(model)
        return real_compile(model, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    result = tune(images, ws, compile=True, epochs=2)
    assert len(compiled) == 1 and len(result.history) == 2 and result.evaluation is not None
    assert registry.get_run(result.run_id, workspace=ws).params["compile"] is True


@pytest.mark.parametrize("options", [
    {"strategy": "lora"}, {"epochs": 0}, {"train_stages": 2}, {"layer_decay": 1.5},
    {"ema": 1.0}, {"amp": "fp16"}, {"num_classes": 5}, {"warmup_epochs": 1},
    {"val_fraction": 1.0}, {"batch_size": 0}, {"lr": -1.0}, {"device": "gpu0"},
    {"augment": "heavy"}, {"augment": {"blur": 1.0}}, {"augment": {"scale": (0.0, 1.0)}},
    {"augment": {"scale": (0.9, 0.5)}}, {"augment": {"hflip": 2}},
    *([{"device": "cuda"}] if not torch.cuda.is_available() else []),
])
def test_bad_options_fail_before_any_run(images: Path, ws: Workspace, options: dict):
    with pytest.raises(FinetuneConfigError):
        tune(images, ws, **options)
    assert registry.list_runs(workspace=ws) == []


def cli_args(images: Path, ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``cairn zoo finetune`` of the test model on ``images``, one small epoch, into ``ws``."""
    monkeypatch.setenv("CAIRN_STORE", ws.store_url)
    monkeypatch.setenv("CAIRN_ARTIFACTS", ws.artifact_root)
    return ["zoo", "finetune", "--model", "test_resnet", "--data", str(images), "--epochs",
            "1", "--batch-size", "8", "--image-size", "32", "--workers", "0"]


def _train_crop(loaders) -> Any:
    steps = loaders.train.dataset.transform.transforms
    return next((t for t in steps if type(t).__name__.startswith("RandomResized")), None)


def test_augment_options_reach_timms_training_transform(images: Path):
    from zoo.training._loaders import make_loaders
    from zoo.training.data import prepare

    train, val = prepare(images, None, 0.2, 0)[1:3]
    config = {"input_size": (3, 32, 32), "interpolation": "bilinear", "mean": (0.5,) * 3,
              "std": (0.5,) * 3, "crop_pct": 1.0, "crop_mode": "center"}

    def loaders(augment):
        return make_loaders(train, val, config=config, batch_size=4, workers=0, seed=0,
                            augment=augment)

    assert _train_crop(loaders(True)).scale == (0.08, 1.0)  # timm's standard
    assert _train_crop(loaders({"scale": [0.6, 1.0], "hflip": 0.0})).scale == (0.6, 1.0)
    plain = loaders(False)
    assert _train_crop(plain) is None
    assert plain.train.dataset.transform is plain.val.dataset.transform


def test_augment_is_recorded_and_set_from_the_command_line(images: Path, ws: Workspace,
                                                           monkeypatch: pytest.MonkeyPatch):
    from registry.cli import cli

    args = [*cli_args(images, ws, monkeypatch), "--scratch", "--no-progress", "--json",
            "--augment", "scale=0.5,1", "--augment", "vflip=0.5"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    params = registry.get_run(json.loads(result.output.splitlines()[-1])["run_id"],
                              workspace=ws).params
    assert params["augment.scale"] == [0.5, 1.0] and params["augment.vflip"] == 0.5
    clash = CliRunner().invoke(cli, [*args, "--no-augment"])
    assert clash.exit_code == 2 and "exclude each other" in clash.output
    bad = CliRunner().invoke(cli, [*args[:-4], "--augment", "scale"])
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output


# -- Keras dispatch and the command line ---------------------------------------------------------


def test_the_models_framework_chooses_the_backend(monkeypatch: pytest.MonkeyPatch):
    calls: list[tuple] = []

    def keras_run(config, workspace):
        calls.append((config.model, config.data, config.epochs, config.project, workspace))
        return FinetuneResult(run_id="k", best_metric=1.0, best_epoch=1, checkpoint=None)

    keras = dataclasses.replace(backends.KERAS, run=keras_run)
    monkeypatch.setitem(backends.BACKENDS, "keras", keras)
    result = zoo.finetune("tfhub:/models/mobilenet", "data", epochs=3, project="p",
                          every_n_batches=2, workspace="ws")
    assert result.run_id == "k"
    assert calls == [("tfhub:/models/mobilenet", Path("data"), 3, "p", "ws")]
    with pytest.raises(FinetuneConfigError, match="compile=True: does not apply to Keras"):
        zoo.finetune("tfhub:/models/mobilenet", "data", compile=True)
    with pytest.raises(FinetuneConfigError, match="Keras models take 'full' or 'linear'"):
        zoo.finetune("tfhub:/models/mobilenet", "data", strategy="partial")
    assert len(calls) == 1  # refused before the backend runs


@pytest.mark.parametrize(("options", "match"), [
    ({"every_n_batches": 5}, "every_n_batches=5: does not apply to PyTorch models"),
    ({"every_n_batches": 0}, "every_n_batches=0: must be a positive integer"),
])
def test_an_option_the_framework_does_not_take_is_refused(images: Path, ws: Workspace,
                                                          options: dict, match: str):
    with pytest.raises(FinetuneConfigError, match=match):
        tune(images, ws, **options)
    assert registry.list_runs(workspace=ws) == []


def test_options_are_declared_once_and_unknown_ones_are_refused():
    from zoo.training.config import OPTIONS

    assert set(backends.KERAS.options) < set(OPTIONS) == set(backends.PYTORCH.options) | {
        "every_n_batches"}
    assert all(spec.metadata["doc"] for spec in OPTIONS.values())
    with pytest.raises(TypeError, match="'epoch'"):
        zoo.finetune("test_resnet", "data", epoch=3)


def test_cli_finetunes_and_prints_the_result(images: Path, ws: Workspace,
                                             monkeypatch: pytest.MonkeyPatch):
    from registry.cli import cli

    args = [*cli_args(images, ws, monkeypatch), "--strategy", "partial", "--train-stages", "2",
            "--project", "cli", "--no-progress"]
    result = CliRunner().invoke(cli, [*args, "--scratch", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    record = registry.get_run(summary["run_id"], workspace=ws)
    assert record.project == "cli" and record.params["train_stages"] == 2
    assert Path(summary["checkpoint"]).is_file() and summary["epochs"] == 1

    missing = CliRunner().invoke(cli, args)
    assert missing.exit_code == 1 and "pretrained weights" in missing.output


def test_cli_exports_a_runs_checkpoint(images: Path, ws: Workspace,
                                       monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from registry.cli import cli

    monkeypatch.setenv("CAIRN_STORE", ws.store_url)
    monkeypatch.setenv("CAIRN_ARTIFACTS", ws.artifact_root)
    result = tune(images, ws, project="export")
    out = tmp_path / "exported"
    done = CliRunner().invoke(cli, ["zoo", "export", result.run_id[:8], "--out", str(out),
                                    "--format", "safetensors"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert (out / "model.safetensors").is_file() and "safetensors" in done.output
    assert not (out / "model.onnx").exists()
    bad = CliRunner().invoke(cli, ["zoo", "export", "nope", "--out", str(out)])
    assert bad.exit_code == 1 and "nope" in bad.output
