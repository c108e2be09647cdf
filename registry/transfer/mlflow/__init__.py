"""The MLflow bridge: registry runs mirrored into MLflow, and MLflow runs brought in.

    from registry.transfer.mlflow import export_runs, import_runs
    export_runs("http://127.0.0.1:5000", project="defects")     # incremental, idempotent
    import_runs("sqlite:///mlruns.db", experiments=["baseline"])

Export writes params, full metric histories (``log_batch``), MLflow's own tags for the code
version and owner, DVC data versions as dataset inputs (the DVC hash as digest), hardware and
MoV tags, notes as the run description, artifacts, and fine-tuned models through MLflow's
flavours and Model Registry (plugins of the ``cairn.mlflow_models`` entry point group).
``mlflow_link`` records which MLflow run mirrors which registry run. Live mirroring from
``start_run``: ``[mlflow] live = true`` in the workspace config (see :mod:`.live`).
MLflow itself is imported only when a bridge function runs.
"""

from registry.transfer.mlflow import errors as errors
from registry.transfer.mlflow.export import ExportResult as ExportResult
from registry.transfer.mlflow.export import export_runs as export_runs
from registry.transfer.mlflow.importer import ImportResult as ImportResult
from registry.transfer.mlflow.importer import import_runs as import_runs

__all__ = ["ExportResult", "ImportResult", "errors", "export_runs", "import_runs"]
