"""Synthetic but realistic runs for benchmarks: what each run is, as plain data.

Six owners train image classifiers in four projects on three to five DVC versions of each
project's data, with five model families, 30 params, 10 metrics with histories, tags and
words, statuses and exact re-runs; see ``generate.py`` for how they go into a store. Runs come
from one random stream, in order, and nothing depends on N.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GENERATOR_VERSION", "SyntheticRun", "dataset_versions", "synthetic_runs"]

GENERATOR_VERSION = 2  # bump when the data change, so cached stores are rebuilt
BATCH = 1_000
SECONDS_PER_RUN = 315.36  # 100,000 runs span a year
T0 = 1_763_683_200.0  # 2025-11-21 00:00 UTC: a year before the benchmark's date
ENTRY_POINT = "train.py"

OWNERS = ("ana", "ben", "chen", "dara", "emil", "fatima")
OWNER_WEIGHTS = (0.26, 0.2, 0.18, 0.14, 0.12, 0.1)
# project -> (description, number of train versions, number of val versions, images)
PROJECTS = {
    "defects": ("Scratch and dent detection on line 3", 5, 2, 48_000),
    "parcels": ("Parcel sorting by label type", 4, 1, 120_000),
    "wildlife": ("Camera-trap species classification", 3, 2, 260_000),
    "receipts": ("Receipt layout classification", 4, 1, 36_000),
}
PROJECT_WEIGHTS = (0.35, 0.25, 0.25, 0.15)
NUM_CLASSES = {"defects": 6, "parcels": 12, "wildlife": 48, "receipts": 9}
# timm name -> (weight in the mix, base top-1 accuracy, seconds per 1,000 images)
ARCHS = {
    "resnet18": (0.22, 0.845, 1.1),
    "resnet50": (0.28, 0.885, 2.6),
    "vit_base_patch16_224": (0.18, 0.905, 5.2),
    "convnext_tiny": (0.17, 0.9, 3.1),
    "efficientnet_b0": (0.15, 0.875, 1.9),
}
# optimizer -> (weight, best learning rate, momentum choices)
OPTIMIZERS = {
    "adamw": (0.5, 1e-3, (0.9,)),
    "sgd": (0.28, 1e-1, (0.9, 0.95, 0.99)),
    "lamb": (0.1, 3e-3, (0.9,)),
    "adam": (0.12, 3e-4, (0.9,)),
}
# augmentation policy -> (weight, accuracy gain)
AUGMENTS = {
    "none": (0.2, 0.0),
    "mixup": (0.22, 0.011),
    "cutmix": (0.2, 0.013),
    "randaugment": (0.23, 0.009),
    "autoaugment": (0.15, 0.007),
}
STAGES = {"baseline": 0.15, "sweep": 0.55, "ablation": 0.2, "final": 0.1}
GPUS = {"a100": "NVIDIA A100-SXM4-80GB", "h100": "NVIDIA H100 80GB HBM3",
        "v100": "Tesla V100-SXM2-32GB", "rtx4090": "NVIDIA GeForce RTX 4090"}
STATUSES = {"FINISHED": 0.8, "FAILED": 0.11, "KILLED": 0.08, "RUNNING": 0.01}
METRICS = ("train_loss", "val_loss", "train_acc", "val_acc", "val_top5", "val_f1", "lr",
           "grad_norm", "epoch_time", "throughput")

QUESTIONS = (
    "Does {augment} help {arch} on {project} {version}?",
    "Is lr {lr:g} too high for {arch} with {optimizer}?",
    "Can {arch} reach {target}% top-1 on {project} in {epochs} epochs?",
    "Does label smoothing {smoothing} reduce overfitting on the {version} labels?",
    "How far does warmup of {warmup} epochs stabilise {optimizer}?",
    "Is the new {version} split harder than the previous one?",
)
NOTES = (
    "Baseline for the {project} {version} refresh.",
    "Loss spiked around epoch {epoch}; gradient clipping at {clip} fixed it.",
    "Same recipe as the previous sweep but with {augment}.",
    "Same recipe as the previous sweep but without mixup.",
    "mixup alpha {alpha} looks too strong for the small crops.",
    "cutmix and mixup together diverged in the first epochs.",
    "EMA weights evaluated, not the raw ones.",
    "Warmup of {warmup} epochs, then cosine decay to {min_lr:g}.",
    "Ran on spot instances and resumed twice from checkpoints.",
    "Checking whether the relabelled images from {other} change anything.",
    "Data loading was the bottleneck with {workers} workers.",
    "Pretrained weights from the timm hub, frozen stem for the first epoch.",
    "Mixed precision on; no NaNs seen.",
    "Larger batch with linear lr scaling.",
)
CONCLUSIONS = (
    "{augment} helps: {gain:+.1f} points over the baseline recipe.",
    "No gain from {augment}; keep the baseline recipe.",
    "Best {arch} so far on {project} {version}.",
    "Overfits after epoch {epoch}; needs stronger augmentation.",
    "Within noise of the previous run; not worth the extra compute.",
    "lr {lr:g} is on the high side: unstable but ends fine.",
)
FAILURES = (
    "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
    "FloatingPointError: loss is NaN at step {step}",
    "Killed: the node was preempted",
    "OSError: [Errno 28] No space left on device",
)


@dataclass
class SyntheticRun:
    """One run as plain data, ready for any tracking system. ``params`` are flat and typed as
    a training script would pass them; ``history`` maps a metric to (steps, values, times)."""

    index: int
    id: str
    project: str
    name: str
    owner: str
    status: str
    start_time: float
    end_time: float | None
    params: dict[str, Any]
    tags: dict[str, str]
    data: list[tuple[str, str, str]]  # (role, path, md5 hash)
    commit: str
    dirty: bool
    diff_sha256: str | None
    host: str
    gpu: str
    question: str | None = None
    notes: str | None = None
    conclusion: str | None = None
    failure: str | None = None
    history: dict[str, tuple[list[int], list[float], list[float]]] = field(default_factory=dict)

    def last(self, key: str) -> tuple[int, float, float]:
        """(step, value, time) of the metric's last point."""
        steps, values, times = self.history[key]
        return steps[-1], values[-1], times[-1]


