"""The architecture holds: import-linter's contracts (pyproject.toml) pass on this tree, and
each kind of violation, planted in a copy of the tree, makes them fail and names the import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"][
    "root_packages"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_LINES = 500  # "no module over about 500 lines"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the packages under ``root`` (found before any installed copy)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_contracts_hold() -> None:
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert ", 0 broken." in done.stdout


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the packages and pyproject.toml, to plant violations in."""
    root = tmp_path_factory.mktemp("tree")
    shutil.copy(REPO / "pyproject.toml", root)
    for name in PACKAGES:
        shutil.copytree(REPO / name, root / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


@pytest.mark.parametrize(("module", "line", "contract", "named"), [
    ("registry/tracking/run.py", "import zoo", "Packages in layers", "registry.tracking.run"),
    ("registry/store/schema.py", "import registry.knowledge", "registry in layers",
     "registry.store.schema"),
    ("dashboard/reads.py", "from registry.store import _reads", "Private modules",
     "dashboard.reads"),
    ("catalog/_card.py", "import catalog._api", "No import loops", "._card -> ._api"),
    ("zoo/errors.py", "import sqlalchemy", "SQL lives in registry.store", "zoo.errors"),
], ids=["upward", "upward-inside-registry", "private", "loop", "sql-outside-store"])
def test_a_planted_violation_breaks_its_contract(tree: Path, module: str, line: str,
                                                 contract: str, named: str) -> None:
    path = tree / module
    original = path.read_text()
    path.write_text(original + f"\n{line}  # planted by the test\n")
    try:
        done = lint_imports(tree)
    finally:
        path.write_text(original)
    assert done.returncode == 1, done.stdout[-4000:]
    broken = done.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, broken[-4000:]
    assert named in broken, broken[-4000:]


def test_no_module_is_over_about_500_lines() -> None:
    long = {str(path.relative_to(REPO)): n for name in PACKAGES
            for path in (REPO / name).rglob("*.py")
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules: {long}"

