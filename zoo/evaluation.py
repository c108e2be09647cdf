"""How well a classifier does on a labelled set: accuracy, per-class precision and recall,
and the confusion matrix (rows = true class, columns = predicted class).

    ev = zoo.evaluation.evaluate(model, val_loader, device="cuda", class_names=classes)
    ev.log_to(run)   # eval/accuracy, eval/precision/<class>, eval/recall/<class> + artifacts

Where a class has no predictions its precision is 0.0, and where it has no samples its
recall is 0.0 (scikit-learn's ``zero_division=0``), so every metric is a finite number.
Importing this module loads numpy only; torch and matplotlib are imported when used.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import EvaluationInputError

__all__ = ["Evaluation", "EvaluationInputError", "evaluate", "from_predictions"]

_MAX_KEY_PART = 100  # registry metric keys are at most 250 characters
_ANNOTATE_UP_TO = 30  # classes; beyond this the counts no longer fit in the cells


@dataclass(frozen=True)
class Evaluation:
    """The evaluation of a classifier on ``n`` labelled samples."""

    accuracy: float
    n: int
    class_names: list[str]
    precision: list[float]
    recall: list[float]
    confusion: list[list[int]]

    @property
    def support(self) -> list[int]:
        """Samples per true class (the confusion matrix's row sums)."""
        return [sum(row) for row in self.confusion]

    def metrics(self, prefix: str = "eval") -> dict[str, float]:
        """Flat registry metrics: ``<prefix>/accuracy``, ``<prefix>/macro_precision``,
        ``<prefix>/macro_recall``, ``<prefix>/precision/<class>``, ``<prefix>/recall/<class>``.

        Class names are made valid metric-key parts (see :func:`metric_names`)."""
        head = f"{prefix.rstrip('/')}/" if prefix else ""
        out = {f"{head}accuracy": self.accuracy,
               f"{head}macro_precision": float(np.mean(self.precision)),
               f"{head}macro_recall": float(np.mean(self.recall))}
        for name, p, r in zip(metric_names(self.class_names), self.precision, self.recall,
                              strict=True):
            out[f"{head}precision/{name}"] = p
            out[f"{head}recall/{name}"] = r
        return out

    def to_dict(self) -> dict[str, Any]:
        """The fields, plus ``support``, as JSON-ready data."""
        return {**asdict(self), "support": self.support}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        """The inverse of :meth:`to_dict` (e.g. a run's ``eval/evaluation.json``)."""
        return cls(accuracy=float(data["accuracy"]), n=int(data["n"]),
                   class_names=list(data["class_names"]),
                   precision=[float(v) for v in data["precision"]],
                   recall=[float(v) for v in data["recall"]],
                   confusion=[[int(v) for v in row] for row in data["confusion"]])

    def confusion_png(self, path: str | Path) -> Path:
        """Draw the confusion matrix as a labelled heat map (colour: share of the true class,
        text: counts) and save it as a PNG at ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _draw_confusion(np.asarray(self.confusion, dtype=np.int64), self.class_names, path,
                        title=f"accuracy {self.accuracy:.3f}, n = {self.n}")
        return path

    def log_to(self, run: Any, prefix: str = "eval") -> None:
        """Record on a registry run: the metrics, ``<prefix>/confusion_matrix.png`` and
        ``<prefix>/evaluation.json``."""
        run.log_metrics(self.metrics(prefix))
        head = f"{prefix.rstrip('/')}/" if prefix else ""
        with tempfile.TemporaryDirectory(prefix="cairn-eval-") as tmp:
            png = self.confusion_png(Path(tmp) / "confusion_matrix.png")
            doc = Path(tmp) / "evaluation.json"
            doc.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
            run.log_artifact(png, name=f"{head}confusion_matrix.png")
            run.log_artifact(doc, name=f"{head}evaluation.json")


def from_predictions(y_true: Iterable[int], y_pred: Iterable[int],
                     class_names: Sequence[str]) -> Evaluation:
    """The evaluation of predicted class indices against true ones (numpy arrays, torch
    tensors or sequences of ints, values in ``range(len(class_names))``)."""
    names = _check_names(class_names)
    true, pred = _labels("y_true", y_true, len(names)), _labels("y_pred", y_pred, len(names))
    if true.shape != pred.shape:
        raise EvaluationInputError("y_pred", f"has {pred.size} values but y_true has {true.size}")
    if true.size == 0:
        raise EvaluationInputError("y_true", "is empty: there is nothing to evaluate")
    k = len(names)
    confusion = np.bincount(true * k + pred, minlength=k * k).reshape(k, k)
    hits = np.diag(confusion).astype(np.float64)
    return Evaluation(
        accuracy=float(hits.sum() / true.size), n=int(true.size), class_names=names,
        precision=_ratio(hits, confusion.sum(axis=0)), recall=_ratio(hits, confusion.sum(axis=1)),
        confusion=confusion.tolist())


def evaluate(model: Any, loader: Iterable[Any], *, device: Any, class_names: Sequence[str],
             amp_dtype: Any = None, channels_last: bool = False) -> Evaluation:
    """Run ``model`` over ``loader`` (batches of ``(images, labels, ...)``) in eval mode under
    ``torch.inference_mode`` and evaluate its arg-max predictions.

    ``amp_dtype`` (e.g. ``torch.bfloat16``) turns on autocast for ``device``'s type;
    ``channels_last`` converts the model and images to that memory format. The model is moved
    to ``device`` and its training mode is restored afterwards."""
    import torch

    names = _check_names(class_names)
    device = torch.device(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    was_training = model.training
    model.to(device=device, memory_format=fmt).eval()
    trues: list[Any] = []
    preds: list[Any] = []
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype,
                                                    enabled=amp_dtype is not None):
            for batch in loader:
                images, labels = _split_batch(batch)
                logits = _logits(model(images.to(device, memory_format=fmt, non_blocking=True)))
                if logits.ndim != 2 or logits.shape[1] != len(names):
                    raise EvaluationInputError(
                        "model", f"gives outputs of shape {tuple(logits.shape)}, expected "
                        f"(batch, {len(names)}) for {len(names)} class names")
                preds.append(logits.argmax(dim=1))
                trues.append(torch.as_tensor(labels).reshape(-1))
    finally:
        model.train(was_training)
    if not trues:
        raise EvaluationInputError("loader", "yielded no batches: there is nothing to evaluate")
    return from_predictions(torch.cat(trues).cpu(), torch.cat(preds).cpu(), names)


def metric_names(class_names: Sequence[str]) -> list[str]:
    """Class names as metric-key parts: '/' and unprintable characters become '_', long
    names are cut, and a name that collides with an earlier one gets ``~<index>``."""
    out: list[str] = []
    for index, name in enumerate(class_names):
        part = "".join(c if c.isprintable() and c != "/" else "_" for c in name.strip())
        part = part[:_MAX_KEY_PART] or f"class_{index}"
        out.append(part if part not in out else f"{part}~{index}")
    return out


def _check_names(class_names: Sequence[str]) -> list[str]:
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise EvaluationInputError("class_names", "must be a list of strings")
    names = list(class_names)
    if not names:
        raise EvaluationInputError("class_names", "is empty: give one name per class")
    if not all(isinstance(n, str) for n in names):
        raise EvaluationInputError("class_names", "must all be strings")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise EvaluationInputError("class_names", f"repeat names: {', '.join(dupes)}")
    return names


def _labels(field: str, values: Iterable[int], k: int) -> np.ndarray:
    """Class indices as a 1-D int64 array, checked against ``range(k)``."""
    if hasattr(values, "detach"):  # a torch tensor, possibly on a GPU
        values = values.detach().cpu().numpy()
    arr = np.asarray(values if isinstance(values, (np.ndarray, Sequence)) else list(values))
    if arr.ndim != 1:
        raise EvaluationInputError(field, f"must be one-dimensional, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise EvaluationInputError(field, f"must hold integer class indices, got {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = arr[(arr < 0) | (arr >= k)]
    if bad.size:
        raise EvaluationInputError(
            field, f"holds {bad.size} value(s) outside 0..{k - 1}, e.g. {int(bad[0])} "
            f"(there are {k} class names)")
    return arr


def _ratio(hits: np.ndarray, totals: np.ndarray) -> list[float]:
    """hits / totals per class, 0.0 where the total is 0."""
    safe = np.where(totals > 0, totals, 1)
    return np.where(totals > 0, hits / safe, 0.0).astype(float).tolist()


def _split_batch(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise EvaluationInputError("loader", "must yield (images, labels) batches, got "
                               f"{type(batch).__name__}")


def _logits(output: Any) -> Any:
    """The class scores of a model's output (the first element of a tuple output)."""
    return output[0] if isinstance(output, (tuple, list)) else output


def _draw_confusion(confusion: np.ndarray, names: list[str], path: Path, title: str) -> None:
    """A heat map with matplotlib's Agg canvas (no pyplot: no global state, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(names)
    rows = confusion.sum(axis=1, keepdims=True)
    share = confusion / np.where(rows > 0, rows, 1)  # colour by recall, readable when imbalanced
    side = min(4.0 + 0.45 * k, 40.0)
    fig = Figure(figsize=(side + 1.5, side), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="share of the true class")
    labels = [n if len(n) <= 24 else n[:23] + "\N{HORIZONTAL ELLIPSIS}" for n in names]
    ax.set_xticks(range(k), labels, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if k <= _ANNOTATE_UP_TO:
        for (i, j), count in np.ndenumerate(confusion):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=9,
                    color="white" if share[i, j] > 0.5 else "black")
    fig.savefig(path, format="png")
