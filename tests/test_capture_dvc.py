"""Data-version capture against real git + DVC repositories built with the dvc CLI in tmp_path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import yaml

from registry.capture import _datastate
from registry.capture import dvc as capture_dvc
from registry.capture._dvcconfig import read_config
from registry.capture.dvc import DataVersion, capture_data, stage_deps

PAST = time.time() - 3600  # older than the stat cache's racy window

PREP = """\
import pathlib
out = pathlib.Path("features")
out.mkdir(exist_ok=True)
for src in sorted(pathlib.Path("data/train").rglob("*.png")):
    (out / (src.stem + ".npy")).write_bytes(src.read_bytes()[::-1])
"""

PROBE = """\
import json, os, sys
from registry.capture.dvc import stage_deps
versions, warnings = stage_deps(state_dir={state_dir!r})
with open(sys.argv[1], "w") as fobj:
    json.dump({{"stage": os.environ.get("DVC_STAGE"), "root": os.environ.get("DVC_ROOT"),
               "deps": [v.to_dict() for v in versions], "warnings": warnings}}, fobj)
"""

PIPELINE = {
    "stages": {
        "prep": {
            "cmd": f'"{sys.executable}" prep.py',
            "deps": ["prep.py", "data/train"],
            "outs": ["features"],
        },
    }
}

SUB_PIPELINE = {
    "stages": {
        "probe": {
            "cmd": f'"{sys.executable}" probe.py probe.json',
            "deps": ["probe.py", "../features", "../data/train/cls_a", "../models/base.bin"],
            "outs": [{"probe.json": {"cache": False}}],
        },
        "scan": {  # a foreach stage: its deps are templated in dvc.yaml
            "foreach": ["train"],
            "do": {
                "cmd": f'"{sys.executable}" probe.py scan-${{item}}.json',
                "deps": ["probe.py", "../data/${item}"],
                "outs": [{"scan-${item}.json": {"cache": False}}],
            },
        },
    }
}


def run(cwd: Path, *args: str) -> str:
    """Run a command in a test repository: no DVC analytics, no user or system config."""
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
        "DVC_GLOBAL_CONFIG_DIR": str(cwd.parent / "dvc-global"),
        "DVC_SYSTEM_CONFIG_DIR": str(cwd.parent / "dvc-system"),
        "DVC_SITE_CACHE_DIR": str(cwd.parent / "dvc-site"),
    }
    env.pop("DVC_STAGE", None)
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def dvc(cwd: Path, *args: str) -> str:
    return run(cwd, sys.executable, "-m", "dvc", *args)


def age(folder: Path) -> None:
    """Backdate every file so the stat cache may remember its md5."""
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (PAST, PAST))


def init_repo(root: Path, remote: bool = True) -> Path:
    """An empty git + DVC repository, with a default local remote if asked."""
    root.mkdir(parents=True)
    run(root, "git", "init", "-q")
    run(root, "git", "config", "user.name", "Tester")
    run(root, "git", "config", "user.email", "tester@example.com")
    dvc(root, "init", "-q")
    if remote:
        dvc(root, "remote", "add", "-d", "storage", str(root.parent / f"{root.name}-remote"))
    return root


def write_dataset(folder: Path) -> None:
    """A small image-classification folder, with a non-ASCII name and a CRLF text file."""
    for cls, count in (("cls_a", 3), ("cls_b", 2)):
        (folder / cls).mkdir(parents=True)
        for i in range(count):
            (folder / cls / f"{i}.png").write_bytes(os.urandom(200 + i))
    (folder / "labels ünï.txt").write_text("a\nb\n", encoding="utf-8")
    (folder / "crlf.txt").write_bytes(b"x\r\ny\r\n")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/train and models/base.bin added with `dvc add`; pipelines in dvc.yaml (prep:
    data/train -> features) and pipelines/dvc.yaml (probe, scan@train: run stage_deps()),
    reproduced once, then probe and scan@train once more with their dvc.lock entries."""
    root = init_repo(tmp_path_factory.mktemp("dvc") / "repo")
    write_dataset(root / "data" / "train")
    (root / "models").mkdir()
    (root / "models" / "base.bin").write_bytes(os.urandom(1000))
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("untracked\n")
    age(root / "data")
    age(root / "models")
    dvc(root, "add", "-q", "data/train", "models/base.bin")
    (root / "prep.py").write_text(PREP)
    (root / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE))
    (root / "pipelines").mkdir()
    state = str(root.parent / "stage-state")
    (root / "pipelines" / "probe.py").write_text(PROBE.format(state_dir=state))
    (root / "pipelines" / "dvc.yaml").write_text(yaml.safe_dump(SUB_PIPELINE))
    dvc(root, "repro", "-q", "pipelines/dvc.yaml")
    for name in ("probe", "scan-train"):
        first = (root / "pipelines" / f"{name}.json").read_text()
        (root / f"{name}-first.json").write_text(first)
    dvc(
        root, "repro", "-q", "-f", "-s", "pipelines/dvc.yaml:probe", "pipelines/dvc.yaml:scan@train"
    )
    return root


