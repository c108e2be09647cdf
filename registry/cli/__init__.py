"""The ``cairn`` command. Other packages add their groups through the ``cairn.commands``
entry point group, so the registry imports none of them."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import click

from registry.cli.groups import groups
from registry.cli.kit import CairnGroup
from registry.cli.mlflow import mlflow
from registry.cli.mov import mov
from registry.cli.runs import runs
from registry.cli.sync import sync
from registry.cli.workspace import init, reader_role

__all__ = ["cli", "main"]


class _Cairn(CairnGroup):
    """Loads plugin groups (the ``cairn.commands`` entry points) lazily."""

    def _plugins(self) -> dict:
        return {ep.name: ep for ep in entry_points(group="cairn.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in (plugins := self._plugins()):
            command = plugins[name].load()
        return command


@click.group(cls=_Cairn)
@click.version_option(package_name="cairn")
def cli() -> None:
    """Cairn: every experiment recorded, found, compared and built on."""


cli.add_command(init)
cli.add_command(reader_role)
cli.add_command(runs)
runs.add_command(groups)  # cairn runs groups
cli.add_command(mov)
cli.add_command(mlflow)
cli.add_command(sync)


def main() -> None:
    """Console entry point."""
    sys.exit(cli.main(standalone_mode=True))
