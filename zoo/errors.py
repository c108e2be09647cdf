"""Typed errors of the model zoo. Each says how to fix the input."""

from __future__ import annotations

from collections.abc import Sequence

from registry.errors import CairnError

__all__ = [
    "CheckpointError",
    "DataFolderError",
    "EvaluationInputError",
    "ExportError",
    "FinetuneConfigError",
    "NoClassifierError",
    "OnnxMismatchError",
    "ProfileError",
    "QuantizationError",
    "ResumeError",
    "ScratchUnsupportedError",
    "SourceUnavailableError",
    "UnknownModelError",
    "UnknownSourceError",
    "WeightsDownloadError",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "ZooError",
]


class ZooError(CairnError):
    """Base class of the zoo's errors."""


class UnknownModelError(ZooError):
    """No source knows this model name."""

    def __init__(self, name: str, suggestions: Sequence[str] = ()) -> None:
        self.name, self.suggestions = name, list(suggestions)
        hint = f"; did you mean {', '.join(self.suggestions[:5])}?" if self.suggestions else ""
        super().__init__(
            f"unknown model {name!r}{hint}. Names: timm names such as 'resnet50.a1_in1k', "
            "'tfhub:<handle or SavedModel path>', 'catalog:<name>[@version]', or another "
            "source's 'SOURCE:<name>' (zoo.list_sources())"
        )


class UnknownSourceError(ZooError):
    """A name or ``source=`` names a model source that is not registered."""

    def __init__(self, source: str, known: Sequence[str] = ()) -> None:
        self.source, self.known = source, list(known)
        super().__init__(
            f"no model source {source!r} is available; available: {', '.join(self.known) or '-'}"
        )


class WeightsNotFoundError(ZooError):
    """Pretrained weights were asked for, are not on this machine, and cannot be downloaded
    (offline, or the source publishes none)."""

    def __init__(self, name: str, expected: str, hint: str = "", *,
                 scratch_ok: bool = True) -> None:
        self.name, self.expected, self.hint = name, expected, hint
        super().__init__(
            f"pretrained weights for {name!r} are not on this machine: put them at {expected}"
            + (f" ({hint})" if hint else "")
            + (", pass weights=PATH, or use pretrained=False to train from scratch"
               if scratch_ok else ", or pass weights=PATH")
        )


class WeightsDownloadError(ZooError):
    """Weights could not be downloaded, or what arrived is not what the hub published.

    ``expected`` and ``actual`` are the digests where the file arrived but did not match;
    such a file is removed from the cache, never left looking valid.
    """

    def __init__(self, name: str, url: str, reason: str, *, expected: str | None = None,
                 actual: str | None = None, hint: str = "") -> None:
        self.name, self.url, self.reason = name, url, reason
        self.expected, self.actual = expected, actual
        digests = f" (expected {expected}, got {actual})" if expected or actual else ""
        super().__init__(f"cannot download the weights of {name!r} from {url}: {reason}"
                         f"{digests}" + (f"; {hint}" if hint else ""))


class ScratchUnsupportedError(ZooError):
    """The model comes only with its weights (a TF Hub SavedModel): it has no random init."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"{name} is a TF Hub SavedModel: its architecture and weights come together, so it "
            "cannot be created without pretrained weights (pretrained=False); use a timm model "
            "to train from scratch")


class SourceUnavailableError(ZooError):
    """A model source needs a package that is not installed."""

    def __init__(self, source: str, package: str) -> None:
        self.source, self.package = source, package
        super().__init__(f"the {source} source needs {package}: pip install 'cairn[{source}]'")


class WeightsMismatchError(ZooError):
    """A weights file exists but cannot be loaded into the model it was given for."""

    def __init__(self, name: str, path: str, detail: str) -> None:
        self.name, self.path, self.detail = name, path, detail
        super().__init__(f"weights file {path} does not fit model {name!r}: {detail}")


class NoClassifierError(ZooError):
    """The model has no classifier head to give ``num_classes`` outputs (a feature encoder)."""

    def __init__(self, name: str, num_classes: int) -> None:
        self.name, self.num_classes = name, num_classes
        super().__init__(
            f"model {name!r} is a feature encoder without a classifier head, so it cannot have "
            f"{num_classes} classes: create it with num_classes=0 and put a head on its features"
        )


class DataFolderError(ZooError):
    """An image folder cannot be used for fine-tuning (missing, empty, too few classes)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(
            f"image folder {path}: {reason} (expected one sub-folder of RGB images per class)"
        )


class FinetuneConfigError(ZooError):
    """A fine-tune option has a value that cannot work."""

    def __init__(self, option: str, value: object, reason: str) -> None:
        self.option, self.value, self.reason = option, value, reason
        super().__init__(f"{option}={value!r}: {reason}")


class ResumeError(ZooError):
    """A checkpoint to resume from is missing, unreadable or from another fine-tune."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"cannot resume from {path}: {reason}")


class EvaluationInputError(ZooError):
    """Labels, predictions or class names that cannot be evaluated (says which and why)."""

    def __init__(self, field: str, detail: str) -> None:
        self.field, self.detail = field, detail
        super().__init__(f"cannot evaluate: {field} {detail}")


class ExportError(ZooError):
    """A model could not be exported or the exported file failed its check."""

    def __init__(self, path: str, detail: str) -> None:
        self.path, self.detail = path, detail
        super().__init__(f"cannot export {path}: {detail}")


class OnnxMismatchError(ExportError):
    """onnxruntime's output on the sample differs from PyTorch's by more than ``atol``."""

    def __init__(self, path: str, max_abs_diff: float, atol: float, exporter: str) -> None:
        self.max_abs_diff, self.atol, self.exporter = max_abs_diff, atol, exporter
        super().__init__(path, f"onnxruntime's output differs from PyTorch's by up to "
                         f"{max_abs_diff:.3g} (> atol {atol:g}, {exporter} exporter); the "
                         "model uses an operation the export changed: try exporter='legacy' "
                         "or 'dynamo', or a looser atol if the difference is numerical noise")


class CheckpointError(ZooError):
    """A checkpoint file is missing, unreadable or lacks the metadata an export needs."""

    def __init__(self, path: str, detail: str) -> None:
        self.path, self.detail = path, detail
        super().__init__(f"checkpoint {path}: {detail}")


class ProfileError(ZooError):
    """A model could not be profiled: no model file to measure, or ONNX Runtime failed."""

    def __init__(self, target: str, detail: str) -> None:
        self.target, self.detail = target, detail
        super().__init__(f"cannot profile {target}: {detail}")


class QuantizationError(ZooError):
    """Static int8 quantization failed (the fp32 profile is still made and recorded)."""

    def __init__(self, path: str, detail: str) -> None:
        self.path, self.detail = path, detail
        super().__init__(f"cannot quantize {path} to int8: {detail}")