@pytest.fixture
def work(repo: Path, tmp_path: Path) -> Path:
    """A private copy of the module's repository, free to modify."""
    return Path(shutil.copytree(repo, tmp_path / "repo", symlinks=True))


@pytest.fixture(autouse=True)
def outside_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DVC_STAGE", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)


def dvc_out(dvcfile: Path) -> dict:
    return yaml.safe_load(dvcfile.read_text())["outs"][0]


def lock_out(lock: Path, stage: str) -> dict:
    return yaml.safe_load(lock.read_text())["stages"][stage]["outs"][0]


def capture(root: Path, path: str, tmp_path: Path) -> tuple[DataVersion, list[str]]:
    return capture_data(path, cwd=root, state_dir=tmp_path / "state")


# --- what DVC recorded ----------------------------------------------------------------------


def test_tracked_folder_matches_its_dvc_file(repo: Path, tmp_path: Path) -> None:
    version, warnings = capture(repo, "data/train", tmp_path)
    recorded = dvc_out(repo / "data" / "train.dvc")
    assert warnings == []
    assert version.path == "data/train" and version.tracked
    assert version.hash == recorded["md5"] and version.hash.endswith(".dir")
    assert (version.hash_kind, version.size, version.nfiles) == ("md5", recorded["size"], 7)
    assert version.remote == str(repo.parent / "repo-remote")
    assert version.source == "data/train.dvc"
    assert (version.dirty, version.dirty_check) == (False, "hashed")
    assert capture(repo, "data/train", tmp_path)[0].dirty_check == "stat-cache"


def test_manifest_layout_is_dvc3(repo: Path) -> None:
    md5 = dvc_out(repo / "data" / "train.dvc")["md5"]
    manifest = repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    entries = json.loads(manifest.read_text())
    assert {e["relpath"] for e in entries} >= {"cls_a/0.png", "labels ünï.txt", "crlf.txt"}


def test_file_output(repo: Path, tmp_path: Path) -> None:
    version, warnings = capture(repo, repo / "models" / "base.bin", tmp_path)
    recorded = dvc_out(repo / "models" / "base.bin.dvc")
    assert warnings == []
    assert (version.path, version.hash, version.size) == ("models/base.bin", recorded["md5"], 1000)
    assert (version.nfiles, version.source, version.dirty) == (1, "models/base.bin.dvc", False)


def test_stage_output_from_dvc_lock(repo: Path, tmp_path: Path) -> None:
    version, warnings = capture(repo, "features", tmp_path)
    assert warnings == []
    assert version.tracked and version.source == "dvc.lock"
    assert version.hash == lock_out(repo / "dvc.lock", "prep")["md5"]
    assert (version.nfiles, version.dirty) == (3, False)  # stems 0, 1, 2


def test_relative_to_cwd_and_dvc_file_named(repo: Path, tmp_path: Path) -> None:
    by_cwd, _ = capture_data("train", cwd=repo / "data", state_dir=tmp_path)
    by_dvcfile, _ = capture_data("data/train.dvc", cwd=repo, state_dir=tmp_path)
    assert by_cwd.path == by_dvcfile.path == "data/train"
    assert by_cwd.hash == by_dvcfile.hash


def test_path_inside_tracked_folder(repo: Path, tmp_path: Path) -> None:
    version, warnings = capture(repo, "data/train/cls_a", tmp_path)
    assert version.path == "data/train" and version.source == "data/train.dvc"
    assert version.hash == dvc_out(repo / "data" / "train.dvc")["md5"]
    assert len(warnings) == 1 and "data/train/cls_a is inside data/train" in warnings[0]


def test_untracked_path(repo: Path, tmp_path: Path) -> None:
    version, warnings = capture(repo, "notes", tmp_path)
    assert (version.path, version.tracked, version.hash, version.dirty) == (
        "notes",
        False,
        None,
        None,
    )
    assert warnings == ["notes is not tracked by DVC (no notes.dvc or dvc.lock output)"]


