"""Code-version capture against real git repositories built in tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.capture import git as capture_git
from registry.capture.git import CodeVersion, capture_code

BINARY = bytes(range(256)) * 4


def run_git(cwd: Path, *args: str, stdin: bytes | None = None) -> str:
    """Run the git CLI in a test repository; its identity comes from the `isolated` fixture."""
    done = subprocess.run(["git", *args], cwd=cwd, input=stdin, check=True, capture_output=True)
    return done.stdout.decode()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git config, a fixed identity, no repository search above tmp_path."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Tester")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "tester@example.com")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with one commit on `main`: a text file and a binary file."""
    root = tmp_path / "repo"
    root.mkdir()
    run_git(root, "init", "-q", "-b", "main")
    run_git(root, "config", "user.name", "Tester")
    run_git(root, "config", "user.email", "tester@example.com")
    (root / "train.py").write_text("lr = 0.1\n")
    (root / "weights.bin").write_bytes(BINARY)
    run_git(root, "add", ".")
    run_git(root, "commit", "-q", "-m", "first")
    return root


def head(root: Path) -> str:
    return run_git(root, "rev-parse", "HEAD").strip()


def assert_diff_restores(repo: Path, diff: bytes, tmp_path: Path) -> None:
    """Applying the diff to a clean clone of HEAD reproduces the dirty tracked files."""
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(repo), str(clone))
    run_git(clone, "apply", "--binary", "-", stdin=diff)
    for path in run_git(repo, "ls-files", "-z").split("\0"):
        if path and (repo / path).exists():
            assert (clone / path).read_bytes() == (repo / path).read_bytes(), path


def test_clean_repository(repo: Path) -> None:
    version, warnings = capture_code(repo)
    assert warnings == []
    assert version.state == "git"
    assert version.commit == head(repo)
    assert version.branch == "main"
    assert version.detached is False
    assert version.dirty is False
    assert version.diff is None
    assert version.untracked == ()
    assert os.path.samefile(version.root, repo)
    assert version.remote is None


