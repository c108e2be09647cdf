"""Artifact upload to S3 (issue 19): Cairn's ``run.log_artifact`` against plain s3fs ``put``.

    .venv/bin/python benchmarks/bench_s3.py               # about 1 minute
    .venv/bin/python benchmarks/bench_s3.py --repeat 5 --small 200
    .venv/bin/python benchmarks/bench_s3.py --settle 0.3   # log 0.3 s after the run's start

A moto server on 127.0.0.1 (``tests/_s3server.py``, credentials checked) takes the same files
both ways, each time into a fresh bucket (nothing deduplicated): a folder of small files (plots,
logs) and a few checkpoints. Cairn: ``registry.start_run`` on a SQLite store with an
``s3://`` artifact root, ``run.log_artifact(folder)`` (each file hashed while the previous ones
go up, a HEAD for each over 8 MiB, the artifact rows in one transaction), timed around the
``log_artifact`` call. The run sets up its S3 client in the background from its start; this
benchmark logs at once (unless ``--settle`` says how long a script trains first), so part of
that set-up is inside Cairn's clock. Anchor: ``S3FileSystem.put(files, keys)`` of the same
files, the whole upload in one call, with a new client (as Cairn's) and with a client connected
before the clock starts. Figures are medians of interleaved runs; nothing here asserts.
Target: Cairn's throughput at least 0.8x the anchor's.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import MISSING, Row, machine_facts, median, print_facts, print_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import registry  # noqa: E402
from registry.config import Workspace  # noqa: E402
from tests._s3server import REGION, start_s3_server  # noqa: E402

MiB = 1 << 20


def make_files(folder: Path, small: int, small_size: int, big: int, big_size: int) -> int:
    """``small`` files of ``small_size`` bytes and ``big`` of ``big_size``; the total bytes."""
    total = 0
    for i, (count, size) in enumerate(((small, small_size), (big, big_size))):
        for n in range(count):
            path = folder / ("plots" if i == 0 else "ckpt") / f"f{n}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            seed = hashlib.sha256(f"{i}-{n}".encode()).digest()
            path.write_bytes((seed * (size // 32 + 1))[:size])
            total += size
    return total


def cairn_upload(folder: Path, tmp: Path, bucket: str, settle: float = 0) -> float:
    ws = Workspace(root=tmp, store_url=f"sqlite:///{tmp / f'{bucket}.db'}",
                   artifact_root=f"s3://{bucket}/artifacts", catalog_dir=tmp / "catalog",
                   owner="bench", system_interval=0)
    with registry.start_run(workspace=ws, project="bench") as run:
        time.sleep(settle)
        start = time.perf_counter()
        run.log_artifact(folder, name="upload")
        seconds = time.perf_counter() - start
    record = registry.get_run(run.id, workspace=ws)
    files = sum(1 for p in folder.rglob("*") if p.is_file())
    if len(record.artifacts) != files or any("store" in w for w in record.warnings):
        raise RuntimeError(f"Cairn stored {len(record.artifacts)} of {files}: {record.warnings}")
    return seconds


def s3fs_upload(folder: Path, bucket: str, warm: bool) -> float:
    """Plain s3fs: a new client, connected before the clock starts when ``warm``."""
    import s3fs

    files = sorted(str(p) for p in folder.rglob("*") if p.is_file())
    keys = [f"{bucket}/plain/{os.path.relpath(f, folder)}" for f in files]
    start = time.perf_counter()
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    if warm:
        fs.ls(bucket)
        start = time.perf_counter()
    fs.put(files, keys)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small", type=int, default=100, help="small files (64 KiB)")
    parser.add_argument("--big", type=int, default=3, help="checkpoints (16 MiB)")
    parser.add_argument("--settle", type=float, default=0,
                        help="seconds between the run's start and log_artifact (default 0)")
    args = parser.parse_args()
    print_facts(machine_facts(["s3fs", "botocore", "moto", "fsspec", "SQLAlchemy"]))
    with tempfile.TemporaryDirectory(prefix="cairn-bench-s3-") as name:
        tmp = Path(name)
        server = start_s3_server(tmp / "moto.log")
        os.chdir(tmp)  # outside any git repository: no diff is stored at the run's start
        try:
            os.environ.update(AWS_ENDPOINT_URL=server.url, AWS_ACCESS_KEY_ID=server.key,
                              AWS_SECRET_ACCESS_KEY=server.secret, AWS_DEFAULT_REGION=REGION,
                              AWS_CONFIG_FILE=str(tmp / "none"),
                              AWS_SHARED_CREDENTIALS_FILE=str(tmp / "none"),
                              CAIRN_SYSTEM_INTERVAL="0")
            rows = measure(tmp, server, args)
        finally:
            server.stop()
    settled = f", logged {args.settle:g} s after the run's start" if args.settle else ""
    print_table(rows, f"Artifact upload to S3 on 127.0.0.1 (moto), median of {args.repeat}"
                      f"{settled}")


def measure(tmp: Path, server, args) -> list[Row]:
    rows = []
    for label, small, big in (("small files", args.small, 0), ("checkpoints", 0, args.big),
                              ("both", args.small, args.big)):
        folder = tmp / label.replace(" ", "-")
        total = make_files(folder, small, 64 << 10, big, 16 * MiB)
        times: dict[str, list[float]] = {"cairn": [], "cold": [], "warm": []}
        for _ in range(args.repeat):
            for key in times:
                bucket = f"bench-{uuid.uuid4().hex[:12]}"
                server.client().create_bucket(Bucket=bucket)
                times[key].append(cairn_upload(folder, tmp, bucket, args.settle) if key == "cairn"
                                  else s3fs_upload(folder, bucket, warm=key == "warm"))
        what = f"{small} x 64 KiB + {big} x 16 MiB ({total / MiB:.1f} MiB)"
        cairn = median(times["cairn"])
        for key, anchor in (("cold", "new client"), ("warm", "client connected beforehand")):
            ratio = median(times[key]) / cairn  # throughput, Cairn's over the anchor's
            rows.append(Row(f"{label}, {what}; s3fs.put with a {anchor}", _rate(total, cairn),
                            _rate(total, median(times[key])), f"{ratio:.2f}x", ">= 0.8x",
                            ratio >= 0.8))
    return rows


def _rate(total: int, seconds: float) -> str:
    return MISSING if not seconds else f"{seconds:.2f} s ({total / MiB / seconds:.0f} MiB/s)"


if __name__ == "__main__":
    main()
