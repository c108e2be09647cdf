"""TensorFlow Hub image feature-vector backbones, as Keras 2 (``tf_keras``) models.

Names: ``tfhub:<alias>`` for the curated set below (``tfhub:efficientnetv2-b0``),
``tfhub:<handle URL>``, or ``tfhub:<path of a local SavedModel folder>``. A handle's
SavedModel is found in the team's weights folder (``<weights root>/tfhub/<alias>/``, or
``.../tfhub/<sha1 of the handle>/`` for other handles) or in TensorFlow Hub's cache, the folder
``$TFHUB_CACHE_DIR/<sha1 of the handle>`` (``<system temp>/tfhub_modules`` without the
variable), exactly where ``tensorflow_hub`` 0.16 would look (``compressed_module_resolver``).
Missing, it is downloaded on first use through ``tensorflow_hub``'s own resolver (tfhub.dev
handles redirect to Kaggle Models) and the unpacked SavedModel is checked; offline
(``HF_HUB_OFFLINE``, ``CAIRN_OFFLINE``, ``[zoo] offline``) it is a WeightsNotFoundError.

``create`` builds ``Input -> hub.KerasLayer -> Dense(num_classes)``. ``tensorflow_hub`` 0.16
layers are Keras 2 layers, so the model is a ``tf_keras`` model (never Keras 3). SavedModels
exported by Keras 3 (``model.export``) have no ``__call__``; they are called through their
``serving_default`` signature and its one output key, which hub can only run frozen.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from zoo import _provenance, _weights
from zoo._download import offline_hint
from zoo._info import Framework, ModelInfo
from zoo._online import hub_settings
from zoo.errors import (
    ScratchUnsupportedError,
    SourceUnavailableError,
    UnknownModelError,
    WeightsDownloadError,
    WeightsMismatchError,
    WeightsNotFoundError,
)
from zoo.sources import suggest

__all__ = ["CURATED", "SavedModelFacts", "TfHubSource", "hub_cache_dir", "import_tf",
           "inspect_saved_model"]

SOURCE = "tfhub"
DEFAULT_SIZE = 224
_UNIT = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)  # TF Hub's image convention: RGB floats in [0, 1]
_RANGE = "RGB float in [0, 1] (TF Hub's common image input convention)"


def _entry(alias: str, handle: str, architecture: str, size: int, tag: str,
           params: int | None, paper: tuple[str, str], description: str) -> ModelInfo:
    return ModelInfo(
        name=f"{SOURCE}:{alias}", source=SOURCE, framework="keras", architecture=architecture,
        pretrained_tag=tag, num_params=params, input_size=(3, size, size), mean=_UNIT[0],
        std=_UNIT[1], interpolation="bilinear", license="Apache-2.0", num_classes=0,
        paper_ids=paper[0], paper_name=paper[1], origin_url=handle,
        description=f"{description}; input {_RANGE}",
    )


# Handles and input sizes as in TensorFlow Hub's own tutorial "Retraining an image classifier"
# (tensorflow/hub examples/colab/tf2_image_retraining.ipynb). Parameter counts, rounded and
# with the 1000-class ImageNet head, from the Keras Applications table
# (https://keras.io/api/applications/) for the same architectures; MobileNetV3-Large from its
# paper (Table 3); BiT-S R50x1 documents none, so None.
CURATED: dict[str, ModelInfo] = {e.name.split(":", 1)[1]: e for e in (
    _entry("efficientnetv2-b0",
           "https://tfhub.dev/google/imagenet/efficientnet_v2_imagenet1k_b0/feature_vector/2",
           "efficientnetv2_b0", 224, "imagenet1k", 7_200_000,
           ("arXiv:2104.00298", "EfficientNetV2: Smaller Models and Faster Training"),
           "EfficientNetV2-B0 feature vector (1280), trained on ImageNet-1k"),
    _entry("efficientnetv2-s",
           "https://tfhub.dev/google/imagenet/efficientnet_v2_imagenet1k_s/feature_vector/2",
           "efficientnetv2_s", 384, "imagenet1k", 21_600_000,
           ("arXiv:2104.00298", "EfficientNetV2: Smaller Models and Faster Training"),
           "EfficientNetV2-S feature vector (1280), trained on ImageNet-1k"),
    _entry("mobilenet_v3_large_100_224",
           "https://tfhub.dev/google/imagenet/mobilenet_v3_large_100_224/feature_vector/5",
           "mobilenet_v3_large_100", 224, "imagenet1k", 5_400_000,
           ("arXiv:1905.02244", "Searching for MobileNetV3"),
           "MobileNetV3-Large 1.0 feature vector (1280), trained on ImageNet-1k"),
    _entry("resnet_v2_50",
           "https://tfhub.dev/google/imagenet/resnet_v2_50/feature_vector/5",
           "resnet_v2_50", 224, "imagenet1k", 25_600_000,
           ("arXiv:1603.05027", "Identity Mappings in Deep Residual Networks"),
           "ResNet-50 v2 feature vector (2048), trained on ImageNet-1k"),
    _entry("bit_s-r50x1", "https://tfhub.dev/google/bit/s-r50x1/1",
           "bit_resnet50x1", 224, "imagenet1k", None,
           ("arXiv:1912.11370", "Big Transfer (BiT): General Visual Representation Learning"),
           "BiT-S R50x1 feature vector (2048), trained on ImageNet-1k (ILSVRC-2012)"),
    _entry("inception_v3",
           "https://tfhub.dev/google/imagenet/inception_v3/feature_vector/5",
           "inception_v3", 299, "imagenet1k", 23_900_000,
           ("arXiv:1512.00567", "Rethinking the Inception Architecture for Computer Vision"),
           "Inception v3 feature vector (2048), trained on ImageNet-1k"),
)}
_BY_HANDLE = {info.origin_url: alias for alias, info in CURATED.items()}
_KINDS = {"feature_vector", "feature-vector", "classification"}


class TfHubSource:
    """The curated TF Hub set, any other handle, and local SavedModels as a zoo source."""

    def framework(self, name: str) -> Framework:
        """Every TF Hub model is a Keras 2 (``tf_keras``) model."""
        return "keras"

    def list(self, query: str | None = None) -> Iterator[ModelInfo]:
        """Curated models whose name matches ``query`` (substring or glob), with where their
        SavedModel is (or must be put). Imports no TensorFlow."""
        q = (query or "").lower()
        for alias, info in CURATED.items():
            if _matches(q, alias, info):
                yield _locate(info)

    def info(self, name: str) -> ModelInfo:
        """Everything about one model; a local SavedModel is read (signature, variables)."""
        info = _locate(_lookup(name))
        if not info.weights_available:
            return info
        facts = inspect_saved_model(Path(str(info.weights_location)))
        return _with_facts(info, facts, count=info.num_params is None)

    def create(self, name: str, num_classes: int, pretrained: bool = True,
               weights: str | Path | None = None, *, image_size: int | None = None) -> Any:
        """A ``tf_keras`` model: image input -> hub.KerasLayer -> Dense(``num_classes``)
        (no head for 0). ``weights`` is a local SavedModel folder standing in for the handle;
        ``image_size`` overrides the input size where the SavedModel's is not fixed."""
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
            raise ValueError(f"num_classes must be a non-negative integer, got {num_classes!r}")
        info = _locate(_lookup(name))
        path = _saved_model(info, pretrained, weights)
        facts = inspect_saved_model(path)
        info = _with_facts(replace(info, weights_available=True, weights_location=str(path),
                                   provenance=_provenance_of(info, path, weights)),
                           facts, count=False)
        if image_size is not None:
            if facts.input_hw not in (None, (image_size, image_size)):
                raise WeightsMismatchError(info.name, str(path), "takes {}x{} images only, not "
                                           "image_size={}".format(*facts.input_hw, image_size))
            info = replace(info, input_size=(3, image_size, image_size))
        model = _build(path, facts, info, num_classes)
        # tf_keras tracks attributes; a frozen dataclass is stored as is and never saved.
        model.cairn_info = replace(info, num_params=int(model.count_params()))
        return model


    def pull(self, name: str, root: Path | None = None) -> _provenance.WeightsProvenance:
        """Put a handle's SavedModel into the team's weights folder (under ``root`` if
        given): copied from TF Hub's cache, else downloaded and checked."""
        info = _locate(_lookup(name))
        handle = str(info.origin_url)
        if not _is_remote(handle):
            raise WeightsNotFoundError(info.name, handle, "a local SavedModel folder is "
                                       "already on this machine: nothing to pull",
                                       scratch_ok=False)
        target = team_dirs(info, root)[0]
        if not _is_saved_model(target):
            source = Path(str(info.weights_location)) if info.weights_available else None
            _copy_tree(source or _saved_model(info, True, None), target)
        return _provenance_of(info, target, None)


