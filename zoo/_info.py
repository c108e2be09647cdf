"""What the zoo knows about one model, declared as data (like timm's ``PretrainedCfg``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from zoo._provenance import WeightsProvenance

__all__ = ["Framework", "ModelInfo"]

Framework = Literal["pytorch", "keras"]  # what a source's ``create`` returns


@dataclass(frozen=True)
class ModelInfo:
    """One model of one source: identity, preprocessing, head, license and local weights.

    ``num_params`` is None where counting needs building the model (listings); on a created
    model's ``cairn_info`` it counts that model, new head included. ``weights_location`` is
    where the weights file is, or where it must be put. ``framework`` is what ``create``
    returns: a PyTorch module or a Keras model (it chooses how ``zoo.finetune`` trains it).
    """

    name: str
    source: str  # the source's name: "timm", "tfhub", or a plugin's ("catalog")
    architecture: str
    pretrained_tag: str | None = None
    num_params: int | None = None
    input_size: tuple[int, int, int] | None = None  # (C, H, W)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: str | None = None
    crop_pct: float | None = None
    crop_mode: str | None = None
    license: str | None = None
    num_classes: int | None = None  # of the pretrained head
    paper_ids: str | None = None
    paper_name: str | None = None
    origin_url: str | None = None
    hf_hub_id: str | None = None
    weights_available: bool = False
    weights_location: str | None = None
    description: str | None = None
    framework: Framework = "pytorch"
    #: On a created model: where its pretrained weights came from (None without them).
    provenance: WeightsProvenance | None = None

    @property
    def has_pretrained(self) -> bool:
        """True when the source publishes pretrained weights for this model."""
        return self.pretrained_tag is not None

    def data_config(self) -> dict[str, Any]:
        """Preprocessing in timm's ``resolve_data_config`` shape, for building transforms."""
        keys = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}

    def to_dict(self) -> dict[str, Any]:
        """Plain values (tuples become lists), ready for JSON."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
