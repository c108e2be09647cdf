"""``cairn demo``: everything Cairn is for, on embedded defaults, in a few minutes on a CPU.

It works on the workspace it is run in (a clone of the Cairn repository): ``dvc repro`` of
the repository's pipeline (synthetic data, fine-tunes, a published backbone, cards), the
team's history on top (a duplicate warned of, MoV, reports, an MLflow export), a summary,
then the dashboard on 127.0.0.1 until Ctrl-C. ``--no-serve`` stops before serving (CI).
"""

from __future__ import annotations

import time

import click

from registry.config import Workspace
from registry.errors import CairnError

__all__ = ["demo"]


@click.command()
@click.option("--no-serve", is_flag=True,
              help="Run everything, print the summary and exit without serving (CI).")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535),
              help="Port of the dashboard on 127.0.0.1.")
def demo(no_serve: bool, port: int) -> None:
    """Run the demo pipeline and a team's history in this workspace, then serve the
    dashboard (Ctrl-C stops it)."""
    from demo import history, pipeline, serve
    from demo.summary import summary
    from demo.workspace import demo_workspace

    started = time.monotonic()
    try:
        ws = demo_workspace()
        pipeline.repro(ws.root)
        done = history.record(ws)
        click.echo(summary(ws, done, _projects(ws), time.monotonic() - started))
    except CairnError as exc:
        raise click.ClickException(str(exc)) from exc
    if not no_serve:
        try:
            raise SystemExit(serve.serve(ws.root, port))
        except CairnError as exc:
            raise click.ClickException(str(exc)) from exc


def _projects(ws: Workspace) -> list[str]:
    from demo import layout
    from demo.stages import projects

    return projects(layout.load_params(ws.root))
