"""A full disk under the artifact store: a small tmpfs mounted as the artifact root (the byte
limit, or the inode limit, reached). ``log_artifact`` does not raise: it spools the file and
warns on the run that the disk is full and where; the store's own calls raise an ArtifactError
saying so; no partial blob or temporary file stays; no artifact row is recorded while the blob
is not stored; the run goes on; once space is freed, the run's end stores and records what
waited, and it ends FINISHED; earlier blobs still verify. The catalog's copy of a run's
weights (``draft_from_run``) raises a DraftError saying the disk is full.

Mounting needs root (CI runs as root). Without root, run the file in a user namespace of its
own, where mounting a tmpfs is allowed (``--basetemp``: a folder the namespace's root owns)::

    unshare -rm .venv/bin/python -m pytest -p no:cacheprovider --basetemp=/tmp/disk-tests \
        tests/test_artifact_disk.py
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

import catalog
import registry
from catalog.errors import DraftError
from registry.artifacts import ArtifactStore
from registry.config import Workspace
from registry.errors import ArtifactError
from tests.test_hostile import write_figures

FIGURES: dict[str, Counter] = {"full disk": Counter()}


@pytest.fixture(scope="module", autouse=True)
def figures():
    yield
    write_figures(FIGURES)


@contextmanager
def small_disk(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``path`` (``options``: ``size=``, ``nr_inodes=``), unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root); without root run this "
                    "file under `unshare -rm` (see the module docstring)")
    path.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def fill(disk: Path) -> list[Path]:
    """Fill ``disk`` with 64 KiB ballast files until it refuses one (no bytes or no inodes
    left); the ballast, to free later."""
    ballast: list[Path] = []
    chunk = os.urandom(64 << 10)
    while True:
        path = disk / f"ballast-{len(ballast)}"
        try:
            with open(path, "wb") as out:
                ballast.append(path)
                out.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
            return ballast


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("limit", ["size=1m", "size=4m,nr_inodes=24"])
def test_a_full_disk_refuses_the_artifact_and_loses_nothing(workspace: Workspace,
                                                            tmp_path: Path, limit: str) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(200 << 10))
    first_file = tmp_path / "first.bin"
    first_file.write_bytes(os.urandom(8 << 10))
    with small_disk(tmp_path / "disk", limit) as disk:
        root = disk / "artifacts"
        ws = replace(workspace, artifact_root=str(root))
        store = ArtifactStore(str(root))
        with registry.start_run(workspace=ws, params={"lr": 0.1}) as run:
            first = run.log_artifact(first_file, name="first.bin")
            ballast = fill(disk)
            left = os.statvfs(disk)
            assert (left.f_favail if "nr_inodes" in limit else left.f_bavail) == 0
            before = files(root)
            for name in ("model/big.bin", "again/big.bin"):
                spooled = run.log_artifact(big, name=name)  # the run goes on; the file waits
                assert spooled.sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
                FIGURES["full disk"]["log_artifact: spooled, the run warned (disk full)"] += 1
            said = "\n".join(run.warnings)
            assert "disk is full" in said and str(root) in said, said
            with pytest.raises(ArtifactError, match="disk is full"):
                store.put_bytes(b"an uncommitted diff" * 1000)
            with pytest.raises(ArtifactError, match="disk is full"):
                store.get(first.sha256, disk / "copies" / "first.bin")
            FIGURES["full disk"]["put_bytes/get refused: ArtifactError (disk full)"] += 2
            assert files(root) == before  # no partial blob, no temporary file
            assert not (disk / "copies" / "first.bin").exists()
            assert [a.name for a in run.record().artifacts] == ["first.bin"]  # no row
            run.log_metric("loss", 0.5)
            run.log_params({"after_full_disk": True})
            for path in ballast:
                path.unlink()
        FIGURES["full disk"]["spooled artifacts stored at the run's end"] += 1
        record = registry.get_run(run.id, workspace=ws)
        assert record.status == "FINISHED", record.status
        assert record.params == {"lr": 0.1, "after_full_disk": True}
        assert record.metrics["loss"].last == 0.5
        assert {a.name: a.sha256 for a in record.artifacts} == {
            "first.bin": first.sha256, "model/big.bin": spooled.sha256,
            "again/big.bin": spooled.sha256}
        for name, digest, source in (("first.bin", first.sha256, first_file),
                                     ("big.bin", spooled.sha256, big)):
            copy = store.get(digest, tmp_path / "check" / name)
            assert copy.read_bytes() == source.read_bytes()
            FIGURES["full disk"]["earlier and retried blobs verified (sha256)"] += 1
        assert not [f for f in files(root) if f.endswith(".tmp")]


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_full_catalog_disk_refuses_the_weights_copy(workspace: Workspace,
                                                      tmp_path: Path) -> None:
    from tests.test_catalog_draft import finetune_run

    run_id, _ = finetune_run(workspace)
    with small_disk(tmp_path / "catalog-disk", "size=512k") as disk:
        ws = replace(workspace, catalog_dir=disk / "catalog")
        with pytest.raises(DraftError, match="disk is full") as refused:
            catalog.draft_from_run(run_id, track="none", workspace=ws)
        assert str(disk / "catalog") in str(refused.value)
        assert files(disk) == set()  # neither a partial weights file nor a card
        FIGURES["full disk"]["catalog weights copy refused: DraftError (disk full)"] += 1
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        card = catalog.draft_from_run(run_id, track="none", workspace=ws)
        weights = card.parent / "model.safetensors"
        expected = catalog.read_card(card).weights["sha256"]
        assert hashlib.sha256(weights.read_bytes()).hexdigest() == expected
        FIGURES["full disk"]["catalog weights copy after freeing space: verified"] += 1
    assert registry.get_run(run_id, workspace=workspace).status == "FINISHED"
