"""Workspace configuration: one file a team writes its conventions into.

Found by walking up from the working directory, like git finds ``.git``: the first
``cairn.toml``, or ``pyproject.toml`` with a ``[tool.cairn]`` table. Environment variables
``CAIRN_*`` override single settings. Without any file the workspace is the enclosing git
repository (or the working directory) and everything lives under its ``.cairn/`` folder.

Example ``cairn.toml``::

    store = "sqlite:///.cairn/registry.db"     # or postgresql+psycopg://host/db
    artifacts = ".cairn/artifacts"             # or s3://bucket/prefix
    catalog = "catalog"
    owner = "ana"                              # default: the OS user
    required_tags = ["task"]

    [runs]
    heartbeat_interval = 30
    flush_interval = 1.0
    system_interval = 10          # seconds between system metric samples; 0 turns them off
    seed_params = ["seed"]        # runs differing only in these form a group

    [costs]                       # read at the end of each run (registry.capture.cost)
    currency = "EUR"
    kwh = 0.25
    [costs.device_hour]
    "H100" = 2.9

    [projects.defects]
    description = "Scratch and dent detection on line 3"

    [zoo]                                      # read by the zoo (zoo._hub_settings)
    offline = false                            # CAIRN_OFFLINE=1 too: never download weights
    hf_endpoint = "https://hf-mirror.internal" # a team mirror of the Hugging Face hub
    weights_dir = "/shared/weights"            # the team's weights folder

    [dashboard.auth]                           # sign-in (checked by dashboard._service_auth)
    server_metadata_url = "https://login.example.com/.well-known/openid-configuration"
    client_id = "cairn-dashboard"
    allowed_domains = ["example.com"]          # and/or allowed_emails = ["ana@example.com"]
"""

from __future__ import annotations

import getpass
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from registry.errors import ConfigError

__all__ = ["CONFIG_FILE", "Workspace", "find_config", "load_workspace"]

CONFIG_FILE = "cairn.toml"
STATE_DIR = ".cairn"

_TOP_LEVEL = {
    "store", "artifacts", "catalog", "owner", "required_tags", "runs", "projects", "mlflow",
    "zoo", "costs", "dashboard",
}
_RUNS = {"heartbeat_interval", "flush_interval", "on_duplicate", "fingerprint_ignore",
         "system_interval", "seed_params"}
_ENV = {
    "CAIRN_STORE": "store",
    "CAIRN_ARTIFACTS": "artifacts",
    "CAIRN_CATALOG": "catalog",
    "CAIRN_OWNER": "owner",
}


@dataclass(frozen=True)
class Workspace:
    """Resolved settings of one workspace; paths are absolute, URLs complete."""

    root: Path
    store_url: str
    artifact_root: str
    catalog_dir: Path
    owner: str
    required_tags: tuple[str, ...] = ()
    heartbeat_interval: float = 30.0
    flush_interval: float = 1.0
    on_duplicate: str = "warn"
    fingerprint_ignore: tuple[str, ...] = ()
    mlflow: Mapping[str, Any] = field(default_factory=dict)
    #: The ``[zoo]`` table as written; the zoo checks its own settings.
    zoo: Mapping[str, Any] = field(default_factory=dict)
    #: Seconds between system metric samples of a run (0: none).
    system_interval: float = 10.0
    #: Params whose values alone may differ between the runs of one group (seeds).
    seed_params: tuple[str, ...] = ("seed",)
    #: The ``[costs]`` table as written; checked where costs are computed.
    costs: Mapping[str, Any] = field(default_factory=dict)
    #: The ``[dashboard]`` table as written; the dashboard checks its own settings.
    dashboard: Mapping[str, Any] = field(default_factory=dict)
    projects: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    config_file: Path | None = None
    #: Open the store read-only and never migrate it (the dashboard, a reader role).
    readonly: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "catalog_dir", Path(self.catalog_dir))

    @property
    def state_dir(self) -> Path:
        """Folder for local state (the default store, artifact root and caches)."""
        return self.root / STATE_DIR

    def read_only(self) -> Workspace:
        """This workspace with its store opened read-only: nothing can be written through it."""
        return replace(self, readonly=True)

    def open_store(self):
        """The workspace's store (one per URL and mode in a process; see ``registry.store``)."""
        from registry.store import open_store

        return open_store(self.store_url, readonly=self.readonly)

    def ensure_state_dir(self) -> Path:
        """Create the state folder with a ``.gitignore`` of ``*``, so git never lists it
        as untracked (which would make every run's code look changed)."""
        marker = self.state_dir / ".gitignore"
        if not marker.exists():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            marker.write_text("# Cairn's local state: never committed.\n*\n")
        return self.state_dir


