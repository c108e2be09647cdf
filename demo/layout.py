"""Where the demo reads its settings and writes what it makes (paths relative to the
repository root, where ``dvc.yaml`` is and where every stage runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from demo.errors import DemoSetupError

__all__ = ["CATALOG", "DATA", "DEMO", "METRICS", "MLFLOW", "PARAMS", "PIPELINE", "REPORTS",
           "RUNS", "TEAM", "load_params", "section"]

PIPELINE = "dvc.yaml"
PARAMS = "params.yaml"
DEMO = Path("demo")  # the demo's folder: its code, and (git-ignored) all it generates below
DATA = DEMO / "data"  # one image folder per task (outputs of the data stages)
RUNS = DEMO / "runs"  # <stage>.json: the run a stage recorded (its id, result, MoV)
METRICS = DEMO / "metrics"  # <stage>.json: numbers for `dvc metrics show`
CATALOG = DEMO / "catalog"  # model cards (the workspace's catalog directory)
REPORTS = DEMO / "reports"  # handover reports
MLFLOW = DEMO / "mlflow"  # the local MLflow store the runs are exported to
TEAM = DEMO / "team"  # what people did after the pipeline (carol's run)


def load_params(root: Path | str = ".") -> dict[str, Any]:
    """The demo's ``params.yaml`` at ``root``."""
    import yaml

    path = Path(root) / PARAMS
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DemoSetupError(f"{path} does not exist",
                             "run the demo in a clone of the Cairn repository") from None
    except yaml.YAMLError as exc:
        raise DemoSetupError(f"{path} is not valid YAML", str(exc)) from exc
    if not isinstance(params, dict):
        raise DemoSetupError(f"{path} must be a mapping", "see the repository's params.yaml")
    return params


def section(params: dict[str, Any], name: str) -> dict[str, Any]:
    """One section of params.yaml, or DemoSetupError naming it."""
    found = params.get(name)
    if not isinstance(found, dict):
        raise DemoSetupError(f"params.yaml has no section {name!r}",
                             "restore it from the repository's params.yaml")
    return found