def _copy_tree(source: Path, target: Path) -> None:
    """Copy a SavedModel folder so that ``target`` appears only once complete."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(source, partial)
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


@dataclass(frozen=True)
class SavedModelFacts:
    """What a SavedModel's ``saved_model.pb`` says, read without loading its variables."""

    callable: bool  # has ``__call__`` (tf.saved_model.save, hub format); else a signature
    signature: str | None  # "serving_default" where it must be called through it
    output_key: str | None
    input_hw: tuple[int, int] | None  # static height and width of the image input
    num_params: int


def inspect_saved_model(path: Path) -> SavedModelFacts:
    """Read ``path/saved_model.pb``: how to call it, its input size and parameter count."""
    tf = import_tf().tf
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(tf.io.gfile.GFile(str(path / "saved_model.pb"), "rb").read())
        graph = proto.meta_graphs[0]
    except Exception as exc:  # protobuf's DecodeError, an empty file, no meta graph
        raise WeightsMismatchError(str(path), str(path / "saved_model.pb"),
                                   f"not a readable SavedModel ({exc})") from exc
    children = {c.local_name: c.node_id for c in graph.object_graph_def.nodes[0].children}
    sig = graph.signature_def.get("serving_default")
    outputs = sorted(sig.outputs) if sig is not None else []
    callable_ = "__call__" in children
    if not callable_ and len(outputs) != 1:
        raise WeightsMismatchError(str(path), str(path), "neither callable nor a "
                                   "serving_default signature with exactly one output")
    return SavedModelFacts(
        callable=callable_, signature=None if callable_ else "serving_default",
        output_key=None if callable_ else outputs[0], input_hw=_input_hw(sig),
        num_params=_count(graph.object_graph_def, children.get("variables")))