def find_config(start: str | os.PathLike | None = None) -> Path | None:
    """Return the nearest ``cairn.toml`` or ``pyproject.toml`` with ``[tool.cairn]``."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "cairn" in _read_toml(pyproject).get("tool", {}):
            return pyproject
    return None


def load_workspace(
    start: str | os.PathLike | None = None, env: Mapping[str, str] | None = None
) -> Workspace:
    """Find and read the workspace configuration, then apply ``CAIRN_*`` overrides."""
    env = os.environ if env is None else env
    if env.get("CAIRN_CONFIG"):
        path: Path | None = Path(env["CAIRN_CONFIG"]).resolve()
        if not path.is_file():
            raise ConfigError("file named by CAIRN_CONFIG does not exist", str(path))
    else:
        path = find_config(start)
    settings = _settings_from(path) if path else {}
    root = path.parent if path else _default_root(start)
    return _resolve(root, _apply_env(settings, env), path)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", str(path)) from exc


def _settings_from(path: Path) -> dict[str, Any]:
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("cairn", {})
    _check_keys(data, _TOP_LEVEL, "", path)
    _check_keys(data.get("runs", {}), _RUNS, "runs.", path)
    return data


def _check_keys(table: Any, known: set[str], prefix: str, path: Path) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{prefix.rstrip('.')} must be a table", str(path))
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"unknown setting {prefix}{unknown[0]!r}; known: {', '.join(sorted(known))}", str(path)
        )


def _apply_env(settings: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    merged = dict(settings)
    for var, key in _ENV.items():
        if env.get(var):
            merged[key] = env[var]
    runs = dict(merged.get("runs", {}))
    for key in _RUNS - {"fingerprint_ignore", "seed_params"}:
        var = "CAIRN_" + key.upper()
        if env.get(var):
            runs[key] = env[var]
    merged["runs"] = runs
    return merged


def _default_root(start: str | os.PathLike | None) -> Path:
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return here


def _resolve(root: Path, s: dict[str, Any], path: Path | None) -> Workspace:
    where = str(path) if path else None
    runs = s.get("runs", {})
    on_duplicate = str(runs.get("on_duplicate", "warn"))
    if on_duplicate not in ("warn", "refuse", "ignore"):
        raise ConfigError("runs.on_duplicate must be 'warn', 'refuse' or 'ignore'", where)
    return Workspace(
        root=root,
        store_url=_store_url(root, s.get("store")),
        artifact_root=_artifact_root(root, s.get("artifacts")),
        catalog_dir=(root / str(s.get("catalog", "catalog"))).resolve(),
        owner=str(s.get("owner") or _os_user()),
        required_tags=tuple(str(t) for t in s.get("required_tags", ())),
        heartbeat_interval=_positive(runs, "heartbeat_interval", 30.0, where),
        flush_interval=_positive(runs, "flush_interval", 1.0, where),
        on_duplicate=on_duplicate,
        fingerprint_ignore=tuple(str(k) for k in runs.get("fingerprint_ignore", ())),
        mlflow=dict(s.get("mlflow", {})),
        zoo=_table(s.get("zoo", {}), "zoo", where),
        system_interval=_non_negative(runs, "system_interval", 10.0, where),
        seed_params=_names(runs.get("seed_params", ["seed"]), "runs.seed_params", where),
        costs=_table(s.get("costs", {}), "costs", where),
        dashboard=_table(s.get("dashboard", {}), "dashboard", where),
        projects={str(k): dict(v) for k, v in s.get("projects", {}).items()},
        config_file=path,
    )


def _table(value: Any, name: str, where: str | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a table", where)
    return dict(value)


def _non_negative(table: Mapping[str, Any], key: str, default: float,
                  where: str | None) -> float:
    try:
        value = float(table.get(key, default))
    except (TypeError, ValueError):
        raise ConfigError(f"runs.{key} must be a number", where) from None
    if not value >= 0:
        raise ConfigError(f"runs.{key} must be 0 (off) or positive", where)
    return value


def _names(value: Any, name: str, where: str | None) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{name} must be a list of param names", where)
    return tuple(value)


def _positive(table: Mapping[str, Any], key: str, default: float, where: str | None) -> float:
    try:
        value = float(table.get(key, default))
    except (TypeError, ValueError):
        raise ConfigError(f"runs.{key} must be a number", where) from None
    if not value > 0:
        raise ConfigError(f"runs.{key} must be positive", where)
    return value


def _store_url(root: Path, value: Any) -> str:
    if not value:
        return f"sqlite:///{root / STATE_DIR / 'registry.db'}"
    url = str(value)
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        # Relative SQLite paths are relative to the workspace, not to wherever a script runs.
        return prefix + str(root / url[len(prefix) :])
    return url


def _artifact_root(root: Path, value: Any) -> str:
    if not value:
        return str(root / STATE_DIR / "artifacts")
    text = str(value)
    if "://" in text:
        return text
    return str((root / text).resolve())


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
