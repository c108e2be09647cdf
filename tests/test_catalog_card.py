"""Reading model cards: Hugging Face style cards, Cairn's schema, and broken or hostile YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog import CardProblem, parse_card, read_card
from catalog._schema import CAIRN_FIELDS, check_card
from catalog.errors import CardSyntaxError

CARDS = Path(__file__).parent / "data" / "cards"
HF_CARDS = sorted(CARDS.glob("hf_*.md"))
REQUIRED = sorted(k for k, spec in CAIRN_FIELDS.items() if spec.required)


def errors(problems: list[CardProblem]) -> list[CardProblem]:
    return [p for p in problems if p.severity == "error"]


@pytest.mark.parametrize("path", HF_CARDS, ids=lambda p: p.stem)
def test_hugging_face_cards_read_and_only_lack_cairn_fields(path: Path) -> None:
    card = read_card(path)
    problems = errors(check_card(card))
    # Every Hugging Face field is understood: the only errors are Cairn's missing fields.
    assert sorted(p.message.rsplit(" ", 1)[-1] for p in problems) == REQUIRED
    assert all(p.line == 1 for p in problems)


def test_complete_card_passes_the_schema() -> None:
    card = read_card(CARDS / "cairn_complete.md")
    assert check_card(card) == []
    assert (card.name, card.version, card.status, card.ref) == (
        "scratch-r18", "3", "reviewed", "scratch-r18@3")
    assert card.labels == ["ok", "scratch", "dent"]
    assert card.front_matter["created"] == "2026-11-12"  # a YAML date, kept as text
    assert card.line_of("weights.sha256") == 38
    assert card.line_of("input.labels") == 46
    assert card.line_of("model-index[0].results[0].metrics[0].value") == 25
    assert set(card.sections()) >= {"what it does", "data", "training", "evaluation",
                                    "how to reuse", "limitations"}


def card_text(front: str, body: str = "\n# x\n") -> str:
    return f"---\n{front}---{body}"


BASE = ("name: m\nversion: 1\nstatus: draft\nbackbone: resnet18\n"
        "weights: {path: model.safetensors, sha256: " + "a" * 64 + "}\n"
        "input: {size: 32, mean: [0.5], std: [0.5], labels: [a, b]}\n")


@pytest.mark.parametrize(("front", "field", "line", "message"), [
    (BASE + "colour: red\n", "colour", 8, "unknown field"),
    (BASE + "tags: scratch\n", "tags", 8, "must be a list, not text"),
    (BASE + "runs: [abc, 12]\n", "runs[1]", 8, "must be text, not a number"),
    (BASE.replace("status: draft", "status: final"), "status", 4, "must be one of"),
    (BASE.replace("version: 1", "version: 1.5"), "version", 3, "must be an integer or text"),
    (BASE.replace("size: 32", "size: -3"), "input.size", 7, "must be positive"),
    (BASE.replace("std: [0.5]", "std: [0.5, 0.5]"), "input.std", 7, "has 2 values"),
    (BASE.replace("labels: [a, b]", "labels: [a, a]"), "input.labels", 7, "duplicates: a"),
    (BASE.replace("a" * 64, "xyz"), "weights.sha256", 6, "64 lower-case hex"),
    (BASE.replace("model.safetensors", "model.pt"), "weights.path", 6, ".safetensors"),
    (BASE.replace("name: m", "name: ../etc"), "name", 2, "letters, digits"),
    (BASE + "mov: [{name: x, value: .nan}]\n", "mov[0].value", 8, "must be a number"),
    (BASE + "model-index: [{name: m, results: [{task: {}, metrics: []}]}]\n",
     "model-index[0].results[0].task", 8, "missing required field"),
    (BASE.replace("status: draft\n", ""), None, 1, "missing required field status"),
])
def test_schema_errors_name_field_and_line(tmp_path: Path, front: str, field: str | None,
                                          line: int, message: str) -> None:
    path = tmp_path / "README.md"
    path.write_text(card_text(front))
    problems = errors(check_card(read_card(path)))
    assert any(p.field == field and p.line == line and message in p.message
               for p in problems), problems
    assert all(p.path == str(path) for p in problems)
    assert f"{path}:{line}: error:" in "\n".join(map(str, problems))


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("# no front matter\n", 1, "starts with YAML front matter"),
    ("---\nname: m\n# never closed\n", 1, "never closed"),
    ("---\nname: m\nversion: [1, 2\nstatus: draft\n---\n", 4, "broken YAML"),
    ("---\nname: m\n  bad indent: x\n---\n", 3, "broken YAML"),
    ("---\nname: m\nname: n\n---\n", 3, "given twice"),
    ("---\n- a\n- b\n---\n", 2, "must be a mapping"),
    ("---\nname: !!python/object/apply:os.system ['echo pwned']\n---\n", 2, "not allowed"),
    ("---\nname: !!binary aGVsbG8=\n---\n", 2, "not allowed"),
    ("---\ntags: !!set {a: null}\n---\n", 2, "not allowed"),
    ("---\n1: one\n---\n", 2, "field names must be text"),
    ("---\na: &x [1, 2]\nb: *x\n---\n", 3, "anchors and aliases"),
    ("---\nname: m\x00\n---\n", 2, "NUL"),
])
def test_broken_and_hostile_yaml_is_refused_with_its_line(text: str, line: int,
                                                          reason: str) -> None:
    with pytest.raises(CardSyntaxError) as caught:
        parse_card(text, "card.md")
    assert caught.value.line == line, caught.value
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"card.md:{line}: ")


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    with pytest.raises(CardSyntaxError, match="anchors and aliases"):
        parse_card("---\n" + "\n".join(lines) + "\n---\n")


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(CardSyntaxError, match="nests deeper"):
        parse_card("---\nx: " + "[" * 40 + "]" * 40 + "\n---\n")


def test_non_utf8_card_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_bytes(b"---\nname: m\nowner: \xff\xfe\n---\n")
    with pytest.raises(CardSyntaxError, match="not valid UTF-8") as caught:
        read_card(path)
    assert caught.value.line == 3


def test_oversized_card_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text("---\nname: m\n---\n" + "x" * (1 << 20))
    with pytest.raises(CardSyntaxError, match="limit"):
        read_card(path)


def test_placeholders_warn_on_drafts_and_fail_reviewed_cards(tmp_path: Path) -> None:
    front = BASE + "intended_use: 'TODO(cairn): who uses it'\n"
    draft = check_card(parse_card(card_text(front, "\n## Data\nTODO(cairn): data\n")))
    assert not errors(draft)
    assert any("TODO(cairn)" in p.message and p.line == 11 for p in draft)
    assert any(p.field == "intended_use" and p.line == 8 for p in draft)
    assert any("'## Training' section" in p.message for p in draft)
    reviewed = check_card(parse_card(card_text(front.replace("draft", "reviewed"),
                                               "\n## Data\nTODO(cairn): data\n")))
    assert {p.line for p in errors(reviewed)} >= {8, 11}


def test_headings_inside_code_blocks_are_not_sections() -> None:
    card = parse_card(card_text(BASE, "\n```\n## Data\n```\n## Training\n"))
    assert set(card.sections()) == {"training"}