def _input_hw(sig: Any) -> tuple[int, int] | None:
    if sig is None or len(sig.inputs) != 1:
        return None
    dims = [d.size for d in next(iter(sig.inputs.values())).tensor_shape.dim]
    return (dims[1], dims[2]) if len(dims) == 4 and min(dims[1:3]) > 0 else None


def _count(graph: Any, variables_node: int | None) -> int:
    """Parameters of the variables the root lists (Keras 3 exports hold each node twice)."""
    nodes = graph.nodes
    ids = ([c.node_id for c in nodes[variables_node].children] if variables_node is not None
           else [i for i, n in enumerate(nodes) if n.WhichOneof("kind") == "variable"])
    total = 0
    for i in ids:
        if nodes[i].WhichOneof("kind") == "variable":
            size = 1
            for d in nodes[i].variable.shape.dim:
                size *= max(d.size, 0)
            total += size
    return total


def _build(path: Path, facts: SavedModelFacts, info: ModelInfo, num_classes: int) -> Any:
    mods = import_tf()
    keras, hub = mods.tf_keras, mods.hub
    _, h, w = info.input_size or (3, DEFAULT_SIZE, DEFAULT_SIZE)
    kwargs = ({"signature": facts.signature, "output_key": facts.output_key}
              if facts.signature else {})
    inputs = keras.Input(shape=(h, w, 3), name="image")
    try:
        layer = hub.KerasLayer(str(path), trainable=facts.callable, name="backbone", **kwargs)
        features = layer(inputs)
    except (ValueError, TypeError, OSError, mods.tf.errors.OpError) as exc:
        raise WeightsMismatchError(info.name, str(path), " ".join(str(exc).split())[:400]) \
            from exc
    if len(features.shape) == 4:  # a feature map, not a vector: pool it
        features = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    if len(features.shape) != 2:
        raise WeightsMismatchError(info.name, str(path), f"outputs shape {features.shape}, "
                                   "not an image feature vector")
    outputs = keras.layers.Dense(num_classes, name="head")(features) if num_classes else features
    return keras.Model(inputs, outputs, name=info.architecture.replace("/", "_")[:60] or "tfhub")


