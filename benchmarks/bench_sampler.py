"""System sampler benchmark (issue 17): what sampling the host costs a training loop.

    .venv/bin/python benchmarks/bench_sampler.py            # about a minute
    .venv/bin/python benchmarks/bench_sampler.py --quick    # about 12 s

A small MLP trains on CPU (synthetic batches held in memory, one torch thread: ``--threads``;
on a shared machine OpenMP's threads wait on each other and swing steps/s tenfold) in
segments of a few seconds, sampling at 1 s (the sampler of ``registry.capture.sampler``,
started and past its first sample before the segment's clock starts) and not sampling,
and not sampling twice ("off" and "again"), in rounds whose order rotates. Reported: steps/s
sampling / not sampling, of the best segments (target: under 0.5% slower; the best, since other
work on the machine only ever slows a segment down) and as the median of the paired ratios;
the same for "again" / "off", which is the machine's noise: where it is over a quarter of a
percent, the throughput row is not judged. Then the sampler's own cost per
sample: CPU time of its thread between two samples (target: under 1 ms), and wall time, which
also counts waiting for the interpreter lock the training loop holds. The emit callback keeps
the metrics in a list: ``Run.log_metrics`` costs about a microsecond a metric on top.
Every figure is a median; nothing here asserts on a timing.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from _common import (
    Row,
    fmt_time,
    load_average,
    machine_facts,
    median,
    percentile,
    print_facts,
    print_table,
    step,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from registry.capture.sampler import SystemSampler

PACKAGES = ("cairn", "torch", "psutil", "nvidia-ml-py")
OVERHEAD_TARGET = 0.005  # the sampler may cost the loop under 0.5% of its steps/s
SAMPLE_TARGET_S = 1e-3  # and under 1 ms a sample


@dataclass(frozen=True)
class Plan:
    rounds: int = 12
    segment_s: float = 1.5
    warmup_s: float = 3.0
    interval: float = 1.0

    @classmethod
    def quick(cls) -> Plan:
        return cls(rounds=3, segment_s=1.0, warmup_s=1.0)


class Loop:
    """A small training loop: an MLP on batches of random data, SGD. Small on purpose: its
    steps are short, so the loop holds the interpreter lock often, as the sampler needs it."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.batches = [(torch.randn(64, 128), torch.randint(0, 10, (64,)))
                        for _ in range(16)]

    def train(self, seconds: float) -> float:
        """Train for ``seconds``; steps per second."""
        loss_fn, steps = torch.nn.functional.cross_entropy, 0
        began = time.perf_counter()
        while (elapsed := time.perf_counter() - began) < seconds:
            x, y = self.batches[steps % len(self.batches)]
            self.optimizer.zero_grad(set_to_none=True)
            loss_fn(self.model(x), y).backward()
            self.optimizer.step()
            steps += 1
        return steps / elapsed


class Costs:
    """The emit callback: keeps the metrics, and the sampler's cost of each sample."""

    def __init__(self) -> None:
        self.sampler: SystemSampler | None = None
        self.cpu_s: list[float] = []  # thread CPU time from one emit to the next
        self.wall_s: list[float] = []  # the sampler's own timing of each sample's reading
        self.metrics: list[dict[str, float]] = []
        self._last_cpu: float | None = None

    def __call__(self, metrics: dict[str, float], index: int) -> None:
        now = time.thread_time()
        if self._last_cpu is not None:
            self.cpu_s.append(now - self._last_cpu)
        self._last_cpu = now
        self.metrics.append(metrics)
        if self.sampler is not None:
            self.wall_s.append(self.sampler.last_sample_s)


def segment(loop: Loop, plan: Plan, sampling: bool, costs: Costs) -> float:
    if not sampling:
        return loop.train(plan.segment_s)
    first = len(costs.metrics)
    costs._last_cpu = None
    sampler = costs.sampler = SystemSampler(costs, plan.interval)
    sampler.start()
    while len(costs.metrics) == first:  # sample 0 (and opening NVML) before the clock starts
        time.sleep(0.001)
    try:
        return loop.train(plan.segment_s)
    finally:
        sampler.stop()


ORDERS = (("off", "on", "again"), ("on", "again", "off"), ("again", "off", "on"))


def measure(plan: Plan) -> tuple[dict[str, list[float]], Costs]:
    """Steps/s of each segment: sampling ("on"), not ("off"), and not again ("again": the
    noise of the machine, off against off), in rounds whose order rotates."""
    loop, costs = Loop(), Costs()
    loop.train(plan.warmup_s)
    rates: dict[str, list[float]] = {"off": [], "on": [], "again": []}
    for round_ in range(plan.rounds):
        for kind in ORDERS[round_ % len(ORDERS)]:
            rates[kind].append(segment(loop, plan, kind == "on", costs))
    return rates, costs