def dataset_versions(project: str) -> dict[str, list[str]]:
    """role -> the project's DVC versions of that data (md5 ``.dir`` hashes), oldest first."""
    _, ntrain, nval, _ = PROJECTS[project]
    return {role: [hashlib.md5(f"{project}/{role}/v{v}".encode()).hexdigest() + ".dir"
                   for v in range(count)]
            for role, count in (("train", ntrain), ("val", nval))}


def synthetic_runs(n: int, *, seed: int = 0, history_points: int = 100
                   ) -> Iterator[SyntheticRun]:
    """The first ``n`` runs of the data set for ``seed``. Params are flat dotted keys, as
    ``start_run`` stores a nested config."""
    maker = _Maker(seed, history_points)
    for i in range(n):
        yield maker.run(i)


class _Maker:
    """The random stream behind ``synthetic_runs``: one ``random.Random`` consumed run by run."""

    def __init__(self, seed: int, points: int) -> None:
        if points < 2:
            raise ValueError(f"history_points must be at least 2, got {points}")
        self.rng = random.Random(seed)
        self.points = points
        bank = random.Random(f"{seed}-bank")
        # Noise and curve shapes are drawn from small banks: realistic curves for pennies.
        self.noise = [[bank.gauss(0, 1) for _ in range(points)] for _ in range(64)]
        self.shapes = [[1 - math.exp(-(k + 1) / (points * tau)) for k in range(points)]
                       for tau in (0.08, 0.12, 0.16, 0.22, 0.3, 0.4)]
        self.cosine = [0.5 * (1 + math.cos(math.pi * k / (points - 1))) for k in range(points)]
        self.commits = {p: [hashlib.sha1(f"{p}-{c}".encode()).hexdigest() for c in range(320)]
                        for p in PROJECTS}
        self.versions = {p: dataset_versions(p) for p in PROJECTS}
        self.recent: dict[str, deque] = {p: deque(maxlen=200) for p in PROJECTS}

    def pick(self, choices: dict[str, Any] | Sequence[str],
             weights: Sequence[float] | None = None) -> str:
        """One of ``choices``, by ``weights`` or else by each dict value (its first item)."""
        if weights is None:
            weights = [v[0] if isinstance(v, tuple) else v for v in choices.values()]
        return self.rng.choices(list(choices), weights)[0]

    def run(self, i: int) -> SyntheticRun:
        rng = self.rng
        project = self.pick(PROJECTS, PROJECT_WEIGHTS)
        owner = self.pick(OWNERS, OWNER_WEIGHTS)
        start = T0 + (i + rng.random()) * SECONDS_PER_RUN
        recent = self.recent[project]
        if recent and rng.random() < 0.03:  # someone re-runs an earlier config as it was
            params, data, commit = rng.choice(recent)
        else:
            params, data = self.params(project), self.data(project)
            ncommits = len(self.commits[project])
            newest = min(ncommits - 1, int(i * SECONDS_PER_RUN / 31_536_000 * ncommits))
            commit = self.commits[project][max(0, newest - int(rng.expovariate(0.3)))]
            recent.append((params, data, commit))
        dirty = rng.random() < 0.12
        status = self.pick(STATUSES)
        gpu = self.pick(("a100", "h100", "v100", "rtx4090"), (0.45, 0.2, 0.15, 0.2))
        run = SyntheticRun(
            index=i, id=f"{rng.getrandbits(128):032x}", project=project,
            name=f"{_short(params['model.arch'])}-{params['augment.policy']}-{i:06d}",
            owner=owner, status=status, start_time=start, end_time=None, params=params,
            tags=self.tags(gpu), data=data, commit=commit, dirty=dirty,
            diff_sha256=f"{rng.getrandbits(256):064x}" if dirty else None,
            host=f"{gpu}-node-{rng.randrange(24):02d}", gpu=gpu)
        self.history(run)
        self.text(run)
        return run

    def params(self, project: str) -> dict[str, Any]:
        rng = self.rng
        arch = self.pick(ARCHS)
        optimizer = self.pick(OPTIMIZERS)
        _, best_lr, momenta = OPTIMIZERS[optimizer]
        augment = self.pick(AUGMENTS)
        batch = rng.choice((32, 64, 128, 256, 512, 1024))
        return {
            "model.arch": arch,
            "model.pretrained": rng.random() < 0.7,
            "model.drop_rate": rng.choice((0.0, 0.1, 0.2, 0.3)),
            "model.drop_path_rate": rng.choice((0.0, 0.05, 0.1, 0.2)),
            "model.img_size": rng.choice((224, 224, 256, 384)),
            "model.num_classes": NUM_CLASSES[project],
            "optimizer.name": optimizer,
            "optimizer.lr": _grid(best_lr * 10 ** rng.uniform(-1.3, 1.0)),
            "optimizer.weight_decay": _grid(10 ** rng.uniform(-6, -1)),
            "optimizer.momentum": rng.choice(momenta),
            "optimizer.betas": [0.9, rng.choice((0.98, 0.999))],
            "scheduler.name": rng.choice(("cosine", "cosine", "step", "onecycle")),
            "scheduler.warmup_epochs": rng.choice((0, 1, 3, 5, 10)),
            "scheduler.min_lr": _grid(10 ** rng.uniform(-7, -5)),
            "augment.policy": augment,
            "augment.mixup_alpha": rng.choice((0.1, 0.2, 0.4, 0.8)) if augment == "mixup" else 0.0,
            "augment.cutmix_alpha": 1.0 if augment == "cutmix" else 0.0,
            "augment.randaugment_m": rng.choice((5, 7, 9, 12)),
            "augment.hflip": rng.choice((0.0, 0.5)),
            "augment.color_jitter": rng.choice((0.0, 0.2, 0.4)),
            "augment.random_erase": rng.choice((0.0, 0.1, 0.25)),
            "train.epochs": rng.choice((10, 20, 30, 50, 90, 100, 200, 300)),
            "train.batch_size": batch,
            "train.seed": rng.randrange(10_000),
            "train.amp": rng.random() < 0.8,
            "train.grad_clip": rng.choice((0.0, 1.0, 5.0)),
            "train.label_smoothing": rng.choice((0.0, 0.1, 0.1, 0.2)),
            "train.ema_decay": rng.choice((0.0, 0.999, 0.9998)),
            "data.num_workers": rng.choice((4, 8, 16)),
            "data.crop_pct": rng.choice((0.875, 0.9, 0.95, 1.0)),
        }

    def data(self, project: str) -> list[tuple[str, str, str]]:
        versions = self.versions[project]
        train = versions["train"]
        weights = [1 + k for k in range(len(train))]  # newer versions are used more
        return [("train", "data/train", self.rng.choices(train, weights)[0]),
                ("val", "data/val", self.rng.choice(versions["val"]))]

    def tags(self, gpu: str) -> dict[str, str]:
        rng = self.rng
        stage = self.pick(STAGES)
        tags = {"stage": stage, "gpu": gpu, "task": "classification"}
        if stage == "sweep":
            tags["sweep"] = f"sweep-{rng.randrange(400):03d}"
        if rng.random() < 0.1:
            tags["reviewed"] = "true"
        return tags

    def history(self, run: SyntheticRun) -> None:
        """Ten curves shaped by the config; failed and killed runs stop early."""
        rng, p, points = self.rng, run.params, self.points
        _, base, per_kimg = ARCHS[p["model.arch"]]
        _, best_lr, _ = OPTIMIZERS[p["optimizer.name"]]
        train_version = self.versions[run.project]["train"].index(run.data[0][2])
        acc = (base + AUGMENTS[p["augment.policy"]][1] + 0.004 * train_version
               - 0.035 * math.log10(p["optimizer.lr"] / best_lr) ** 2
               + 0.01 * math.log10(p["train.epochs"] / 50) + rng.gauss(0, 0.015))
        acc = min(0.985, max(0.3, acc))
        images = PROJECTS[run.project][3]
        batch_speedup = (256 / p["train.batch_size"]) ** 0.15
        epoch_s = images / 1000 * per_kimg * rng.uniform(0.8, 1.3) * batch_speedup
        stride = max(1, images // p["train.batch_size"] * p["train.epochs"] // points)
        count = points if run.status in ("FINISHED", "RUNNING") else rng.randrange(3, points)
        seconds_per_point = epoch_s * p["train.epochs"] / points
        steps = [(k + 1) * stride for k in range(count)]
        times = [run.start_time + (k + 1) * seconds_per_point for k in range(count)]
        shape = rng.choice(self.shapes)
        if run.status != "FINISHED":  # a run that stopped early ended below its potential
            acc = 0.3 + (acc - 0.3) * shape[count - 1]
        train_acc = min(0.999, acc + rng.uniform(0.01, 0.08))
        finals = {
            "train_loss": (2.3, 0.05 + 2.0 * (1 - train_acc), 0.03),
            "val_loss": (2.3, 0.1 + 2.5 * (1 - acc), 0.03),
            "train_acc": (0.1, train_acc, 0.006),
            "val_acc": (0.1, acc, 0.006),
            "val_top5": (0.3, 1 - (1 - acc) * 0.25, 0.003),
            "val_f1": (0.08, acc - rng.uniform(0.005, 0.03), 0.008),
            "grad_norm": (8.0, rng.uniform(0.3, 2.0), 0.2),
        }
        for key, (first, last, noise) in finals.items():
            z = self.noise[rng.randrange(64)]
            span = last - first
            values = [first + span * s + noise * e for s, e in zip(shape, z[:count], strict=False)]
            if run.status == "FINISHED":
                values[-1] = last
            run.history[key] = (steps, values, times)
        lr, min_lr = p["optimizer.lr"], p["scheduler.min_lr"]
        run.history["lr"] = (steps, [min_lr + (lr - min_lr) * c for c in self.cosine[:count]],
                             times)
        for key, level, noise in (("epoch_time", epoch_s, 0.04),
                                  ("throughput", images / max(epoch_s, 1e-3), 0.03)):
            z = self.noise[rng.randrange(64)]
            run.history[key] = (steps, [level * (1 + noise * e) for e in z[:count]], times)
        if run.status == "FAILED" and rng.random() < 0.4:  # diverged: the losses end in NaN
            for key in ("train_loss", "val_loss"):
                values, bad = run.history[key][1], rng.randrange(1, min(3, count) + 1)
                values[-bad:] = [math.nan] * bad
        if run.status != "RUNNING":
            run.end_time = times[-1] + rng.uniform(5, 120)

    def text(self, run: SyntheticRun) -> None:
        rng, p = self.rng, run.params
        version = f"v{self.versions[run.project]['train'].index(run.data[0][2]) + 1}"
        words = {
            "augment": p["augment.policy"], "arch": p["model.arch"], "project": run.project,
            "version": version, "lr": p["optimizer.lr"], "optimizer": p["optimizer.name"],
            "target": rng.choice((85, 88, 90, 92, 95)), "epochs": p["train.epochs"],
            "smoothing": p["train.label_smoothing"], "warmup": p["scheduler.warmup_epochs"],
            "epoch": rng.randrange(5, 60), "clip": p["train.grad_clip"] or 1.0,
            "alpha": p["augment.mixup_alpha"] or 0.2, "min_lr": p["scheduler.min_lr"],
            "other": rng.choice(OWNERS), "workers": p["data.num_workers"],
            "gain": rng.uniform(-0.5, 2.5), "step": run.history["val_acc"][0][-1],
        }
        if rng.random() < 0.7:
            run.question = rng.choice(QUESTIONS).format(**words)
        sentences = rng.sample(NOTES, rng.choice((0, 1, 1, 2, 2, 3)))
        run.notes = " ".join(s.format(**words) for s in sentences) or None
        if run.status == "FINISHED" and rng.random() < 0.5:
            run.conclusion = rng.choice(CONCLUSIONS).format(**words)
        if run.status == "FAILED":
            run.failure = rng.choice(FAILURES).format(**words)


def _grid(x: float) -> float:
    """The nearest value of a 1-2-3-5 grid, as people write learning rates: 3e-4, 0.002."""
    exponent = math.floor(math.log10(x))
    mantissa = min((1, 2, 3, 5, 10), key=lambda m: abs(math.log10(m * 10**exponent / x)))
    return float(f"{mantissa}e{exponent}")


def _short(arch: str) -> str:
    return {"resnet18": "r18", "resnet50": "r50", "vit_base_patch16_224": "vitb16",
            "convnext_tiny": "cnxt", "efficientnet_b0": "effb0"}[arch]
