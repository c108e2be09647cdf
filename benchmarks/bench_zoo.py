"""Zoo fine-tuning benchmark (issues 4 and 18): the zoo's training loop against a plain loop.

    .venv/bin/python benchmarks/bench_zoo.py              # CPU, about 2 minutes
    .venv/bin/python benchmarks/bench_zoo.py --quick      # CPU smoke run
    .venv/bin/python benchmarks/bench_zoo.py --dry        # the --gpu plan at toy size, on CPU
    python benchmarks/bench_zoo.py --gpu --json F.json    # on a CUDA machine (H100/H200: ~4 min)

CPU (every run): the same model, data, loss and optimizer trained by the zoo's ``Trainer``
(what ``zoo.finetune`` runs) and by a plain hand-written loop, interleaved; then
``zoo.finetune`` end to end on an image folder against the plain loop over the same loaders.
GPU (``--gpu``): resnet50 (batch 256) and vit_base_patch16_224 (batch 128) at 224 px, bf16
autocast, channels_last: synthetic batches resident on the GPU and the real image pipeline (a
folder of 384 px JPEGs, about ImageNet's mean size, through the zoo's loaders: decoded on the
GPU by nvJPEG, the zoo's default there, and by PIL in the zoo's default number of worker
processes and in 14), then synthetic batches through torch.compile (last: they
take the longest); images/s, the ratio to an expert loop, peak memory, model FLOPs
utilisation against ``--peak-tflops`` (H100/H200 dense bf16: 989) and issue 18's targets;
``--profile`` adds torch.profiler tables of a few steps of each loop, not compiled.
``benchmarks/gpu_check.sh`` runs it there.
``--dry`` takes every step and code path of ``--gpu`` at toy size on CPU (test_resnet and
test_vit at 64 px, bf16 autocast and channels_last on the CPU), except two: torch.compile
uses the ``aot_eager`` backend (inductor's C++ build takes minutes on a small CPU; pass
``--compile-backend inductor`` to include it) and there are no peak-memory rows (CUDA only).
Figures are medians; nothing here asserts on a timing (a missed target prints FAIL). A step
that fails is reported in the table and the JSON, the next one runs, and the exit status is
1; SIGTERM (``timeout``) ends the run with the table and JSON of what was measured so far.
"""

from __future__ import annotations

import argparse
import copy
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from _common import Row, load_average, machine_facts, median, print_facts, print_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _zoo_loops import (
    LR,
    SMOOTHING,
    WEIGHT_DECAY,
    PlainLoop,
    forward_flops,
    image_folder,
    loader_rate,
    make_model,
    mean_kib,
    sync,
    zoo_trainer,
)
from _zoo_results import Results, Stopped

from zoo.training.loop import Trainer

PACKAGES = ("cairn", "torch", "torchvision", "timm", "pillow")
RATIO_TARGET = 0.97


