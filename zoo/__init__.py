"""Cairn's model zoo: pretrained backbones from timm (and, later, TF Hub and the team catalog)
behind one interface, loaded from local files only.

    import zoo
    for m in zoo.list("convnext*", pretrained_only=True):
        print(m.name, m.weights_available, m.weights_location)
    model = zoo.create("resnet50.a1_in1k", num_classes=5)       # local weights, fresh head
    model = zoo.create("resnet50", num_classes=5, weights="r50.safetensors")
    result = zoo.finetune("resnet50.a1_in1k", "data/defects", epochs=10)  # a registry run

Importing this package loads neither torch nor timm; each source imports its framework on
first use.
"""

from zoo import errors as errors
from zoo import finetune as finetune  # a callable package: zoo.finetune(...) fine-tunes
from zoo._api import create as create
from zoo._api import info as info
from zoo._api import list as list
from zoo._api import list_sources as list_sources
from zoo._info import ModelInfo as ModelInfo
from zoo._registry import register_source as register_source
from zoo._weights import WEIGHTS_ENV as WEIGHTS_ENV
from zoo.errors import UnknownModelError as UnknownModelError
from zoo.errors import WeightsNotFoundError as WeightsNotFoundError
from zoo.finetune import FinetuneResult as FinetuneResult

__all__ = [
    "WEIGHTS_ENV",
    "FinetuneResult",
    "ModelInfo",
    "UnknownModelError",
    "WeightsNotFoundError",
    "create",
    "errors",
    "finetune",
    "info",
    "list",
    "list_sources",
    "register_source",
]
