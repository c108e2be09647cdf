"""Cairn's model zoo: pretrained backbones from timm, TF Hub and the team catalog behind one
interface; weights download on first use (verified, recorded), or load offline from the team's
weights folder and the hub caches.

    import zoo
    for m in zoo.list("convnext*", pretrained_only=True):
        print(m.name, m.weights_available, m.weights_location)
    model = zoo.create("resnet50.a1_in1k", num_classes=5)       # fetched once, fresh head
    model = zoo.create("resnet50", num_classes=5, weights="r50.safetensors")
    model = zoo.create("tfhub:efficientnetv2-b0", num_classes=5)  # a Keras model
    result = zoo.finetune("resnet50.a1_in1k", "data/defects", epochs=10)  # a registry run
    report = zoo.profile(result.run_id, precisions=("fp32", "int8"))  # ONNX Runtime, this CPU

Sources: timm (names without a prefix), ``tfhub:``, and those of other packages through the
``cairn.zoo_sources`` entry points (the catalog's ``catalog:``), or :func:`register_source`.
Importing this package loads neither torch, timm nor TensorFlow; each source imports its
framework on first use.
"""

from zoo import errors as errors
from zoo._api import create as create
from zoo._api import framework_of as framework_of
from zoo._api import info as info
from zoo._api import list as list
from zoo._api import list_sources as list_sources
from zoo._api import pull as pull
from zoo._info import ModelInfo as ModelInfo
from zoo._profile import profile as profile
from zoo._provenance import WeightsProvenance as WeightsProvenance
from zoo._registry import register_source as register_source
from zoo._weights import WEIGHTS_ENV as WEIGHTS_ENV
from zoo.errors import UnknownModelError as UnknownModelError
from zoo.errors import WeightsDownloadError as WeightsDownloadError
from zoo.errors import WeightsNotFoundError as WeightsNotFoundError
from zoo.training import FinetuneConfig as FinetuneConfig
from zoo.training import FinetuneResult as FinetuneResult
from zoo.training import finetune as finetune

__all__ = [
    "WEIGHTS_ENV",
    "FinetuneConfig",
    "FinetuneResult",
    "ModelInfo",
    "UnknownModelError",
    "WeightsDownloadError",
    "WeightsNotFoundError",
    "WeightsProvenance",
    "create",
    "errors",
    "finetune",
    "framework_of",
    "info",
    "list",
    "list_sources",
    "profile",
    "pull",
    "register_source",
]
