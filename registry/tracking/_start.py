"""``start_run``: capture everything about the run's context, record it, hand back a Run."""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import socket
import sys
import time
import uuid
from collections.abc import Mapping
from typing import Any

from registry._params import ParamValue, flatten_params, typed_value
from registry.config import Workspace, load_workspace
from registry.entities import RunStatus
from registry.errors import ArtifactError, ConfigError, DuplicateRunError, StoreReadOnlyError
from registry.text import to_utf8
from registry.tracking.run import Run

__all__ = ["active_run", "start_run"]

log = logging.getLogger("registry")
DEFAULT_PROJECT = "default"
_runs: list[Run] = []


def start_run(project: str | None = None, name: str | None = None, *,
              params: Mapping[str, Any] | Any = None, tags: Mapping[str, Any] | list | None = None,
              data: Mapping[str, str | os.PathLike] | None = None, question: str | None = None,
              notes: str | None = None, owner: str | None = None, parent: Run | str | None = None,
              workspace: Workspace | None = None) -> Run:
    """Start recording a run: code version, hardware, environment, params and tags now;
    metrics, data and artifacts as the script logs them. Use it as a context manager.

    ``data`` ({role: path}) declares datasets up front, so the "has this been tried?" check
    sees them before the run is recorded (and ``on_duplicate = "refuse"`` can refuse it).
    Earlier runs of the same or a similar experiment are named in ``run.tried`` and warned of.
    ``parent`` (a run, or its id, id prefix or name) nests this run in another: a trial of a
    sweep, a fold (MLflow's ``nested=True``); search finds the children with ``parent = ID``.
    """
    ws = workspace or load_workspace()
    warnings: list[str] = []
    typed = _typed_params(params, warnings)
    tag_map = _tag_map(tags)
    _check_required_tags(ws, tag_map)

    from registry.artifacts import ArtifactStore
    from registry.store import safe_url
    from registry.tracking.spool import deliver_pending

    if ws.readonly:
        raise StoreReadOnlyError(safe_url(ws.store_url), "start a run in a read-only workspace")
    ws.ensure_state_dir()
    store, artifacts = ws.open_store(), ArtifactStore(ws.artifact_root)
    deliver_pending(ws, store)  # what earlier runs spooled while the store was unreachable
    context, diff = _context(artifacts, warnings)
    values = {
        "id": uuid.uuid4().hex, "name": _clean(name, warnings), "owner": owner or ws.owner,
        "status": RunStatus.RUNNING, "start_time": time.time(), "heartbeat_time": time.time(),
        "heartbeat_interval": ws.heartbeat_interval, "question": _clean(question, warnings),
        "notes": _clean(notes, warnings), "parent_id": _parent_id(store, parent), **context,
    }
    declared = _declared_data(data or {}, ws)
    code = {"commit": values["git_commit"], "diff_sha256": diff.sha256,
            "entry_point": os.path.basename(values["entry_point"] or "")}
    tried = _tried(store, ws, typed, code, declared)
    values.update(tried.keys)
    values["warnings"] = warnings + tried.lines
    pk = store.create_run(project or DEFAULT_PROJECT, values, typed, tag_map)
    run = Run(run_id=values["id"], run_pk=pk, project=project or DEFAULT_PROJECT,
              name=values["name"], owner=values["owner"], store=store, artifacts=artifacts,
              workspace=ws, params=typed, warnings=values["warnings"], code=code,
              tried=tried.priors, hardware=values["hardware"])
    for w in values["warnings"]:
        log.warning("cairn: %s", w)
    if diff.unstored is not None:  # stored later; the run names it once it is in the store
        run._uploads.save_diff(diff.unstored, diff.why)
    for role, version, warns in declared:
        run._add_data(version, role, warns, recheck=False)
    _use_stage_deps(run, ws)
    _runs.append(run)
    return run


def _parent_id(store, parent: Run | str | None) -> str | None:
    """The id of the parent run; a reference the store does not know raises its error."""
    if parent is None or isinstance(parent, Run):
        return None if parent is None else parent.id
    return store.get_runs([store.resolve(str(parent))], details=False)[0].id


class _Tried:
    """The outcome of the "has this been tried?" check at run start."""

    def __init__(self, priors: list, lines: list[str], keys: dict[str, Any]) -> None:
        self.priors, self.lines, self.keys = priors, lines, keys