@dataclass(frozen=True)
class Plan:
    """What each measurement runs."""

    # A tiny model makes the loop's own overhead as visible as it can be on a CPU.
    models: tuple[str, ...] = ("test_resnet",)
    image_size: int = 64
    batch_size: int = 32
    batch_sizes: tuple[tuple[str, int], ...] = ()  # per model, over batch_size
    steps: int = 4  # timed steps per repetition
    warmup_steps: int = 3
    reps: int = 24
    e2e_images: int = 200  # per class, 3 classes
    e2e_epochs: int = 12  # timed epochs of each loop, after one warm-up epoch
    device: str = "cpu"
    amp: bool = False
    channels_last: bool = False
    compile_modes: tuple[bool, ...] = (False,)
    compile_backend: str = "inductor"
    pipeline_compiled: bool = True  # feed the compiled models from the image folder too
    peak_tflops: float | None = None
    # Loader processes, one pipeline measurement each; None is the zoo's default. On 2 cores
    # a loader process only competes with the training threads.
    workers: tuple[int | None, ...] = (0,)
    # Where the image folder is decoded: 'workers' (PIL, once per ``workers`` entry) and/or
    # 'device' (nvJPEG and batched augmentation on the device, the zoo's default on CUDA).
    decodes: tuple[str, ...] = ("workers",)
    jpeg_px: int | None = None  # side of the generated JPEGs; default image_size * 8/7
    ratio_target: float = RATIO_TARGET  # zoo loop over the plain loop
    rate_targets: tuple[tuple[str, float], ...] = ()  # zoo images/s, synthetic batches
    pipeline_target: float | None = None  # JPEG folder images/s over synthetic
    finetune_row: bool = True  # zoo.finetune end to end (gpu_check.sh runs it by the CLI)
    profile_steps: int = 0

    def batch(self, name: str) -> int:
        return dict(self.batch_sizes).get(name, self.batch_size)

    def jpeg_size(self) -> int:
        return self.jpeg_px or self.image_size + self.image_size // 7

    @classmethod
    def quick(cls) -> Plan:
        return cls(steps=4, reps=4, e2e_images=20, e2e_epochs=2)

    @classmethod
    def gpu(cls) -> Plan:
        """One H100/H200 (issue 18): about 4 minutes, a third of it compiling."""
        return cls(models=("resnet50", "vit_base_patch16_224"), image_size=224,
                   batch_sizes=(("resnet50", 256), ("vit_base_patch16_224", 128)),
                   batch_size=128, steps=30, warmup_steps=10, reps=3, e2e_images=2000,
                   e2e_epochs=2, device="cuda", amp=True, channels_last=True,
                   compile_modes=(False, True), pipeline_compiled=False, peak_tflops=989.0,
                   workers=(None, max(1, (os.cpu_count() or 2) - 2)), jpeg_px=384,
                   decodes=("device", "workers"),
                   ratio_target=0.95, pipeline_target=0.9, finetune_row=False,
                   rate_targets=(("resnet50", 4000.0), ("vit_base_patch16_224", 2500.0)),
                   profile_steps=5)

    @classmethod
    def dry(cls) -> Plan:
        """The GPU plan's steps and code paths at toy size on the CPU."""
        return replace(cls.gpu(), models=("test_resnet", "test_vit"), image_size=64,
                       batch_sizes=(("test_resnet", 16), ("test_vit", 8)), batch_size=8,
                       steps=3, warmup_steps=2, reps=2, e2e_images=16, e2e_epochs=1,
                       device="cpu", compile_backend="aot_eager", peak_tflops=1.0,
                       workers=(None, 2), jpeg_px=None, profile_steps=2,
                       rate_targets=(("test_resnet", 1.0), ("test_vit", 1.0)))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    plan = _plan(args)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.backends.cudnn.benchmark = True

    print("Cairn zoo fine-tuning benchmark (issues 4, 18)" + (" --gpu" if args.gpu else "")
          + (" --dry" if args.dry else "") + (" --quick" if args.quick else ""))
    facts = machine_facts(PACKAGES)
    facts.append(("Torch threads", str(torch.get_num_threads())))
    if plan.device.startswith("cuda"):
        facts += _gpu_facts()
    print_facts(facts)
    results = Results(plan, facts, Path(args.json) if args.json else None)
    profile = Path(args.profile) if args.profile and plan.profile_steps else None
    if profile:
        profile.write_text(f"torch.profiler, {plan.profile_steps} steps of each loop\n")
    signal.signal(signal.SIGTERM, results.stop)
    try:
        with tempfile.TemporaryDirectory(prefix="cairn-bench-zoo-") as tmp:
            images = (Path(args.image_dir) if args.image_dir
                      else Path(tmp) / f"images-{plan.jpeg_size()}")
            _run_plan(plan, results, images, Path(tmp), profile)
    except Stopped:
        print("\nStopped by SIGTERM: the table holds what was measured before.", flush=True)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    print_table(results.rows, "Results (medians; ratio = zoo images/s / plain loop images/s)")
    results.write()
    print(f"\nTotal benchmark time: {time.perf_counter() - results.started:.0f} s; "
          f"load average now {load_average()}"
          + (f"; {len(results.errors)} step(s) failed" if results.errors else ""))
    return 1 if results.errors or results.stopped else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    add("--gpu", action="store_true", help="the GPU measurements (needs CUDA)")
    add("--dry", action="store_true", help="the GPU plan's steps at toy size on the CPU")
    add("--models", help="comma-separated timm names (override the plan's)")
    add("--batch-size", type=int, help="one batch size for every model")
    add("--image-size", type=int)
    add("--device", help="override the plan's device (cpu turns bf16 and channels_last off)")
    add("--peak-tflops", type=float, help="accelerator peak for MFU")
    add("--no-compile", action="store_true", help="skip torch.compile runs")
    add("--compile-backend", help="torch.compile backend (default: inductor; --dry: aot_eager)")
    add("--workers", help="comma-separated loader process counts, 'auto' for the zoo's default")
    add("--image-dir", help="the JPEG folder to read (made there first if missing)")
    add("--json", help="write the plan, machine, figures and errors to this file")
    add("--profile", help="write torch.profiler tables of a few steps to this file")
    return parser


