"""Runs leaving and entering the registry.

- :mod:`.backup`: every run, project and MoV to JSON lines and back, lossless, into either
  dialect (``cairn runs export`` / ``import``);
- :mod:`.mlflow`: the bridge to MLflow, both ways, and live mirroring while a run trains.
"""

from registry.transfer.backup import FORMAT as FORMAT
from registry.transfer.backup import ImportResult as ImportResult
from registry.transfer.backup import export_mov as export_mov
from registry.transfer.backup import export_runs as export_runs
from registry.transfer.backup import import_runs as import_runs

__all__ = ["FORMAT", "ImportResult", "export_mov", "export_runs", "import_runs"]
