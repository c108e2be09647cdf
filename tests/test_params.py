"""Hyperparameters: flattening, typing and a lossless round trip, tried with hypothesis."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry._params import ParamValue, flatten_params, typed_value
from registry.errors import ParamError

keys = st.text(st.characters(codec="utf-8", categories=("L", "N", "P")), min_size=1,
               max_size=30).filter(lambda k: "." not in k)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=200))
trees = st.recursive(scalars, lambda inner: st.dictionaries(keys, inner, max_size=5),
                     max_leaves=30)


@given(st.dictionaries(keys, trees, max_size=8))
def test_every_scalar_tree_round_trips(params):
    for key, value in flatten_params(params).items():
        typed, warnings = typed_value(key, value)
        assert not warnings
        back = ParamValue(*typed).value()
        assert back == value and type(back) is type(value)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_floats_keep_their_exact_value(x):
    typed, _ = typed_value("x", x)
    back = typed.value()
    assert (math.isnan(back) and math.isnan(x)) or back == x
    assert typed.number == (x if math.isfinite(x) else None)


@given(st.integers())
def test_numbers_stay_numbers_for_range_queries(n):
    typed, _ = typed_value("n", n)
    assert typed.vtype == "int" and typed.value() == n
    assert typed.number is None or typed.number == float(n)


def test_configs_of_many_shapes_flatten_to_dotted_keys():
    class Colour(enum.Enum):
        RED = "red"

    @dataclasses.dataclass
    class Optim:
        lr: float = 0.1
        betas: tuple = (0.9, 0.999)

    ns = argparse.Namespace(epochs=3, out=Path("/tmp/x"), colour=Colour.RED)
    flat = flatten_params({"optim": Optim(), "args": vars(ns), "nested": {"a": {"b": 1}}})
    assert flat == {"optim.lr": 0.1, "optim.betas": (0.9, 0.999), "args.epochs": 3,
                    "args.out": Path("/tmp/x"), "args.colour": Colour.RED, "nested.a.b": 1}
    assert typed_value("args.out", Path("/tmp/x"))[0].value() == "/tmp/x"
    assert typed_value("args.colour", Colour.RED)[0].value() == "red"
    assert typed_value("optim.betas", (0.9, 0.999))[0].value() == [0.9, 0.999]
    assert flatten_params(ns) == {"epochs": 3, "out": Path("/tmp/x"), "colour": Colour.RED}


def test_numpy_and_torch_scalars_become_numbers():
    import torch

    assert typed_value("x", torch.tensor(0.5))[0] == ParamValue("float", "0.5", 0.5)
    assert typed_value("n", torch.tensor(3))[0] == ParamValue("int", "3", 3.0)


@pytest.mark.parametrize("value", [object(), {1, 2}, [object()], b"bytes", lambda: 1])
def test_values_that_cannot_be_recorded(value):
    with pytest.raises(ParamError):
        typed_value("k", value)


@pytest.mark.parametrize("key", ["", "x" * 251, "new\nline", "bad\udcff"])
def test_bad_keys(key):
    with pytest.raises(ParamError):
        typed_value(key, 1)


def test_a_non_mapping_config_is_a_clear_error():
    with pytest.raises(ParamError, match="expected a mapping"):
        flatten_params([1, 2, 3])
