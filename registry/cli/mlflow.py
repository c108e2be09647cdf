"""``cairn mlflow``: mirror runs into MLflow, bring MLflow runs in, show the links."""

from __future__ import annotations

import os

import click

from registry.cli.kit import CairnGroup, report_failures

__all__ = ["mlflow"]


def _uri(value: str | None) -> str:
    from registry.config import load_workspace
    from registry.errors import ConfigError

    uri = value or load_workspace().mlflow.get("tracking_uri")
    if not uri:
        raise ConfigError("give --tracking-uri or set mlflow.tracking_uri in the workspace "
                          "configuration")
    return str(uri)


_URI = click.option("--tracking-uri", help="MLflow tracking URI (default: mlflow.tracking_uri "
                    "in the workspace configuration).")


@click.group(cls=CairnGroup)
def mlflow() -> None:
    """Mirror runs into MLflow and import MLflow experiments."""


@mlflow.command("export")
@click.argument("run_refs", metavar="[RUN]...", nargs=-1)
@_URI
@click.option("--project", help="Only runs of this project.")
@click.option("--since", help="Only runs started since: a date, a time, or an age (7d, 12h).")
@click.option("--no-models", is_flag=True, help="Do not log or register fine-tuned models.")
@click.option("--no-artifacts", is_flag=True, help="Do not copy artifacts into MLflow.")
def export_command(run_refs: tuple[str, ...], tracking_uri: str | None, project: str | None,
                   since: str | None, no_models: bool, no_artifacts: bool) -> None:
    """Mirror runs into MLflow; again later, only what changed is sent."""
    from registry.transfer.mlflow.export import export_runs

    result = export_runs(_uri(tracking_uri), project=project, since=since, runs=run_refs,
                         models=not no_models, artifacts=not no_artifacts)
    click.echo(result.summary(**{"imported from there (left alone)": result.skipped}))
    for model in result.models:
        click.echo(f"registered model {model}")
    report_failures(result.warnings, result.failed)


@mlflow.command("import")
@_URI
@click.option("--experiment", "experiments", multiple=True,
              help="Experiment name (repeatable; default: every active experiment).")
@click.option("--project", help="Registry project for the runs (default: the experiment name).")
@click.option("--max-artifact-size", "max_size", default="512MiB", show_default=True,
              callback=lambda ctx, param, value: _bytes(value),
              help="Copy artifact files up to this size (B, KiB, MiB, GiB; 'any'); larger "
                   "ones stay in MLflow, referenced by URI. 0 copies none.")
def import_command(tracking_uri: str | None, experiments: tuple[str, ...],
                   project: str | None, max_size: int | None) -> None:
    """Bring MLflow runs into the registry (artifacts and logged models copied); again
    later, only what changed is read."""
    from registry.transfer.mlflow.importer import import_runs

    # One progress bar per file downloaded would bury the summary; the user can turn it on.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    result = import_runs(_uri(tracking_uri), experiments=experiments, project=project,
                         max_artifact_size=max_size)
    click.echo(result.summary(**{"exported from this registry (mapped back)":
                                 result.mapped_back}))
    for run_id, files in result.skipped_artifacts.items():
        for line in files:
            click.echo(f"not copied: MLflow run {run_id[:8]}: {line}", err=True)
    report_failures((), result.failed, what="MLflow run")


_UNITS = {"b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "kb": 10**3, "mb": 10**6,
          "gb": 10**9}


def _bytes(text: str) -> int | None:
    """A size such as ``512MiB``, ``2GB`` or ``1000``; None for ``any``."""
    cleaned = text.strip().lower().replace(" ", "")
    if cleaned == "any":
        return None
    digits = cleaned.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = cleaned[len(digits):] or "b"
    try:
        size = int(float(digits) * _UNITS[unit])
        if size < 0:
            raise ValueError(size)
        return size
    except (ValueError, KeyError, OverflowError):
        raise click.BadParameter(f"{text!r}: give a size such as 512MiB, 2GB, 1000 or "
                                 "'any'") from None


@mlflow.command("status")
@click.argument("run_ref", metavar="RUN")
def status_command(run_ref: str) -> None:
    """The MLflow runs linked to RUN, per tracking URI."""
    from registry.config import load_workspace
    from registry.store import links

    store = load_workspace().open_store()
    found = links.of_run(store, store.resolve(run_ref))
    if not found:
        click.echo("not linked to any MLflow run")
    for uri, link in found:
        state = "in sync" if link.digest else "changed or incomplete"
        click.echo(f"{link.direction} {uri} run {link.mlflow_run_id} "
                   f"(experiment {link.experiment_id}, {state})")