def _lookup(name: str) -> ModelInfo:
    """The entry for an alias, a handle URL or a local SavedModel path (weights unknown)."""
    key = name.strip()
    alias = key if key in CURATED else _BY_HANDLE.get(key.rstrip("/"))
    if alias:
        return CURATED[alias]
    if _is_remote(key):
        return ModelInfo(name=f"{SOURCE}:{key}", source=SOURCE, framework="keras",
                         pretrained_tag="tfhub", architecture=_architecture_of(key),
                         origin_url=key, mean=_UNIT[0], std=_UNIT[1],
                         description=f"TF Hub handle outside the curated set; input {_RANGE} "
                                     "assumed")
    if key and ("/" in key or os.sep in key or key.startswith((".", "~")) or Path(key).exists()):
        path = Path(key).expanduser().resolve()
        return ModelInfo(name=f"{SOURCE}:{path}", source=SOURCE, framework="keras",
                         architecture=path.name, pretrained_tag="local", origin_url=str(path),
                         mean=_UNIT[0], std=_UNIT[1],
                         description=f"local SavedModel; input {_RANGE} assumed")
    raise UnknownModelError(f"{SOURCE}:{name}", [f"{SOURCE}:{s}" for s in suggest(key, CURATED)])


def _matches(query: str, alias: str, info: ModelInfo) -> bool:
    """Case-insensitive: a glob over the name or alias when ``query`` has ``*?[``, otherwise
    a substring of the name or handle."""
    if any(c in query for c in "*?["):
        return fnmatch.fnmatchcase(info.name.lower(), query) or fnmatch.fnmatchcase(alias, query)
    return query in f"{info.name} {info.origin_url}".lower()


def _is_remote(handle: str) -> bool:
    return handle.startswith(("http://", "https://", "gs://"))


def _architecture_of(url: str) -> str:
    """``mobilenet_v2_100_224`` from ``.../imagenet/mobilenet_v2_100_224/feature_vector/4``."""
    parts = [p for p in url.split("?", 1)[0].rstrip("/").split("/") if p]
    while len(parts) > 1 and (parts[-1].isdigit() or parts[-1] in _KINDS):
        parts.pop()
    return parts[-1]


def _locate(info: ModelInfo) -> ModelInfo:
    """``info`` with where its SavedModel is (available) or must be put (missing)."""
    url = str(info.origin_url)
    if not _is_remote(url):
        return replace(info, weights_available=_is_saved_model(Path(url)), weights_location=url)
    candidates = [*team_dirs(info), hub_cache_dir(url)]
    found = next((c for c in candidates if _is_saved_model(c)), None)
    return replace(info, weights_available=found is not None,
                   weights_location=str(found or candidates[-1]))


def team_dirs(info: ModelInfo, root: Path | None = None) -> list[Path]:
    """Where the team's copy of a handle's SavedModel is: ``tfhub/<alias>`` for the curated
    set, ``tfhub/<sha1 of the handle>`` (TF Hub's own cache name) for every handle."""
    alias, folder = info.name.split(":", 1)[1], _weights.weights_dir(SOURCE, root)
    named = [folder / alias] if alias in CURATED else []
    return [*named, folder / hub_cache_dir(str(info.origin_url)).name]


def hub_cache_dir(handle: str) -> Path:
    """The folder ``tensorflow_hub`` caches ``handle`` in: ``sha1(handle)`` under
    ``TFHUB_CACHE_DIR`` (else ``<temp>/tfhub_modules``), as its compressed resolver does."""
    root = os.environ.get("TFHUB_CACHE_DIR") or os.path.join(tempfile.gettempdir(),
                                                             "tfhub_modules")
    return Path(root).expanduser() / hashlib.sha1(handle.encode("utf8")).hexdigest()


def _is_saved_model(folder: Path) -> bool:
    return (folder / "saved_model.pb").is_file() or (folder / "saved_model.pbtxt").is_file()


def _saved_model(info: ModelInfo, pretrained: bool, weights: str | Path | None) -> Path:
    """The SavedModel folder to load; a missing one says what to put where."""
    if weights is not None:
        path = Path(weights).expanduser().resolve()
        if not _is_saved_model(path):
            raise WeightsNotFoundError(info.name, str(path), "weights= must be a SavedModel "
                                       "folder holding saved_model.pb and variables/",
                                       scratch_ok=False)
        return path
    if not pretrained:
        raise ScratchUnsupportedError(info.name)
    if info.weights_available:
        return Path(str(info.weights_location))
    settings = hub_settings()
    if settings.offline or not _is_remote(str(info.origin_url)):
        raise WeightsNotFoundError(info.name, str(info.weights_location),
                                   _hint(info, settings.why_offline), scratch_ok=False)
    return download(info)