def test_outside_any_dvc_repo(tmp_path: Path) -> None:
    (tmp_path / "loose").mkdir()
    version, warnings = capture_data(tmp_path / "loose", state_dir=tmp_path)
    assert version.path == (tmp_path / "loose").as_posix() and not version.tracked
    assert "not inside a DVC repository" in warnings[0]


def test_remote_from_config_local_and_own_remote(work: Path, tmp_path: Path) -> None:
    config = work / ".dvc" / "config.local"
    config.write_text("[core]\n    remote = fast\n['remote \"fast\"']\n    url = s3://bucket/dvc\n")
    assert capture(work, "data/train", tmp_path)[0].remote == "s3://bucket/dvc"
    dvcfile = work / "models" / "base.bin.dvc"
    data = yaml.safe_load(dvcfile.read_text())
    data["outs"][0]["remote"] = "storage"
    dvcfile.write_text(yaml.safe_dump(data))
    url = capture(work, "models/base.bin", tmp_path)[0].remote
    assert url is not None and url.endswith("/repo-remote")


def test_relative_local_remote_is_resolved_from_the_config_folder(
    work: Path, tmp_path: Path
) -> None:
    (work / ".dvc" / "config.local").write_text(
        "[core]\n    remote = near\n['remote \"near\"']\n    url = ../../near-remote\n"
    )
    version, _ = capture(work, "data/train", tmp_path)
    assert version.remote == str(work.parent / "near-remote")


def test_unknown_remote_warns(work: Path, tmp_path: Path) -> None:
    (work / ".dvc" / "config.local").write_text("[core]\n    remote = gone\n")
    version, warnings = capture(work, "data/train", tmp_path)
    assert version.remote is None
    assert warnings == ["data/train: DVC remote 'gone' is not defined in .dvc/config"]


def test_configured_cache_dir_holds_the_manifest(work: Path) -> None:
    shutil.move(work / ".dvc" / "cache", work.parent / "shared-cache")
    (work / ".dvc" / "config.local").write_text("[cache]\n    dir = ../../shared-cache\n")
    repo = capture_dvc._Repo(str(work), read_config(str(work)))
    md5 = dvc_out(work / "data" / "train.dvc")["md5"]
    assert Path(capture_dvc._manifest_path(repo, md5)).is_file()


# --- in a DVC stage ---------------------------------------------------------------------------


def test_stage_env_var_names_the_stage(repo: Path) -> None:
    probe = json.loads((repo / "probe-first.json").read_text())
    assert probe["stage"] == "pipelines/dvc.yaml:probe"
    assert probe["root"] == str(repo)


def test_stage_deps_inside_dvc_repro(repo: Path) -> None:
    probe = json.loads((repo / "probe-first.json").read_text())
    deps = {d["path"]: d for d in probe["deps"]}
    assert list(deps) == ["pipelines/probe.py", "features", "data/train", "models/base.bin"]
    assert deps["features"]["hash"] == lock_out(repo / "dvc.lock", "prep")["md5"]
    assert deps["features"]["source"] == "dvc.lock" and deps["features"]["dirty"] is False
    assert deps["data/train"]["hash"] == dvc_out(repo / "data" / "train.dvc")["md5"]
    assert deps["models/base.bin"]["tracked"] and deps["models/base.bin"]["remote"]
    # first run: dvc.lock has no entry for the stage yet, so the script has no recorded hash
    assert not deps["pipelines/probe.py"]["tracked"]
    assert deps["pipelines/probe.py"]["hash"] is None
    assert any("data/train/cls_a is inside data/train" in w for w in probe["warnings"])


def test_stage_deps_rerun_uses_the_stage_lock(repo: Path) -> None:
    probe = json.loads((repo / "pipelines" / "probe.json").read_text())
    script = next(d for d in probe["deps"] if d["path"] == "pipelines/probe.py")
    locked = yaml.safe_load((repo / "pipelines" / "dvc.lock").read_text())
    recorded = next(d for d in locked["stages"]["probe"]["deps"] if d["path"] == "probe.py")
    assert (script["hash"], script["source"], script["dirty"]) == (
        recorded["md5"],
        "pipelines/dvc.lock",
        False,
    )


