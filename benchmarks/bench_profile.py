"""`cairn zoo profile` beside a plain onnxruntime loop on the same files (the anchor).

A resnet-class (timm resnet18) and a vit-tiny-class (vit_tiny_patch16_224) model with random
weights (no download), exported, quantized to int8 (calibrated on a synthetic image folder)
and profiled by Cairn at batch 1 and 8; then each ONNX file Cairn measured is timed in
alternating rounds by Cairn's own measurement (``zoo._profile_ort.measure``: a child process,
warm-up, timed runs) and by a bare ``InferenceSession.run`` loop in this process, same thread
count, and the median of the rounds' p50s compared: on a shared, noisy machine alternating
keeps drift out of the comparison. The two should agree within a few percent: the tool
measures the model, not itself. Accuracy on random
weights and synthetic images is near chance; it is shown to check the pipeline, not the model.

    .venv/bin/python benchmarks/bench_profile.py [--threads N] [--images N] [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = ("resnet18", "vit_tiny_patch16_224")
CLASSES = 4


def make_checkpoint(name: str, folder: Path) -> Path:
    import torch

    from zoo._compat import import_timm
    from zoo.export import save_safetensors

    torch.manual_seed(0)
    model = import_timm().create_model(name, pretrained=False, num_classes=CLASSES)
    return save_safetensors(model, folder / f"{name}.safetensors", metadata={
        "model": name, "class_names": [f"c{i}" for i in range(CLASSES)], "image_size": 224})


def make_images(folder: Path, per_class: int) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(CLASSES):
        (folder / f"c{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"c{c}" / f"{i}.png")
    return folder


def anchor(path: Path, batch: int, threads: int, runs: int = 200) -> tuple[float, float]:
    """(p50 ms, images/s) of a bare InferenceSession loop after 10 warm-up runs."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    x = np.random.default_rng(0).standard_normal((batch, *spec.shape[1:]), dtype=np.float32)
    for _ in range(10):
        session.run(None, {spec.name: x})
    times = []
    for _ in range(runs if batch == 1 else max(20, runs // batch)):
        t0 = time.perf_counter()
        session.run(None, {spec.name: x})
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, batch * len(times) / sum(times)


def rounds(path: Path, batch: int, threads: int, n: int) -> tuple[tuple[float, float], ...]:
    """Medians over ``n`` alternating rounds of (p50 ms, images/s): Cairn's, the anchor's."""
    from zoo._profile_ort import measure

    ours, theirs = [], []
    for _ in range(n):
        found = measure(path, batches=[batch], threads=threads)["batches"][0]
        ours.append((found["p50"], found["throughput"]))
        theirs.append(anchor(path, batch, threads))
    return tuple((statistics.median(v[0] for v in side), statistics.median(v[1] for v in side))
                 for side in (ours, theirs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=16, help="synthetic images per class")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per file")
    args = parser.parse_args()

    from registry.config import Workspace
    from zoo._profile import profile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = Workspace(root=root, store_url=f"sqlite:///{root / 'r.db'}",
                       artifact_root=str(root / "artifacts"), catalog_dir=root / "catalog",
                       owner="bench")
        data = make_images(root / "data", args.images)
        for name in MODELS:
            started = time.perf_counter()
            report = profile(str(make_checkpoint(name, root)), batches=(1, 8),
                             threads=args.threads, data=data, record=False, workspace=ws)
            took = time.perf_counter() - started
            for failed, reason in report.failures.items():
                print(f"{name} {failed} failed: {reason}")
            for p in report.profiles:
                for b in p.batches:
                    ours, theirs = rounds(p.file, b["batch"], args.threads, args.rounds)
                    rows.append((name, p.precision, b["batch"], ours[0], theirs[0],
                                 100 * (ours[0] - theirs[0]) / theirs[0], b["p90"], b["p99"],
                                 ours[1], theirs[1], p.accuracy, p.file_mb,
                                 p.peak_memory_mb))
            print(f"{name}: profiled in {took:.0f} s (export, quantization, measurement)")
        print(f"\nCPU: {report.hardware}; {report.threads} threads; onnxruntime "
              f"{report.runtime_version}; accuracy on {report.data}\n")
    head = ("model", "prec", "batch", "cairn p50 ms", "anchor p50 ms", "diff %", "p90 ms",
            "p99 ms", "cairn img/s", "anchor img/s", "accuracy", "file MiB", "peak MiB")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:+.1f} | "
              f"{r[6]:.2f} | {r[7]:.2f} | {r[8]:.1f} | {r[9]:.1f} | {r[10]:.3f} | "
              f"{r[11]:.1f} | {r[12]:.1f} |")


if __name__ == "__main__":
    main()
