"""The Markdown body and the ``model-index`` of a drafted card, written from a run's record."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from catalog._schema import PLACEHOLDER
from registry.entities import RunRecord

__all__ = ["body_of", "model_index", "reuse_snippet"]

_EVAL_ROLES = ("test", "val", "train")
_MAX_PARAMS = 40


def model_index(record: RunRecord, name: str, datasets: list[str]) -> list[dict[str, Any]]:
    """Hugging Face ``model-index``: the run's evaluation metrics on its data."""
    metrics = _eval_metrics(record)
    if not metrics:
        return []
    data = _eval_dataset(record)
    dataset = {"type": data.path, "name": data.path} if data else {"type": "unknown"}
    if data and data.hash:
        dataset["revision"] = data.hash
    return [{"name": name, "results": [{
        "task": {"type": "image-classification", "name": "Image classification"},
        "dataset": dataset, "metrics": metrics}]}]


def _eval_metrics(record: RunRecord) -> list[dict[str, Any]]:
    """``eval/*`` metrics (last value), else the best validation accuracy and loss."""
    found = []
    for key, s in sorted(record.metrics.items()):
        if key.startswith("eval/") and key != "eval/n" and _finite(s.last):
            found.append({"type": key.split("/", 1)[1], "value": round(s.last, 6),
                          "name": f"{key} (run {record.id[:8]})"})
    if found:
        return found
    for key, best in (("val/accuracy", "max"), ("val/loss", "min")):
        s = record.metrics.get(key)
        value = getattr(s, best, None) if s else None
        if _finite(value):
            found.append({"type": key.split("/", 1)[1], "value": round(value, 6),
                          "name": f"{key} ({best} over epochs, run {record.id[:8]})"})
    return found


def _eval_dataset(record: RunRecord):
    by_role = {d.role: d for d in record.datasets}
    return next((by_role[r] for r in _EVAL_ROLES if r in by_role), None)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def reuse_snippet(card: Any) -> str:
    """Python that fine-tunes from the card's weights and runs it for inference."""
    ref = card.ref if hasattr(card, "ref") else str(card)
    labels = len(card.labels) if hasattr(card, "labels") else "N"
    return (
        "import zoo\n"
        f'model = zoo.create("catalog:{ref}", num_classes={labels})  # fine-tune from here\n'
        "\n"
        "import catalog\n"
        "from PIL import Image\n"
        f'loaded = catalog.load("{ref}")  # model, preprocessing and labels\n'
        'print(loaded.predict([Image.open("image.png")]))\n'
    )


def body_of(record: RunRecord, front: dict[str, Any], notes: list[str]) -> str:
    """The body: what it does, data, training, evaluation, how to reuse, limitations."""
    parts = [f"\n# {front['name']}\n", _what(record, front), _data(record), _training(record),
             _evaluation(record, front), _reuse(front), _limitations(notes)]
    return "\n".join(parts)


def _what(record: RunRecord, front: dict[str, Any]) -> str:
    labels = front["input"]["labels"]
    lines = ["## What it does\n",
             f"{PLACEHOLDER}: one paragraph on what the model recognises, in which images, "
             "and for whom.\n",
             f"Classifies {front['input']['size']} px images into {len(labels)} classes: "
             f"{', '.join(f'`{x}`' for x in labels)}. Fine-tuned from `{front['backbone']}` "
             f"by {record.owner} in run `{record.id}`"
             + (f" ({record.name})" if record.name else "") + f", project `{record.project}`."]
    if record.question:
        lines.append(f"\nThe question the run asked: {record.question}")
    return "\n".join(lines) + "\n"


def _data(record: RunRecord) -> str:
    rows = ["## Data\n"]
    if not record.datasets:
        return "\n".join([*rows, f"{PLACEHOLDER}: the run recorded no dataset; name the data "
                                  "the model was trained and evaluated on.\n"])
    rows += ["| role | path | DVC hash | files | bytes | matches DVC |",
             "|---|---|---|---|---|---|"]
    for d in record.datasets:
        state = "-" if d.dirty is None else ("no" if d.dirty else "yes")
        rows.append(f"| {d.role} | `{d.path}` | `{d.hash or 'untracked'}` | {d.nfiles or '-'} "
                    f"| {d.size or '-'} | {state} |")
    return "\n".join(rows) + "\n"


def _training(record: RunRecord) -> str:
    code = record.code or {}
    hw = record.hardware or {}
    gpus = ", ".join(str(g.get("name", g)) if isinstance(g, dict) else str(g)
                     for g in hw.get("gpus") or []) or "none"
    started = datetime.fromtimestamp(record.start_time).strftime("%Y-%m-%d %H:%M")
    lines = ["## Training\n",
             f"- run: `{record.id}` {record.name or ''} [{record.status}], started {started}"
             + (f", {record.duration / 60:.1f} min" if record.duration else ""),
             f"- code: commit `{code.get('commit') or '-'}` on `{code.get('branch') or '-'}`"
             + (" (uncommitted changes)" if code.get("dirty") else ""),
             f"- hardware: {_cpu(hw.get('cpu'))}, GPUs: {gpus}",
             f"- command: `{record.command or '-'}`", "", "| param | value |", "|---|---|"]
    for key in sorted(record.params)[:_MAX_PARAMS]:
        value = str(record.params[key]).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {key} | {value[:120]} |")
    return "\n".join(lines) + "\n"


def _evaluation(record: RunRecord, front: dict[str, Any]) -> str:
    lines = ["## Evaluation\n", "| metric | last | min | max |", "|---|---|---|---|"]
    for key, s in sorted(record.metrics.items()):
        lines.append(f"| {key} | {_num(s.last)} | {_num(s.min)} | {_num(s.max)} |")
    if front.get("mov"):
        lines += ["", "MoV measured with this model:", "", "| MoV | value | baseline | target |",
                  "|---|---|---|---|"]
        for m in front["mov"]:
            lines.append(f"| {m['name']} | {_num(m['value'])} {m.get('unit', '')} | "
                         f"{_num(m.get('baseline'))} | {_num(m.get('target'))} |")
    if record.conclusion:
        lines += ["", f"The run's conclusion: {record.conclusion}"]
    lines += ["", f"{PLACEHOLDER}: what these numbers mean for the people who will use the "
                  "model, and how they compare with the baseline."]
    return "\n".join(lines) + "\n"


def _reuse(front: dict[str, Any]) -> str:
    class Ref:
        ref = f"{front['name']}@{front['version']}"
        labels = front["input"]["labels"]

    return f"## How to reuse\n\n```python\n{reuse_snippet(Ref)}```\n"


def _limitations(notes: list[str]) -> str:
    lines = ["## Limitations\n", f"{PLACEHOLDER}: where the model fails, images it never saw, "
                                 "uses it must not be put to.\n"]
    lines += [f"- {note}" for note in notes if PLACEHOLDER in note]
    return "\n".join(lines) + "\n"


def _cpu(cpu: Any) -> str:
    if isinstance(cpu, dict):
        cores = cpu.get("logical_cores")
        return f"{cpu.get('model') or 'CPU'}" + (f", {cores} cores" if cores else "")
    return str(cpu or "-")


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "-"
