"""The GPU device check of issue 18 (benchmarks/gpu_check.sh, bench_zoo.py --gpu) runs only on
a lent GPU machine, once; these run its ``--dry`` pieces on the CPU so it cannot rot unseen:
the offline install of a freshly built Cairn wheel and a recorded fine-tune shown by the
installed ``cairn``, the benchmark's GPU plan at toy size (a failing step reported, the
next one run), and the helper's choices. Nothing here needs a GPU."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("timm") is None:
    pytest.skip("the zoo extra is not installed: pip install 'cairn[zoo]'",
                allow_module_level=True)

REPO = Path(__file__).parents[1]
BENCH = REPO / "benchmarks"


def _load_helper():
    """benchmarks/_gpu_finetune.py, loaded from its file (benchmarks/ is on no path)."""
    spec = importlib.util.spec_from_file_location("_gpu_finetune", BENCH / "_gpu_finetune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_gpu_finetune = _load_helper()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(tmp_path), "HF_HUB_OFFLINE": "1",
            "PYTHON": sys.executable, "PYTHONUNBUFFERED": "1", **extra}


@pytest.mark.slow
def test_dry_check_installs_the_wheel_and_records_a_finetune(tmp_path: Path):
    out = tmp_path / "out"
    done = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), "--dry", "--parts", "finetune",
                           "--deadline", "240"], cwd=REPO, env=_env(tmp_path, OUT=str(out)),
                          capture_output=True, text=True, timeout=300)
    log = (out / "gpu_check.log").read_text()
    assert done.returncode == 0, log[-3000:]

    assert "cairn wheel 0.1.0 in the target" in log and "`cairn zoo` resolves to" in log
    for part in ("deps", "images", "finetune"):
        assert f"{part}: ok" in log
    shown = (out / "runs_show.txt").read_text()
    assert "status       FINISHED" in shown and "\nhardware\n" in shown
    assert "/site/bin/cairn zoo finetune" in shown  # the wheel's console script ran it
    runs = json.loads((out / "runs.json").read_text())
    assert list(runs) == ["finetune"] and runs["finetune"]["params"]["amp"] == "bfloat16"
    assert not list(tmp_path.glob("cairn-gpu-check.*"))  # the work folder is removed


@pytest.mark.slow
def test_dry_benchmark_takes_the_gpu_plans_steps_and_survives_a_failure(tmp_path: Path):
    figures, profile = tmp_path / "bench.json", tmp_path / "profile.txt"
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_zoo.py"), "--dry", "--models",
         "test_resnet,no_such_model", "--workers", "0", "--image-size", "32",
         "--batch-size", "4", "--json", str(figures), "--profile", str(profile),
         "--image-dir", str(tmp_path / "images")],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]  # the bad model

    doc = json.loads(figures.read_text())
    steps = {(f["model"], f["compiled"], f["source"]) for f in doc["figures"]}
    assert steps == {("test_resnet", False, "synthetic"), ("test_resnet", False, "jpeg"),
                     ("test_resnet", True, "synthetic")}
    assert {e["step"].split()[0] for e in doc["errors"]} == {"no_such_model"}
    assert len(doc["errors"]) == 4 and not doc["stopped"]  # synthetic, 2 folders, compiled
    jpeg = {f["decode"]: f for f in doc["figures"] if f["source"] == "jpeg"}
    assert set(jpeg) == {"device", "workers"} and jpeg["workers"]["workers"] == 0
    assert all(f["over_synthetic"] > 0 for f in jpeg.values())
    assert jpeg["device"]["loader_alone_images_per_s"] > 0
    assert all(f["mfu"] > 0 for f in doc["figures"] if f["source"] == "synthetic")
    assert doc["plan"]["compile_backend"] == "aot_eager" and doc["plan"]["amp"]
    assert "test_resnet 32px, zoo loop" in profile.read_text()
    assert "| Measure" in done.stdout and "no_such_model 32px: synthetic batches: FAILED" \
        in done.stdout


def test_only_missing_helper_wheels_are_installed(tmp_path: Path, capsys):
    names = ["cairn-0.1.0-py3-none-any.whl", "sqlalchemy-2.1.9-cp312-cp312-x.whl",
             "alembic-1.20.1-py3-none-any.whl", "typing_extensions-4.16.0-py3-none-any.whl",
             "MarkupSafe-3.0.4-cp312-cp312-x.whl"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    _gpu_finetune.wheels(tmp_path)
    chosen = {Path(line).name for line in capsys.readouterr().out.split()}
    # This interpreter has typing_extensions and MarkupSafe (the GPU machine does too).
    assert chosen == set(names[:3])

    (tmp_path / names[0]).unlink()
    with pytest.raises(SystemExit, match="no cairn wheel"):
        _gpu_finetune.wheels(tmp_path)


def test_run_id_is_read_from_the_json_line(tmp_path: Path, capsys):
    printed = tmp_path / "finetune.out"
    printed.write_text('cairn: a warning\n{"run_id": "abc123", "epochs": 2}\n')
    _gpu_finetune.run_id(printed)
    assert capsys.readouterr().out.strip() == "abc123"


def test_process_group_probe_runs_under_torchrun(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
         str(BENCH / "_gpu_finetune.py"), "nccl-probe"],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "backend gloo, world 1, rank 0, device cpu" in done.stdout  # NCCL on a GPU
    assert "all_reduce -> [1.0, 1.0, 1.0, 1.0]" in done.stdout
