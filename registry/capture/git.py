"""Best-effort capture of the code version a run was started from.

`capture_code` never raises for an ordinary problem (no git, no repository, a broken
repository, a slow file system): it returns what it could find plus warnings that say what it
could not. It costs one `git status` (with the remote and top-level look-ups running beside it)
and, only when the tree is dirty, one `git diff`.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

__all__ = ["CodeVersion", "capture_code"]

GIT_TIMEOUT_S = 10.0
"""Seconds all git commands of one capture may take together before they are killed."""

MAX_UNTRACKED = 100
"""How many untracked paths a CodeVersion keeps."""

MAX_DIFF_BYTES = 64 * 1024 * 1024
"""A larger diff is not kept (a warning says so): it is almost always a tracked data file."""

_SSH_SCHEMES = frozenset({"ssh", "git+ssh", "ssh+git"})
_CONFIG_PATTERN = r"^(remote\..+\.url|branch\..+\.remote)$"
_DIFF_ARGS = (
    "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff", "--no-textconv",
    "--no-relative", "--src-prefix=a/", "--dst-prefix=b/",
)


@dataclass(frozen=True)
class CodeVersion:
    """Where the code of a run came from.

    `state` is "git" (a readable repository), "no-git" (not inside one) or "error" (git is
    missing, or the repository could not be read). `dirty` is git's notion: tracked files
    differ from HEAD; untracked files do not count. `diff` is `git diff HEAD --binary` when
    dirty, so `git apply` on a checkout of `commit` restores the tree.
    """

    state: str
    commit: str | None = None
    branch: str | None = None
    detached: bool = False
    remote: str | None = None
    dirty: bool | None = None
    diff: bytes | None = None
    untracked: tuple[str, ...] = ()
    root: str | None = None

    def to_dict(self) -> dict:
        """JSON-able fields, without the diff bytes."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "diff"}
        out["untracked"] = list(self.untracked)
        return out


class _GitFailed(Exception):
    """A git command could not be run or timed out; the message is the warning."""


def capture_code(cwd: str | os.PathLike | None = None) -> tuple[CodeVersion, list[str]]:
    """Capture the git state of `cwd` (default: the working directory), never raising."""
    warnings: list[str] = []
    try:
        start = Path(os.path.abspath(cwd if cwd is not None else os.getcwd()))
        version = _capture(start, warnings, time.monotonic() + GIT_TIMEOUT_S)
    except _GitFailed as exc:
        warnings.append(str(exc))
        version = CodeVersion(state="error")
    except Exception as exc:  # best effort: a capture bug must not end a training run
        warnings.append(f"could not capture the code version: {type(exc).__name__}: {exc}")
        version = CodeVersion(state="error")
    return version, warnings


def _capture(start: Path, warnings: list[str], deadline: float) -> CodeVersion:
    status, config, toplevel = _run_all(
        start,
        [
            ["status", "--porcelain=v2", "--branch", "-z", "--untracked-files=normal"],
            ["config", "-z", "--get-regexp", _CONFIG_PATTERN],
            ["rev-parse", "--show-toplevel"],
        ],
        deadline,
    )
    if status[0] != 0:
        return _failed_status(start, status[2], warnings)
    root = toplevel[1].decode(errors="replace").strip() if toplevel[0] == 0 else None
    skipped = _skipped_git_dir(start, root)
    if skipped is not None:
        warnings.append(
            f"{skipped} is not a readable git repository (git used the enclosing {root} "
            "instead); the code version was not recorded"
        )
        return CodeVersion(state="error")
    head = _parse_status(status[1])
    remotes, branch_remotes = _parse_config(config[1] if config[0] == 0 else b"")
    remote = _pick_remote(remotes, branch_remotes.get(head["branch"] or ""))
    untracked = head["untracked"]
    if len(untracked) > MAX_UNTRACKED:
        warnings.append(f"{len(untracked)} untracked paths; the first {MAX_UNTRACKED} recorded")
    diff = None
    if head["commit"] is None:
        warnings.append("the repository has no commits yet; no commit or diff recorded")
    elif head["dirty"]:
        diff = _diff(Path(root) if root else start, warnings, deadline)
    return CodeVersion(
        state="git",
        commit=head["commit"],
        branch=head["branch"],
        detached=head["detached"],
        remote=_strip_credentials(remote) if remote else None,
        dirty=head["dirty"],
        diff=diff,
        untracked=tuple(untracked[:MAX_UNTRACKED]),
        root=root,
    )


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GIT_OPTIONAL_LOCKS="0", LC_ALL="C", GIT_TERMINAL_PROMPT="0")
    return env


