"""``draft_from_run``: a complete card from a fine-tune run's record, with the parts only a
person can write marked ``TODO(cairn)``.

The run must follow the fine-tune convention: params ``model``, ``class_names`` and
``image_size``, and the weights as artifact ``model.safetensors``. The weights are copied
into the card's folder (sha256 checked on the way) and tracked by DVC where the catalog lives
in a DVC repository: with ``dvc add``, or, inside ``dvc repro`` (where a nested ``dvc add``
would wait for the lock the running pipeline holds), as an output of the running stage, the
card's ``weights.dvc`` then naming the ``dvc.lock`` that records them. The card's
``datasets:`` names the dataset cards (:mod:`catalog._dataset`) documenting the run's data.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog._card import CARD_FILE
from catalog._draft_body import body_of
from catalog._files import version_key
from catalog._schema import NAME, PLACEHOLDER
from catalog.errors import CardExistsError, DraftError
from registry.config import Workspace, load_workspace
from registry.entities import RunRecord

__all__ = ["TRACKING", "Draft", "draft", "draft_from_run", "dump_front_matter", "index_quietly"]

WEIGHTS_FILE = "model.safetensors"
# How the weights are tracked: "auto" is "stage" inside `dvc repro` ($DVC_STAGE), else "add".
TRACKING = ("auto", "add", "stage", "none")
_STAGE_ENV, _ROOT_ENV = "DVC_STAGE", "DVC_ROOT"  # set by `dvc repro` for a stage's command
# ImageNet statistics: timm's default, used only when the backbone cannot tell its own.
_IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


@dataclass
class Draft:
    """A drafted card and what the person finishing it should know."""

    path: Path
    name: str
    version: str
    notes: list[str] = field(default_factory=list)


def draft_from_run(run_ref: str, *, name: str | None = None, track: str = "auto",
                   workspace: Workspace | None = None) -> Path:
    """Draft a card from run ``run_ref`` into the catalog directory; returns the card file.
    ``track``: how DVC tracks the weights, one of :data:`TRACKING` (see :func:`draft`)."""
    return draft(run_ref, name=name, track=track, workspace=workspace).path


def draft(run_ref: str, *, name: str | None = None, version: str | None = None,
          force: bool = False, track: str = "auto",
          workspace: Workspace | None = None) -> Draft:
    """:func:`draft_from_run` with the notes (what could not be filled in) kept.

    ``track``: ``"add"`` runs ``dvc add`` on the weights; ``"stage"`` leaves them to the
    running ``dvc repro`` stage, whose outputs must include them (``weights.dvc`` names the
    stage's ``dvc.lock``); ``"none"`` leaves them untracked; ``"auto"`` (the default) is
    ``"stage"`` inside ``dvc repro`` and ``"add"`` elsewhere."""
    if track not in TRACKING:
        raise DraftError(run_ref, f"track={track!r}: choose one of {', '.join(TRACKING)}")
    ws = workspace or load_workspace()
    record = ws.open_store().get_run(run_ref)
    params = _required_params(record)
    artifact = _weights_artifact(record)
    name = _card_name(record, name)
    version = str(version) if version is not None else _next_version(ws.catalog_dir, name)
    folder = _folder(ws.catalog_dir, name, version, force)
    notes: list[str] = []
    weights = _copy_weights(ws, artifact, folder / WEIGHTS_FILE)
    dvc_file = _dvc_track(weights, notes, track)
    front = _front_matter(record, params, name, version, artifact.sha256, dvc_file,
                          _preprocessing(params, notes), _mov_of(record, ws),
                          _dataset_cards(record, ws, notes))
    text = dump_front_matter(front) + body_of(record, front, notes)
    (folder / CARD_FILE).write_text(text, encoding="utf-8")
    index_quietly(ws, notes)
    return Draft(folder / CARD_FILE, name, version, notes)


def _required_params(record: RunRecord) -> dict[str, Any]:
    p = record.params
    missing = [k for k in ("model", "class_names", "image_size") if p.get(k) in (None, "", [])]
    if missing:
        raise DraftError(record.id, f"the run has no param {', '.join(missing)} (fine-tune runs "
                                    "record model, num_classes, class_names and image_size)")
    if p.get("framework", "torch") != "torch":
        raise DraftError(record.id, f"framework {p.get('framework')!r}: the catalog holds "
                                    "PyTorch weights in safetensors")
    labels = p["class_names"]
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise DraftError(record.id, "param class_names must be a list of names")
    if p.get("num_classes") not in (None, len(labels)):
        raise DraftError(record.id, f"num_classes is {p['num_classes']} but class_names holds "
                                    f"{len(labels)} names")
    return dict(p)


def _weights_artifact(record: RunRecord):
    from zoo.export import checkpoint_artifact

    artifact = checkpoint_artifact(record)
    if artifact is None:
        raise DraftError(record.id, f"the run logged no {WEIGHTS_FILE} artifact")
    return artifact


def _card_name(record: RunRecord, name: str | None) -> str:
    if name is not None:
        if not NAME.match(name):
            raise DraftError(record.id, f"card name {name!r}: use letters, digits, '.', '_' "
                                        "and '-'")
        return name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", record.name or "").strip("-._")[:100]
    return slug or f"run-{record.id[:8]}"


def _next_version(root: Path, name: str) -> str:
    from catalog._files import load_cards

    if not root.is_dir():
        return "1"
    versions = [c.version for c in load_cards(root)[0] if c.name == name]
    numbers = [int(v) for v in versions if v.isdigit()]
    if versions and not numbers:
        return f"{max(versions, key=version_key)}.1"
    return str(max(numbers, default=0) + 1)


def _folder(root: Path, name: str, version: str, force: bool) -> Path:
    """``<catalog>/<name>/``, or ``<catalog>/<name>/v<version>/`` when the first holds
    another version's card."""
    folder = root / name
    if (folder / CARD_FILE).exists() and _version_of(folder / CARD_FILE) != version:
        folder = folder / f"v{version}"
    if (folder / CARD_FILE).exists() and not force:
        raise CardExistsError(str(folder / CARD_FILE))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _version_of(path: Path) -> str | None:
    from catalog._card import read_card
    from catalog.errors import CardSyntaxError

    try:
        return read_card(path).version
    except CardSyntaxError:
        return None


def _copy_weights(ws: Workspace, artifact, dest: Path) -> Path:
    from registry.artifacts import ArtifactStore
    from registry.errors import ArtifactError

    try:
        return ArtifactStore(ws.artifact_root).get(artifact.sha256, dest)
    except ArtifactError as exc:
        raise DraftError(artifact.name, f"cannot copy the weights: {exc}") from exc


def _dvc_track(weights: Path, notes: list[str], track: str) -> str | None:
    """Track the weights as ``track`` says where the catalog is in a DVC repository; the
    path, relative to the card's folder, of the DVC file that records them."""
    if track == "none":
        return None
    root = next((p for p in weights.parents if (p / ".dvc").is_dir()), None)
    if root is None:
        notes.append("the catalog is not in a DVC repository: weights are not tracked "
                     "(run `dvc init` at the repository root, then `dvc add` the weights)")
        return None
    if track == "stage" or (track == "auto" and os.environ.get(_STAGE_ENV)):
        return _stage_lock(root, weights, notes)
    try:
        from dvc.repo import Repo

        with Repo(str(root)) as repo:
            repo.add(str(weights))
    except Exception as exc:  # DVC's own errors are many; the draft stays usable without it
        notes.append(f"`dvc add {weights}` failed: {exc}")
        return None
    return weights.name + ".dvc"


def _stage_lock(root: Path, weights: Path, notes: list[str]) -> str:
    """The ``dvc.lock`` that will record the running stage's outputs, relative to the card's
    folder. ``$DVC_STAGE`` is ``name`` or ``path/to/dvc.yaml:name``."""
    address = os.environ.get(_STAGE_ENV, "")
    file_part, _, stage = address.rpartition(":")
    base = Path(os.environ.get(_ROOT_ENV) or root)
    lock = (base / file_part).parent / "dvc.lock" if file_part else base / "dvc.lock"
    where = f"stage {stage}" if stage else "the stage that runs this draft"
    notes.append(f"the weights are an output of {where}: `dvc repro` records them in {lock} "
                 "(they must be listed under the stage's outs)")
    return Path(os.path.relpath(lock, weights.parent)).as_posix()


def _preprocessing(params: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """mean, std (and interpolation, crop_pct) from the run's params, else from the
    backbone's zoo entry, as the fine-tune's evaluation transform used them."""
    if isinstance(params.get("mean"), list) and isinstance(params.get("std"), list):
        return {"mean": params["mean"], "std": params["std"]}
    try:
        import zoo

        info = zoo.info(str(params["model"]))
        if info.mean and info.std:
            found = {"mean": list(info.mean), "std": list(info.std),
                     "interpolation": info.interpolation, "crop_pct": info.crop_pct}
            if found["interpolation"] not in ("bilinear", "bicubic", "nearest"):
                found.pop("interpolation")
            return {k: v for k, v in found.items() if v is not None}
    except Exception as exc:  # a backbone this machine cannot describe: say so in the card
        notes.append(f"could not read preprocessing of {params['model']}: {exc}")
    notes.append(f"{PLACEHOLDER}: input.mean and input.std are ImageNet's; check them")
    return {"mean": list(_IMAGENET[0]), "std": list(_IMAGENET[1])}


def _mov_of(record: RunRecord, ws: Workspace) -> list[dict[str, Any]]:
    from registry.knowledge.mov import mov_progress

    out = []
    for progress in mov_progress(record.project, workspace=ws):
        for m in progress.measurements:
            if m.run_id == record.id:
                out.append({"name": m.name, "value": m.value, "unit": m.unit,
                            "baseline": progress.baseline, "target": progress.target,
                            "evidence": m.evidence, "run": record.id,
                            "measured": _dt.datetime.fromtimestamp(m.time).isoformat(
                                timespec="seconds")})
    return [{k: v for k, v in entry.items() if v is not None} for entry in out]


def _cost(record: RunRecord) -> dict[str, Any] | None:
    """What the training run cost, as it recorded it (``registry.tracking`` at its end)."""
    found = {key: record.metrics[key].last for key in ("cost", "gpu_hours", "energy_kwh")
             if key in record.metrics and record.metrics[key].last is not None}
    if not found:
        return None
    if "cost" in found and record.tags.get("cairn.cost.currency"):
        found["currency"] = record.tags["cairn.cost.currency"]
    return found


def _front_matter(record: RunRecord, params: dict[str, Any], name: str, version: str,
                  sha256: str, dvc_file: str | None, preprocessing: dict[str, Any],
                  mov: list[dict[str, Any]], datasets: list[str]) -> dict[str, Any]:
    from catalog._draft_body import model_index

    backbone = str(params["model"])
    index = model_index(record, name, sorted({d.path for d in record.datasets}))
    metrics = sorted({m["type"] for r in index for res in r["results"] for m in res["metrics"]})
    weights = {"path": WEIGHTS_FILE, "sha256": sha256, **({"dvc": dvc_file} if dvc_file else {})}
    base = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("base_weights.")}
    front: dict[str, Any] = {
        "license": f"{PLACEHOLDER}: a license identifier such as apache-2.0, mit or other",
        "tags": [t for t in ("image-classification", "cairn", record.project) if t],
        "datasets": datasets, "metrics": metrics, "base_model": base.get("repo") or backbone,
        "base_model_relation": "finetune" if base else None,
        "library_name": "timm" if ":" not in backbone else "cairn",
        "pipeline_tag": "image-classification", "model-index": index,
        "name": name, "version": version, "status": "draft", "project": record.project,
        "owner": record.owner, "created": _dt.date.today().isoformat(), "runs": [record.id],
        "backbone": backbone, "base_weights": base or None, "weights": weights,
        "training_cost": _cost(record),
        "input": {"size": int(params["image_size"]), **preprocessing,
                  "labels": list(params["class_names"])},
        "mov": mov,
        "intended_use": f"{PLACEHOLDER}: who should use this model, on which images, for what",
        "limitations": f"{PLACEHOLDER}: where it fails or must not be used",
    }
    return {k: v for k, v in front.items() if v not in ([], None)}


def _dataset_cards(record: RunRecord, ws: Workspace, notes: list[str]) -> list[str]:
    """Names of the dataset cards documenting the run's data (same DVC hash); data without
    a card gets a note saying how to draft one."""
    from catalog._api import dataset_card_for

    names: set[str] = set()
    for data in record.datasets:
        card = dataset_card_for(data.hash, workspace=ws)
        if card is not None:
            names.add(card.name)
        else:
            what = f"md5 {data.hash}" if data.hash else "not tracked by DVC"
            notes.append(f"{data.path} ({what}) has no dataset card: `cairn data card "
                         f"{data.path}` drafts one; then name it under datasets:")
    return sorted(names)


def dump_front_matter(front: dict[str, Any]) -> str:
    """The front matter as YAML between ``---`` lines, in the order given."""
    import yaml

    text = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=100)
    return f"---\n{text}---\n"


def index_quietly(ws: Workspace, notes: list[str]) -> None:
    """Index the new draft so search and show find it at once."""
    from catalog._api import index
    from registry.errors import CairnError

    try:
        result = index(workspace=ws)
    except CairnError as exc:
        notes.append(f"not indexed: {exc}")
        return
    notes.extend(p.message for p in result.skipped)
