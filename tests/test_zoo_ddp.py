"""``zoo.finetune`` under ``torchrun``: two CPU processes with the gloo backend train one
model in step, and only rank 0 records the run."""

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

import registry
from registry.config import Workspace
from tests.test_zoo_data import make_folder

REPO = Path(__file__).parents[1]

# Each rank fine-tunes, notes a checksum of its weights after every epoch (DDP must keep them
# identical) and writes what it got back.
SCRIPT = """
import json, os, sys
import zoo
from zoo.training.loop import Trainer

sums, train_epoch = [], Trainer.train_epoch

def checked(self, loader, progress=None):
    stats = train_epoch(self, loader, progress)
    sums.append(float(sum(p.detach().double().sum() for p in self.raw.parameters())))
    return stats

Trainer.train_epoch = checked
result = zoo.finetune("test_resnet", sys.argv[2], pretrained=False, epochs=2, batch_size=4,
                      image_size=32, workers=0, project="ddp", device="cpu", progress=False,
                      checkpoint_dir=sys.argv[3])
rank = os.environ["RANK"]
with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as fh:
    json.dump({"run_id": result.run_id, "history": result.history, "sums": sums,
               "best_epoch": result.best_epoch, "world": os.environ["WORLD_SIZE"],
               "checkpoint": str(result.checkpoint) if result.checkpoint else None,
               "evaluated": result.evaluation is not None}, fh)
"""


@pytest.mark.slow
def test_two_processes_train_in_step_and_record_one_run(tmp_path: Path):
    data = make_folder(tmp_path / "data", {"a": 10, "b": 10}, size=32)
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    store, artifacts = f"sqlite:///{tmp_path / 'registry.db'}", str(tmp_path / "artifacts")
    env = {**os.environ, "CAIRN_STORE": store, "CAIRN_ARTIFACTS": artifacts,
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(tmp_path), str(data), str(tmp_path / "ckpt")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["world"] == rank1["world"] == "2"
    assert rank0["run_id"] == rank1["run_id"]
    assert _metrics(rank0["history"]) == _metrics(rank1["history"])  # all-reduced: identical
    assert rank0["sums"] == rank1["sums"] and len(rank0["sums"]) == 2
    assert rank0["sums"][0] != rank0["sums"][1]  # the weights did change
    assert rank0["best_epoch"] == rank1["best_epoch"]
    assert rank0["evaluated"] and not rank1["evaluated"]
    assert rank0["checkpoint"] and rank1["checkpoint"] is None

    ws = Workspace(root=tmp_path, store_url=store, artifact_root=artifacts,
                   catalog_dir=tmp_path / "catalog", owner="tester")
    runs = registry.list_runs(workspace=ws)
    assert [r.id for r in runs] == [rank0["run_id"]]
    record = registry.get_run(rank0["run_id"], workspace=ws)
    assert record.status == "FINISHED"
    assert record.params["world_size"] == 2 and record.params["global_batch_size"] == 8
    assert record.params["ddp_backend"] == "gloo"
    history = registry.metric_history(rank0["run_id"], ["val/accuracy"], workspace=ws)
    assert [p.step for p in history["val/accuracy"]] == [1, 2]  # one point per epoch, not two
    assert "model.safetensors" in {a.name for a in record.artifacts}


def test_one_process_under_torchrun_still_forms_the_process_group(monkeypatch):
    """``torchrun --nproc_per_node 1`` runs the job as it will run on more GPUs."""
    import torch.distributed as dist

    from tests._pgserver import free_port
    from zoo.training import ddp

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not ddp.setup("cpu").enabled  # a plain python process

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(key, value)
    context = ddp.setup("cpu")
    try:
        assert context.enabled and context.backend == "gloo" and context.world == 1
        assert context.sum([2.0]).tolist() == [2.0] and context.broadcast("x") == "x"
    finally:
        context.close()
    assert not dist.is_initialized()


def _metrics(history: list[dict]) -> list[dict]:
    """Epoch metrics less throughput (each process times itself)."""
    return [{k: v for k, v in epoch.items() if k != "images_per_second"} for epoch in history]


NODE_SCRIPT = """
import sys
import zoo

zoo.finetune("test_resnet", sys.argv[1], pretrained=False, epochs=2, batch_size=4,
             image_size=32, workers=0, project="nodes", device="cpu", progress=False)
"""


@pytest.mark.slow
def test_each_node_of_a_two_node_job_samples_its_host_into_the_one_run(tmp_path: Path):
    """Two torchrun launchers on loopback, one per "node", as a two-node job starts them."""
    from tests._pgserver import free_port

    data = make_folder(tmp_path / "data", {"a": 8, "b": 8}, size=32)
    script = tmp_path / "train.py"
    script.write_text(NODE_SCRIPT)
    store = f"sqlite:///{tmp_path / 'registry.db'}"
    env = {**os.environ, "CAIRN_STORE": store, "CAIRN_ARTIFACTS": str(tmp_path / "artifacts"),
           "CAIRN_SYSTEM_INTERVAL": "0.2", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    port = str(free_port())
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(n),
         "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port", port,
         str(script), str(data)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True) for n in (0, 1)]
    outputs = [p.communicate(timeout=300)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]

    ws = Workspace(root=tmp_path, store_url=store, artifact_root=str(tmp_path / "artifacts"),
                   catalog_dir=tmp_path / "catalog", owner="tester")
    (run,) = registry.list_runs(workspace=ws)
    metrics = registry.get_run(run.id, workspace=ws).metrics
    for node in (0, 1):
        assert metrics[f"system/node{node}/cpu/util"].count >= 1
        assert metrics[f"system/node{node}/mem/process_rss_mb"].last > 0
    assert not any(k.startswith("system/cpu") for k in metrics)  # every name carries its node