def _plan(args: argparse.Namespace) -> Plan:
    plan = (Plan.dry() if args.dry else Plan.gpu() if args.gpu
            else Plan.quick() if args.quick else Plan())
    workers = (tuple(None if w == "auto" else int(w) for w in args.workers.split(","))
               if args.workers else None)
    overrides = {"models": tuple(args.models.split(",")) if args.models else None,
                 "batch_size": args.batch_size, "image_size": args.image_size,
                 "device": args.device, "peak_tflops": args.peak_tflops,
                 "compile_backend": args.compile_backend, "workers": workers}
    plan = replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    if args.batch_size:
        plan = replace(plan, batch_sizes=())
    if args.no_compile:
        plan = replace(plan, compile_modes=(False,))
    if args.device and args.device.startswith("cpu"):
        plan = replace(plan, amp=False, channels_last=False)
    return plan


def _gpu_facts() -> list[tuple[str, str]]:
    props = torch.cuda.get_device_properties(0)
    return [("GPU", f"{props.name}, {props.total_memory / 2**30:.0f} GiB, "
                    f"{props.multi_processor_count} SMs"),
            ("CUDA / cuDNN", f"{torch.version.cuda} / {torch.backends.cudnn.version()}")]


def _run_plan(plan: Plan, results: Results, images: Path, tmp: Path,
              profile: Path | None) -> None:
    """Synthetic batches, then the image folder, model by model; compiled runs last (they
    cost the most time, so a run cut short by its deadline loses them first)."""
    for compiled in plan.compile_modes:
        for name in plan.models:
            label = f"{name} {plan.image_size}px" + (" compiled" if compiled else "")
            results.measure(f"{label}: synthetic batches",
                            lambda n=name, c=compiled, lb=label: bench_loop(
                                plan, n, c, lb, profile))
            for decode, workers in _pipelines(plan) if plan.pipeline_compiled or not compiled \
                    else ():
                results.measure(f"{label}: image folder, decode {decode}, workers "
                                f"{_workers_text(workers)}",
                                lambda n=name, c=compiled, lb=label, d=decode, w=workers:
                                bench_pipeline(plan, n, c, lb, images, tmp, w,
                                               results.synthetic_rate(n, c), d))
            if compiled:
                torch._dynamo.reset()  # compiled code of this model is not needed again


def _pipelines(plan: Plan) -> list[tuple[str, int | None]]:
    """(decode, workers) of each image-folder measurement: the device decoder with the
    zoo's default worker count, the worker decoder with each of ``plan.workers``."""
    return [(decode, workers) for decode in plan.decodes
            for workers in (plan.workers if decode == "workers" else (None,))]


def _workers_text(workers: int | None) -> str:
    return "auto" if workers is None else str(workers)


# -- synthetic batches -----------------------------------------------------------------------------


