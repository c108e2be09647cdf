"""Zoo fine-tuning benchmark (issue 4): the zoo's training loop against a plain loop.

    .venv/bin/python benchmarks/bench_zoo.py              # CPU, about 2 minutes
    .venv/bin/python benchmarks/bench_zoo.py --quick      # CPU smoke run
    python benchmarks/bench_zoo.py --gpu                  # on a CUDA machine (H100: ~10 min)

CPU (every run): the same model, data, loss and optimizer trained by the zoo's ``Trainer``
(what ``zoo.finetune`` runs) and by a plain hand-written loop, interleaved; then
``zoo.finetune`` end to end on an image folder against the plain loop over the same loaders.
GPU (``--gpu``): resnet50 and vit_base_patch16_224 at 224 px, bf16 autocast, channels_last,
with and without torch.compile, on synthetic batches resident on the GPU and through the real
image pipeline (JPEG folder, worker processes); images/s, the ratio to an expert loop, peak
memory and model FLOPs utilisation against ``--peak-tflops`` (H100 SXM dense bf16: 989).
Figures are medians; nothing here asserts on a timing (a missed target prints FAIL).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from _common import Row, load_average, machine_facts, median, print_facts, print_table, step

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zoo._compat import import_timm
from zoo.training.ddp import Dist
from zoo.training.loop import Trainer
from zoo.training.schedule import WarmupCosine
from zoo.training.strategies import param_groups

PACKAGES = ("cairn", "torch", "timm", "pillow")
RATIO_TARGET = 0.97
SMOOTHING, WEIGHT_DECAY, LR = 0.1, 0.05, 1e-3


@dataclass(frozen=True)
class Plan:
    """What each measurement runs."""

    # A tiny model makes the loop's own overhead as visible as it can be on a CPU.
    models: tuple[str, ...] = ("test_resnet",)
    image_size: int = 64
    batch_size: int = 32
    steps: int = 4  # timed steps per repetition
    warmup_steps: int = 3
    reps: int = 24
    e2e_images: int = 200  # per class, 3 classes
    e2e_epochs: int = 12  # timed epochs of each loop, after one warm-up epoch
    device: str = "cpu"
    amp: bool = False
    channels_last: bool = False
    compile_modes: tuple[bool, ...] = (False,)
    peak_tflops: float | None = None
    workers: int = 0  # on 2 cores a loader process only competes with the training threads

    @classmethod
    def quick(cls) -> Plan:
        return cls(steps=4, reps=4, e2e_images=20, e2e_epochs=2)

    @classmethod
    def gpu(cls) -> Plan:
        return cls(models=("resnet50", "vit_base_patch16_224"), image_size=224, batch_size=128,
                   steps=50, warmup_steps=10, reps=3, e2e_images=1000, e2e_epochs=2,
                   device="cuda", amp=True, channels_last=True,
                   compile_modes=(False, True), peak_tflops=989.0,
                   workers=min(12, (os.cpu_count() or 2) - 2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--gpu", action="store_true", help="the GPU measurements (needs CUDA)")
    parser.add_argument("--models", help="comma-separated timm names (override the plan's)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--device", help="override the plan's device (e.g. cpu to smoke-test "
                                         "the GPU plan)")
    parser.add_argument("--peak-tflops", type=float, help="accelerator peak for MFU")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile runs")
    args = parser.parse_args(argv)
    plan = Plan.gpu() if args.gpu else Plan.quick() if args.quick else Plan()
    overrides = {"models": tuple(args.models.split(",")) if args.models else None,
                 "batch_size": args.batch_size, "image_size": args.image_size,
                 "device": args.device, "peak_tflops": args.peak_tflops}
    plan = replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    if args.no_compile:
        plan = replace(plan, compile_modes=(False,))
    if plan.device == "cpu":
        plan = replace(plan, amp=False, channels_last=False)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.backends.cudnn.benchmark = True

    print("Cairn zoo fine-tuning benchmark (issue 4)" + (" --gpu" if args.gpu else "")
          + (" --quick" if args.quick else ""))
    facts = machine_facts(PACKAGES)
    facts.append(("Torch threads", str(torch.get_num_threads())))
    if plan.device.startswith("cuda"):
        facts.append(("GPU", torch.cuda.get_device_name(0)))
    print_facts(facts)
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="cairn-bench-zoo-") as tmp:
        for name in plan.models:
            for compiled in plan.compile_modes:
                label = f"{name} {plan.image_size}px" + (" compiled" if compiled else "")
                rows += step(f"{label}: synthetic batches",
                             lambda n=name, c=compiled, lb=label: bench_loop(plan, n, c, lb))
                rows += step(f"{label}: image folder",
                             lambda n=name, c=compiled, lb=label: bench_pipeline(
                                 plan, n, c, lb, Path(tmp)))
    print_table(rows, "Results (medians; ratio = zoo images/s / plain loop images/s)")
    print(f"\nTotal benchmark time: {time.perf_counter() - started:.0f} s; "
          f"load average now {load_average()}")
    return 0


# -- the two loops --------------------------------------------------------------------------------


def make_model(plan: Plan, name: str, num_classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = import_timm().create_model(name, pretrained=False, num_classes=num_classes)
    fmt = torch.channels_last if plan.channels_last else torch.contiguous_format
    return model.to(plan.device, memory_format=fmt)


def zoo_trainer(plan: Plan, model: torch.nn.Module, compiled: bool, total_steps: int) -> Trainer:
    """The Trainer exactly as ``zoo.finetune`` builds it (single process)."""
    device = torch.device(plan.device)
    optimizer = torch.optim.AdamW(param_groups(model, WEIGHT_DECAY), lr=LR,
                                  fused=device.type == "cuda")
    schedule = WarmupCosine(LR, total_steps=total_steps, warmup_steps=total_steps // 10)
    return Trainer(torch.compile(model) if compiled else model, model, optimizer, schedule,
                   dist=Dist(device=device), amp_dtype=torch.bfloat16 if plan.amp else None,
                   channels_last=plan.channels_last, label_smoothing=SMOOTHING)


class PlainLoop:
    """What an expert writes by hand: same loss, optimizer and precision, nothing else."""

    def __init__(self, plan: Plan, model: torch.nn.Module, compiled: bool) -> None:
        self.device = torch.device(plan.device)
        self.model = torch.compile(model) if compiled else model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY,
                                           fused=self.device.type == "cuda")
        self.criterion = torch.nn.CrossEntropyLoss(label_smoothing=SMOOTHING)
        self.fmt = torch.channels_last if plan.channels_last else torch.contiguous_format
        self.amp = plan.amp

    def train_epoch(self, loader) -> int:
        self.model.train()
        seen = 0
        for images, labels in loader:
            images = images.to(self.device, non_blocking=True, memory_format=self.fmt)
            labels = labels.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                loss = self.criterion(self.model(images), labels)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            seen += labels.shape[0]
        _sync(self.device)
        return seen


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- synthetic batches -----------------------------------------------------------------------------


def bench_loop(plan: Plan, name: str, compiled: bool, label: str) -> list[Row]:
    """Both loops over the same pre-made batches (on the device), interleaved."""
    classes = 10
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(plan.batch_size, 3, plan.image_size, plan.image_size, generator=gen),
                torch.randint(0, classes, (plan.batch_size,), generator=gen))
               for _ in range(min(plan.steps, 8))]
    batches = [(x.to(plan.device), y.to(plan.device)) for x, y in batches]
    timed = [batches[i % len(batches)] for i in range(plan.steps)]
    warm = timed[: plan.warmup_steps]
    base = make_model(plan, name, classes)
    zoo_model, plain_model = copy.deepcopy(base), copy.deepcopy(base)
    trainer = zoo_trainer(plan, zoo_model, compiled, total_steps=10**6)
    plain = PlainLoop(plan, plain_model, compiled)
    trainer.train_epoch(warm)
    plain.train_epoch(warm)
    device = torch.device(plan.device)
    zoo_rates, plain_rates = [], []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for rep in range(plan.reps):  # alternate which loop goes first: drift hits both alike
        for which in ((0, 1) if rep % 2 == 0 else (1, 0)):
            began = time.perf_counter()
            seen = trainer.train_epoch(timed).images if which == 0 else plain.train_epoch(timed)
            (zoo_rates if which == 0 else plain_rates).append(
                seen / (time.perf_counter() - began))
    rows = [_ratio_row(f"{label}, synthetic batches, batch {plan.batch_size}",
                       zoo_rates, plain_rates)]
    rows += _gpu_rows(plan, label, base, median(zoo_rates))
    return rows


def _gpu_rows(plan: Plan, label: str, model: torch.nn.Module, rate: float) -> list[Row]:
    rows = []
    if plan.peak_tflops:
        flops = 3 * forward_flops(model, plan.image_size)  # forward + backward ~ 3x forward
        achieved = flops * rate / 1e12
        rows.append(Row(f"{label}: model FLOPs utilisation ({flops / 1e9:.1f} GFLOP/image "
                        "trained)", f"{achieved:.0f} TFLOP/s = {achieved / plan.peak_tflops:.1%}",
                        f"peak {plan.peak_tflops:.0f} TFLOP/s"))
    if plan.device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**30
        rows.append(Row(f"{label}: peak GPU memory (both loops)", f"{peak:.1f} GiB"))
    return rows


def forward_flops(model: torch.nn.Module, image_size: int) -> float:
    """FLOPs of one image's forward pass (torch's FLOP counter: 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    with torch.no_grad(), counter:
        model(torch.randn(1, 3, image_size, image_size, device=param.device, dtype=param.dtype))
    model.train(was_training)
    return float(counter.get_total_flops())


