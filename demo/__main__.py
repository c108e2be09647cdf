"""``python -P -m demo``: the demo (``run``) and the pipeline steps dvc.yaml calls."""

from __future__ import annotations

from pathlib import Path

import click

from demo.cli import demo
from registry.cli.kit import CairnGroup

__all__ = ["main"]


@click.group(cls=CairnGroup)
def main() -> None:
    """The Cairn demo (`run`, also `cairn demo`) and the steps of its DVC pipeline."""


main.add_command(demo, "run")


@main.command("data")
@click.argument("task")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Image folder to write (one sub-folder per class).")
@click.option("--per-class", default=60, show_default=True, type=click.IntRange(1))
@click.option("--size", default=64, show_default=True, type=click.IntRange(16))
@click.option("--seed", default=0, show_default=True, type=int)
def data(task: str, out: Path, per_class: int, size: int, seed: int) -> None:
    """Write the seeded synthetic images of TASK (surface or weld)."""
    from demo.synthetic import TASKS, generate

    if task not in TASKS:
        raise click.BadParameter(f"choose one of {', '.join(sorted(TASKS))}", param_hint="TASK")
    counts = generate(out, task, per_class=per_class, size=size, seed=seed)
    click.echo(f"{out}: {sum(counts.values())} images of {size} px, classes "
               f"{', '.join(counts)}")


@main.command("stage")
@click.argument("name")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write a training stage's record here instead of demo/runs.")
def stage(name: str, out: Path | None) -> None:
    """Run pipeline stage NAME (dvc.yaml calls this from the repository root)."""
    from demo.stages import run_stage

    result = run_stage(name, out)
    click.echo(f"stage {name}: " + ", ".join(f"{k} {v}" for k, v in result.items()
                                             if isinstance(v, (str, int, float))))


if __name__ == "__main__":
    main()