def download(info: ModelInfo) -> Path:
    """Fetch a handle's SavedModel into TF Hub's cache with ``tensorflow_hub``'s resolver
    and check it; an unreadable one is removed, never left looking valid."""
    handle = str(info.origin_url)
    try:
        path = Path(import_tf().hub.resolve(handle))
    except SourceUnavailableError:
        raise
    except Exception as exc:  # urllib's, tarfile's and TensorFlow's errors alike
        raise WeightsDownloadError(info.name, handle, " ".join(str(exc).split())[:300]
                                   or type(exc).__name__, hint=offline_hint(info.name)) from exc
    try:
        inspect_saved_model(path)
        _check_variables(path)
    except WeightsMismatchError as exc:
        shutil.rmtree(path, ignore_errors=True)
        Path(f"{path}.descriptor.txt").unlink(missing_ok=True)
        raise WeightsDownloadError(info.name, handle, "what arrived is not a complete "
                                   f"SavedModel ({exc.detail}); it was removed from the cache",
                                   hint=offline_hint(info.name)) from exc
    return path


def _check_variables(path: Path) -> None:
    """Every variables shard the SavedModel names is there (a cut archive lacks some)."""
    variables = path / "variables"
    if not variables.is_dir():
        return  # a SavedModel without variables (all constants) is complete as it is
    shards = {p.name for p in variables.iterdir()}
    if "variables.index" not in shards:
        raise WeightsMismatchError(str(path), str(variables), "variables.index is missing")
    data = [n for n in shards if n.startswith("variables.data-")]
    total = int(data[0].rsplit("-of-", 1)[1]) if data else 1
    if len(data) != total:
        raise WeightsMismatchError(str(path), str(variables),
                                   f"{len(data)} of {total} variables shards")


def _provenance_of(info: ModelInfo, path: Path,
                   weights: str | Path | None) -> _provenance.WeightsProvenance:
    handle = str(info.origin_url)
    if weights is not None or not _is_remote(handle):
        return _provenance.of_path(path, "file")
    return _provenance.of_path(path, SOURCE, repo_id=handle, revision=_version(handle))


def _version(handle: str) -> str | None:
    """The version a TF Hub / Kaggle handle names (its last path segment, when a number)."""
    last = handle.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return last if last.isdigit() else None


def _hint(info: ModelInfo, why_offline: str | None) -> str:
    if not _is_remote(str(info.origin_url)):
        return "no SavedModel folder (saved_model.pb and variables/) at that path"
    team = f"; the team folder {team_dirs(info)[0]} works too"
    return (f"the extracted SavedModel of TF Hub handle {info.origin_url} (saved_model.pb and "
            f"variables/), the folder that hub.resolve(handle) fills on a machine with network; "
            f"TFHUB_CACHE_DIR moves the cache{team}; this machine is offline ({why_offline}): "
            f"run `cairn zoo pull {info.name}` on one with network and copy its weights folder "
            "here")


def _with_facts(info: ModelInfo, facts: SavedModelFacts, count: bool) -> ModelInfo:
    """``info`` with the SavedModel's own input size (where static) and parameter count."""
    size = (3, *facts.input_hw) if facts.input_hw else info.input_size
    return replace(info, input_size=size or (3, DEFAULT_SIZE, DEFAULT_SIZE),
                   num_params=facts.num_params if count else info.num_params,
                   interpolation=info.interpolation or "bilinear")


def import_tf() -> SimpleNamespace:
    """``tensorflow``, ``tf_keras`` and ``tensorflow_hub``, imported quietly on first use.

    TensorFlow's C++ logs stay at errors unless ``TF_CPP_MIN_LOG_LEVEL`` says otherwise;
    hub's ``pkg_resources`` deprecation warning is silenced.
    """
    # TensorFlow bundles its own SQLite (3.50, built without FTS5) and exports its symbols:
    # loaded first, Python's _sqlite3 binds to it and the registry's SQLite store cannot
    # create its full-text tables ("no such module: fts5"). Loading _sqlite3 first avoids it.
    import sqlite3  # noqa: F401

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            import tensorflow as tf
            import tensorflow_hub as hub
            import tf_keras
    except ImportError as exc:
        raise SourceUnavailableError(SOURCE, exc.name or "tensorflow") from exc
    return SimpleNamespace(tf=tf, tf_keras=tf_keras, hub=hub)