# -- the real pipeline --------------------------------------------------------------------------


def bench_pipeline(plan: Plan, name: str, compiled: bool, label: str, tmp: Path) -> list[Row]:
    """The zoo loop and the plain loop over the zoo's loaders on a JPEG folder (decoding and
    augmentation in worker processes), epoch by epoch, alternating which goes first."""
    from zoo.training._loaders import data_config, make_loaders
    from zoo.training.data import scan_image_folder, split

    folder = image_folder(tmp / f"images-{plan.image_size}", plan.e2e_images,
                          plan.image_size + plan.image_size // 7)
    index = scan_image_folder(folder)
    train, val = split(index, 0.2, seed=0)
    base = make_model(plan, name, len(index.classes))
    loaders = make_loaders(train, val, config=data_config(base, plan.image_size),
                           batch_size=plan.batch_size, workers=plan.workers, seed=0,
                           pin_memory=plan.device.startswith("cuda"))
    trainer = zoo_trainer(plan, copy.deepcopy(base), compiled, total_steps=10**6)
    plain = PlainLoop(plan, copy.deepcopy(base), compiled)
    zoo_rates, plain_rates = [], []
    for epoch in range(plan.e2e_epochs + 1):
        loaders.set_epoch(epoch)
        for which in ((0, 1) if epoch % 2 == 0 else (1, 0)):
            began = time.perf_counter()
            seen = (trainer.train_epoch(loaders.train).images if which == 0
                    else plain.train_epoch(loaders.train))
            if epoch:  # epoch 0 starts the workers and warms up (cudnn, compilation)
                (zoo_rates if which == 0 else plain_rates).append(
                    seen / (time.perf_counter() - began))
    where = f"JPEG folder ({len(train)} images, {plan.workers} loader workers)"
    rows = [_ratio_row(f"{label}, {where}", zoo_rates, plain_rates)]
    if plan.device == "cpu" and not compiled:
        rows.append(_finetune_row(plan, name, label, folder, tmp, median(plain_rates)))
    return rows


def _finetune_row(plan: Plan, name: str, label: str, folder: Path, tmp: Path,
                  plain_rate: float) -> Row:
    """``zoo.finetune`` itself (run record, validation, checkpoints, evaluation): the
    training images/s it reports, beside the plain loop's figure measured above."""
    import zoo
    from registry.config import Workspace

    ws = Workspace(root=tmp, store_url=f"sqlite:///{tmp / 'registry.db'}",
                   artifact_root=str(tmp / "artifacts"), catalog_dir=tmp / "catalog",
                   owner="bench", on_duplicate="ignore")
    result = zoo.finetune(name, folder, pretrained=False, epochs=plan.e2e_epochs + 1,
                          batch_size=plan.batch_size, image_size=plan.image_size,
                          workers=plan.workers, workspace=ws, progress=False, project="bench",
                          lr=LR, weight_decay=WEIGHT_DECAY, label_smoothing=SMOOTHING,
                          device=plan.device)
    rate = result.images_per_second
    return Row(f"{label}: zoo.finetune end to end, training images/s it records (one run)",
               f"{rate:,.1f} images/s", f"plain loop {plain_rate:,.1f} images/s",
               f"{rate / plain_rate:.3f}")


def image_folder(root: Path, per_class: int, size: int) -> Path:
    """3 classes of noisy JPEGs (made once per size)."""
    if root.is_dir():
        return root
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(3):
        (root / f"class_{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            pixels[..., c] = 255 - pixels[..., c] // 4
            Image.fromarray(pixels).save(root / f"class_{c}" / f"{i:05d}.jpg", quality=90)
    return root


def _ratio_row(measure: str, zoo_rates: list[float], plain_rates: list[float]) -> Row:
    """Medians of each loop, and the median of the paired ratios: each zoo repetition over
    the plain one run right beside it, so load that comes and goes hits both sides."""
    ratio = median([z / p for z, p in zip(zoo_rates, plain_rates, strict=True)])
    return Row(f"{measure} ({len(zoo_rates)} pairs)", f"{median(zoo_rates):,.1f} images/s",
               f"plain loop {median(plain_rates):,.1f} images/s", f"{ratio:.3f}",
               f">= {RATIO_TARGET}", ratio >= RATIO_TARGET)


if __name__ == "__main__":
    raise SystemExit(main())
