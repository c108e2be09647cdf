"""Hostile weights files: the catalog loads safetensors only, checks their sha256 first and
never unpickles anything. Pickles carry a ``__reduce__`` payload that would write a sentinel
file: it must never exist. Every public way in is tried: ``catalog.load``, ``zoo.create``
(with the card's weights and with ``weights=``), ``zoo.info`` and ``catalog.validate``.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import catalog
import zoo
from catalog._card import parse_card
from catalog._weights import read_header
from catalog.errors import CardSyntaxError, WeightsIntegrityError
from registry.config import Workspace
from registry.errors import CairnError
from tests.test_catalog_draft import CLASSES, save_weights, tiny_model
from tests.test_hostile import fast, figures, tally

__all__ = ["figures"]  # the module's figures fixture (tests/test_hostile.py), used here too

sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)

CARD = """---
name: w
version: 1
status: draft
backbone: test_resnet
weights: {{path: {path}, sha256: {sha}}}
input: {{size: 64, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], labels: {labels}}}
---
# w
"""


class Payload:
    """Unpickling this writes ``sentinel``: the proof that a pickle was loaded."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return exec, (f"open({self.sentinel!r}, 'w').write('pwned')",)


@pytest.fixture
def shelf(workspace: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The card folder ``w`` in the workspace catalog, a genuine weights file, the sentinel,
    and a record of every call to pickle's and torch's loaders."""
    import torch

    monkeypatch.setenv("CAIRN_STORE", workspace.store_url)
    monkeypatch.setenv("CAIRN_CATALOG", str(workspace.catalog_dir))
    folder = workspace.catalog_dir / "w"
    folder.mkdir(parents=True)
    genuine = save_weights(tiny_model(CLASSES), tmp_path / "genuine.safetensors", CLASSES)
    calls: list[str] = []
    for owner, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"),
                        (torch, "load")):
        monkeypatch.setattr(owner, name, _spy(getattr(owner, name), f"{owner.__name__}.{name}",
                                              calls))
    return folder, genuine.read_bytes(), tmp_path / "pwned", calls


def _spy(real: Callable, name: str, calls: list[str]) -> Callable:
    def spy(*args, **kwargs):
        calls.append(name)
        return real(*args, **kwargs)

    return spy


def write_card(folder: Path, rel: str, data: bytes | None, sha: str | None = None) -> None:
    if data is not None:
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    sha = sha or hashlib.sha256(data or b"").hexdigest()
    (folder / "README.md").write_text(CARD.format(path=json.dumps(rel), sha=sha,
                                                  labels=json.dumps(CLASSES)))


def every_loader(ws: Workspace, weights: Path | None = None) -> list[str]:
    """What each public way of loading card ``w`` did: "loaded" or the error's class."""
    ways = [lambda: catalog.load("w", workspace=ws),
            lambda: zoo.create("catalog:w", num_classes=3)]
    if weights is not None:
        ways = [lambda: zoo.create("catalog:w", num_classes=3, weights=weights)]
    outcomes = []
    for load in ways:
        try:
            load()
        except CairnError as exc:
            outcomes.append(type(exc).__name__)
        else:
            outcomes.append("loaded")
    zoo.info("catalog:w")  # reads the header only; never raises for bad weights
    catalog.validate(ws.catalog_dir / "w" / "README.md", workspace=ws, check_runs_exist=False)
    return outcomes


def pickled(sentinel: Path) -> bytes:
    return pickle.dumps({"fc.weight": Payload(sentinel)})


def torch_zip(sentinel: Path, tmp: Path) -> bytes:
    import torch

    torch.save({"fc.weight": Payload(sentinel)}, tmp / "ckpt.zip")
    return (tmp / "ckpt.zip").read_bytes()


def header_file(header: object, length: int | None = None, tail: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + tail


def test_the_payload_is_armed(tmp_path: Path) -> None:
    """Unpickling the payload does write the sentinel: its absence below means something."""
    sentinel, blob = tmp_path / "armed", tmp_path / "payload.pkl"
    blob.write_bytes(pickled(sentinel))
    subprocess.run([sys.executable, "-c", "import pickle, sys; "
                    "pickle.loads(open(sys.argv[1], 'rb').read())", str(blob)], check=True)
    assert sentinel.read_text() == "pwned"


@sqlite_only
def test_genuine_weights_load_everywhere(shelf, workspace: Workspace) -> None:
    folder, genuine, sentinel, calls = shelf
    write_card(folder, "model.safetensors", genuine)
    assert every_loader(workspace) == ["loaded", "loaded"]
    assert calls == [] and not sentinel.exists()


CORPUS = {
    # name: (weights.path, bytes maker(genuine, sentinel, tmp), sha256 the card gives)
    "pickle .pt": ("model.pt", lambda g, s, t: pickled(s), None),
    "torch zip .pth": ("model.pth", lambda g, s, t: torch_zip(s, t), None),
    "pickle .bin": ("pytorch_model.bin", lambda g, s, t: pickled(s), None),
    "pickle .ckpt": ("last.ckpt", lambda g, s, t: pickled(s), None),
    "pickle named .safetensors": ("model.safetensors", lambda g, s, t: pickled(s), None),
    "torch zip named .safetensors": ("model.safetensors", lambda g, s, t: torch_zip(s, t),
                                     None),
    "upper-case suffix": ("MODEL.SAFETENSORS", lambda g, s, t: g, None),
    "sha256 mismatch": ("model.safetensors", lambda g, s, t: g, "0" * 64),
    "sha256 of other weights": ("model.safetensors", lambda g, s, t: g, "a" * 64),
    "truncated data": ("model.safetensors", lambda g, s, t: g[: len(g) // 2], None),
    "truncated header": ("model.safetensors", lambda g, s, t: g[:40], None),
    "empty file": ("model.safetensors", lambda g, s, t: b"", None),
    "garbage": ("model.safetensors", lambda g, s, t: bytes(range(256)) * 8, None),
    "length 2**64-1": ("model.safetensors", lambda g, s, t: header_file({}, 2**64 - 1), None),
    "length past the file": ("model.safetensors", lambda g, s, t: header_file({}, 10**6), None),
    "length 100 MiB + 1": ("model.safetensors",
                           lambda g, s, t: header_file({}, (100 << 20) + 1), None),
    "nested JSON bomb": ("model.safetensors",
                         lambda g, s, t: header_file(b"[" * 100_000 + b"]" * 100_000), None),
    "shape is text": ("model.safetensors", lambda g, s, t: header_file(
        {"fc.weight": {"dtype": "F32", "shape": "abc", "data_offsets": [0, 0]}}), None),
    "metadata is a list": ("model.safetensors",
                           lambda g, s, t: header_file({"__metadata__": [1, 2]}), None),
    "header is a list": ("model.safetensors", lambda g, s, t: header_file([1, 2]), None),
    "offsets past the end": ("model.safetensors", lambda g, s, t: header_file(
        {"fc.weight": {"dtype": "F32", "shape": [3, 512], "data_offsets": [0, 6144]}}), None),
    "not UTF-8 header": ("model.safetensors", lambda g, s, t: header_file(b"\xff\xfe{}"), None),
    "absolute path": ("/etc/hostname.safetensors", None, "0" * 64),
    "path leaves the folder": ("../outside/model.safetensors", lambda g, s, t: g, None),
    "NUL in the path": ("model\x00.safetensors", None, "0" * 64),
    "a folder": ("dir.safetensors/", None, "0" * 64),
    "missing": ("gone.safetensors", None, "0" * 64),
}


@sqlite_only
@pytest.mark.parametrize("case", sorted(CORPUS))
def test_hostile_weights_are_refused_and_never_unpickled(shelf, workspace: Workspace,
                                                         tmp_path: Path, case: str) -> None:
    folder, genuine, sentinel, calls = shelf
    rel, make, sha = CORPUS[case]
    data = make(genuine, sentinel, tmp_path) if make else None
    if case == "a folder":
        (folder / "dir.safetensors").mkdir()
    write_card(folder, rel, data, sha)
    if case == "NUL in the path":  # the card itself is refused: no loader reaches the path
        with pytest.raises(CardSyntaxError, match="NUL"):
            parse_card((folder / "README.md").read_text(encoding="utf-8"))
        assert calls == [] and not sentinel.exists()
        tally("weights files (corpus)", "refused: CardSyntaxError")
        return
    outcomes = every_loader(workspace)
    assert "loaded" not in outcomes, outcomes
    assert set(outcomes) <= {"WeightsIntegrityError", "WeightsMissingError",
                             "WeightsMismatchError", "WeightsNotFoundError"}, outcomes
    # The same bytes given as ``weights=`` to a card with genuine weights: refused as well.
    if data is not None and data != genuine:
        other = tmp_path / "given" / Path(rel).name
        other.parent.mkdir()
        other.write_bytes(data)
        write_card(folder, "model.safetensors", genuine)
        outcomes += every_loader(workspace, weights=other)
        assert outcomes[-1] == "WeightsMismatchError", outcomes
    assert calls == [] and not sentinel.exists()
    for outcome in outcomes:
        tally("weights files (corpus)", f"refused: {outcome}")


@sqlite_only
def test_a_symlink_out_of_the_card_folder_is_refused(shelf, workspace: Workspace,
                                                     tmp_path: Path) -> None:
    folder, genuine, sentinel, calls = shelf
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(genuine)
    (folder / "model.safetensors").symlink_to(outside)
    write_card(folder, "model.safetensors", None, hashlib.sha256(genuine).hexdigest())
    assert every_loader(workspace) == ["WeightsIntegrityError", "WeightsMismatchError"]
    assert calls == [] and not sentinel.exists()
    tally("weights files (corpus)", "refused: WeightsIntegrityError")


@pytest.mark.parametrize("length", [2**64 - 1, 2**40, (100 << 20), 10**6])
def test_a_huge_header_length_allocates_nothing(tmp_path: Path, length: int) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(header_file({}, length))
    tracemalloc.start()
    try:
        with pytest.raises(WeightsIntegrityError, match="header claims"):
            read_header(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


_ENTRY = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "F16", "I64", "BOOL", "X9", ""]),
    "shape": st.one_of(st.lists(st.integers(-2, 600), max_size=3), st.text(max_size=3)),
    "data_offsets": st.lists(st.integers(-1, 10**6), max_size=3),
})
_HEADERS = st.dictionaries(st.one_of(st.sampled_from(["fc.weight", "__metadata__"]),
                                     st.text(max_size=8)),
                           st.one_of(_ENTRY, st.integers(), st.text(max_size=3),
                                     st.dictionaries(st.text(max_size=3), st.text(max_size=3))),
                           max_size=3)
_FILES = st.one_of(
    st.binary(max_size=64),
    st.builds(header_file, _HEADERS, st.one_of(st.none(), st.integers(0, 2**64 - 1)),
              st.binary(max_size=64)),
)


@sqlite_only
def test_any_bytes_are_a_header_or_a_typed_error(shelf, workspace: Workspace,
                                                 tmp_path: Path) -> None:
    """Random and mutated files through the header reader and ``zoo.create(weights=)``."""
    folder, genuine, sentinel, calls = shelf
    write_card(folder, "model.safetensors", genuine)
    path = tmp_path / "fuzz.safetensors"
    mutated = st.tuples(st.integers(0, len(genuine) - 1), st.binary(min_size=1, max_size=4))
    header_end = 8 + struct.unpack("<Q", genuine[:8])[0]

    @fast(60)
    @given(data=st.one_of(
        _FILES, mutated.map(lambda m: genuine[:m[0]] + m[1] + genuine[m[0] + len(m[1]):]),
        mutated.map(lambda m: genuine[:m[0] % header_end] + m[1]
                    + genuine[m[0] % header_end + len(m[1]):])))
    @example(data=genuine[: len(genuine) - 7])
    def check(data: bytes) -> None:
        path.write_bytes(data)
        try:
            read_header(path, "w@1")
        except WeightsIntegrityError as exc:
            tally("weights files (hypothesis, header)", f"refused: {type(exc).__name__}")
        else:
            tally("weights files (hypothesis, header)", "parsed")
        outcome = every_loader(workspace, weights=path)[0]
        assert outcome in ("loaded", "WeightsMismatchError"), outcome
        tally("weights files (hypothesis, load)",
              "loaded" if outcome == "loaded" else f"refused: {outcome}")

    check()
    assert calls == [] and not sentinel.exists()
