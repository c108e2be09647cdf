"""A model card: a Markdown file with YAML front matter, read with the line of every field.

The front matter is read with PyYAML's safe loader (no Python tags) node by node, so each key
keeps the line it was written on and errors can point at it. Anchors and aliases are refused
(they are how "billion laughs" cards blow up), as are duplicate keys and non-text keys.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.errors import CardSyntaxError
from registry.text import is_utf8

__all__ = ["CARD_FILE", "MAX_CARD_BYTES", "ModelCard", "parse_card", "read_card"]

CARD_FILE = "README.md"  # Hugging Face's name for a model card, so cards publish unchanged
MAX_CARD_BYTES = 1 << 20
_MAX_DEPTH = 12
_FENCE = "---"
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_CODE_FENCE = re.compile(r"^\s*(```|~~~)")
_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in
                  ("str", "int", "float", "bool", "null", "map", "seq", "timestamp"))


@dataclass
class ModelCard:
    """One card: its front matter (plain values), Markdown body and where each field is."""

    front_matter: dict[str, Any]
    body: str
    path: Path | None = None
    lines: dict[str, int] = field(default_factory=dict)
    body_line: int = 1
    sha256: str = ""

    # -- Cairn's fields ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.front_matter.get("name") or "")

    @property
    def version(self) -> str:
        return str(self.front_matter.get("version") or "")

    @property
    def ref(self) -> str:
        """``name@version``, as ``zoo.create("catalog:" + ref)`` takes it."""
        return f"{self.name}@{self.version}"

    @property
    def status(self) -> str:
        return str(self.front_matter.get("status") or "")

    @property
    def project(self) -> str | None:
        return _text_or_none(self.front_matter.get("project"))

    @property
    def owner(self) -> str | None:
        return _text_or_none(self.front_matter.get("owner"))

    @property
    def backbone(self) -> str | None:
        return _text_or_none(self.front_matter.get("backbone"))

    @property
    def runs(self) -> list[str]:
        runs = self.front_matter.get("runs") or []
        return [str(r) for r in runs] if isinstance(runs, list) else []

    @property
    def weights(self) -> dict[str, Any]:
        weights = self.front_matter.get("weights")
        return weights if isinstance(weights, dict) else {}

    @property
    def input(self) -> dict[str, Any]:
        spec = self.front_matter.get("input")
        return spec if isinstance(spec, dict) else {}

    @property
    def labels(self) -> list[str]:
        labels = self.input.get("labels") or []
        return [str(x) for x in labels] if isinstance(labels, list) else []

    @property
    def folder(self) -> Path | None:
        return self.path.parent if self.path else None

    @property
    def weights_path(self) -> Path | None:
        """The weights file (relative paths are relative to the card's folder)."""
        rel = self.weights.get("path")
        if not isinstance(rel, str) or self.folder is None:
            return None
        return self.folder / rel

    def sections(self) -> dict[str, int]:
        """Body headings (lower case, any level) and the file line each is on."""
        found: dict[str, int] = {}
        in_code = False
        for number, line in enumerate(self.body.splitlines(), start=self.body_line):
            if _CODE_FENCE.match(line):
                in_code = not in_code
                continue
            match = None if in_code else _HEADING.match(line)
            if match:
                found.setdefault(match.group(2).strip().lower(), number)
        return found

    def line_of(self, key: str) -> int | None:
        """The file line of a front-matter key path (``weights.sha256``, ``runs[0]``), or of
        its nearest written parent."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", key) if re.search(r"[.\[]", key) else ""
        return 1 if self.path else None

    def location(self) -> str:
        return str(self.path) if self.path else "<card>"


def read_card(path: str | Path) -> ModelCard:
    """Read and parse a card file; CardSyntaxError says where it breaks."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CARD_BYTES:
            raise CardSyntaxError(str(path), None, f"card is {size} bytes; the limit is "
                                                   f"{MAX_CARD_BYTES}")
        data = path.read_bytes()
    except OSError as exc:
        raise CardSyntaxError(str(path), None, f"cannot read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CardSyntaxError(str(path), line, "not valid UTF-8 (byte "
                                               f"{data[exc.start]:#04x})") from exc
    card = parse_card(text, str(path))
    card.path = path
    card.sha256 = hashlib.sha256(data).hexdigest()
    return card


def parse_card(text: str, where: str = "<card>") -> ModelCard:
    """Split ``text`` into front matter and body and read the front matter."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if "\x00" in text:
        raise CardSyntaxError(where, text[: text.index("\x00")].count("\n") + 1,
                              "the card holds a NUL character")
    lines = text.split("\n")
    if not lines or lines[0].rstrip() != _FENCE:
        raise CardSyntaxError(where, 1, "a model card starts with YAML front matter: a '---' "
                                        "line, the metadata, then another '---' line")
    end = next((i for i, line in enumerate(lines[1:], start=1)
                if line.rstrip() in (_FENCE, "...")), None)
    if end is None:
        raise CardSyntaxError(where, 1, "the front matter opened on line 1 is never closed by "
                                        "a '---' line")
    front, line_map = _load_yaml("\n".join(lines[1:end]), where, offset=2)
    body = "\n".join(lines[end + 1:])
    return ModelCard(front_matter=front, body=body, lines=line_map, body_line=end + 2,
                     sha256=hashlib.sha256(text.encode()).hexdigest())


def _load_yaml(source: str, where: str, offset: int) -> tuple[dict[str, Any], dict[str, int]]:
    import yaml

    loader = None
    try:
        loader = yaml.SafeLoader(source)  # reads (and may refuse) the first characters
        node = loader.get_single_node()
        if node is None:
            return {}, {}
        if not isinstance(node, yaml.MappingNode):
            raise CardSyntaxError(where, node.start_mark.line + offset,
                                  "the front matter must be a mapping of fields (key: value)")
        line_map: dict[str, int] = {}
        _walk(node, "", line_map, set(), 0, where, offset, offset)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + offset if mark else None
        reason = " ".join(filter(None, [exc.context, exc.problem])) or str(exc)
        raise CardSyntaxError(where, line, f"broken YAML: {reason}") from exc
    except yaml.reader.ReaderError as exc:
        line = source[:exc.position].count("\n") + offset
        raise CardSyntaxError(where, line, "broken YAML: a character YAML does not allow "
                                           f"({exc.character!r})") from exc
    except yaml.YAMLError as exc:
        raise CardSyntaxError(where, None, f"broken YAML: {exc}") from exc
    finally:
        if loader is not None:
            loader.dispose()
    return _plain(data, where), line_map


def _walk(node: Any, path: str, lines: dict[str, int], seen: set[int], depth: int,
          where: str, offset: int, used_at: int) -> None:
    """Record each key's line; refuse aliases, duplicate or non-text keys, deep nesting.
    ``used_at`` is the line that refers to ``node`` (an alias points back at its anchor)."""
    import yaml

    line = node.start_mark.line + offset
    if id(node) in seen:
        raise CardSyntaxError(where, used_at, "YAML anchors and aliases are not allowed in "
                                              "cards")
    seen.add(id(node))
    if node.tag not in _TAGS:
        raise CardSyntaxError(where, line, f"YAML tag {node.tag!r} is not allowed in cards")
    if depth > _MAX_DEPTH:
        raise CardSyntaxError(where, line, f"the front matter nests deeper than {_MAX_DEPTH}")
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + offset
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                raise CardSyntaxError(where, key_line, "field names must be text")
            if key_node.value in keys:
                raise CardSyntaxError(where, key_line,
                                      f"field {_join(path, key_node.value)!r} is given twice")
            keys.add(key_node.value)
            child = _join(path, key_node.value)
            lines[child] = key_line
            _walk(value_node, child, lines, seen, depth + 1, where, offset, key_line)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[f"{path}[{i}]"] = item.start_mark.line + offset
            _walk(item, f"{path}[{i}]", lines, seen, depth + 1, where, offset, line)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _plain(value: Any, where: str) -> Any:
    """JSON-ready values: dates become ISO text; non-finite floats are kept as text
    ('nan') so the schema can point at them instead of the store choking on them."""
    if isinstance(value, dict):
        return {k: _plain(v, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, where) for v in value]
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str) and ("\x00" in value or not is_utf8(value)):
        raise CardSyntaxError(where, None, f"a value holds NUL or a lone surrogate escape "
                                           f"({value[:40]!r}); cards are UTF-8 text")
    return value


def _text_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
