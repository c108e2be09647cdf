"""The Python steps of ``benchmarks/gpu_check.sh`` (issue 18), one subcommand each.

    python benchmarks/_gpu_finetune.py pins                    # pip requirements, as here
    python benchmarks/_gpu_finetune.py wheels DIR              # the wheels this Python needs
    python benchmarks/_gpu_finetune.py check-imports TARGET    # the project imports, offline
    python benchmarks/_gpu_finetune.py images DIR [--dry]
    python benchmarks/_gpu_finetune.py run-id FILE             # from `zoo finetune --json`
    torchrun --nproc_per_node 1 benchmarks/_gpu_finetune.py nccl-probe

Only the standard library is imported at the top: ``wheels`` and ``check-imports`` run before
the project's dependencies are importable.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# What the GPU machine lacks (Cairn's own dependencies it has: click, pyyaml, fsspec, psutil,
# pathspec). SQLAlchemy 2.1 needs greenlet only for asyncio, which Cairn does not use.
ALWAYS = ("sqlalchemy", "alembic", "mako")
# Installed only where this Python has none or too old a one, so the machine's own copies
# (which its other packages were tested with) are not shadowed.
IF_MISSING = {"markupsafe": (2, 0), "typing_extensions": (4, 12)}


def pins() -> None:
    """Requirements pinned to this interpreter's versions (the ones the tests ran with)."""
    names = [*ALWAYS, *IF_MISSING]
    print(" ".join(_pin(name) for name in names))


def _pin(name: str) -> str:
    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return name


def wheels(folder: Path) -> None:
    """The wheels of ``folder`` to install into the target, one path a line."""
    found = sorted(folder.glob("*.whl"))
    if not any(_dist(w) == "cairn" for w in found):
        sys.exit(f"no cairn wheel in {folder}: run benchmarks/gpu_check.sh --fetch-wheels")
    for wheel in found:
        name = _dist(wheel)
        if name in IF_MISSING and _have(name, IF_MISSING[name]):
            print(f"skip {wheel.name}: this Python has {name} {metadata.version(name)}",
                  file=sys.stderr)
            continue
        print(wheel)


def _dist(wheel: Path) -> str:
    return re.sub(r"[-_.]+", "_", wheel.name.split("-")[0]).lower()


def _have(name: str, at_least: tuple[int, ...]) -> bool:
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[: len(at_least)])
    return numbers >= at_least


def check_imports(target: Path) -> None:
    """The registry, its store and the zoo import, and the entry points resolve."""
    import alembic
    import mako
    import sqlalchemy

    for module in (sqlalchemy, alembic, mako):
        where = "target" if Path(module.__file__).is_relative_to(target) else "site-packages"
        print(f"{module.__name__:10} {module.__version__:8} from {where}: {module.__file__}")
    import registry.store  # noqa: F401  (the SQL layer: SQLAlchemy, Alembic)
    import zoo.cli  # noqa: F401

    wheel = [d for d in metadata.distributions(path=[str(target)]) if d.name == "cairn"]
    if not wheel:
        sys.exit(f"no cairn distribution installed in {target}")
    groups = {ep.group for ep in wheel[0].entry_points}
    missing = {"cairn.commands", "cairn.zoo_sources", "console_scripts"} - groups
    if missing:
        sys.exit(f"the cairn wheel lacks the entry point groups {sorted(missing)}")
    commands = {ep.name: ep for ep in metadata.entry_points(group="cairn.commands")}
    commands["zoo"].load()
    print(f"cairn wheel {wheel[0].version} in the target: entry point groups "
          f"{', '.join(sorted(groups))}; `cairn zoo` resolves to {commands['zoo'].value}")


def images(folder: Path, dry: bool) -> None:
    """The JPEG folder of bench_zoo.py's plan (the fine-tunes read it too)."""
    import os

    sys.path.insert(0, str(HERE))
    from _zoo_loops import image_folder, mean_kib
    from bench_zoo import Plan

    plan = Plan.dry() if dry else Plan.gpu()
    image_folder(folder, plan.e2e_images, plan.jpeg_size(), processes=os.cpu_count())
    count = len(list(folder.glob("*/*.jpg")))
    print(f"{folder}: {count} JPEGs of {plan.jpeg_size()} px, mean {mean_kib(folder):.0f} KiB")


def run_id(path: Path) -> None:
    """The run id from the JSON line ``zoo finetune --json`` printed."""
    for line in reversed(path.read_text().splitlines()):
        if line.startswith("{") and '"run_id"' in line:
            print(json.loads(line)["run_id"])
            return
    sys.exit(f"no run id in {path}")


def nccl_probe() -> None:
    """Under torchrun: a process group on this machine's backend (NCCL on a GPU, gloo on a
    CPU) and one all-reduce. The zoo joins a group only when WORLD_SIZE > 1."""
    import os

    import torch
    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
    try:
        tensor = torch.ones(4, device=device) * (dist.get_rank() + 1)
        dist.all_reduce(tensor)
        nccl = ".".join(map(str, torch.cuda.nccl.version())) if cuda else "-"
        print(f"process group: backend {dist.get_backend()}, world {dist.get_world_size()}, "
              f"rank {dist.get_rank()}, device {device}, NCCL {nccl}; all_reduce -> "
              f"{tensor.tolist()}")
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("pins")
    sub.add_parser("wheels").add_argument("folder", type=Path)
    sub.add_parser("check-imports").add_argument("target", type=Path)
    made = sub.add_parser("images")
    made.add_argument("folder", type=Path)
    made.add_argument("--dry", action="store_true", help="the --dry plan's folder")
    sub.add_parser("run-id").add_argument("file", type=Path)
    sub.add_parser("nccl-probe")
    args = parser.parse_args(argv)
    if args.command == "pins":
        pins()
    elif args.command == "wheels":
        wheels(args.folder)
    elif args.command == "check-imports":
        check_imports(args.target.resolve())
    elif args.command == "images":
        images(args.folder, args.dry)
    elif args.command == "run-id":
        run_id(args.file)
    else:
        nccl_probe()


if __name__ == "__main__":
    main()