def _tried(store, ws: Workspace, params, code, declared) -> _Tried:
    from registry.knowledge.groups import group_key
    from registry.knowledge.similarity import SIMILAR_ENOUGH, RunSpec, describe_all, find_priors

    spec = RunSpec(params, tuple((role, v.hash, v.path) for role, v, _ in declared), code,
                   ws.fingerprint_ignore)
    keys = {"fingerprint": spec.fingerprint, "model_family": spec.family,
            "data_key": spec.data_key, "group_key": group_key(spec, ws.seed_params)}
    if ws.on_duplicate == "ignore":
        return _Tried([], [], keys)
    priors = find_priors(store, spec, limit=5, min_score=SIMILAR_ENOUGH)
    done = [p for p in priors if p.exact and p.run.status in (RunStatus.FINISHED,
                                                              RunStatus.RUNNING)]
    if done and ws.on_duplicate == "refuse":
        raise DuplicateRunError(spec.fingerprint, describe_all(done, ws.projects))
    return _Tried(priors, describe_all(priors, ws.projects), keys)


def _declared_data(data: Mapping[str, Any], ws: Workspace) -> list[tuple[str, Any, list[str]]]:
    from registry.capture.dvc import capture_data

    declared = []
    for role, paths in data.items():
        for path in paths if isinstance(paths, (list, tuple)) else [paths]:
            version, warns = capture_data(path, state_dir=ws.state_dir)
            declared.append((str(role), version, warns))
    return declared


def active_run() -> Run | None:
    """The most recently started run that has not ended, if any."""
    while _runs and _runs[-1].status != RunStatus.RUNNING:
        _runs.pop()
    return _runs[-1] if _runs else None


def _typed_params(params: Any, warnings: list[str]) -> dict[str, ParamValue]:
    typed: dict[str, ParamValue] = {}
    for key, value in flatten_params(params or {}).items():
        typed[key], warns = typed_value(key, value)
        warnings.extend(warns)
    return typed


def _tag_map(tags: Mapping[str, Any] | list | None) -> dict[str, str]:
    from registry.tracking._tags import clean_tags

    return clean_tags(tags)[0] if tags else {}


def _check_required_tags(ws: Workspace, tags: Mapping[str, str]) -> None:
    missing = [t for t in ws.required_tags if t not in tags]
    if missing:
        where = str(ws.config_file) if ws.config_file else None
        raise ConfigError(f"the workspace requires every run to carry the tags "
                          f"{', '.join(ws.required_tags)}; missing: {', '.join(missing)}", where)


def _clean(text: str | None, warnings: list[str]) -> str | None:
    if text is None:
        return None
    text, replaced = to_utf8(str(text))
    if replaced:
        warnings.append("text that is not valid UTF-8 was replaced by U+FFFD")
    return text


class _Diff:
    """The uncommitted diff: its digest, and its bytes while the store has not taken them."""

    def __init__(self, sha256: str | None, unstored: bytes | None = None, why: str = "") -> None:
        self.sha256, self.unstored, self.why = sha256, unstored, why


def _save_diff(artifacts, diff: bytes | None) -> _Diff:
    if not diff:
        return _Diff(None)
    try:
        return _Diff(artifacts.put_bytes(diff)[0])
    except ArtifactError as exc:  # spooled once the run exists: never crash the run for it
        return _Diff(hashlib.sha256(diff).hexdigest(), diff, exc.reason)


def _context(artifacts, warnings: list[str]) -> tuple[dict[str, Any], _Diff]:
    """Code version, command, hardware and environment; capture problems become warnings.
    The diff's column stays empty until its blob is in the store."""
    from registry.capture.environment import capture_environment
    from registry.capture.git import capture_code
    from registry.capture.hardware import capture_hardware

    code, code_warns = capture_code()
    hardware, hw_warns = capture_hardware()
    environment, env_warns = capture_environment()
    warnings.extend(code_warns + hw_warns + env_warns)
    diff = _save_diff(artifacts, code.diff)
    return {
        "code_state": code.state, "git_commit": code.commit, "git_branch": code.branch,
        "git_remote": code.remote, "git_dirty": code.dirty,
        "git_diff_sha256": None if diff.unstored else diff.sha256,
        "code": code.to_dict(), "command": _command(), "entry_point": _entry_point(),
        "cwd": os.getcwd(), "hostname": socket.gethostname(), "hardware": hardware,
        "environment": environment,
    }, diff


def _command() -> str:
    argv = [sys.executable.rsplit("/", 1)[-1], *sys.argv] if sys.argv and sys.argv[0] else []
    return to_utf8(shlex.join(argv))[0] if argv else ""


def _entry_point() -> str | None:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path:
        return to_utf8(os.path.abspath(path))[0]
    return "notebook" if "ipykernel" in sys.modules else "interactive"


def _use_stage_deps(run: Run, ws: Workspace) -> None:
    """Inside ``dvc repro``, record the stage's dependencies without being asked."""
    from registry.capture.dvc import stage_deps

    try:
        versions, warns = stage_deps(state_dir=ws.state_dir)
    except Exception as exc:
        run._warn(f"could not read the DVC stage's dependencies: {exc}")
        return
    for version in versions:
        run._add_data(version, "dep", [], recheck=False)
    if versions:
        run._recheck()
    for w in warns:
        run._warn(w)