def test_foreach_stage_deps_come_from_its_lock(repo: Path) -> None:
    first = json.loads((repo / "scan-train-first.json").read_text())
    assert first["stage"] == "pipelines/dvc.yaml:scan@train" and first["deps"] == []
    assert first["warnings"] == [
        "stage pipelines/dvc.yaml:scan@train: templated deps are known only after a first run"
    ]
    rerun = json.loads((repo / "pipelines" / "scan-train.json").read_text())
    deps = {d["path"]: d for d in rerun["deps"]}
    assert sorted(deps) == ["data/train", "pipelines/probe.py"]  # dvc.lock sorts deps by path
    assert deps["data/train"]["source"] == "data/train.dvc" and rerun["warnings"] == []


def test_stage_deps_outside_a_stage(repo: Path) -> None:
    assert stage_deps(cwd=repo) == ([], [])


def test_stage_deps_with_env_from_a_subfolder(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dvc repro` run inside pipelines/ names the stage without its dvc.yaml path."""
    monkeypatch.setenv("DVC_STAGE", "probe")
    monkeypatch.setenv("DVC_ROOT", str(repo))
    versions, _ = stage_deps(cwd=repo / "pipelines", state_dir=tmp_path)
    assert [v.path for v in versions][1:] == ["features", "data/train", "models/base.bin"]


# --- dirty checks ----------------------------------------------------------------------------


def modify(train: Path) -> None:
    (train / "cls_a" / "0.png").write_bytes(os.urandom(200))  # same size, new content


def add(train: Path) -> None:
    (train / "cls_b" / "new.png").write_bytes(b"new")


def delete(train: Path) -> None:
    (train / "cls_b" / "1.png").unlink()


def rename(train: Path) -> None:
    (train / "cls_b" / "1.png").rename(train / "cls_b" / "9.png")


@pytest.mark.parametrize("change", [modify, add, delete, rename])
@pytest.mark.parametrize("manifest", ["cached", "removed"])
def test_changed_folder_is_dirty(work: Path, tmp_path: Path, change, manifest: str) -> None:
    if manifest == "removed":
        shutil.rmtree(work / ".dvc" / "cache")
    assert capture(work, "data/train", tmp_path)[0].dirty is False
    change(work / "data" / "train")
    version, warnings = capture(work, "data/train", tmp_path)
    assert (version.dirty, warnings) == (True, [])


def test_changed_file_is_dirty(work: Path, tmp_path: Path) -> None:
    (work / "models" / "base.bin").write_bytes(os.urandom(1000))
    version, _ = capture(work, "models/base.bin", tmp_path)
    assert (version.dirty, version.dirty_check) == (True, "hashed")


def test_without_cached_manifest_the_dir_hash_is_recomputed(work: Path, tmp_path: Path) -> None:
    shutil.rmtree(work / ".dvc" / "cache")
    version, warnings = capture(work, "data/train", tmp_path)
    assert (version.dirty, version.dirty_check, warnings) == (False, "hashed", [])
    train = work / "data" / "train"
    md5s = {
        p.relative_to(train).as_posix(): _datastate.file_md5(str(p))
        for p in train.rglob("*")
        if p.is_file()
    }
    assert _datastate.dir_md5(md5s) == dvc_out(work / "data" / "train.dvc")["md5"]


def test_missing_workspace_copy(work: Path, tmp_path: Path) -> None:
    shutil.rmtree(work / "data" / "train")
    version, warnings = capture(work, "data/train", tmp_path)
    assert version.tracked and version.hash
    assert (version.dirty, version.dirty_check) == (None, "missing")
    assert warnings == ["data/train is missing from the workspace"]


def test_dvcignored_files_are_not_dirt(work: Path, tmp_path: Path) -> None:
    (work / ".dvcignore").write_text("# scratch\n*.tmp\n")
    (work / "data" / "train" / "cls_a" / "scratch.tmp").write_text("x")
    age(work / "data")
    assert capture(work, "data/train", tmp_path)[0].dirty is False
    assert capture(work, "data/train", tmp_path)[0].dirty_check == "stat-cache"
    (work / ".dvcignore").write_text("")  # the folder's stamp must not outlive the rules
    assert capture(work, "data/train", tmp_path)[0].dirty is True


def test_dvcignored_files_without_cached_manifest(work: Path, tmp_path: Path) -> None:
    (work / ".dvcignore").write_text("*.tmp\n")
    (work / "data" / "train" / "cls_a" / "scratch.tmp").write_text("x")
    shutil.rmtree(work / ".dvc" / "cache")
    assert capture(work, "data/train", tmp_path)[0].dirty is False


def test_dvc2_file_is_checked_by_size(work: Path, tmp_path: Path) -> None:
    dvcfile = work / "data" / "train.dvc"
    data = yaml.safe_load(dvcfile.read_text())
    del data["outs"][0]["hash"]
    dvcfile.write_text(yaml.safe_dump(data))
    version, _ = capture(work, "data/train", tmp_path)
    assert (version.hash_kind, version.dirty, version.dirty_check) == (
        "md5-dos2unix",
        False,
        "size-only",
    )
    add(work / "data" / "train")
    assert capture(work, "data/train", tmp_path)[0].dirty is True


def test_default_state_dir_is_in_the_repo(work: Path) -> None:
    capture_data("data/train", cwd=work)
    assert (work / ".cairn" / "datastate.db").is_file()


# --- bad input ----------------------------------------------------------------------------


def test_malformed_dvc_file_warns(work: Path, tmp_path: Path) -> None:
    (work / "data" / "broken").mkdir()
    (work / "data" / "broken.dvc").write_text("outs:\n- md5: [unclosed\n  path: broken\n")
    version, warnings = capture(work, "data/broken", tmp_path)
    assert not version.tracked
    assert warnings[0].startswith("cannot read data/broken.dvc")
    assert warnings[1] == (
        "data/broken is not tracked by DVC (no data/broken.dvc or dvc.lock output)"
    )


def test_dvc_file_without_outs_warns(work: Path, tmp_path: Path) -> None:
    (work / "data" / "odd.dvc").write_text("- just a list\n")
    version, warnings = capture(work, "data/odd", tmp_path)
    assert not version.tracked and "data/odd.dvc has no 'outs' list" in warnings


def test_corrupt_state_db_still_checks(work: Path, tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "datastate.db").write_bytes(b"not a database" * 100)
    version, warnings = capture(work, "data/train", tmp_path)
    assert (version.dirty, version.dirty_check) == (False, "hashed")
    assert len(warnings) == 1 and "data state cache" in warnings[0]


def test_unreadable_file_falls_back_to_sizes(
    work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(path: str) -> str:
        raise PermissionError(13, "Permission denied", path)

    shutil.rmtree(work / ".dvc" / "cache")
    monkeypatch.setattr(_datastate, "file_md5", refuse)
    version, warnings = capture(work, "data/train", tmp_path)
    assert (version.dirty, version.dirty_check) == (False, "size-only")
    assert warnings[0].startswith("cannot hash a file under")


# --- cost ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository tracking a folder of 1,000 small files."""
    root = init_repo(tmp_path_factory.mktemp("big") / "repo", remote=False)
    for i in range(1000):
        folder = root / "images" / f"c{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:04}.png").write_bytes(i.to_bytes(4, "big") * 16)
    age(root / "images")
    dvc(root, "add", "-q", "images")
    return root


def test_warm_check_hashes_nothing(
    big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[str] = []
    real = _datastate.file_md5
    monkeypatch.setattr(_datastate, "file_md5", lambda p: hashed.append(p) or real(p))
    cold, _ = capture(big, "images", tmp_path)
    assert (cold.nfiles, cold.dirty, cold.dirty_check, len(hashed)) == (1000, False, "hashed", 1000)
    warm, warnings = capture(big, "images", tmp_path)
    assert (warm.dirty, warm.dirty_check, warnings, len(hashed)) == (False, "stat-cache", [], 1000)


def test_touched_file_is_the_only_one_hashed(
    big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture(big, "images", tmp_path)
    hashed: list[str] = []
    real = _datastate.file_md5
    monkeypatch.setattr(_datastate, "file_md5", lambda p: hashed.append(p) or real(p))
    touched = big / "images" / "c3" / "0003.png"
    os.utime(touched, (PAST - 60, PAST - 60))
    try:
        version, _ = capture(big, "images", tmp_path)
        assert (version.dirty, version.dirty_check, hashed) == (False, "hashed", [str(touched)])
        assert capture(big, "images", tmp_path)[0].dirty_check == "stat-cache"
        assert len(hashed) == 1
    finally:
        os.utime(touched, (PAST, PAST))


def _check_images(root: str, state_dir: str) -> tuple[bool | None, list[str]]:
    version, warnings = capture_data("images", cwd=root, state_dir=state_dir)
    return version.dirty, warnings


def test_many_processes_share_the_state_db(big: Path, tmp_path: Path) -> None:
    with ProcessPoolExecutor(4) as pool:
        futures = [pool.submit(_check_images, str(big), str(tmp_path)) for _ in range(8)]
        results = [f.result() for f in futures]
    assert results == [(False, [])] * 8
