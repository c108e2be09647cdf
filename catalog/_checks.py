"""Checks of a card against the world: its runs in the registry, its weights on disk, the
DVC file that tracks them (a ``.dvc`` file, or the ``dvc.lock`` of the pipeline stage that
wrote them), and the classifier head the weights hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from catalog._card import ModelCard
from catalog._schema import CardProblem
from catalog._weights import (
    LOCK_FILE,
    digests,
    dvc_out,
    lock_out,
    read_header,
    weights_location,
)
from catalog.errors import CatalogError
from registry.errors import AmbiguousRunError, RunNotFoundError, StoreError

__all__ = ["check_runs", "check_weights"]


def check_runs(card: ModelCard, store: Any) -> list[CardProblem]:
    """A problem for each run the card names that the registry does not hold. ``store`` is
    an open store or the StoreError met opening it."""
    if not card.runs:
        return []
    if isinstance(store, StoreError):
        return [_problem(card, "runs", f"cannot check the runs: {store}")]
    problems = []
    for i, ref in enumerate(card.runs):
        try:
            store.resolve(ref)
        except RunNotFoundError:
            problems.append(_problem(card, f"runs[{i}]", f"no run {ref!r} in the registry"))
        except AmbiguousRunError as exc:
            problems.append(_problem(card, f"runs[{i}]", str(exc)))
        except StoreError as exc:
            return [_problem(card, "runs", f"cannot check the runs: {exc}")]
    return problems


def check_weights(card: ModelCard) -> list[CardProblem]:
    """The weights file: present, inside the card's folder, safetensors, the documented
    sha256, tracked by the named DVC file, with a head that fits the labels."""
    if not card.weights:
        return []  # the schema already says the field is missing
    try:
        path = weights_location(card)
    except CatalogError as exc:
        return [_problem(card, "weights.path", _reason(exc))]
    problems = _check_dvc(card, path)
    if not path.is_file():
        hint = " (tracked by DVC: run `dvc pull`)" if card.weights.get("dvc") else ""
        return [_problem(card, "weights.path", f"weights file {path} does not exist{hint}"),
                *problems]
    try:
        header = read_header(path, card.ref)
    except CatalogError as exc:
        return [_problem(card, "weights.path", _reason(exc)), *problems]
    sha, md5 = digests(path)
    expected = card.weights.get("sha256")
    if isinstance(expected, str) and expected and sha != expected:
        problems.append(_problem(card, "weights.sha256",
                                 f"does not match the file: its sha256 is {sha}"))
    problems += _check_dvc_md5(card, path, md5)
    problems += _check_head(card, header)
    return problems


def _check_dvc(card: ModelCard, weights: Path) -> list[CardProblem]:
    dvc = card.weights.get("dvc")
    if not isinstance(dvc, str) or not dvc:
        severity = "error" if card.status == "reviewed" else "warning"
        return [_problem(card, "weights", "the weights are not tracked by DVC (no weights.dvc)",
                         severity)]
    dvc_file = card.folder / dvc if card.folder else Path(dvc)
    if not dvc_file.is_file():
        return [_problem(card, "weights.dvc", f"DVC file {dvc_file} does not exist")]
    try:
        out = _tracking_out(dvc_file, weights)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        return [_problem(card, "weights.dvc", f"cannot read {dvc_file}: {exc}")]
    except Exception as exc:  # yaml.YAMLError, without importing yaml here
        return [_problem(card, "weights.dvc", f"{dvc_file} is not valid YAML: {exc}")]
    if out is None:
        return [_problem(card, "weights.dvc", f"no stage of {dvc_file} has the weights file "
                                              "as an output (declare it under the stage's "
                                              "outs, then run `dvc repro`)")]
    tracked = (dvc_file.parent / str(out.get("path", ""))).resolve()
    if dvc_file.name != LOCK_FILE and tracked != weights.resolve():
        return [_problem(card, "weights.dvc",
                         f"{dvc_file.name} tracks {out.get('path')!r}, not the weights file")]
    return []


def _tracking_out(dvc_file: Path, weights: Path) -> dict[str, Any] | None:
    """The entry of a ``.dvc`` file (its single output) or of a ``dvc.lock`` (the stage
    output holding the weights) that tracks the weights."""
    if dvc_file.name == LOCK_FILE:
        return lock_out(dvc_file, weights)
    return dvc_out(dvc_file)


def _check_dvc_md5(card: ModelCard, weights: Path, md5: str) -> list[CardProblem]:
    dvc = card.weights.get("dvc")
    if not isinstance(dvc, str) or not card.folder or not (card.folder / dvc).is_file():
        return []
    try:
        out = _tracking_out(card.folder / dvc, weights) or {}
    except Exception:  # already reported by _check_dvc
        return []
    recorded = out.get("md5")
    if recorded and recorded != md5:
        how = (f"`dvc repro` (stage {out['stage']} in {LOCK_FILE})" if "stage" in out
               else "`dvc add`")
        return [_problem(card, "weights.dvc", f"the weights changed since {how}: DVC "
                                              f"recorded md5 {recorded}, the file has {md5}")]
    return []


def _check_head(card: ModelCard, header: Any) -> list[CardProblem]:
    labels = card.labels
    if not labels:
        return []
    problems = []
    head = header.head_outputs()
    if head and head[1] != len(labels):
        problems.append(_problem(card, "input.labels",
                                 f"lists {len(labels)} labels but the classifier {head[0]} "
                                 f"in the weights has {head[1]} outputs"))
    recorded = header.class_names()
    if recorded is not None and recorded != labels:
        problems.append(_problem(card, "input.labels",
                                 f"differ from the class names saved with the weights: "
                                 f"{', '.join(recorded[:20])}"))
    return problems


def _problem(card: ModelCard, key: str, message: str, severity: str = "error") -> CardProblem:
    return CardProblem(card.location(), card.line_of(key), key, message, severity)


def _reason(exc: CatalogError) -> str:
    return getattr(exc, "reason", None) or getattr(exc, "hint", None) or str(exc)
