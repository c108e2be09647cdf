"""``cairn init``: write a workspace configuration and create the store; ``cairn reader-role``:
a PostgreSQL role that can only read it."""

from __future__ import annotations

import os
from pathlib import Path

import click

from registry.config import CONFIG_FILE, find_config, load_workspace

__all__ = ["init", "reader_role"]

_TEMPLATE = """\
# Cairn workspace configuration. Relative paths are relative to this file's folder.
# Environment variables override single settings: CAIRN_STORE, CAIRN_ARTIFACTS, CAIRN_OWNER.
store = "{store}"
artifacts = "{artifacts}"
catalog = "catalog"
# owner = "your-name"          # default: the operating-system user
# required_tags = ["task"]     # tags every run must carry

[runs]
heartbeat_interval = 30        # seconds; a run silent for 3 intervals shows as CRASHED
flush_interval = 1.0           # seconds between metric writes
"""


@click.command()
@click.option("--store", default="sqlite:///.cairn/registry.db", show_default=True,
              help="SQLAlchemy URL of the registry store (postgresql+psycopg://... for teams).")
@click.option("--artifacts", default=".cairn/artifacts", show_default=True,
              help="Artifact root: a folder or an fsspec URL such as s3://bucket/prefix.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=".", help="Folder to create the workspace in.")
def init(store: str, artifacts: str, directory: Path) -> None:
    """Create cairn.toml (unless one exists) and the registry store."""
    directory.mkdir(parents=True, exist_ok=True)
    existing = find_config(directory)
    if existing is None or existing.parent != directory.resolve():
        (directory / CONFIG_FILE).write_text(_TEMPLATE.format(store=store, artifacts=artifacts))
        click.echo(f"wrote {directory / CONFIG_FILE}")
    ws = load_workspace(directory)
    ws.ensure_state_dir()
    ws.open_store()
    if "://" not in ws.artifact_root:
        Path(ws.artifact_root).mkdir(parents=True, exist_ok=True)
    click.echo(f"store     {ws.store_url}\nartifacts {ws.artifact_root}")


@click.command("reader-role")
@click.argument("role")
@click.option("--password-env", metavar="VAR",
              help="Environment variable that holds the role's password (kept off the command "
                   "line and out of the server's logs). Without it the password is unchanged.")
@click.option("--drop", is_flag=True, help="Remove the role and its privileges instead.")
def reader_role(role: str, password_env: str | None, drop: bool) -> None:
    """Create or update a PostgreSQL login role that can read the workspace's store and
    write nothing, for the dashboard: CAIRN_STORE=<the URL printed> cairn dashboard.
    Run it with the store owner's URL (or a superuser's) in the workspace."""
    from registry.store.roles import drop_reader, grant_reader, reader_url

    url = load_workspace().store_url
    if drop:
        drop_reader(url, role)
        click.echo(f"dropped reader role {role}")
        return
    password = None
    if password_env is not None:
        password = os.environ.get(password_env)
        if not password:
            raise click.UsageError(f"the environment variable {password_env} is not set")
    grant = grant_reader(url, role, password)
    shown = reader_url(url, role, "PASSWORD" if password else None)
    click.echo(f"{'created' if grant.new else 'updated'} reader role {role}: SELECT on schema "
               f"{grant.schema} of database {grant.database} (and on the tables {grant.owner} "
               f"creates there later), read-only sessions\n"
               f"dashboard: CAIRN_STORE='{shown}' cairn dashboard")
