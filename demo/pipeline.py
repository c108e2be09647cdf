"""``dvc repro`` of the demo pipeline, run with this Python's environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from demo import layout
from demo.errors import DemoSetupError, DemoStepError

__all__ = ["command", "environment", "repro"]


def command(*args: str) -> list[str]:
    """``python -P -m demo ARGS`` with this interpreter, as dvc.yaml runs the stages. ``-P``
    keeps the working directory off ``sys.path``: there, a workspace's ``demo/`` folder of
    outputs would otherwise be imported as the ``demo`` package (a namespace package when it
    holds no code), in place of the installed one."""
    return [sys.executable, "-P", "-m", "demo", *args]


def environment() -> dict[str, str]:
    """The environment for the pipeline's commands: this interpreter's folder first on
    PATH (so `python` in dvc.yaml is the one with Cairn installed, activated or not),
    nothing that reaches the network (DVC's analytics, the Hugging Face hub), and one core
    left to the fine-tune's data-loading process (unless OMP_NUM_THREADS is set)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    # On a small CPU machine, torch's threads plus the loader process oversubscribe the
    # cores; busy, that made a 2-core fine-tune 3-4x slower (threads spinning on a barrier).
    env.setdefault("OMP_NUM_THREADS", str(max(1, _cores() - 1)))
    return env


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def repro(root: Path) -> None:
    """``dvc init`` where the repository has no ``.dvc`` yet, then ``dvc repro`` (stages
    whose inputs did not change are skipped); its output goes to the terminal."""
    if not (root / layout.PIPELINE).is_file():
        raise DemoSetupError(f"{root / layout.PIPELINE} does not exist",
                             "run the demo in a clone of the Cairn repository")
    if not (root / ".dvc").is_dir():
        init = ["init", "--quiet"] + ([] if (root / ".git").exists() else ["--no-scm"])
        _dvc(root, init, "dvc init")
    _dvc(root, ["repro"], "dvc repro")


def _dvc(root: Path, args: list[str], step: str) -> None:
    print(f"$ dvc {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=environment(),
                          check=False)
    if done.returncode != 0:
        raise DemoStepError(step, f"exit status {done.returncode} (its output is above)")