def bench_loop(plan: Plan, name: str, compiled: bool, label: str,
               profile: Path | None = None) -> tuple[list[Row], dict[str, Any]]:
    """Both loops over the same pre-made batches (on the device), interleaved."""
    classes, batch = 10, plan.batch(name)
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(batch, 3, plan.image_size, plan.image_size, generator=gen),
                torch.randint(0, classes, (batch,), generator=gen))
               for _ in range(min(plan.steps, 8))]
    batches = [(x.to(plan.device), y.to(plan.device)) for x, y in batches]
    timed = [batches[i % len(batches)] for i in range(plan.steps)]
    warm = [batches[i % len(batches)] for i in range(plan.warmup_steps)]
    base = make_model(plan, name, classes)
    zoo_model, plain_model = copy.deepcopy(base), copy.deepcopy(base)
    trainer = zoo_trainer(plan, zoo_model, compiled, total_steps=10**6)
    plain = PlainLoop(plan, plain_model, compiled)
    device = torch.device(plan.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer.train_epoch(warm)
    plain.train_epoch(warm)
    zoo_rates, plain_rates = [], []
    for rep in range(plan.reps):  # alternate which loop goes first: drift hits both alike
        for which in ((0, 1) if rep % 2 == 0 else (1, 0)):
            began = time.perf_counter()
            seen = trainer.train_epoch(timed).images if which == 0 else plain.train_epoch(timed)
            (zoo_rates if which == 0 else plain_rates).append(
                seen / (time.perf_counter() - began))
    figure = _figure(name, compiled, "synthetic", batch, zoo_rates, plain_rates)
    rows = [_ratio_row(plan, f"{label}, synthetic batches, batch {batch}", figure)]
    rows += _gpu_rows(plan, label, base, figure)
    rows += _rate_rows(plan, name, label, figure)
    if profile is not None and not compiled:
        _profile(plan, label, trainer, plain, timed[: plan.profile_steps], profile)
    return rows, figure


def _figure(name: str, compiled: bool, source: str, batch: int, zoo_rates: list[float],
            plain_rates: list[float], **extra: Any) -> dict[str, Any]:
    ratio = median([z / p for z, p in zip(zoo_rates, plain_rates, strict=True)])
    return {"model": name, "compiled": compiled, "source": source, "batch_size": batch,
            "zoo_images_per_s": median(zoo_rates), "plain_images_per_s": median(plain_rates),
            "ratio": ratio, "zoo_rates": zoo_rates, "plain_rates": plain_rates, **extra}


def _gpu_rows(plan: Plan, label: str, model: torch.nn.Module,
              figure: dict[str, Any]) -> list[Row]:
    rows = []
    if plan.peak_tflops:
        flops = 3 * forward_flops(model, plan.image_size)  # forward + backward ~ 3x forward
        achieved = flops * figure["zoo_images_per_s"] / 1e12
        figure.update(gflop_per_image=flops / 1e9, tflops=achieved,
                      mfu=achieved / plan.peak_tflops)
        rows.append(Row(f"{label}: model FLOPs utilisation ({flops / 1e9:.1f} GFLOP/image "
                        "trained)", f"{achieved:.0f} TFLOP/s = {achieved / plan.peak_tflops:.1%}",
                        f"peak {plan.peak_tflops:.0f} TFLOP/s"))
    if plan.device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**30
        figure["peak_memory_gib"] = peak
        rows.append(Row(f"{label}: peak GPU memory (both loops)", f"{peak:.1f} GiB"))
    return rows


def _rate_rows(plan: Plan, name: str, label: str, figure: dict[str, Any]) -> list[Row]:
    target = dict(plan.rate_targets).get(name)
    if target is None:
        return []
    rate = figure["zoo_images_per_s"]
    return [Row(f"{label}: zoo loop images/s, synthetic batches", f"{rate:,.0f} images/s",
                ratio=f"{rate / target:.2f}", target=f">= {target:,.0f} images/s",
                passed=rate >= target)]


def _profile(plan: Plan, label: str, trainer: Trainer, plain: PlainLoop, batches: list,
             path: Path) -> None:
    """Where each loop's time goes: torch.profiler's top operators over a few steps."""
    from torch.profiler import ProfilerActivity, profile

    cuda = plan.device.startswith("cuda")
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    with path.open("a") as out:
        for which, run in (("zoo loop", trainer.train_epoch), ("plain loop", plain.train_epoch)):
            with profile(activities=activities) as prof:
                run(batches)
                sync(torch.device(plan.device))
            table = prof.key_averages().table(sort_by=sort, row_limit=15, max_name_column_width=60)
            out.write(f"\n== {label}, {which}, {len(batches)} steps ==\n{table}\n")


# -- the real pipeline --------------------------------------------------------------------------


def bench_pipeline(plan: Plan, name: str, compiled: bool, label: str, images: Path, tmp: Path,
                   workers: int | None, synthetic: float | None, decode: str = "workers",
                   ) -> tuple[list[Row], dict[str, Any]]:
    """The zoo loop and the plain loop over the zoo's loaders on a JPEG folder (decoded and
    augmented by worker processes or on the device, as ``decode`` says), epoch by epoch,
    alternating which goes first."""
    from zoo.training._loaders import data_config, default_workers, make_loaders
    from zoo.training.data import scan_image_folder, split

    workers = default_workers() if workers is None else workers
    batch = plan.batch(name)
    folder = image_folder(images, plan.e2e_images, plan.jpeg_size(), processes=os.cpu_count())
    index = scan_image_folder(folder)
    train, val = split(index, 0.2, seed=0)
    base = make_model(plan, name, len(index.classes))
    loaders = make_loaders(train, val, config=data_config(base, plan.image_size),
                           batch_size=batch, workers=workers, seed=0,
                           pin_memory=plan.device.startswith("cuda"), decode=decode,
                           device=torch.device(plan.device))
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
    kib = mean_kib(folder)
    alone = (loader_rate(loaders, plan.e2e_epochs + 1, torch.device(plan.device))
             if name == plan.models[0] else None)
    figure = _figure(name, compiled, "jpeg", batch, zoo_rates, plain_rates, workers=workers,
                     decode=decode, train_images=len(train), jpeg_px=plan.jpeg_size(),
                     jpeg_mean_kib=kib, loader_alone_images_per_s=alone)
    where = (f"JPEG folder ({len(train)} images of {plan.jpeg_size()} px, {kib:.0f} KiB, "
             f"decoded by {_decoder(decode, workers)})")
    rows = [_ratio_row(plan, f"{label}, {where}", figure)]
    rows += _pipeline_rows(plan, label, _decoder(decode, workers), figure, synthetic)
    if alone is not None:
        rows.append(Row(f"{label}: the loader alone, no training ({_decoder(decode, workers)})",
                        f"{alone:,.1f} images/s"))
    if plan.finetune_row and plan.device == "cpu" and not compiled:
        rows.append(_finetune_row(plan, name, label, folder, tmp, figure, workers))
    return rows, figure


def _decoder(decode: str, workers: int) -> str:
    return (f"{workers} loader workers" if decode == "workers"
            else f"the device ({workers} workers read the files)")


def _pipeline_rows(plan: Plan, label: str, decoder: str, figure: dict[str, Any],
                   synthetic: float | None) -> list[Row]:
    if plan.pipeline_target is None or not synthetic:
        return []
    rate = figure["zoo_images_per_s"]
    figure["over_synthetic"] = rate / synthetic
    return [Row(f"{label}: zoo loop, JPEG folder (decoded by {decoder}) over synthetic batches",
                f"{rate:,.1f} images/s", f"synthetic {synthetic:,.1f} images/s",
                f"{rate / synthetic:.3f}", f">= {plan.pipeline_target}",
                rate / synthetic >= plan.pipeline_target)]


def _finetune_row(plan: Plan, name: str, label: str, folder: Path, tmp: Path,
                  figure: dict[str, Any], workers: int) -> Row:
    """``zoo.finetune`` itself (run record, validation, checkpoints, evaluation): the
    training images/s it reports, beside the plain loop's figure measured above."""
    import zoo
    from registry.config import Workspace

    ws = Workspace(root=tmp, store_url=f"sqlite:///{tmp / 'registry.db'}",
                   artifact_root=str(tmp / "artifacts"), catalog_dir=tmp / "catalog",
                   owner="bench", on_duplicate="ignore")
    result = zoo.finetune(name, folder, pretrained=False, epochs=plan.e2e_epochs + 1,
                          batch_size=plan.batch(name), image_size=plan.image_size,
                          workers=workers, workspace=ws, progress=False, project="bench",
                          lr=LR, weight_decay=WEIGHT_DECAY, label_smoothing=SMOOTHING,
                          device=plan.device)
    rate, plain_rate = result.images_per_second, figure["plain_images_per_s"]
    figure["finetune_images_per_s"] = rate
    return Row(f"{label}: zoo.finetune end to end, training images/s it records (one run)",
               f"{rate:,.1f} images/s", f"plain loop {plain_rate:,.1f} images/s",
               f"{rate / plain_rate:.3f}")


def _ratio_row(plan: Plan, measure: str, figure: dict[str, Any]) -> Row:
    """Medians of each loop, and the median of the paired ratios: each zoo repetition over
    the plain one run right beside it, so load that comes and goes hits both sides."""
    ratio = figure["ratio"]
    return Row(f"{measure} ({len(figure['zoo_rates'])} pairs)",
               f"{figure['zoo_images_per_s']:,.1f} images/s",
               f"plain loop {figure['plain_images_per_s']:,.1f} images/s", f"{ratio:.3f}",
               f">= {plan.ratio_target}", ratio >= plan.ratio_target)


if __name__ == "__main__":
    raise SystemExit(main())
