"""Data versions from DVC: which version of a dataset a run used, where it is, whether it changed.

Reads `.dvc` files, `dvc.yaml`, `dvc.lock` and `.dvc/config` directly: importing `dvc` costs
about half a second, and a `dvc data status` call more. The dirty check uses a stat cache
(`_datastate.py`), so an unchanged folder of thousands of files is checked in milliseconds.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.capture import _datastate as state
from registry.capture._dvcconfig import read_config
from registry.capture._dvcremote import is_pushed, remote_of

__all__ = ["DataVersion", "capture_data", "stage_deps"]

# Environment variables `dvc repro` sets for a stage's command (dvc/env.py, dvc/stage/run.py).
STAGE_ENV = "DVC_STAGE"  # the stage's address: "name", or "path/to/dvc.yaml:name"
ROOT_ENV = "DVC_ROOT"  # the repository root

StrPath = str | os.PathLike[str]


@dataclass(frozen=True)
class DataVersion:
    """The version of one dataset as DVC records it, and whether the workspace still matches."""

    path: str
    tracked: bool
    hash: str | None
    hash_kind: str | None
    size: int | None
    nfiles: int | None
    remote: str | None
    source: str | None
    dirty: bool | None
    dirty_check: str
    pushed: bool | None = None  # in the DVC remote (None: unknown)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class _Out:
    """One output entry of a `.dvc` file or a `dvc.lock` stage (paths relative to the repo root)."""

    path: str
    source: str
    md5: str | None
    hash_kind: str | None
    size: int | None
    nfiles: int | None
    remote: str | None = None
    pushed: bool = True


@dataclass(frozen=True)
class _Repo:
    root: str
    config: dict[str, dict[str, str]]

    def abspath(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/"))


def capture_data(
    path: StrPath, *, state_dir: StrPath | None = None, cwd: StrPath | None = None
) -> tuple[DataVersion, list[str]]:
    """Record the DVC version of a dataset (folder or file) and whether the workspace matches it.

    Never raises for ordinary problems (untracked or missing data, malformed DVC files): returns
    what it could and human-readable warnings.
    """
    target = os.path.abspath(os.path.join(cwd or os.getcwd(), path))
    root = _find_root(target)
    if root is None:
        shown = Path(target).as_posix()
        return _untracked(shown), [f"{shown} is not inside a DVC repository (no .dvc folder)"]
    repo = _Repo(root, read_config(root))
    warnings: list[str] = []
    rel = _relpath(target, root)
    out = _resolve(repo, rel, warnings)
    if out is None:
        return _untracked(rel), [*warnings, _not_tracked_msg(rel, target)]
    return _versioned(repo, out, True, state_dir, warnings), warnings


def stage_deps(
    *, state_dir: StrPath | None = None, cwd: StrPath | None = None
) -> tuple[list[DataVersion], list[str]]:
    """Data versions of the deps of the DVC stage this process runs in, else ([], []).

    `dvc repro` names the stage in $DVC_STAGE and the repository in $DVC_ROOT. Deps that are
    tracked outputs resolve to their recorded hash; other deps to the hash this stage's
    dvc.lock entry recorded for them (tracked=False).
    """
    address = os.environ.get(STAGE_ENV)
    if not address:
        return [], []
    here = os.path.abspath(cwd or os.getcwd())
    root = os.environ.get(ROOT_ENV) or _find_root(here)
    if root is None or not os.path.isdir(os.path.join(root, ".dvc")):
        return [], [f"stage {address}: DVC repository not found (${ROOT_ENV} unset or wrong)"]
    repo = _Repo(os.path.abspath(root), read_config(root))
    warnings: list[str] = []
    deps = _stage_dep_entries(repo, address, here, warnings)
    return [_dep_version(repo, dep, state_dir, warnings) for dep in deps], warnings


# --- finding what tracks a path -------------------------------------------------------------


def _find_root(path: str) -> str | None:
    """Nearest folder at or above `path` that holds a `.dvc` folder."""
    for folder in (path, *Path(path).parents):
        if os.path.isdir(os.path.join(folder, ".dvc")):
            return str(folder)
    return None


def _relpath(path: str, root: str) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _find_out(repo: _Repo, rel: str, warnings: list[str]) -> _Out | None:
    """The output that records `rel` or a folder above it, from `.dvc` files then `dvc.lock`s."""
    if rel.endswith(".dvc") and os.path.isfile(repo.abspath(rel)):
        rel = rel[: -len(".dvc")]  # the caller named the .dvc file itself
    candidates = [rel, *_ancestors(rel)]
    for cand in candidates:
        dvcfile = repo.abspath(cand + ".dvc")
        if os.path.isfile(dvcfile):
            out = _match(_dvcfile_outs(repo, dvcfile, warnings), {cand})
            if out:
                return out
    wanted = set(candidates)
    for lock in _lock_files(repo, rel):
        out = _match(_lock_outs(repo, lock, warnings), wanted)
        if out:
            return out
    return None


def _resolve(repo: _Repo, rel: str, warnings: list[str]) -> _Out | None:
    """`_find_out`, saying so when `rel` is only part of a tracked folder."""
    out = _find_out(repo, rel, warnings)
    if out is not None and out.path != rel and out.path + ".dvc" != rel:
        missing = "" if os.path.exists(repo.abspath(rel)) else " (and does not exist)"
        warnings.append(
            f"{rel} is inside {out.path}, tracked as a whole by {out.source}{missing}: "
            f"recorded the version of {out.path}"
        )
    return out


def _ancestors(rel: str) -> list[str]:
    """Folders above a repo-relative path, nearest first, the root excluded."""
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def _match(outs: list[_Out], wanted: set[str]) -> _Out | None:
    """The deepest output among `wanted` (a path or its ancestors)."""
    found = [out for out in outs if out.path in wanted]
    return max(found, key=lambda out: len(out.path), default=None)


def _lock_files(repo: _Repo, rel: str) -> list[str]:
    """dvc.lock files that may record `rel`: at the root, in folders above it, one level down.

    DVC itself walks the whole repository to find dvc.yaml files; that is too slow here, and
    pipelines live in these places in practice.
    """
    folders = [repo.root, *(repo.abspath(a) for a in _ancestors(rel))]
    try:
        with os.scandir(repo.root) as entries:
            folders += [e.path for e in entries if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        pass
    locks = (os.path.join(folder, "dvc.lock") for folder in dict.fromkeys(folders))
    return [lock for lock in locks if os.path.isfile(lock)]


def _not_tracked_msg(rel: str, target: str) -> str:
    if not os.path.exists(target):
        return f"{rel} does not exist and is not tracked by DVC (no {rel}.dvc or dvc.lock output)"
    return f"{rel} is not tracked by DVC (no {rel}.dvc or dvc.lock output)"


# --- reading DVC files ------------------------------------------------------------------------


def _load_yaml(path: str, repo: _Repo, warnings: list[str]) -> Any:
    """Parsed YAML, or None with a warning when the file cannot be read or parsed."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, encoding="utf-8") as fobj:
            return yaml.load(fobj, Loader=loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        warnings.append(f"cannot read {_relpath(path, repo.root)}: {detail}")
        return None


def _dvcfile_outs(repo: _Repo, dvcfile: str, warnings: list[str]) -> list[_Out]:
    data = _load_yaml(dvcfile, repo, warnings)
    base = _relpath(os.path.dirname(dvcfile), repo.root)
    outs = data.get("outs") if isinstance(data, dict) else None
    if not isinstance(outs, list) or not outs:
        if data is not None:
            warnings.append(f"{_relpath(dvcfile, repo.root)} has no 'outs' list")
        return []
    source = _relpath(dvcfile, repo.root)
    return [out for e in outs if (out := _out(e, base, source, e)) is not None]


def _lock_outs(repo: _Repo, lock: str, warnings: list[str]) -> list[_Out]:
    """Outputs of every stage of a dvc.lock, with remotes and push flags from its dvc.yaml."""
    data = _load_yaml(lock, repo, warnings)
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, dict):
        return []
    defs = _stage_defs(repo, os.path.join(os.path.dirname(lock), "dvc.yaml"), warnings)
    source = _relpath(lock, repo.root)
    found = []
    for name, entry in stages.items():
        stage_def = defs.get(str(name).split("@")[0], {})
        base = _stage_base(repo, lock, stage_def)
        flags = _out_flags(stage_def)
        outs = entry.get("outs") if isinstance(entry, dict) else None
        for out in outs if isinstance(outs, list) else []:
            path = out.get("path") if isinstance(out, dict) else None
            parsed = _out(out, base, source, flags.get(str(path), {}))
            if parsed is not None:
                found.append(parsed)
    return found


