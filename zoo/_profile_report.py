"""What a profile found, and where it is recorded: ``infer/...`` metrics and ``infer.*`` tags
on the run, and ``inference:`` entries for the model card.

Metric keys: ``infer/<rt>_<precision>/b<batch>/latency_ms_p50`` (also ``_p90``, ``_p99``),
``.../b<batch>/throughput`` (images/s), ``infer/<rt>_<precision>/accuracy``,
``.../accuracy_delta`` (against fp32), ``.../peak_memory_mb`` and ``.../file_mb``; for TFLite
also ``.../max_abs_diff`` and ``.../top1_agreement`` against the Keras model. ``<rt>`` is
``onnx`` (ONNX Runtime) or ``tflite``. Each profile adds one step to these histories; the
tags name the hardware of the latest.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PrecisionProfile", "ProfileReport"]

RUNTIME = "onnxruntime"
PREFIXES = {"onnxruntime": "onnx", "tflite": "tflite"}


@dataclass
class PrecisionProfile:
    """One precision of one model: its file and what ONNX Runtime measured."""

    precision: str
    file: Path
    file_mb: float
    batches: list[dict[str, Any]]  # batch, repeats, p50, p90, p99 (ms), throughput
    peak_memory_mb: float | None = None
    accuracy: float | None = None
    n_eval: int | None = None
    runtime: str = RUNTIME
    #: TFLite: how the file agrees with the Keras model (max_abs_diff, top1_agreement).
    checked: dict[str, float] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{PREFIXES[self.runtime]}_{self.precision}"

    def at(self, batch: int) -> dict[str, Any] | None:
        return next((b for b in self.batches if b["batch"] == batch), None)


@dataclass
class ProfileReport:
    """A profile of one model on this machine, every precision measured."""

    target: str
    hardware: str
    machine: str
    threads: int
    runtime_version: str
    profiles: list[PrecisionProfile] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    data: str | None = None
    run_id: str | None = None
    card_path: Path | None = None
    runtime: str = RUNTIME

    def get(self, precision: str) -> PrecisionProfile | None:
        return next((p for p in self.profiles if p.precision == precision), None)

    def accuracy_delta(self, profile: PrecisionProfile) -> float | None:
        """``profile``'s accuracy less fp32's (None for fp32 itself, or without both)."""
        base = self.get("fp32")
        if profile.precision == "fp32" or None in (base and base.accuracy, profile.accuracy):
            return None
        return profile.accuracy - base.accuracy

    def metrics(self) -> dict[str, float]:
        """The ``infer/...`` metrics of every measured precision."""
        out: dict[str, float] = {}
        for p in self.profiles:
            head = f"infer/{p.key}"
            for b in p.batches:
                for q in ("p50", "p90", "p99"):
                    out[f"{head}/b{b['batch']}/latency_ms_{q}"] = b[q]
                out[f"{head}/b{b['batch']}/throughput"] = b["throughput"]
            extra = {"accuracy": p.accuracy, "accuracy_delta": self.accuracy_delta(p),
                     "peak_memory_mb": p.peak_memory_mb, "file_mb": p.file_mb, **p.checked}
            out.update({f"{head}/{k}": v for k, v in extra.items() if v is not None})
        return out

    def tags(self) -> dict[str, str]:
        """The hardware and runtime the metrics were measured on, and any failure."""
        tags = {"infer.hardware": self.hardware, "infer.machine": self.machine,
                "infer.threads": str(self.threads),
                "infer.runtime": f"{self.runtime} {self.runtime_version}"}
        prefix = PREFIXES[self.runtime]
        tags.update({f"infer.{prefix}_{k}.error": v[:1000] for k, v in self.failures.items()})
        return tags

    def card_entries(self, today: _dt.date | None = None) -> list[dict[str, Any]]:
        """One ``inference:`` entry of the model card per precision and batch size."""
        measured = (today or _dt.date.today()).isoformat()
        entries = []
        for p in self.profiles:
            for b in p.batches:
                entry = {"runtime": self.runtime, "runtime_version": self.runtime_version,
                         "precision": p.precision, "hardware": self.hardware,
                         "threads": self.threads, "batch": b["batch"],
                         "latency_ms": {q: round(b[q], 4) for q in ("p50", "p90", "p99")},
                         "throughput": round(b["throughput"], 2), "accuracy": p.accuracy,
                         "accuracy_delta": self.accuracy_delta(p),
                         "peak_memory_mb": _rounded(p.peak_memory_mb),
                         "file_mb": _rounded(p.file_mb), "measured": measured,
                         "run": self.run_id}
                entries.append({k: v for k, v in entry.items() if v is not None})
        return entries

    def note(self) -> str:
        """A line for the run's notes."""
        parts = [f"{p.precision} b1 p50 {b['p50']:.2f} ms" for p in self.profiles
                 if (b := p.at(1))]
        return (f"Inference profile ({self.runtime} {self.runtime_version}, {self.hardware}, "
                f"{self.threads} threads): {', '.join(parts) or 'no batch-1 figures'}"
                + "".join(f"; {k} failed: {v}" for k, v in self.failures.items()))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["card_path"] = str(self.card_path) if self.card_path else None
        for p in out["profiles"]:
            p["file"] = str(p["file"])
        return out


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
