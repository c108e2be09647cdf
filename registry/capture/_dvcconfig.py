"""DVC's own configuration (`.dvc/config`, `.dvc/config.local`), read without importing DVC."""

from __future__ import annotations

from pathlib import Path

__all__ = ["parse_config", "read_config"]


def read_config(root: str) -> dict[str, dict[str, str]]:
    """`.dvc/config` overlaid with `.dvc/config.local`, as {section: {key: value}}."""
    merged: dict[str, dict[str, str]] = {}
    for name in ("config", "config.local"):
        try:
            text = Path(root, ".dvc", name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for section, values in parse_config(text).items():
            merged.setdefault(section, {}).update(values)
    return merged


def parse_config(text: str) -> dict[str, dict[str, str]]:
    """The configobj subset DVC writes: `[core]`, `['remote "name"']`, `key = value` lines."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(_unquote(line[1:-1].strip()), {})
        elif "=" in line and current is not None:
            key, value = line.split("=", 1)
            current[key.strip()] = _unquote(value.strip())
    return sections


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text