def _run_all(
    cwd: Path, commands: Sequence[Sequence[str]], deadline: float
) -> list[tuple[int, bytes, bytes]]:
    """Run git commands concurrently; (returncode, stdout, stderr) for each."""
    env = _git_env()
    procs: list[subprocess.Popen] = []
    try:
        for args in commands:
            procs.append(
                subprocess.Popen(
                    ["git", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                )
            )
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=max(deadline - time.monotonic(), 0.01))
            results.append((proc.returncode, out, err))
        return results
    except FileNotFoundError as exc:
        if not cwd.is_dir():
            raise _GitFailed(f"cannot capture the code version: {cwd} is not a directory") from exc
        raise _GitFailed("git executable not found on PATH; the code version was not recorded") \
            from exc
    except OSError as exc:
        raise _GitFailed(f"could not run git: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise _GitFailed(
            f"git took longer than {GIT_TIMEOUT_S:g} s in {cwd}; the code version was not recorded"
        ) from exc
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def _failed_status(start: Path, stderr: bytes, warnings: list[str]) -> CodeVersion:
    message = _first_fatal(stderr)
    if "not a git repository" in message:
        broken = _nearest_git_dir(start)
        if broken is None:
            warnings.append(f"not a git repository: {start}; no code version recorded")
            return CodeVersion(state="no-git")
        warnings.append(f"{broken} is not a readable git repository ({message})")
    elif "dubious ownership" in message:
        found = re.search(r"repository at '(.*)'", message)
        warnings.append(
            f"git refused the repository at {start} ({message}); if you trust it, run "
            f"`git config --global --add safe.directory {found.group(1) if found else start}`"
        )
    else:
        warnings.append(f"git could not read the repository at {start}: {message}")
    return CodeVersion(state="error")


def _first_fatal(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line
    return lines[0] if lines else "no error message"


def _nearest_git_dir(start: Path) -> Path | None:
    """The nearest `.git` at or above `start`, stopping where GIT_CEILING_DIRECTORIES says."""
    ceilings = {
        os.path.abspath(p) for p in os.environ.get("GIT_CEILING_DIRECTORIES", "").split(":") if p
    }
    directory = start
    while True:
        candidate = directory / ".git"
        if os.path.lexists(candidate):
            return candidate
        if directory.parent == directory or str(directory.parent) in ceilings:
            return None
        directory = directory.parent


def _skipped_git_dir(start: Path, root: str | None) -> Path | None:
    """A `.git` below the repository git chose, which git skipped because it is unreadable."""
    if root is None or "GIT_DIR" in os.environ or "GIT_WORK_TREE" in os.environ:
        return None
    nearest = _nearest_git_dir(start)
    if nearest is None or os.path.realpath(nearest.parent) == os.path.realpath(root):
        return None
    return nearest


def _parse_status(raw: bytes) -> dict:
    """Parse `git status --porcelain=v2 --branch -z` output."""
    commit = branch = None
    detached = dirty = False
    untracked: list[str] = []
    entries = iter(raw.split(b"\0"))
    for entry in entries:
        text = entry.decode(errors="replace")
        if text.startswith("# branch.oid "):
            oid = text[len("# branch.oid "):]
            commit = None if oid == "(initial)" else oid
        elif text.startswith("# branch.head "):
            head = text[len("# branch.head "):]
            detached = head == "(detached)"
            branch = None if detached else head
        elif text.startswith("? "):
            untracked.append(text[2:])
        elif text[:2] in ("1 ", "u "):
            dirty = True
        elif text.startswith("2 "):
            dirty = True
            next(entries, None)  # the rename's original path
    return {
        "commit": commit, "branch": branch, "detached": detached, "dirty": dirty,
        "untracked": untracked,
    }


def _parse_config(raw: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """Remote URLs (in config order) and each branch's remote from `git config -z`."""
    remotes: dict[str, str] = {}
    branch_remotes: dict[str, str] = {}
    for item in raw.decode(errors="replace").split("\0"):
        key, _, value = item.partition("\n")
        if key.startswith("remote.") and key.endswith(".url"):
            remotes.setdefault(key[len("remote."):-len(".url")], value)
        elif key.startswith("branch.") and key.endswith(".remote"):
            branch_remotes[key[len("branch."):-len(".remote")]] = value
    return remotes, branch_remotes


def _pick_remote(remotes: dict[str, str], upstream: str | None) -> str | None:
    for name in (upstream, "origin"):
        if name in remotes:
            return remotes[name]
    return next(iter(remotes.values()), None)


def _strip_credentials(url: str) -> str:
    """Drop passwords and tokens from a remote URL; an ssh user name (git@) stays."""
    scheme, sep, rest = url.partition("://")
    if not sep:  # scp-like `user[:password]@host:path`, or a local path
        userinfo, at, rest = url.partition("@")
        if not at or "/" in userinfo:
            return url
        return f"{userinfo.split(':', 1)[0]}@{rest}"
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    userinfo, _, hostport = authority.rpartition("@")
    if scheme.lower() in _SSH_SCHEMES:
        hostport = f"{userinfo.split(':', 1)[0]}@{hostport}"
    return f"{scheme}://{hostport}{slash}{path}"


def _diff(root: Path, warnings: list[str], deadline: float) -> bytes | None:
    try:
        [(code, out, err)] = _run_all(root, [_DIFF_ARGS], deadline)
    except _GitFailed as exc:
        warnings.append(f"the tree is dirty but its diff was not recorded: {exc}")
        return None
    if code != 0:
        warnings.append(f"the tree is dirty but `git diff HEAD` failed: {_first_fatal(err)}")
        return None
    if len(out) > MAX_DIFF_BYTES:
        warnings.append(
            f"the diff against HEAD is {len(out)} bytes, more than {MAX_DIFF_BYTES}; not recorded"
        )
        return None
    return out
