"""A click group whose commands report Cairn's own errors as one-line messages."""

from __future__ import annotations

import click

from registry.errors import CairnError

__all__ = ["CairnGroup"]


class CairnGroup(click.Group):
    """Turns :class:`CairnError` into ``click.ClickException`` (exit 1, no traceback), also when
    the group is used on its own, as plugin groups and tests do."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CairnError as exc:
            raise click.ClickException(str(exc)) from exc