def idle_costs(samples: int = 20, interval: float = 0.05) -> list[float]:
    """Thread CPU time a sample takes on a machine at rest."""
    costs = Costs()
    sampler = costs.sampler = SystemSampler(costs, interval)
    sampler.start()
    time.sleep(samples * interval)
    sampler.stop()
    return costs.cpu_s


def rows_of(plan: Plan, rates: dict[str, list[float]], costs: Costs,
            idle: list[float]) -> list[Row]:
    on, off, again = rates["on"], rates["off"], rates["again"]
    best, noise = max(on) / max(off), max(again) / max(off)
    paired = [a / b for a, b in zip(on, off, strict=True)]
    paired_noise = [a / b for a, b in zip(again, off, strict=True)]
    quiet = abs(1 - noise) < OVERHEAD_TARGET / 2  # else the machine cannot tell 0.5%
    names = sorted({k for m in costs.metrics for k in m})
    gpus = len({k.split("/")[1] for k in names if k.startswith("system/gpu")})
    target = f"cost < {OVERHEAD_TARGET:.1%}" + ("" if quiet else " (too noisy to tell)")
    return [
        Row(f"Training steps/s, sampling every {plan.interval:g} s vs off, best of "
            f"{plan.rounds} segments of {plan.segment_s:g} s each",
            f"{max(on):,.0f} steps/s", f"{max(off):,.0f} steps/s", f"{best:.4f}", target,
            (1 - best < OVERHEAD_TARGET) if quiet else None),
        Row("The machine's noise: not sampling vs off, best of the same number",
            f"{max(again):,.0f} steps/s", f"{max(off):,.0f} steps/s", f"{noise:.4f}"),
        Row("Sampling vs off: median of the paired ratios (their range)",
            f"{median(on):,.0f} steps/s", f"{median(off):,.0f} steps/s",
            f"{median(paired):.4f} ({min(paired):.3f}-{max(paired):.3f})"),
        Row("Noise: not sampling vs off, median of the paired ratios (their range)",
            f"{median(again):,.0f} steps/s", f"{median(off):,.0f} steps/s",
            f"{median(paired_noise):.4f} ({min(paired_noise):.3f}-{max(paired_noise):.3f})"),
        Row(f"Per sample, CPU time of the sampler thread ({len(costs.cpu_s)} samples "
            f"during training, {len(names)} metrics, {gpus} GPUs)",
            f"{fmt_time(median(costs.cpu_s))} (p95 {fmt_time(percentile(costs.cpu_s, 95))})",
            target=f"< {fmt_time(SAMPLE_TARGET_S)}",
            passed=median(costs.cpu_s) < SAMPLE_TARGET_S),
        Row("Per sample, wall time during training (with waits for the interpreter lock)",
            f"{fmt_time(median(costs.wall_s))} (p95 {fmt_time(percentile(costs.wall_s, 95))})"),
        Row("Per sample, CPU time on a machine at rest", fmt_time(median(idle)),
            target=f"< {fmt_time(SAMPLE_TARGET_S)}", passed=median(idle) < SAMPLE_TARGET_S),
        Row(f"Sampler CPU share at {plan.interval:g} s (CPU per sample / interval): the most "
            "it can take from the loop", f"{median(costs.cpu_s) / plan.interval:.4%}",
            target=f"< {OVERHEAD_TARGET:.1%}",
            passed=median(costs.cpu_s) / plan.interval < OVERHEAD_TARGET),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter segments")
    parser.add_argument("--threads", type=int, default=1, help="torch's threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    plan = Plan.quick() if args.quick else Plan()
    print("Cairn system sampler benchmark (issue 17)" + (" --quick" if args.quick else ""))
    facts = machine_facts(PACKAGES)
    facts.append(("Torch threads", str(torch.get_num_threads())))
    print_facts(facts)
    began = time.perf_counter()
    idle = step("a sample on a machine at rest", idle_costs)
    rates, costs = step("training with and without sampling", lambda: measure(plan))
    print_table(rows_of(plan, rates, costs, idle),
                "Results (medians; ratio = steps/s sampling / steps/s not sampling)")
    print(f"\nTotal benchmark time: {time.perf_counter() - began:.0f} s; "
          f"load average now {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