def test_working_directory_is_the_default(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    assert capture_code()[0].commit == head(repo)


def test_subdirectory_reports_the_top_level(repo: Path) -> None:
    (repo / "src" / "deep").mkdir(parents=True)
    version, _ = capture_code(repo / "src" / "deep")
    assert os.path.samefile(version.root, repo)
    assert version.commit == head(repo)


def test_dirty_tree_records_a_diff_that_restores_it(repo: Path, tmp_path: Path) -> None:
    (repo / "train.py").write_text("lr = 0.01\n")
    version, warnings = capture_code(repo)
    assert warnings == []
    assert version.dirty is True
    assert b"-lr = 0.1\n+lr = 0.01\n" in version.diff
    assert_diff_restores(repo, version.diff, tmp_path)


def test_staged_change_is_dirty(repo: Path) -> None:
    (repo / "train.py").write_text("lr = 0.5\n")
    run_git(repo, "add", "train.py")
    version, _ = capture_code(repo)
    assert version.dirty is True
    assert b"+lr = 0.5" in version.diff


def test_binary_change_is_captured_binary_safe(repo: Path, tmp_path: Path) -> None:
    (repo / "weights.bin").write_bytes(BINARY[::-1] + b"\0\xff")
    version, _ = capture_code(repo)
    assert version.dirty is True
    assert b"GIT binary patch" in version.diff
    assert_diff_restores(repo, version.diff, tmp_path)


def test_rename_is_dirty_and_parsed(repo: Path) -> None:
    run_git(repo, "mv", "train.py", "fit.py")
    (repo / "notes.txt").write_text("x")
    version, _ = capture_code(repo)
    assert version.dirty is True
    assert version.untracked == ("notes.txt",)


def test_deleted_file_is_dirty(repo: Path, tmp_path: Path) -> None:
    (repo / "train.py").unlink()
    version, _ = capture_code(repo)
    assert version.dirty is True
    assert b"deleted file mode" in version.diff


def test_untracked_files_alone_are_not_dirty(repo: Path) -> None:
    (repo / "scratch.py").write_text("print(1)\n")
    (repo / "odd name ü.txt").write_text("x")
    (repo / "out").mkdir()
    (repo / "out" / "a.log").write_text("x")
    version, _ = capture_code(repo)
    assert version.dirty is False
    assert version.diff is None
    assert set(version.untracked) == {"scratch.py", "odd name ü.txt", "out/"}


def test_untracked_list_is_capped(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture_git, "MAX_UNTRACKED", 3)
    for i in range(5):
        (repo / f"u{i}.txt").write_text("x")
    version, warnings = capture_code(repo)
    assert len(version.untracked) == 3
    assert any("5 untracked" in w for w in warnings)


def test_detached_head(repo: Path) -> None:
    (repo / "train.py").write_text("lr = 0.2\n")
    run_git(repo, "commit", "-q", "-am", "second")
    first = run_git(repo, "rev-parse", "HEAD~1").strip()
    run_git(repo, "checkout", "-q", "--detach", first)
    version, _ = capture_code(repo)
    assert version.state == "git"
    assert version.detached is True
    assert version.branch is None
    assert version.commit == first


def test_repository_without_commits(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    run_git(root, "init", "-q", "-b", "main")
    (root / "a.py").write_text("x = 1\n")
    version, warnings = capture_code(root)
    assert version.state == "git"
    assert version.commit is None
    assert version.diff is None
    assert version.branch == "main"
    assert version.untracked == ("a.py",)
    assert any("no commits" in w for w in warnings)


def test_not_a_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    version, warnings = capture_code(plain)
    assert version == CodeVersion(state="no-git")
    assert len(warnings) == 1
    assert "not a git repository" in warnings[0]


def test_missing_directory_is_an_error_not_a_crash(tmp_path: Path) -> None:
    version, warnings = capture_code(tmp_path / "nowhere")
    assert version.state == "error"
    assert warnings


@pytest.mark.parametrize(
    "head_text",
    ["garbage\n", "", "ref: HEAD\n", "0" * 40 + "\n"],
    ids=["garbage", "empty", "self-reference", "null-object"],
)
def test_corrupt_head_is_an_error(repo: Path, head_text: str) -> None:
    (repo / ".git" / "HEAD").write_text(head_text)
    version, warnings = capture_code(repo)
    assert version.state == "error"
    assert version.commit is None
    assert any(str(repo) in w for w in warnings)


def test_head_naming_a_missing_object_is_an_error(repo: Path) -> None:
    (repo / ".git" / "refs" / "heads" / "main").write_text("0123456789" * 4 + "\n")
    version, warnings = capture_code(repo)
    assert version.state == "error"
    assert warnings


def test_broken_repository_inside_a_good_one_is_not_mistaken_for_it(repo: Path) -> None:
    inner = repo / "vendor" / "lib"
    (inner / ".git").mkdir(parents=True)  # an empty .git: git skips it and finds `repo`
    version, warnings = capture_code(inner)
    assert version.state == "error"
    assert version.commit is None
    assert any("not a readable git repository" in w for w in warnings)


def test_remote_credentials_are_stripped(repo: Path) -> None:
    run_git(repo, "remote", "add", "origin", "https://bob:s3cr3t@git.example.com/team/cv.git")
    version, _ = capture_code(repo)
    assert version.remote == "https://git.example.com/team/cv.git"
    assert "s3cr3t" not in json.dumps(version.to_dict())


def test_upstream_remote_wins_over_origin(repo: Path) -> None:
    run_git(repo, "remote", "add", "origin", "https://example.com/me/cv.git")
    run_git(repo, "remote", "add", "team", "git@example.com:team/cv.git")
    run_git(repo, "config", "branch.main.remote", "team")
    run_git(repo, "config", "branch.main.merge", "refs/heads/main")
    assert capture_code(repo)[0].remote == "git@example.com:team/cv.git"


def test_origin_wins_without_upstream_then_the_first_remote(repo: Path) -> None:
    run_git(repo, "remote", "add", "alpha", "https://example.com/alpha.git")
    run_git(repo, "remote", "add", "origin", "https://example.com/origin.git")
    assert capture_code(repo)[0].remote == "https://example.com/origin.git"
    run_git(repo, "remote", "remove", "origin")
    assert capture_code(repo)[0].remote == "https://example.com/alpha.git"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pw@host/a.git", "https://host/a.git"),
        ("https://ghp_token@github.com/o/r.git", "https://github.com/o/r.git"),
        ("ssh://git:pw@host:2222/r.git", "ssh://git@host:2222/r.git"),
        ("ssh://git@host/r.git", "ssh://git@host/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("user:pw@host:o/r.git", "user@host:o/r.git"),
        ("/srv/git/a@b.git", "/srv/git/a@b.git"),
        ("https://host/path/with@sign", "https://host/path/with@sign"),
        ("file:///srv/r.git", "file:///srv/r.git"),
    ],
)
def test_strip_credentials(url: str, expected: str) -> None:
    assert capture_git._strip_credentials(url) == expected


_secret = st.text(st.characters(blacklist_characters="@/:\0\n"), min_size=6)


@given(user=_secret, password=_secret, scheme=st.sampled_from(["https", "http", "ssh"]))
def test_strip_credentials_never_keeps_a_password(user: str, password: str, scheme: str) -> None:
    url = f"{scheme}://{user}:{password}@example.com/team/repo.git"
    assert password not in capture_git._strip_credentials(url).replace(user, "", 1)


def test_to_dict_is_json_and_leaves_out_the_diff(repo: Path) -> None:
    (repo / "train.py").write_text("lr = 3\n")
    version, _ = capture_code(repo)
    data = json.loads(json.dumps(version.to_dict()))
    assert "diff" not in data
    assert data["dirty"] is True
    assert data["commit"] == version.commit


def _fake_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    script = bin_dir / "git"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


def test_git_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    version, warnings = capture_code(tmp_path)
    assert version.state == "error"
    assert any("git executable not found" in w for w in warnings)


def test_dubious_ownership_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_git(tmp_path, monkeypatch, (
        "echo \"fatal: detected dubious ownership in repository at '$PWD'\" >&2; exit 128"
    ))
    version, warnings = capture_code(tmp_path)
    assert version.state == "error"
    assert any(f"safe.directory {tmp_path}`" in w for w in warnings)


def test_slow_git_times_out_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_git(tmp_path, monkeypatch, "exec /bin/sleep 30")
    monkeypatch.setattr(capture_git, "GIT_TIMEOUT_S", 0.2)
    version, warnings = capture_code(tmp_path)
    assert version.state == "error"
    assert any("longer than" in w for w in warnings)


def test_oversized_diff_is_dropped_with_a_warning(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capture_git, "MAX_DIFF_BYTES", 10)
    (repo / "train.py").write_text("lr = 0.3\n")
    version, warnings = capture_code(repo)
    assert version.dirty is True
    assert version.diff is None
    assert any("not recorded" in w for w in warnings)


@pytest.mark.parametrize(
    "raw",
    [b"", b"\0\0", b"# branch.oid", b"2 R. N... 1 2 3 a b R100 new", b"\xff\xfe? x\0"],
)
def test_status_parser_tolerates_odd_output(raw: bytes) -> None:
    parsed = capture_git._parse_status(raw)
    assert set(parsed) == {"commit", "branch", "detached", "dirty", "untracked"}


@given(st.binary(max_size=300))
def test_status_parser_never_raises(raw: bytes) -> None:
    capture_git._parse_status(raw)
    capture_git._parse_config(raw)


def test_deleted_working_directory_is_an_error_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    version, warnings = capture_code()
    assert version.state == "error"
    assert warnings
