"""A reviewer finishing a drafted card: what ``cairn catalog new`` leaves as ``TODO(cairn)``
written, and the status set to ``reviewed``.

In the demo alice reviews the card of her in-house backbone. Her text is below, with the
figures filled in from the run, as she would write them after reading its record.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from catalog import PLACEHOLDER
from demo.errors import DemoStepError

__all__ = ["REVIEW", "finish_card"]

# What alice writes in place of each placeholder, by the section it is in ("front:KEY" for the
# front matter). {fields} come from the run: name, backbone, labels, accuracy, n,
# recall (per class, as text) and mov (the MoV measured, as text).
REVIEW = {
    "front:license": "apache-2.0",
    "front:intended_use": (
        "A backbone for inspection images of metal parts (64 px RGB crops): fine-tune it for "
        "a new defect task instead of starting from scratch."),
    "front:limitations": (
        "Trained only on synthetic sheet-metal images from the demo generator; not evaluated "
        "on real camera images or other materials."),
    "what it does": (
        "Alice's in-house backbone for surface inspection: `{backbone}` trained from scratch "
        "on sheet-metal images of the classes {labels}. The team reuses it as "
        "`catalog:{name}` to start new inspection tasks."),
    "evaluation": (
        "Accuracy {accuracy:.1%} on {n} held-out images; recall per class: {recall}. On the "
        "line: {mov}. Check a class's recall before relying on the model for it."),
    "limitations": (
        "Synthetic images only; 64 px input, so defects smaller than a few pixels are lost. "
        "Not for release decisions without a person looking at the rejected parts."),
}


def finish_card(path: Path, facts: dict[str, Any]) -> Path:
    """Write the review into the card at ``path`` (placeholders replaced, status
    reviewed); ``facts`` fill the text. A placeholder the review has no text for is an
    error, so a new kind of TODO in drafts is never published unwritten."""
    import yaml

    text = path.read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.DOTALL)
    if match is None:
        raise DemoStepError("publish", f"{path} is not a drafted card")
    front = yaml.safe_load(match.group(1))
    for key, value in front.items():
        if isinstance(value, str) and PLACEHOLDER in value:
            front[key] = _text(f"front:{key}", facts, path)
    front["status"] = "reviewed"
    body = _review_body(match.group(2), facts, path)
    dumped = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=100)
    path.write_text(f"---\n{dumped}---\n{body}", encoding="utf-8")
    return path


def _review_body(body: str, facts: dict[str, Any], path: Path) -> str:
    lines, section = [], ""
    for line in body.splitlines():
        if line.startswith("## "):
            section = line[3:].strip().lower()
        if PLACEHOLDER not in line:
            lines.append(line)
        elif not line.lstrip().startswith("- "):  # the draft's own notes go; prose is written
            lines.append(_text(section, facts, path))
    return "\n".join(lines) + "\n"


def _text(key: str, facts: dict[str, Any], path: Path) -> str:
    if key not in REVIEW:
        raise DemoStepError("publish", f"{path}: the review has no text for {key!r}")
    return REVIEW[key].format(**facts)
