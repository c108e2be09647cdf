"""The workspace the demo runs in: the enclosing Cairn workspace, checked up front so a
wrong setting fails before minutes of training rather than after."""

from __future__ import annotations

from demo import layout
from demo.errors import DemoSetupError
from registry.config import Workspace, load_workspace

__all__ = ["CONFIG_EXAMPLE", "demo_workspace"]

CONFIG_EXAMPLE = """\
catalog = "demo/catalog"

[projects.surface-inspection.mov.escaped_defects]
unit = "per 10k parts"
direction = "lower"
baseline = 120
target = 15

[projects.weld-qa.mov.reinspection_minutes]
unit = "min/shift"
direction = "lower"
baseline = 240
target = 24"""


def demo_workspace() -> Workspace:
    """The workspace of the working directory, if the demo can run in it: dvc.yaml and
    params.yaml at its root, the catalog directory ``demo/catalog`` (the pipeline writes
    the cards there) and a MoV definition for each project params.yaml measures."""
    ws = load_workspace()
    where = ws.config_file or "the workspace configuration (cairn.toml)"
    for name in (layout.PIPELINE, layout.PARAMS):
        if not (ws.root / name).is_file():
            raise DemoSetupError(f"{ws.root / name} does not exist",
                                 "run the demo in a clone of the Cairn repository")
    if ws.catalog_dir != (ws.root / layout.CATALOG).resolve():
        raise DemoSetupError(f"the catalog directory is {ws.catalog_dir}",
                             f"set catalog = \"{layout.CATALOG.as_posix()}\" in {where}")
    missing = _missing_movs(ws)
    if missing:
        raise DemoSetupError(f"{where} defines no MoV {', '.join(missing)}",
                             f"add the demo's definitions, e.g.\n{CONFIG_EXAMPLE}")
    return ws


def _missing_movs(ws: Workspace) -> list[str]:
    from registry.knowledge.mov import config_definitions

    defined = {(d.project, d.name) for d in config_definitions(ws)}
    value = layout.section(layout.load_params(ws.root), "value")
    wanted = {(str(project), str(spec.get("mov"))) for project, spec in value.items()
              if isinstance(spec, dict)}
    return [f"{p}.{n}" for p, n in sorted(wanted - defined)]
