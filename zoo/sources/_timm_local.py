"""Find timm weights already on this machine, without any network access.

Looked for in order: the team's file under the weights convention (:mod:`zoo._weights`), the
Hugging Face hub cache (the files timm itself would fetch from ``hf_hub_id``), and torch hub's
checkpoint folder (for the few models published by URL only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from zoo import _weights

__all__ = ["LocalWeights", "hf_filenames"]

SOURCE = "timm"
_SAFE = {
    "pytorch_model.bin": "model.safetensors",
    "open_clip_pytorch_model.bin": "open_clip_model.safetensors",
}


@dataclass(frozen=True)
class LocalWeights:
    """One look at each place weights can be (a few directory listings), then lookups."""

    team_dir: Path
    team: frozenset[str]
    hf_cache: str
    hf_repos: frozenset[str]
    torch_hub: Path | None
    checkpoints: frozenset[str]

    @classmethod
    def scan(cls) -> LocalWeights:
        from huggingface_hub import constants

        hub, cache = _torch_hub_checkpoints(), Path(constants.HF_HUB_CACHE)
        team_dir = _weights.weights_dir(SOURCE)
        return cls(team_dir=team_dir, team=_weights.present(team_dir), hf_cache=str(cache),
                   hf_repos=_listing(cache), torch_hub=hub,
                   checkpoints=_listing(hub) if hub else frozenset())

    def expected(self, name: str) -> Path:
        """Where the team's file for ``name`` is, or must be put."""
        return self.team_dir / f"{name}{_weights.SUFFIX}"

    def find(self, name: str, cfg: Any) -> tuple[Path | None, bool]:
        """The local weights file of ``name``, and whether it is timm's URL download in its
        original format (loaded the way timm loads it: ``custom_load``). Team files and the
        Hugging Face cache hold timm state dicts."""
        if name in self.team:
            return self.expected(name), False
        found = self._hf(cfg.hf_hub_id, cfg.hf_hub_filename) if cfg.hf_hub_id else None
        if found is not None or not cfg.url or self.torch_hub is None:
            return found, False
        filename = os.path.basename(urlparse(cfg.url).path)
        return (self.torch_hub / filename, True) if filename in self.checkpoints else (None, False)

    def _hf(self, hub_id: str, filename: str | None) -> Path | None:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = hub_id.partition("@")
        if f"models--{repo.replace('/', '--')}" not in self.hf_repos:
            return None
        for candidate in hf_filenames(filename):
            path = try_to_load_from_cache(repo, candidate, cache_dir=self.hf_cache,
                                          revision=revision or None)
            if isinstance(path, str):
                return Path(path)
        return None


def hf_filenames(filename: str | None) -> list[str]:
    """The files timm reads from a hub repository, the safetensors one first (as timm's
    ``load_state_dict_from_hf`` does)."""
    filename = filename or "pytorch_model.bin"
    safe = _SAFE.get(filename)
    if safe is None and filename.endswith(".bin"):
        safe = filename[: -len(".bin")] + ".safetensors"
    return [safe, filename] if safe else [filename]


def _torch_hub_checkpoints() -> Path | None:
    try:
        import torch.hub
    except ImportError:
        return None
    return Path(torch.hub.get_dir()) / "checkpoints"


def _listing(folder: Path) -> frozenset[str]:
    try:
        return frozenset(os.listdir(folder))
    except OSError:
        return frozenset()
