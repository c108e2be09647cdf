"""One PyTorch fine-tune from start to finish: data, model, run record, epochs, evaluation."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import torch

from zoo.errors import FinetuneConfigError
from zoo.training import ddp
from zoo.training._loaders import (
    Loaders,
    choose_decode,
    data_config,
    default_workers,
    make_loaders,
)
from zoo.training._progress import Progress
from zoo.training._result import FinetuneResult
from zoo.training.checkpoint import load_state, save_state
from zoo.training.config import FinetuneConfig
from zoo.training.data import prepare
from zoo.training.loop import EpochStats, Trainer
from zoo.training.schedule import WarmupCosine
from zoo.training.strategies import Trainable, apply_strategy, param_groups

__all__ = ["run_finetune"]

LAST, BEST = "last.pt", "best.safetensors"


def run_finetune(config: FinetuneConfig, workspace: Any = None) -> FinetuneResult:
    """Fine-tune as ``config`` says; joins torchrun's process group when there is one."""
    context = ddp.setup(config.device)
    try:
        return _Session(config, workspace, context).run()
    finally:
        context.close()


class _Session:
    def __init__(self, config: FinetuneConfig, workspace: Any, context: ddp.Dist) -> None:
        self.config, self.workspace, self.dist = config, workspace, context
        self.device = context.device
        self.record: Any = None  # the registry run (rank 0 only)
        self.history: list[dict[str, float]] = []
        self.best: tuple[float, float] | None = None  # (val accuracy, -val loss)
        self.best_epoch, self.bad_epochs, self.start_epoch = 0, 0, 0

    # -- set-up -------------------------------------------------------------------------------

    def run(self) -> FinetuneResult:
        cfg = self.config
        self.classes, train, val = prepare(cfg.data, cfg.num_classes, cfg.val_fraction, cfg.seed)
        torch.manual_seed(cfg.seed)
        model = self._model()
        self.loaders = self._loaders(model, train, val)
        optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay, cfg.layer_decay),
                                      lr=cfg.learning_rate, fused=self.device.type == "cuda")
        ema = self._ema(model)
        state = self._resume(model, optimizer, ema)
        trainer = self._trainer(model, optimizer, ema, state)
        self._start_record(len(train), len(val), state)
        with self.record if self.record is not None else self._node_sampler():
            throughput = self._epochs(trainer, ema)
            evaluation, checkpoint = self._finish(trainer, ema)
        self.dist.barrier()
        best_acc = self.best[0] if self.best else float("nan")
        return FinetuneResult(run_id=self.run_id, best_metric=best_acc,
                              best_epoch=self.best_epoch, checkpoint=checkpoint,
                              history=self.history, images_per_second=throughput,
                              evaluation=evaluation)

    def _model(self) -> torch.nn.Module:
        from zoo._api import create

        cfg = self.config
        model = create(cfg.model, len(self.classes), pretrained=cfg.pretrained,
                       weights=cfg.weights)
        self.provenance = model.cairn_info.provenance
        self.trainable: Trainable = apply_strategy(model, cfg.strategy, cfg.stages)
        self.amp_dtype = _amp_dtype(cfg.amp, self.device)
        self.channels_last = (self.device.type == "cuda" if cfg.channels_last is None
                              else cfg.channels_last)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return model.to(self.device, memory_format=fmt)

    def _loaders(self, model: torch.nn.Module, train: list, val: list) -> Loaders:
        cfg, d = self.config, self.dist
        self.workers = cfg.workers if cfg.workers is not None else default_workers(d.local_world)
        config = data_config(model, cfg.image_size)
        self.image_size = int(config["input_size"][-1])
        self.decode, self.decode_fallback = choose_decode(cfg.decode, self.device, train + val,
                                                          cfg.augment, config)
        return make_loaders(train, val, config=config, batch_size=cfg.batch_size,
                            workers=self.workers, seed=cfg.seed, rank=d.rank, world=d.world,
                            pin_memory=self.device.type == "cuda", augment=cfg.augment,
                            decode=self.decode, device=self.device)

    def _ema(self, model: torch.nn.Module) -> Any:
        if self.config.ema is None:
            return None
        from timm.utils import ModelEmaV3

        return ModelEmaV3(model, decay=self.config.ema)

    def _identity(self) -> dict[str, Any]:
        cfg = self.config
        return {"model": cfg.model, "classes": self.classes, "strategy": cfg.strategy,
                "train_stages": cfg.stages if cfg.strategy == "partial" else None}

    def _resume(self, model: torch.nn.Module, optimizer: Any, ema: Any) -> dict[str, Any]:
        path = self.config.resume_file()
        if path is None:
            return {}
        state = load_state(path, self._identity())
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        if ema is not None and state.get("ema_state") is not None:
            ema.module.load_state_dict(state["ema_state"])
        self.start_epoch, self.history = int(state["epoch"]), list(state["history"])
        self.best = tuple(state["best"]) if state.get("best") else None
        self.best_epoch, self.bad_epochs = int(state["best_epoch"]), int(state["bad_epochs"])
        if self.start_epoch >= self.config.epochs:
            raise FinetuneConfigError("epochs", self.config.epochs, f"the checkpoint {path} "
                                      f"already has {self.start_epoch} epochs; ask for more")
        return state

    def _trainer(self, model: torch.nn.Module, optimizer: Any, ema: Any,
                 state: dict[str, Any]) -> Trainer:
        cfg = self.config
        wrapped = ddp.wrap(model, self.dist)
        train_model = torch.compile(wrapped) if cfg.compile else wrapped
        # Under DDP, validate the plain module: its shards differ in size across processes,
        # and DDP's forward would wait for collectives the others never call.
        self.eval_model = model if self.dist.enabled else train_model
        steps = math.ceil(len(self.loaders.train) / cfg.accum_steps)
        schedule = WarmupCosine(cfg.learning_rate, total_steps=steps * cfg.epochs,
                                warmup_steps=round(cfg.warmup * steps))
        return Trainer(train_model, model, optimizer, schedule, dist=self.dist,
                       amp_dtype=self.amp_dtype, channels_last=self.channels_last,
                       accum_steps=cfg.accum_steps, label_smoothing=cfg.label_smoothing,
                       ema=ema, ddp=wrapped if self.dist.enabled else None,
                       step=int(state.get("step", 0)))

    # -- the registry record ---------------------------------------------------------------

    def _start_record(self, n_train: int, n_val: int, state: dict[str, Any]) -> None:
        """Rank 0 starts the run (others log nothing) and every rank learns its id."""
        run_id, folder = None, None
        if self.dist.is_main:
            import registry

            ws = self.workspace or registry.load_workspace()
            cfg = self.config
            tags = {"cairn.kind": "finetune"}
            if self.decode_fallback:
                tags["cairn.decode_fallback"] = self.decode_fallback  # why not on the GPU
            if state.get("run_id"):
                tags["cairn.resumed_from"] = state["run_id"]
            self.record = registry.start_run(project=cfg.project, name=cfg.run_name,
                                             params=self._params(n_train, n_val), tags=tags,
                                             owner=cfg.owner, workspace=ws)
            self.record.use_data(cfg.data, role="train")
            run_id = self.record.id
            folder = self._folder(ws, run_id)
            for record in self.history:  # a resumed fine-tune's earlier epochs
                self._log(record)
        self.run_id, folder = self.dist.broadcast((run_id, folder))
        self.folder = Path(folder)

    def _node_sampler(self) -> Any:
        """On the first process of each other node: its host's system metrics into the run."""
        import registry

        node = registry.sample_node(self.run_id, workspace=self.workspace)
        return node if node is not None else contextlib.nullcontext()

    def _folder(self, ws: Any, run_id: str) -> Path:
        """Where checkpoints go: ``checkpoint_dir``, else beside the checkpoint resumed
        from, else ``<workspace>/.cairn/finetune/<run id>``. A resumed fine-tune's best
        weights come along, so they are published even if no later epoch beats them."""
        resumed = self.config.resume_file()
        folder = self.config.checkpoint_dir or (resumed.parent if resumed else None)
        folder = Path(folder or ws.state_dir / "finetune" / run_id)
        if resumed and (resumed.parent / BEST).is_file() and not (folder / BEST).is_file():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(resumed.parent / BEST, folder / BEST)
        return folder

    def _params(self, n_train: int, n_val: int) -> dict[str, Any]:
        cfg, d = self.config, self.dist
        return {**cfg.params(), "num_classes": len(self.classes), "class_names": self.classes,
                "image_size": self.image_size, "framework": "torch",
                "amp": str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else "off",
                "channels_last": self.channels_last, "device": self.device.type,
                "workers": self.workers, "decode": self.decode, "world_size": d.world,
                "ddp_backend": d.backend,
                "global_batch_size": cfg.batch_size * cfg.accum_steps * d.world,
                "trainable_params": self.trainable.trainable,
                "total_params": self.trainable.total, "n_train": n_train, "n_val": n_val,
                "preprocessing": json.dumps(_plain(self.loaders.data_config)),
                **(self.provenance.params() if self.provenance else {})}

    def _log(self, record: dict[str, float]) -> None:
        if self.record is not None:
            step = int(record["epoch"])
            self.record.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=step)

    # -- epochs --------------------------------------------------------------------------------

    def _epochs(self, trainer: Trainer, ema: Any) -> float:
        """Train until the last epoch or early stopping; returns the steady throughput."""
        cfg = self.config
        progress = Progress(cfg.progress if self.dist.is_main else False)
        trained: list[EpochStats] = []
        for epoch in range(self.start_epoch, cfg.epochs):
            self.loaders.set_epoch(epoch)
            progress.start(len(self.loaders.train), f"epoch {epoch + 1}/{cfg.epochs}")
            stats = trainer.train_epoch(self.loaders.train, progress)
            progress.finish(stats.loss, stats.accuracy, stats.images_per_second)
            trained.append(stats)
            val = trainer.validate(ema.module if ema is not None else self.eval_model,
                                   self.loaders.val)
            self._end_epoch(epoch + 1, stats, val, trainer, ema)
            if cfg.early_stopping is not None and self.bad_epochs >= cfg.early_stopping:
                break
        steady = trained[1:] or trained
        return sum(s.images for s in steady) / max(sum(s.seconds for s in steady), 1e-9)

    def _end_epoch(self, epoch: int, stats: EpochStats, val: EpochStats, trainer: Trainer,
                   ema: Any) -> None:
        record = {"epoch": float(epoch), "train/loss": stats.loss,
                  "train/accuracy": stats.accuracy, "val/loss": val.loss,
                  "val/accuracy": val.accuracy, "lr": trainer.lr,
                  "images_per_second": stats.images_per_second}
        if self.device.type == "cuda":
            record["gpu/peak_memory_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        self.history.append(record)
        score = (val.accuracy, -val.loss)
        improved = self.best is None or score > self.best
        if improved:
            self.best, self.best_epoch, self.bad_epochs = score, epoch, 0
        else:
            self.bad_epochs += 1
        if self.dist.is_main:
            self._log(record)
            if improved:
                self._save_best(ema.module if ema is not None else trainer.raw)
            save_state(self.folder / LAST, self._state(epoch, trainer, ema))

    def _state(self, epoch: int, trainer: Trainer, ema: Any) -> dict[str, Any]:
        return {**self._identity(), "run_id": self.run_id, "epoch": epoch,
                "step": trainer.step, "best": list(self.best) if self.best else None,
                "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "history": self.history, "model_state": trainer.raw.state_dict(),
                "optimizer_state": trainer.optimizer.state_dict(),
                "ema_state": ema.module.state_dict() if ema is not None else None}

    def _save_best(self, module: torch.nn.Module) -> Path:
        from zoo.export import save_safetensors

        meta = {"model": self.config.model, "class_names": json.dumps(self.classes),
                "num_classes": str(len(self.classes)), "image_size": str(self.image_size),
                "framework": "torch", "run_id": self.run_id}
        self.folder.mkdir(parents=True, exist_ok=True)
        return save_safetensors(module, self.folder / BEST, metadata=meta)

    # -- the end -------------------------------------------------------------------------------

    def _finish(self, trainer: Trainer, ema: Any) -> tuple[Any, Path | None]:
        """Rank 0: reload the best weights, evaluate them on the whole validation split,
        record the evaluation and publish the checkpoint."""
        if not self.dist.is_main:
            return None, None
        from zoo.evaluation import evaluate
        from zoo.export import CHECKPOINT, load_safetensors

        best = self.folder / BEST
        module = ema.module if ema is not None else trainer.raw
        load_safetensors(module, best)
        evaluation = evaluate(module, self.loaders.val_full, device=self.device,
                              class_names=self.classes, amp_dtype=self.amp_dtype,
                              channels_last=self.channels_last)
        evaluation.log_to(self.record)
        self.record.log_artifact(best, name=CHECKPOINT)
        return evaluation, best


def _amp_dtype(amp: str | bool | None, device: torch.device) -> torch.dtype | None:
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return torch.bfloat16 if amp in ("bf16", True) else None


def _plain(value: Any) -> Any:
    """A data config with tuples as lists (JSON)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return list(value) if isinstance(value, tuple) else value
