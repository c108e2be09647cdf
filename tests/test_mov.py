"""Measured organisational value: definitions, measurements, progress and ``cairn mov``."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import assume, given
from hypothesis import strategies as st

import registry
from registry._mov_entities import progress_of
from registry.cli.mov import mov, progress_bar
from registry.config import Workspace
from registry.errors import ConfigError, MovError
from registry.knowledge.mov import (
    MovDefinition,
    MovMeasurement,
    define_mov,
    list_movs,
    log_mov,
    make_definition,
    mov_progress,
    record_mov,
    sync_definitions,
)
from registry.store import open_store

ESCAPE = {"unit": "ppm", "direction": "lower", "baseline": 420, "target": 100,
          "stakeholder": "Quality, plant 3",
          "description": "Defective parts that reach the customer"}
MINUTES = {"unit": "min/shift", "direction": "higher", "baseline": 0, "target": 90}
CONFIG = """
[projects.defects]
description = "Scratch and dent detection on line 3"

[projects.defects.mov.escape_rate]
unit = "ppm"
direction = "lower"
baseline = 420
target = 100
stakeholder = "Quality, plant 3"
description = "Defective parts that reach the customer"

[projects.defects.mov.minutes_saved]
unit = "min/shift"
direction = "higher"
baseline = 0
target = 90
"""


@pytest.fixture
def ws(workspace: Workspace, tmp_path: Path) -> Workspace:
    """The test workspace with two MoV definitions declared in its configuration."""
    projects = {"defects": {"mov": {"escape_rate": ESCAPE, "minutes_saved": MINUTES}}}
    return replace(workspace, projects=projects, config_file=tmp_path / "cairn.toml")


def _count(store, table) -> int:
    from sqlalchemy import func, select

    with store.reading() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# -- definitions --------------------------------------------------------------------------------


def test_config_definitions_are_synced_once(ws):
    from registry.store.schema import mov_definition

    store = open_store(ws.store_url)
    synced = sync_definitions(store, ws)
    assert {d.name for d in synced} == {"escape_rate", "minutes_saved"}
    assert sync_definitions(store, ws) is synced  # remembered: no second write
    listed = list_movs("defects", workspace=ws)
    assert [d.name for d in listed] == ["escape_rate", "minutes_saved"]
    assert listed[0] == MovDefinition(project="defects", name="escape_rate", **ESCAPE)
    assert _count(store, mov_definition) == 2


def test_define_mov_upserts(workspace):
    define_mov("vision", "top1", unit="%", direction="higher", baseline=71, target=80,
               workspace=workspace)
    again = define_mov("vision", "top1", unit="%", direction="higher", baseline=71, target=85,
                       stakeholder="Research lead", workspace=workspace)
    assert list_movs(workspace=workspace) == [again]
    assert again.target == 85.0 and again.stakeholder == "Research lead"


def test_define_mov_refuses_to_change_a_configured_definition(ws):
    with pytest.raises(MovError, match=r"declared in .*cairn.toml.*change it there"):
        define_mov("defects", "escape_rate", **{**ESCAPE, "target": 50}, workspace=ws)
    assert define_mov("defects", "escape_rate", **ESCAPE, workspace=ws).target == 100


@pytest.mark.parametrize(("change", "message"), [
    ({"direction": "up"}, "direction must be 'higher' or 'lower'"),
    ({"baseline": math.nan}, "baseline must be a finite number, not nan"),
    ({"target": math.inf}, "target must be a finite number, not inf"),
    ({"target": True}, "target must be a number, not a bool"),
    ({"baseline": "420"}, "baseline must be a number, not text"),
    ({"target": 420}, "target equals the baseline"),
    ({"target": 500}, "target 500 must be below the baseline 420 when lower is better"),
    ({"direction": "higher"}, "target 100 must be above the baseline 420 when higher is better"),
    ({"unit": " "}, "unit must be printable, non-empty text"),
])
def test_definition_validation(workspace, change, message):
    with pytest.raises(MovError, match=message) as caught:
        define_mov("defects", "escape_rate", **{**ESCAPE, **change}, workspace=workspace)
    assert str(caught.value).startswith("MoV 'escape_rate': ")


@pytest.mark.parametrize(("spec", "message"), [
    ({**ESCAPE, "target": 500}, "must be below the baseline"),
    ({**ESCAPE, "colour": "red"}, "unknown key 'colour'"),
    ({"unit": "ppm"}, "missing direction, baseline, target"),
    ("ppm", "must be a table"),
])
def test_config_definition_errors_say_where(workspace, spec, message):
    bad = replace(workspace, projects={"defects": {"mov": {"escape_rate": spec}}})
    with pytest.raises(MovError, match=message) as caught:
        list_movs(workspace=bad)
    assert "[projects.defects.mov.escape_rate]" in str(caught.value)


def test_config_mov_must_be_a_table(workspace):
    with pytest.raises(ConfigError, match=r"projects\.defects\.mov must be a table"):
        list_movs(workspace=replace(workspace, projects={"defects": {"mov": 3}}))


# -- measurements -------------------------------------------------------------------------------


def test_measurement_from_a_run(ws):
    store = open_store(ws.store_url)
    with registry.start_run(project="defects", name="r18", workspace=ws) as run:
        m = log_mov(store, run_pk=run._pk, project="defects", name="escape_rate", value=310,
                    evidence="https://qa.example.com/reports/w18", who="ana", unit="ppm",
                    workspace=ws)
    assert m == MovMeasurement(project="defects", name="escape_rate", value=310.0, unit="ppm",
                               who="ana", time=m.time, evidence=m.evidence, run_id=run.id)
    [progress] = [p for p in mov_progress("defects", workspace=ws) if p.name == "escape_rate"]
    assert progress.measurements == [m]
    store.delete_run(run._pk)  # the measurement outlives its run
    [kept] = mov_progress("defects", workspace=ws)[0].measurements
    assert kept.run_id is None and kept.value == 310.0


def test_measurement_without_a_run(ws):
    m = record_mov("defects", "minutes_saved", 12.5, evidence="shift log, line 3",
                   when=datetime(2024, 5, 6, 14, 0), workspace=ws)
    assert m.who == "tester" and m.run_id is None and m.unit == "min/shift"
    assert m.time == datetime(2024, 5, 6, 14, 0).timestamp()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "escape"}, r"MoV 'escape': not defined for project 'defects' "
                         r"\(defined: escape_rate, minutes_saved\)"),
    ({"project": "vision"}, r"project 'vision' defines no MoV; declare "
                            r"\[projects.vision.mov.escape_rate\]"),
    ({"unit": "%"}, "is measured in 'ppm', not '%'"),
    ({"value": math.nan}, "value must be a finite number, not nan"),
    ({"value": -math.inf}, "value must be a finite number, not -inf"),
    ({"value": True}, "value must be a number, not a bool"),
    ({"value": "310"}, "value must be a number, not text"),
    ({"value": None}, "value must be a number, not NoneType"),
])
def test_measurement_errors(ws, kwargs, message):
    store = open_store(ws.store_url)
    args = {"run_pk": None, "project": "defects", "name": "escape_rate", "value": 310.0,
            "who": "ana", "workspace": ws, **kwargs}
    with pytest.raises(MovError, match=message) as caught:
        log_mov(store, **args)
    if "defined:" in message:
        assert caught.value.defined == ["escape_rate", "minutes_saved"]
    assert mov_progress(workspace=ws)[0].count == 0


# -- progress -----------------------------------------------------------------------------------


def test_progress_lower_is_better(ws):
    for day, value in [(1, 400), (2, 250), (3, 300), (4, 180)]:
        record_mov("defects", "escape_rate", value, when=datetime(2024, 5, day), workspace=ws)
    p = mov_progress("defects", workspace=ws)[0]
    assert (p.name, p.count, p.best, p.latest) == ("escape_rate", 4, 180.0, 180.0)
    assert p.percent_to_target == pytest.approx((180 - 420) / (100 - 420) * 100)  # 75%
    assert [best for _, best in p.history] == [400.0, 250.0, 250.0, 180.0]
    assert p.best_time == p.latest_time == datetime(2024, 5, 4).timestamp()
    assert json.loads(json.dumps(p.to_dict()))["history"][1][1] == 250.0


def test_progress_higher_is_better_and_beyond_target(ws):
    for day, value in [(3, 95), (1, 30), (2, 120), (4, 60)]:  # recorded out of order
        record_mov("defects", "minutes_saved", value, when=datetime(2024, 5, day), workspace=ws)
    p = mov_progress("defects", workspace=ws)[1]
    assert [m.value for m in p.measurements] == [30.0, 120.0, 95.0, 60.0]
    assert [best for _, best in p.history] == [30.0, 120.0, 120.0, 120.0]
    assert (p.best, p.latest, p.percent_to_target) == (120.0, 60.0, pytest.approx(133.333333))
    assert p.best_time == datetime(2024, 5, 2).timestamp()


def test_progress_without_measurements(ws):
    empty = mov_progress(workspace=ws)
    assert [(p.count, p.best, p.latest, p.percent_to_target, p.history) for p in empty] == [
        (0, None, None, None, [])] * 2
    assert mov_progress("nothing-here", workspace=ws) == []


# Eighths: exact in binary, so the signs asserted below do not hinge on rounding.
finite = st.integers(-(10**7), 10**7).map(lambda i: i / 8)


@given(baseline=finite, target=finite, values=st.lists(finite, min_size=1, max_size=20),
       direction=st.sampled_from(["higher", "lower"]))
def test_percent_to_target_properties(baseline, target, values, direction):
    assume(target != baseline and (target > baseline) == (direction == "higher"))
    definition = make_definition("p", "m", unit="u", direction=direction, baseline=baseline,
                                 target=target)
    points = [MovMeasurement("p", "m", v, "u", "w", float(i)) for i, v in enumerate(values)]
    p = progress_of(definition, points)
    best = max(values) if direction == "higher" else min(values)
    assert p.best == best and p.count == len(values) and p.latest == values[-1]
    assert p.percent_to_target == pytest.approx((best - baseline) / (target - baseline) * 100)
    assert (p.percent_to_target >= 100) == (best >= target if direction == "higher"
                                            else best <= target)
    assert (p.percent_to_target > 0) == (best != baseline and (best > baseline) ==
                                         (direction == "higher"))
    bests = [b for _, b in p.history]
    assert bests == sorted(bests, reverse=direction == "lower") and bests[-1] == best


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def cairn(workspace, tmp_path, monkeypatch):
    config = tmp_path / "cairn.toml"
    config.write_text('owner = "ana"\n' + CONFIG)
    monkeypatch.setenv("CAIRN_CONFIG", str(config))
    monkeypatch.setenv("CAIRN_STORE", workspace.store_url)
    monkeypatch.setenv("CAIRN_ARTIFACTS", workspace.artifact_root)
    runner = CliRunner()
    return lambda *args: runner.invoke(mov, list(args))


def test_cli_status_record_define_list(cairn):
    before = cairn("status")
    assert before.exit_code == 0 and "project defects" in before.output
    recorded = cairn("record", "defects", "escape_rate", "310", "--evidence", "QA report W18")
    assert "escape_rate = 310 ppm; best 310, [###-------] 34% of the way" in recorded.output
    assert cairn("record", "defects", "minutes_saved", "-5").exit_code == 0
    status = cairn("status", "defects")
    today = datetime.now().strftime("%Y-%m-%d")
    row = next(line for line in status.output.splitlines() if line.startswith("escape_rate"))
    assert row.split() == ["escape_rate", "ppm", "420", "<=", "100", "310", "[###-------]",
                           "34%", "310", today, "1", "Quality,", "plant", "3"]
    assert "[----------] -6%" in status.output
    defined = cairn("define", "vision", "top1", "--unit", "%", "--direction", "higher",
                    "--baseline", "71", "--target", "80", "--stakeholder", "Research lead")
    assert defined.output == "defined vision/top1: 71 -> 80 %, higher is better\n"
    listing = cairn("list").output
    assert "escape_rate" in listing and "Research lead" in listing
    assert "project vision" in cairn("status").output
    assert "escape_rate" not in cairn("list", "vision").output


def test_cli_errors_are_one_line(cairn):
    unknown = cairn("record", "defects", "escape", "3")
    assert unknown.exit_code == 1
    assert "Error: MoV 'escape': not defined for project 'defects' (defined: escape_rate, " \
           "minutes_saved)" in unknown.output
    assert "finite number, not nan" in cairn("record", "defects", "escape_rate", "nan").output
    wrong = cairn("define", "vision", "top1", "--unit", "%", "--direction", "higher",
                  "--baseline", "80", "--target", "71")
    assert wrong.exit_code == 1 and "must be above the baseline 80" in wrong.output
    assert "no MoV defined" in cairn("list", "vision").output


@pytest.mark.parametrize(("percent", "bar"), [
    (None, "-"), (0, "[----------] 0%"), (52, "[#####-----] 52%"), (99.6, "[#########-] 100%"),
    (100, "[##########] 100%"), (250, "[##########] 250%"), (-20, "[----------] -20%"),
])
def test_progress_bar(percent, bar):
    assert progress_bar(percent) == bar
