"""Hostile input, tried with hypothesis and with the fixed corpus of tests/data/hostile/:
metric names and values, param trees, query strings, card front matter and Markdown, artifact
names and digests. Bad input gets a typed error or a documented coercion, and whatever was
recorded before it is intact afterwards. Weights files: tests/test_hostile_weights.py.

``CAIRN_HOSTILE_FIGURES=figures.json`` collects how many inputs each test tried and what came
of them (accepted, coerced, refused with which error): the figures of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, inspect, select
from yaml.reader import Reader

import registry
from catalog import parse_card, render_html
from catalog.errors import CardSyntaxError
from registry.artifacts import MAX_NAME_LENGTH, ArtifactStore
from registry.errors import ArtifactError, MetricError, ParamError, QueryError, TagError
from registry.store import open_store
from registry.store.schema import run as run_table
from tests.test_catalog_render import assert_inert

CORPUS = json.loads((Path(__file__).parent / "data" / "hostile" / "corpus.json").read_text())
LONG = ["k" * 251, "n" * 1001, "v" * 70_000]
STRINGS = CORPUS["strings"] + LONG
TALLY: dict[str, Counter] = defaultdict(Counter)


def fast(examples: int) -> settings:
    """``examples`` hypothesis examples, no deadline, no example database."""
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


def tally(category: str, outcome: str) -> None:
    TALLY[category][outcome] += 1


def outcome_of(exc: BaseException | None, coerced: bool = False) -> str:
    if exc is not None:
        return f"refused: {type(exc).__name__}"
    return "coerced" if coerced else "accepted"


def write_figures(counts: Mapping[str, Counter]) -> None:
    """Add ``counts`` to the JSON file named by CAIRN_HOSTILE_FIGURES (when set)."""
    target = os.environ.get("CAIRN_HOSTILE_FIGURES")
    if not target:
        return
    path = Path(target)
    merged = json.loads(path.read_text()) if path.exists() else {}
    for category, outcomes in counts.items():
        slot = merged.setdefault(category, {})
        for outcome, n in outcomes.items():
            slot[outcome] = slot.get(outcome, 0) + n
    path.write_text(json.dumps(merged, indent=1, sort_keys=True))


@pytest.fixture(scope="module", autouse=True)
def figures():
    yield
    write_figures(TALLY)
    TALLY.clear()


def canon(value: Any) -> Any:
    """A value that compares equal to itself when it holds NaN, and keeps int apart from float."""
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else repr(value))
    if isinstance(value, list | tuple):
        return ("list", [canon(v) for v in value])
    if isinstance(value, dict):
        return ("dict", {k: canon(v) for k, v in value.items()})
    return (type(value).__name__, value)


def usable_name(text: str) -> bool:
    return 0 < len(text) <= 250 and text.isprintable() and "\x00" not in text and _utf8(text)


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# -- metrics ------------------------------------------------------------------------------

METRIC_KEYS = st.one_of(st.sampled_from(["loss", "val/acc", "lr@epoch", "ü b", "x" * 250]),
                        st.text(st.characters(exclude_categories=("C", "Z")), min_size=1,
                                max_size=30),
                        st.text(max_size=30), st.sampled_from(STRINGS), st.integers(-3, 3),
                        st.none())
NUMBERS = st.one_of(st.floats(), st.integers(-(10**300), 10**300), st.booleans(),
                    st.decimals(), st.fractions(min_value=-(10**6), max_value=10**6))
NOT_NUMBERS = st.one_of(st.text(max_size=6), st.binary(max_size=6), st.none(),
                        st.complex_numbers(max_magnitude=10), st.lists(st.floats(), max_size=2),
                        st.builds(object), st.sampled_from(["0.5", b"0.5", "nan"]))
STEPS = st.one_of(st.none(), st.integers(0, 1000), st.integers(), st.floats(), st.booleans(),
                  st.text(max_size=3))
_STEP_RANGE = range(-(2**63), 2**63 - 1)


def test_metric_names_and_values(workspace):
    """Every call is recorded exactly or refused with MetricError; nothing else is touched."""
    expected: dict[str, Counter] = defaultdict(Counter)
    next_step: dict[str, int] = defaultdict(int)
    with registry.start_run(workspace=workspace, params={"keep": 1}) as run:
        run.log_metric("good", 1.0)
        expected["good"][(0, canon(1.0))] += 1
        next_step["good"] = 1

        @fast(250)
        @given(key=METRIC_KEYS, value=st.one_of(NUMBERS, NUMBERS, NOT_NUMBERS), step=STEPS)
        @example(key="x", value=Decimal("sNaN"), step=None)
        @example(key="x", value=Fraction(1, 3), step=2**63)
        def check(key, value, step):
            number = isinstance(value, int | float | Decimal | Fraction)
            good_step = step is None or (type(step) is int and step in _STEP_RANGE)
            should = isinstance(key, str) and usable_name(key) and number and good_step
            if isinstance(value, Decimal) and value.is_snan():
                should = False
            try:
                run.log_metric(key, value, step)
            except MetricError as exc:
                assert not should, (key, value, step, exc)
                tally("metric names and values", outcome_of(exc))
                return
            assert should, (key, value, step)
            at = next_step[key] if step is None else step
            next_step[key] = at + 1
            expected[key][(at, canon(float(value)))] += 1
            tally("metric names and values", outcome_of(None, not isinstance(value, float)))

        check()
        run.log_metric("good", 2.0)
        expected["good"][(1, canon(2.0))] += 1
    history = registry.metric_history(run.id, workspace=workspace)
    found = {k: Counter((p.step, canon(p.value)) for p in pts) for k, pts in history.items()}
    assert found == expected
    record = registry.get_run(run.id, workspace=workspace)
    assert record.status == "FINISHED" and record.params == {"keep": 1}


def test_a_huge_integer_or_a_byte_buffer_metric_is_a_metric_error(workspace):
    with registry.start_run(workspace=workspace) as run:
        for bad in (10**400, bytearray(b"0.5"), memoryview(b"0.5")):
            with pytest.raises(MetricError):
                run.log_metric("x", bad)
        run.log_metric("x", 0.5)
    assert registry.get_run(run.id, workspace=workspace).metrics["x"].count == 1


# -- params -------------------------------------------------------------------------------

PARAM_KEYS = st.one_of(st.text(max_size=10), st.sampled_from(CORPUS["strings"]),
                       st.integers(-3, 3))
NO_NUL = st.text(st.characters(exclude_characters="\x00"), max_size=20)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), NO_NUL)
LEAVES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.tuples(SCALARS, SCALARS),
                   st.binary(max_size=3), st.sets(st.integers(), max_size=2),
                   st.builds(object), st.lists(st.lists(st.integers(), max_size=2), max_size=2),
                   st.sampled_from([Path("data/train"), "x" * 65_536, "y" * 65_537]),
                   st.sampled_from(CORPUS["strings"]).filter(lambda s: "\x00" not in s))
TREES = st.recursive(LEAVES, lambda inner: st.dictionaries(PARAM_KEYS, inner, max_size=4),
                     max_leaves=10)


def expected_params(prefix: str, tree: Any) -> tuple[dict[str, Any] | None, bool]:
    """What the store should hold for ``{prefix: tree}`` after the documented coercions (None
    when something in it must be refused), and whether anything was coerced. Trees whose
    flattened names collide are set aside: see test_colliding_param_names_are_refused."""
    flat: dict[str, Any] = {}

    def walk(node: Mapping, name: str) -> None:
        for key, value in node.items():
            full = f"{name}.{key}"
            if isinstance(value, Mapping):
                walk(value, full)
            else:
                assume(full not in flat)
                flat[full] = value

    if isinstance(tree, Mapping):
        walk(tree, prefix)
    else:
        flat[prefix] = tree
    out, coerced = {}, False
    for key, value in flat.items():
        typed, changed = _typed(value)
        if not usable_name(key) or typed is _REFUSED:
            return None, False
        out[key], coerced = typed, coerced or changed
    return out, coerced


_REFUSED = object()
_SURROGATE = re.compile("[\ud800-\udfff]")


def _typed(value: Any) -> tuple[Any, bool]:
    """(stored value, coerced?) by the rules documented in registry/_params.py."""
    if isinstance(value, Path):
        return str(value), True
    if value is None or isinstance(value, bool | int | float):
        return value, False
    if isinstance(value, str):
        fixed = _SURROGATE.sub("\ufffd", value)
        return (fixed, fixed != value) if len(value) <= 65_536 else (_REFUSED, False)
    scalar = (type(None), bool, int, float, str)
    if isinstance(value, list | tuple) and all(isinstance(v, scalar) for v in value):
        text = json.dumps(list(value))
        return (json.loads(text), True) if len(text) <= 65_536 else (_REFUSED, False)
    return _REFUSED, False


def test_param_trees(workspace):
    """Each tree is recorded whole, with documented coercions, or refused whole (ParamError)."""
    expected: dict[str, Any] = {"keep": "me"}
    counter = iter(range(10**6))
    with registry.start_run(workspace=workspace, params={"keep": "me"}) as run:

        @fast(120)
        @given(tree=TREES)
        def check(tree):
            prefix = f"e{next(counter)}"
            want, coerced = expected_params(prefix, tree)
            try:
                run.log_params({prefix: tree})
            except ParamError as exc:
                assert want is None, (tree, exc)
                tally("param trees", outcome_of(exc))
                return
            assert want is not None, tree
            expected.update(want)
            tally("param trees", outcome_of(None, coerced))

        check()
        for tree in CORPUS["param_trees"]:
            try:
                run.log_params({f"corpus{next(counter)}": tree})
                tally("param trees (corpus)", "accepted")
            except ParamError as exc:
                tally("param trees (corpus)", outcome_of(exc))
        run.log_metric("still", 1.0)
    record = registry.get_run(run.id, workspace=workspace)
    held = {k: v for k, v in record.params.items() if not k.startswith("corpus")}
    assert canon(held) == canon(expected)
    assert record.status == "FINISHED" and record.metrics["still"].last == 1.0


def test_colliding_param_names_are_refused(workspace):
    with registry.start_run(workspace=workspace) as run:
        for clash in ({"a.b": 1, "a": {"b": 2}}, {1: "x", "1": "y"}):
            with pytest.raises(ParamError, match="given twice"):
                run.log_params(clash)
    assert registry.get_run(run.id, workspace=workspace).params == {}


def test_nul_in_param_text_is_a_param_error_on_every_dialect(workspace):
    with registry.start_run(workspace=workspace) as run, pytest.raises(ParamError):
        run.log_params({"x": "a\x00b"})


# -- queries ------------------------------------------------------------------------------

@pytest.fixture
def watched(workspace):
    """Two runs (run-a, run-b) and every SQL statement the store sends from now on."""
    runs = {}
    for name in ("run-a", "run-b"):
        with registry.start_run("hostile", name, workspace=workspace,
                                tags={f"s{i}": s for i, s in enumerate(STRINGS[:40])
                                      if usable_name(s)}) as run:
            run.log_metric("val_acc", 0.5)
        runs[name] = run
    store = open_store(workspace.store_url)
    statements: list[str] = []

    def spy(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", spy)
    yield store, runs, statements
    event.remove(store.engine, "before_cursor_execute", spy)


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def names(workspace, query: str) -> set[str]:
    return {r.name for r in registry.search(query, limit=50, workspace=workspace).runs}


_WRITES = re.compile(r"^\s*(INSERT|UPDATE|DELETE|DROP|CREATE|ALTER|REPLACE|ATTACH|PRAGMA)", re.I)
_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                max_size=30)


def test_query_values_are_bound_never_spliced(workspace, watched):
    """A stored value, however hostile, is found by exactly the query that names it; the
    value reaches the database as a bound parameter, never as SQL text."""
    store, runs, statements = watched
    a, b = (store.resolve(runs[n].id) for n in ("run-a", "run-b"))
    counter = iter(range(10**6))

    @fast(60)
    @given(value=st.one_of(_TEXT, st.sampled_from(STRINGS[:-1])))
    def check(value):
        assume("\x00" not in value and _utf8(value))
        mark = f"zq{next(counter)}q"
        store.set_tags(a, {"probe": mark + value})
        store.set_tags(b, {"probe": mark + value + "!"})
        del statements[:]
        assert names(workspace, f"tags.probe = {quoted(mark + value)}") == {"run-a"}
        assert names(workspace, f"tags.probe ~ {quoted(mark + value)}") == {"run-a", "run-b"}
        assert names(workspace, f"name = {quoted(value)}") == {"run-a", "run-b"} & {value}
        assert not [s for s in statements if mark in s or _WRITES.match(s)], statements
        tally("query values (bound)", "correct result")

    check()


def test_hostile_queries_are_results_or_query_errors(workspace, watched):
    store, _, statements = watched
    stored = [f"tags.s{i} = {quoted(s)}" for i, s in enumerate(STRINGS[:40]) if usable_name(s)]
    for query in CORPUS["queries"] + stored:
        del statements[:]
        try:
            page = registry.search(query, limit=5, workspace=workspace)
        except QueryError as exc:
            assert 0 <= exc.position <= len(exc.query)
            tally("queries (corpus)", outcome_of(exc))
        else:
            assert len(page.runs) <= 5
            tally("queries (corpus)", "results")
            if query.startswith("tags.s"):  # a stored value: both runs hold it
                assert {r.name for r in page.runs} == {"run-a", "run-b"}, query
        assert not [s for s in statements if _WRITES.match(s)], (query, statements)
    with store.reading() as conn:
        assert {"run", "param", "tag", "metric_summary"} <= set(inspect(conn).get_table_names())
        assert conn.execute(select(func.count()).select_from(run_table)).scalar_one() == 2
    assert names(workspace, "metrics.val_acc = 0.5") == {"run-a", "run-b"}


# -- cards --------------------------------------------------------------------------------

_HTML = st.sampled_from([
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<svg onload=alert(1)>",
    "[x](javascript:alert(1))", "<iframe src=//evil>", "<style>*{}</style>", "<a href=",
    "data:text/html,<script>", "<", ">", "\"", "'", "`", "```", "\n", "# ", "---", "&#106;",
    "<b onmouseover=x>", "](", "![", "<!--", "-->", "<math>", "<object data=x>", "\\",
])
_MARKDOWN = st.lists(st.one_of(_HTML, st.text(max_size=8)), max_size=25).map("".join)


def visible(text: str) -> str:
    """Text as HTML shows it: whitespace runs as one space, NUL dropped."""
    return " ".join(text.replace("\x00", "").split())


NON_PRINTABLE = Reader.NON_PRINTABLE  # what PyYAML refuses to read


def yaml_text(text: str) -> str:
    """``text`` as a YAML double-quoted scalar (JSON's, without \\u escapes of non-ASCII)."""
    return json.dumps(text, ensure_ascii=False)


@fast(200)
@given(body=_MARKDOWN, owner=st.one_of(_HTML, st.text(max_size=30)),
       labels=st.lists(st.one_of(_HTML, st.text(max_size=10)), max_size=3))
@example(body="[a](javascript:alert(1))", owner="<script>alert(1)</script>", labels=["<b>"])
def test_card_front_matter_and_markdown_render_inert(body, owner, labels):
    front = (f"name: m\nversion: 1\nstatus: draft\nowner: {yaml_text(owner)}\n"
             f"input: {{labels: [{', '.join(map(yaml_text, labels))}]}}\n")
    assume(not NON_PRINTABLE.search(front))  # see test_a_control_character_in_front_matter...
    try:
        card = parse_card(f"---\n{front}---\n{body}")
    except CardSyntaxError as exc:
        tally("cards (front matter + Markdown)", outcome_of(exc))
        return
    html = render_html(card)
    assert_inert(html)
    shown = visible(unescape(re.sub(r"<[^>]*>", "", html.split("</table>", 1)[0])))
    for text in (card.owner or "", *card.labels):  # hostile field values shown, as text
        assert visible(text) in shown, (text, shown)
    tally("cards (front matter + Markdown)", "rendered inert")


def test_a_control_character_in_front_matter_is_a_card_syntax_error():
    with pytest.raises(CardSyntaxError, match=r"3.*does not allow"):
        parse_card('---\nname: m\nowner: "\x7f"\n---\n')


def test_a_surrogate_or_nul_escape_in_front_matter_is_refused():
    for escape in ("\\ud800", "\\x00", "\\u0000"):
        with pytest.raises(CardSyntaxError, match="NUL or a lone surrogate"):
            parse_card(f'---\nname: m\nowner: "{escape}"\n---\n')


_YAML = st.lists(st.sampled_from([
    "name: m\n", "version: 1\n", "owner: ", "a: [", "]", "{", "}", "&x ", "*x", "- ", "\n",
    ": ", "'", '"', "#", "x", "!!python/object/apply:os.system ['id']", "!!binary aGk=", "  ",
    "<script>", "\\u0000", "\t", "? ", "---", "...", "%YAML 1.1", "1e999", ".nan",
]), max_size=20).map("".join)


@fast(200)
@given(text=st.one_of(st.text(max_size=200),
                      st.tuples(_YAML, _MARKDOWN).map(lambda p: f"---\n{p[0]}\n---\n{p[1]}")))
def test_any_card_text_is_a_card_or_a_syntax_error(text):
    try:
        parse_card(text)
    except CardSyntaxError:
        tally("card text (parse)", "refused: CardSyntaxError")
    else:
        tally("card text (parse)", "parsed")


# -- artifact names and digests ----------------------------------------------------------

_PARTS = st.sampled_from(["..", ".", "", "a", "b.txt", "~", "C:", "\\", "%2e%2e", "\uff0e\uff0e",
                          "\u2025", "\u2215", "..\\..", "/", "//", "\x00", "\n", "\u202e",
                          "\udcff", "x" * 300, "sha256", ".incoming-x.tmp"])
_NAMES = st.one_of(st.text(max_size=40), st.lists(_PARTS, max_size=8).map("/".join),
                   st.lists(_PARTS, max_size=8).map("".join))


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def test_artifact_names_never_write_outside_the_root(workspace, tmp_dir):
    root = Path(workspace.artifact_root)
    (tmp_dir / "src").mkdir()
    source = tmp_dir / "src" / "f.bin"
    source.write_bytes(b"first")
    with registry.start_run(workspace=workspace) as run:
        kept = run.log_artifact(source, name="kept/first.bin")
        before = files_under(tmp_dir) - files_under(root)
        accepted: dict[str, str] = {"kept/first.bin": kept.sha256}
        counter = iter(range(10**6))

        @fast(200)
        @given(name=st.one_of(_NAMES, st.sampled_from(CORPUS["artifact_names"])))
        def check(name):
            source.write_bytes(f"blob {next(counter)}".encode())
            try:
                record = run.log_artifact(source, name=name)
            except ArtifactError as exc:
                tally("artifact names", outcome_of(exc))
                return
            clean = record.name
            parts = clean.split("/")
            assert ".." not in parts and "" not in parts and "." not in parts, clean
            assert "\\" not in clean and clean.isprintable() and len(clean) <= MAX_NAME_LENGTH
            accepted[clean] = record.sha256
            tally("artifact names", outcome_of(None, clean != name))

        check()
        for name in ("a" * 1001, "lone\udcff", "x\n../y"):  # the store would choke on these
            with pytest.raises(ArtifactError):
                run.log_artifact(source, name=name)
    # Nothing new outside the artifact root but the store and the workspace state.
    after = files_under(tmp_dir) - files_under(root)
    stray = {p for p in after - before if not p.is_relative_to(tmp_dir / "store")
             and not p.is_relative_to(tmp_dir / ".cairn")}
    assert stray == set(), stray
    assert all(re.fullmatch(r"sha256/[0-9a-f]{2}/[0-9a-f]{62}", p.relative_to(root).as_posix())
               for p in files_under(root))
    record = registry.get_run(run.id, workspace=workspace)
    assert {a.name: a.sha256 for a in record.artifacts} == accepted
    assert ArtifactStore(str(root)).open(kept.sha256).read() == b"first"


@pytest.mark.parametrize("digest", [
    "../../../../etc/passwd", "..", "/etc/passwd", "", "A" * 64, "g" * 64, "a" * 63, "a" * 65,
    "a" * 62 + "/.", "ab/../../../../etc/hostname", "a" * 64 + "\x00", None, 123,
])
def test_digests_that_are_not_sha256_never_become_paths(tmp_path, digest):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    store = ArtifactStore(str(tmp_path / "artifacts"))
    for use in (store.uri, store.open, lambda d: store.get(d, tmp_path / "out" / "x")):
        with pytest.raises(ArtifactError, match="not a sha256 digest"):
            use(digest)
        tally("artifact digests", "refused: ArtifactError")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_imported_artifact_names_and_digests_are_checked(workspace):
    """A run export naming an artifact '../../..' (which the MLflow export would write as a
    path) or a digest that is a path is refused, line by line, like any malformed record."""
    from registry.transfer.backup import import_runs

    def line(run_id: str, name: str, digest: str) -> str:
        return json.dumps({"format": "cairn.run/1", "id": run_id, "project": "p",
                           "owner": "o", "status": "FINISHED", "start_time": 1.0,
                           "artifacts": [{"name": name, "sha256": digest, "size": 1,
                                          "uri": "x", "created_time": 1.0}]})

    good = "a" * 64
    result = import_runs(open_store(workspace.store_url), [
        line("1" * 32, "../../../tmp/escape", good), line("2" * 32, "ok.bin", "../../etc"),
        line("3" * 32, "ok.bin", good)])
    assert result.imported == ["3" * 32] and len(result.errors) == 2, result
    for error in result.errors:
        tally("imported artifact references", outcome_of(error))
    tally("imported artifact references", "accepted")



def test_tags_notes_and_text_fields_hold_alike_on_every_dialect(workspace):
    """NUL and lone surrogates are replaced (with a warning) wherever text is free-form; a
    tag too long to index, or with an empty key, is a TagError; nothing set before is lost."""
    with registry.start_run(workspace=workspace, tags={"a\x00b": "v\x00"}) as run:
        run.set_tags({"ok": "kept", "bad\ud800": "x\x00y"})
        run.note("line\x00two")
        run.set_conclusion("done\x00")
        for bad in ({"": "x"}, {"k" * 251: "x"}, {"long": "v" * 1001}):
            with pytest.raises(TagError):
                run.set_tags(bad)
    record = registry.get_run(run.id, workspace=workspace)
    assert record.tags == {"a\ufffdb": "v\ufffd", "ok": "kept", "bad\ufffd": "x\ufffdy"}
    assert record.notes == "line\ufffdtwo" and record.conclusion == "done\ufffd"
    assert any("NUL" in w for w in record.warnings) and record.status == "FINISHED"
