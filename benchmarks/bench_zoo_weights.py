"""Zoo weights benchmark (issue 15): downloading and loading pretrained weights.

    .venv/bin/python benchmarks/bench_zoo_weights.py            # resnet50 (98 MiB), ~2 min
    .venv/bin/python benchmarks/bench_zoo_weights.py --quick    # resnet18 (45 MiB), 3 rounds

Everything runs against the loopback hub of the tests (``tests/_hubserver.py``, a separate
process on 127.0.0.1) serving a real-sized safetensors state dict of the model (random
weights, the same bytes timm would load). Two comparisons, interleaved round by round:

* **Download**: the zoo's download (``huggingface_hub`` into a fresh cache, then the sha256
  check against the hub's digest and the provenance record) against ``hf_hub_download``
  alone into another fresh cache; throughput ratio, target >= 0.8.
* **Cached load**: ``zoo.create(NAME, num_classes=1000)`` with the weights already in the
  Hugging Face cache against timm's own ``create_model(NAME, pretrained=True)`` with that
  file given (``pretrained_cfg_overlay``): the median of the per-round differences (noisy:
  building and loading 100 MB varies by tens of ms here), and the zoo's own time, measured
  inside the same calls as their time outside the timm ``create_model`` they make; target
  < 20 ms.

Figures are medians; nothing is asserted (a missed target prints FAIL).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import Row, fmt_time, machine_facts, median, print_facts, print_table  # noqa: E402

PACKAGES = ("cairn", "torch", "timm", "huggingface_hub", "safetensors")


def main() -> None:
    args = _parse()
    name = "resnet18.a1_in1k" if args.quick else "resnet50.a1_in1k"
    rounds = 3 if args.quick else args.rounds
    with tempfile.TemporaryDirectory(prefix="cairn-bench-weights-") as tmp:
        work = Path(tmp)
        os.environ.pop("HF_HUB_OFFLINE", None)  # make bench exports it for the other scripts
        os.environ.update(HF_HOME=str(work / "hf-home"), CAIRN_WEIGHTS_DIR=str(work / "team"))
        from tests._hubserver import start_hub_server

        server = start_hub_server(work / "hub")
        os.environ["HF_ENDPOINT"] = server.url  # before huggingface_hub is imported
        try:
            print_facts(machine_facts(PACKAGES))
            rows = _measure(server, name, work, rounds)
        finally:
            server.stop()
    print_table(rows, f"Zoo weights: {name}, {rounds} rounds, loopback hub")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="resnet18, 3 rounds")
    parser.add_argument("--rounds", type=int, default=15)
    return parser.parse_args()


def _measure(server, name: str, work: Path, rounds: int) -> list[Row]:
    from zoo._compat import import_timm

    timm = import_timm()
    repo, size = f"timm/{name}", _serve(server, timm, name, work)
    print(f"\nServing {repo}/model.safetensors: {size / 2**20:.1f} MiB at {server.url}")
    plain, ours = _downloads(server, repo, work, rounds)
    timm_s, zoo_s, own = _loads(timm, name, rounds)
    rate = size / median(ours), size / median(plain)
    extra = _paired(zoo_s, timm_s)
    return [
        Row("Download throughput (MiB/s)", f"{rate[0] / 2**20:.0f}", f"{rate[1] / 2**20:.0f}",
            f"{rate[0] / rate[1]:.2f}x", ">= 0.8x", rate[0] / rate[1] >= 0.8),
        Row("Download time (median)", fmt_time(median(ours)), fmt_time(median(plain))),
        Row("Cached load: create (median)", fmt_time(median(zoo_s)), fmt_time(median(timm_s)),
            f"{median(zoo_s) / median(timm_s):.2f}x"),
        Row("Cached load: added time, paired", f"{extra * 1000:+.1f} ms", "0 ms"),
        Row("Cached load: the zoo's own time", f"{median(own) * 1000:.1f} ms", "0 ms", "-",
            "< 20 ms", median(own) < 0.020),
    ]


def _serve(server, timm, name: str, work: Path) -> int:
    """A real-sized state dict of ``name`` (random weights) on the loopback hub."""
    from safetensors.torch import save_file

    path = work / "model.safetensors"
    save_file(timm.create_model(name, pretrained=False).state_dict(), str(path))
    server.add_hf_file(f"timm/{name}", "model.safetensors", path.read_bytes())
    return path.stat().st_size


def _downloads(server, repo: str, work: Path, rounds: int) -> tuple[list[float], list[float]]:
    """Seconds per download, plain huggingface_hub and the zoo's, each into a fresh cache
    that is removed at once; which goes first alternates, and each starts after ``sync``
    (a download right after another otherwise pays for the other's disk writes)."""
    from huggingface_hub import hf_hub_download

    from zoo._download import hf_download
    from zoo._online import hub_settings
    from zoo._provenance import of_hf_cache

    settings = hub_settings()

    def plain(cache: Path) -> None:
        hf_hub_download(repo, "model.safetensors", cache_dir=str(cache))

    def ours(cache: Path) -> None:
        path = hf_download(repo, repo, ["model.safetensors"], None, settings,
                           cache_dir=str(cache))
        of_hf_cache(path, repo)

    times: dict[str, list[float]] = {"plain": [], "ours": []}
    for i in range(rounds + 1):  # the first round warms the server's page cache
        for which in (("plain", "ours") if i % 2 else ("ours", "plain")):
            cache = work / f"dl-{i}-{which}"
            os.sync()
            start = time.perf_counter()
            (plain if which == "plain" else ours)(cache)
            if i:
                times[which].append(time.perf_counter() - start)
            shutil.rmtree(cache)
    return times["plain"], times["ours"]


def _loads(timm, name: str, rounds: int) -> tuple[list[float], list[float], list[float]]:
    """Seconds per create with the weights cached: timm given the file, and the zoo; which
    goes first alternates, each after a garbage collection (the last model freed). Also the
    zoo's own seconds per create: its time outside the timm ``create_model`` it calls."""
    import gc

    import zoo
    from zoo.sources import timm as source

    inside: list[float] = []
    load = source._load

    def timed_load(*args, **kwargs):
        start = time.perf_counter()
        try:
            return load(*args, **kwargs)
        finally:
            inside.append(time.perf_counter() - start)

    source._load = timed_load

    path = zoo.create(name, num_classes=1000).cairn_info.weights_location  # fills the cache
    overlay = {"file": str(path)}
    calls = {"timm": lambda: timm.create_model(name, pretrained=True,
                                               pretrained_cfg_overlay=overlay),
             "zoo": lambda: zoo.create(name, num_classes=1000)}
    times: dict[str, list[float]] = {"timm": [], "zoo": []}
    for i in range(rounds + 1):  # the first round warms both paths
        for which in (("timm", "zoo") if i % 2 else ("zoo", "timm")):
            gc.collect()
            start = time.perf_counter()
            model = calls[which]()
            elapsed = time.perf_counter() - start
            del model  # freed outside the timing (100 MB of tensors take ms to unmap)
            if i:
                times[which].append(elapsed)
            elif which == "zoo":
                inside.clear()
    source._load = load
    return times["timm"], times["zoo"], [z - t for z, t in zip(times["zoo"], inside,
                                                                   strict=True)]


def _paired(ours: list[float], anchor: list[float]) -> float:
    """The median of the per-round differences (rounds share the machine's moment)."""
    return median([a - b for a, b in zip(ours, anchor, strict=True)])


if __name__ == "__main__":
    main()