def _stage_defs(repo: _Repo, dvc_yaml: str, warnings: list[str]) -> dict[str, dict[str, Any]]:
    if not os.path.isfile(dvc_yaml):
        return {}
    data = _load_yaml(dvc_yaml, repo, warnings)
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, dict):
        return {}
    return {str(k): _stage_body(v) for k, v in stages.items() if isinstance(v, dict)}


def _stage_body(stage_def: dict[str, Any]) -> dict[str, Any]:
    """A stage definition; for a `foreach` stage, its `do` template."""
    body = stage_def.get("do")
    return body if "foreach" in stage_def and isinstance(body, dict) else stage_def


def _stage_base(repo: _Repo, dvc_file: str, stage_def: dict[str, Any]) -> str:
    """Folder (repo-relative) that a stage's paths are relative to: its dvc.yaml's, plus wdir."""
    folder = os.path.join(os.path.dirname(dvc_file), str(stage_def.get("wdir") or "."))
    return _relpath(os.path.normpath(folder), repo.root)


def _out_flags(stage_def: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{out path: its options} for outs written as `- path: {remote: ..., push: false}`."""
    flags: dict[str, dict[str, Any]] = {}
    for item in stage_def.get("outs") or []:
        if isinstance(item, dict):
            for path, opts in item.items():
                flags[str(path)] = opts if isinstance(opts, dict) else {}
    return flags


def _out(entry: object, base: str, source: str, flags: object) -> _Out | None:
    """An `_Out` from one outs/deps entry ({path, md5, hash, size, nfiles}); path repo-relative."""
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        return None
    opts = flags if isinstance(flags, dict) else {}
    md5 = entry.get("md5")
    return _Out(
        path=_join(base, entry["path"]),
        source=source,
        md5=str(md5) if md5 else None,
        hash_kind=_hash_kind(entry),
        size=_int(entry.get("size")),
        nfiles=_int(entry.get("nfiles")) or (1 if md5 and not str(md5).endswith(".dir") else None),
        remote=str(opts["remote"]) if opts.get("remote") else None,
        pushed=opts.get("cache", True) is not False and opts.get("push", True) is not False,
    )


def _hash_kind(entry: dict[str, Any]) -> str | None:
    """DVC 3 writes `hash: md5`; an md5 without it is a DVC 2 md5 of dos2unix'd text."""
    if not entry.get("md5"):
        return None
    return "md5" if entry.get("hash") == "md5" else "md5-dos2unix"


def _join(base: str, path: str) -> str:
    return posixpath.normpath(posixpath.join(base, path.replace("\\", "/")))


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --- config: remotes and cache ----------------------------------------------------------------


def _remote_url(repo: _Repo, out: _Out, warnings: list[str]) -> str | None:
    """URL of the out's own remote, else of core.remote; local paths made absolute."""
    if not out.pushed:
        return None
    name = out.remote or repo.config.get("core", {}).get("remote")
    if not name:
        return None
    url = repo.config.get(f'remote "{name}"', {}).get("url")
    if url is None:
        warnings.append(f"{out.path}: DVC remote {name!r} is not defined in .dvc/config")
        return None
    if "://" in url:
        return url
    # DVC stores a local remote's relative path relative to the config file's folder.
    return os.path.normpath(os.path.join(repo.root, ".dvc", os.path.expanduser(url)))


def _manifest_path(repo: _Repo, md5: str) -> str:
    """Where DVC 3 caches a `.dir` manifest: <cache>/files/md5/<first 2>/<rest>."""
    configured = repo.config.get("cache", {}).get("dir")
    cache = os.path.join(repo.root, ".dvc", configured) if configured else None
    cache = os.path.normpath(cache or os.path.join(repo.root, ".dvc", "cache"))
    return os.path.join(cache, "files", "md5", md5[:2], md5[2:])


# --- building versions and checking the workspace ---------------------------------------------


def _untracked(path: str) -> DataVersion:
    return DataVersion(path, False, None, None, None, None, None, None, None, "skipped")


def _versioned(
    repo: _Repo, out: _Out, tracked: bool, state_dir: StrPath | None, warnings: list[str]
) -> DataVersion:
    verdict = _check(repo, out, state_dir)
    warnings.extend(verdict.warnings)
    remote = _remote_url(repo, out, warnings) if tracked else None
    return DataVersion(
        path=out.path,
        tracked=tracked,
        hash=out.md5,
        hash_kind=out.hash_kind,
        size=out.size,
        nfiles=out.nfiles,
        remote=remote,
        source=out.source,
        dirty=verdict.dirty,
        dirty_check=verdict.check,
        pushed=_pushed(repo, out, remote) if tracked else None,
    )


def _pushed(repo: _Repo, out: _Out, remote: str | None) -> bool | None:
    """Whether the recorded version is in its DVC remote (outs with `push: false` never are)."""
    if not out.pushed:
        return False
    name = out.remote or repo.config.get("core", {}).get("remote")
    return is_pushed(remote, out.md5, out.hash_kind, remote_of(repo.config, name))


def _check(repo: _Repo, out: _Out, state_dir: StrPath | None) -> state.Dirty:
    """Whether the workspace copy of `out` differs from what DVC recorded."""
    path = repo.abspath(out.path)
    if not os.path.exists(path):
        return state.Dirty(None, "missing", (f"{out.path} is missing from the workspace",))
    if not out.md5:
        return state.Dirty(None, "skipped", (f"{out.source} records no md5 for {out.path}",))
    is_dir = out.md5.endswith(".dir")
    if is_dir != os.path.isdir(path):
        return state.Dirty(True, "stat-cache")
    expected = (out.size, out.nfiles if is_dir else None)
    ignore = _dvcignore(repo, out.path) if is_dir else None
    if out.hash_kind != "md5":
        return state.check_sizes(path, is_dir, expected, ignore)
    db = os.path.join(os.fspath(state_dir or os.path.join(repo.root, ".cairn")), "datastate.db")
    with state.StatCache(db) as cache:
        if is_dir:
            manifest = _manifest_path(repo, out.md5)
            verdict = state.check_dir(path, out.md5, expected, manifest, cache, ignore)
        else:
            verdict = state.check_file(path, out.md5, out.size, cache)
    return dataclasses.replace(verdict, warnings=(*verdict.warnings, *cache.warnings))


def _dvcignore(repo: _Repo, out_path: str) -> state.Ignore | None:
    """The root `.dvcignore` as a matcher of paths relative to `out_path`; None without rules."""
    try:
        text = Path(repo.root, ".dvcignore").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    rules = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not rules:
        return None
    import pathspec

    spec = pathspec.GitIgnoreSpec.from_lines(rules)
    return state.Ignore("\n".join(rules), lambda rel: spec.match_file(f"{out_path}/{rel}"))


# --- stage deps -------------------------------------------------------------------------------


def _stage_dep_entries(repo: _Repo, address: str, here: str, warnings: list[str]) -> list[_Out]:
    """The stage's deps as `_Out`s: paths from dvc.yaml (else dvc.lock), hashes from dvc.lock."""
    file_part, _, name = address.rpartition(":")
    dvc_yaml = _find_stage_file(repo, file_part or "dvc.yaml", name, here)
    if dvc_yaml is None:
        warnings.append(f"stage {address}: its dvc.yaml was not found")
        return []
    stage_def = _stage_defs(repo, dvc_yaml, warnings).get(name.split("@")[0], {})
    base = _stage_base(repo, dvc_yaml, stage_def)
    lock = os.path.join(os.path.dirname(dvc_yaml), "dvc.lock")
    locked = _locked_deps(repo, lock, name, base, warnings)
    paths = [str(d) for d in stage_def.get("deps") or []]
    if any("${" in p for p in paths):  # templated: only dvc.lock has them resolved
        if not locked:
            warnings.append(f"stage {address}: templated deps are known only after a first run")
        return list(locked.values())
    deps = [_join(base, p) if "://" not in p else p for p in paths]
    source = _relpath(dvc_yaml, repo.root)
    return [locked.get(d) or _Out(d, source, None, None, None, None) for d in deps]


def _find_stage_file(repo: _Repo, file_part: str, name: str, here: str) -> str | None:
    """The dvc.yaml that $DVC_STAGE names relative to where `dvc repro` ran, which is unknown:
    try the root, then the stage's working folder and the folders above it up to the root."""
    rel = Path(file_part)
    tail = Path(*[p for p in rel.parts if p not in ("..", ".")])
    root = Path(repo.root)
    folders = [root, *[f for f in (Path(here), *Path(here).parents) if f.is_relative_to(root)]]
    for folder in folders:
        for cand in dict.fromkeys((folder / rel, folder / tail)):
            if cand.is_file() and name.split("@")[0] in _stage_defs(repo, str(cand), []):
                return str(cand)
    return None


def _locked_deps(
    repo: _Repo, lock: str, name: str, base: str, warnings: list[str]
) -> dict[str, _Out]:
    """{repo-relative path: recorded dep} for one stage of a dvc.lock ({} if none yet)."""
    if not os.path.isfile(lock):
        return {}
    data = _load_yaml(lock, repo, warnings)
    stages = data.get("stages") if isinstance(data, dict) else None
    entry = stages.get(name) if isinstance(stages, dict) else None
    deps = entry.get("deps") if isinstance(entry, dict) else None
    source = _relpath(lock, repo.root)
    outs = (_out(d, base, source, {}) for d in deps or [])
    return {out.path: out for out in outs if out is not None}


def _dep_version(
    repo: _Repo, dep: _Out, state_dir: StrPath | None, warnings: list[str]
) -> DataVersion:
    """A tracked output's version if the dep is one, else the dep as its stage's lock records it."""
    if "://" in dep.path:
        return dataclasses.replace(_untracked(dep.path), hash=dep.md5, source=dep.source)
    out = _resolve(repo, dep.path, warnings)
    if out is not None:
        return _versioned(repo, out, True, state_dir, warnings)
    if dep.md5 is None:
        return dataclasses.replace(_untracked(dep.path), source=dep.source)
    return _versioned(repo, dep, False, state_dir, warnings)
