"""Whether the zoo may download weights, from where, and where the team keeps them.

Environment variables win over the workspace's ``[zoo]`` table (as ``CAIRN_*`` variables do
for every other setting)::

    [zoo]
    offline = true                              # or CAIRN_OFFLINE=1, or HF_HUB_OFFLINE=1
    hf_endpoint = "https://hf-mirror.internal"  # or HF_ENDPOINT; a mirror of the HF file API
    weights_dir = "/shared/weights"             # or CAIRN_WEIGHTS_DIR

Credentials for the hub or a mirror are huggingface_hub's own: ``HF_TOKEN`` or ``hf auth
login``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.errors import ConfigError

__all__ = ["WEIGHTS_ENV", "HubSettings", "hub_settings"]

WEIGHTS_ENV = "CAIRN_WEIGHTS_DIR"
_KEYS = {"offline", "hf_endpoint", "weights_dir"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class HubSettings:
    """The resolved settings; ``why_offline`` names the switch that made it offline."""

    offline: bool
    why_offline: str | None
    hf_endpoint: str | None  # None: huggingface_hub's default (https://huggingface.co)
    weights_root: Path  # the team's weights folder, one sub-folder per source


def hub_settings(env: Mapping[str, str] | None = None) -> HubSettings:
    """The settings now: the environment, then the current workspace's ``[zoo]`` table."""
    from registry.config import load_workspace

    env = os.environ if env is None else env
    ws = load_workspace(env=env)
    table = _checked(ws.zoo, str(ws.config_file) if ws.config_file else None)
    offline, why = _offline(env, table)
    endpoint = env.get("HF_ENDPOINT") or table.get("hf_endpoint")
    root = env.get(WEIGHTS_ENV) or table.get("weights_dir")
    weights_root = (ws.root / Path(root).expanduser()).resolve() if root else (
        ws.state_dir / "weights")
    return HubSettings(offline=offline, why_offline=why,
                       hf_endpoint=endpoint.rstrip("/") if endpoint else None,
                       weights_root=weights_root)


def _offline(env: Mapping[str, str], table: Mapping[str, Any]) -> tuple[bool, str | None]:
    if (env.get("HF_HUB_OFFLINE") or "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return True, f"HF_HUB_OFFLINE={env['HF_HUB_OFFLINE']}"  # huggingface_hub's own reading
    if _flag(env.get("CAIRN_OFFLINE"), "CAIRN_OFFLINE"):
        return True, f"CAIRN_OFFLINE={env['CAIRN_OFFLINE']}"
    if table.get("offline"):
        return True, "offline = true in the workspace's [zoo] settings"
    return False, None


def _flag(text: str | None, var: str) -> bool:
    value = (text or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{var}={text!r}: use 1 (offline) or 0")


def _checked(table: Mapping[str, Any], where: str | None) -> Mapping[str, Any]:
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(f"unknown setting zoo.{unknown[0]!r}; known: "
                          f"{', '.join(sorted(_KEYS))}", where)
    if not isinstance(table.get("offline", False), bool):
        raise ConfigError("zoo.offline must be true or false", where)
    endpoint = table.get("hf_endpoint")
    if endpoint is not None and not (isinstance(endpoint, str)
                                     and endpoint.startswith(("http://", "https://"))):
        raise ConfigError("zoo.hf_endpoint must be an http(s) URL", where)
    if not isinstance(table.get("weights_dir", ""), str):
        raise ConfigError("zoo.weights_dir must be a folder path", where)
    return table
