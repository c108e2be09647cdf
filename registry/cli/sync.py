"""``cairn sync``: bring another store up to date with this workspace's (or the reverse)."""

from __future__ import annotations

import click

from registry.cli.kit import report_failures
from registry.config import load_workspace

__all__ = ["sync"]


@click.command()
@click.option("--to", "to_url", metavar="URL", help="Send this workspace's runs to the store "
              "at URL (the team's PostgreSQL, another SQLite file).")
@click.option("--from", "from_url", metavar="URL", help="Bring the runs of the store at URL "
              "into this workspace's store.")
@click.option("--artifacts-to", metavar="URL", help="Copy the artifacts the receiving side "
              "lacks into this artifact root (s3://bucket/prefix or a folder); without it the "
              "runs keep their artifact URIs.")
def sync(to_url: str | None, from_url: str | None, artifacts_to: str | None) -> None:
    """Send every run, MoV measurement and artifact the other store lacks; again later,
    only what changed. The same run changed on both sides: recorded data from the side that
    recorded more, tags united, notes kept whole, other edits kept on the receiving side, and
    each such choice listed."""
    from registry.artifacts import ArtifactStore
    from registry.store import SqlStore
    from registry.transfer.sync import sync_stores

    if (to_url is None) == (from_url is None):
        raise click.UsageError("give exactly one of --to URL and --from URL")
    here = load_workspace().open_store()
    there = SqlStore(to_url or from_url)
    source, dest = (here, there) if to_url else (there, here)
    blobs = ArtifactStore(artifacts_to) if artifacts_to else None
    result = sync_stores(source, dest, dest_blobs=blobs)
    click.echo(result.summary())
    for line in result.conflicts:
        click.echo(f"kept: {line}", err=True)
    report_failures(result.warnings, result.failed)
