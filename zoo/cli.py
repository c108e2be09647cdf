"""``cairn zoo``: list the backbones of every source, show one in full, fine-tune one.

Plugged into ``cairn`` through the ``cairn.commands`` entry point, so ``registry`` never
imports the zoo.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from registry.cli.kit import CairnGroup, table, value
from zoo import _api
from zoo._featured import featured_order
from zoo._info import ModelInfo
from zoo.errors import UnknownModelError, ZooError
from zoo.training.config import AMP_CHOICES, DECODE_CHOICES, OPTIONS, STRATEGIES

__all__ = ["zoo"]


@click.group(cls=CairnGroup)
def zoo() -> None:
    """Pretrained backbones from timm, TF Hub and the team catalog."""


@zoo.command("list")
@click.argument("query", required=False)
@click.option("--source", help="Only models of this source: timm, tfhub, catalog...")
@click.option("--pretrained-only", is_flag=True, help="Only models with published weights.")
@click.option("--available", is_flag=True, help="Only models whose weights are on this machine.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(0),
              help="At most this many (0: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_models(query: str | None, source: str | None, pretrained_only: bool, available: bool,
                limit: int, as_json: bool) -> None:
    """Models whose name contains QUERY (or matches it as a glob: 'resnet5*'). Without
    QUERY: the team's catalog models first, then those with weights on this machine, then
    common backbones, then the rest."""
    entries = _api.list(query, source, pretrained_only=pretrained_only, available_only=available)
    if not query:
        entries = featured_order(entries)
    shown = entries[:limit] if limit else entries
    if as_json:
        for entry in shown:
            click.echo(json.dumps(entry.to_dict()))
        return
    if not entries:
        click.echo("no model matches")
        return
    click.echo(table(["name", "source", "params", "input", "license", "tag", "weights"],
                     [_row(e) for e in shown]))
    if len(shown) < len(entries):
        click.echo(_footer(len(shown), len(entries), featured=not query))


@zoo.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="All fields as one JSON object.")
def info(name: str, as_json: bool) -> None:
    """Everything about model NAME, including where its weights file is or must be put."""
    try:
        entry = _api.info(name)
    except UnknownModelError as exc:
        raise click.ClickException(_unknown(exc)) from exc
    if as_json:
        click.echo(json.dumps(entry.to_dict(), indent=2))
        return
    fields = entry.to_dict()
    fields["num_params"] = _params(entry.num_params)
    fields["weights_available"] = "local" if entry.weights_available else "missing"
    width = max(map(len, fields))
    for key, field in fields.items():
        shown = ", ".join(map(value, field)) if isinstance(field, list) else value(field)
        click.echo(f"{key.ljust(width)}  {shown}")
    if not entry.weights_available and entry.has_pretrained:
        click.echo(f"\nNot on this machine: created pretrained, it downloads them first (or run "
                   f"`cairn zoo pull {entry.name}`). Offline, put the weights file at "
                   f"{entry.weights_location} to create it pretrained.")


@zoo.command("pull")
@click.argument("names", nargs=-1, required=True)
@click.option("--to", type=click.Path(file_okay=False),
              help="Weights folder to fill (default: the team's: CAIRN_WEIGHTS_DIR, "
                   "[zoo] weights_dir, else .cairn/weights).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model.")
def pull(names: tuple[str, ...], to: str | None, as_json: bool) -> None:
    """Fetch the pretrained weights of model NAMES into the team's weights folder, verified,
    for machines without network: copy the folder there and point CAIRN_WEIGHTS_DIR (or
    [zoo] weights_dir) at it. Weights already in a local cache are copied, not downloaded."""
    rows, failed = [], []
    for name in names:
        try:
            found = _api.pull(name, to)
        except ZooError as exc:
            failed.append(name)
            click.echo(f"{name}: {exc}", err=True)
            continue
        if as_json:
            click.echo(json.dumps({"name": name, **found.to_dict()}))
        rows.append((name, found.source, found.repo_id, (found.revision or "")[:12],
                     f"{found.size / 2**20:.1f} MiB", found.sha256[:12], found.location))
    if rows and not as_json:
        click.echo(table(["name", "source", "repository", "revision", "size", "sha256", "path"],
                         rows))
        if to:
            click.echo(f"\nOn the machine that loads them: CAIRN_WEIGHTS_DIR={to} "
                       "(or [zoo] weights_dir)")
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(names)} not pulled: "
                                   f"{', '.join(failed)}")


def _footer(shown: int, total: int, featured: bool) -> str:
    """The line under a cut listing: how to see the rest."""
    if not featured:
        return f"{shown} of {total} shown; --limit 0 for all"
    return (f"{shown} of {total} shown, the team's and common models first; "
            "search: cairn zoo list QUERY; all: --limit 0")


def _unknown(exc: UnknownModelError) -> str:
    """The error's close names, briefly; its full text (which names are valid) without any."""
    if not exc.suggestions:
        return str(exc)
    return (f"unknown model {exc.name!r}; did you mean {', '.join(exc.suggestions)}? "
            "(cairn zoo list QUERY searches every source)")


def _option(name: str, *decls: str, **kwargs: Any) -> Callable:
    """The click option of fine-tune option ``name`` (``--kebab-case`` unless ``decls``
    say otherwise): default and help from :class:`zoo.FinetuneConfig`, one declaration."""
    spec = OPTIONS[name]
    flags = decls or (f"--{name.replace('_', '-')}",)
    doc = spec.metadata["doc"]
    settings = {"default": spec.default, "show_default": True,
                "help": f"{doc[0].upper()}{doc[1:]}."}
    return click.option(*flags, name, **{**settings, **kwargs})


@zoo.command("finetune")
@click.option("--model", required=True,
              help="Zoo name: 'resnet50.a1_in1k', 'tfhub:PATH', 'catalog:NAME[@V]'.")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Image folder, one sub-folder of RGB images per class.")
@_option("epochs", type=click.IntRange(1))
@_option("batch_size", type=click.IntRange(1))
@_option("lr", type=float)
@_option("strategy", type=click.Choice(STRATEGIES))
@_option("train_stages", type=click.IntRange(1))
@_option("layer_decay", type=float)
@_option("weight_decay", type=float)
@_option("warmup_epochs", type=float)
@_option("label_smoothing", type=float)
@_option("accum_steps", type=click.IntRange(1))
@_option("ema", type=float)
@_option("early_stopping", type=click.IntRange(1))
@_option("compile", is_flag=True)
@_option("channels_last", "--channels-last/--no-channels-last")
@_option("amp", type=click.Choice(AMP_CHOICES))
@_option("device")
@_option("workers", type=click.IntRange(0))
@_option("decode", type=click.Choice(DECODE_CHOICES))
@_option("val_fraction", type=float)
@_option("seed", type=int)
@_option("image_size", type=click.IntRange(1))
@click.option("--augment", "augment", multiple=True, metavar="KEY=VALUE",
              help="A timm training-transform option (repeatable): scale=0.5,1 hflip=0.5 "
                   "vflip=0.5 color_jitter=0.2 auto_augment=rand-m9-mstd0.5 re_prob=0.25.")
@click.option("--no-augment", is_flag=True, help="Train on the evaluation transform.")
@_option("weights", type=click.Path(dir_okay=False))
@_option("pretrained", "--pretrained/--scratch", help="--scratch trains from random "
         "initialisation.")
@_option("checkpoint_dir", type=click.Path(file_okay=False))
@click.option("--resume", "resume", help="'last' (in --checkpoint-dir) or a checkpoint file.")
@_option("project")
@_option("run_name", "--name")
@_option("progress", "--progress/--no-progress")
@_option("every_n_batches", type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="The result as one JSON object.")
def finetune(model: str, data: str, as_json: bool, resume: str | None,
             augment: tuple[str, ...], no_augment: bool, **options: Any) -> None:
    """Fine-tune a zoo model on an image folder; the run is recorded in the registry.

    Under torchrun (``torchrun --nproc_per_node 8 $(which cairn) zoo finetune ...``) it
    trains with DDP on every process and rank 0 records the run."""
    import zoo as api

    if no_augment and augment:
        raise click.UsageError("--augment and --no-augment exclude each other")
    result = api.finetune(model, data, resume=_resume(resume),
                          augment=False if no_augment else _augment(augment), **options)
    if result.checkpoint is None:  # not rank 0 under torchrun: rank 0 reports
        return
    summary = {"run_id": result.run_id, "best_val_accuracy": result.best_metric,
               "best_epoch": result.best_epoch, "checkpoint": str(result.checkpoint),
               "images_per_second": result.images_per_second, "epochs": len(result.history)}
    if as_json:
        click.echo(json.dumps(summary))
        return
    for key, field in summary.items():
        click.echo(f"{key.ljust(18)}  {value(field)}")


def _augment(items: tuple[str, ...]) -> bool | dict[str, Any]:
    """``KEY=VALUE`` options as a mapping: numbers as floats, ``a,b`` as a pair of numbers,
    anything else as text (zoo.finetune checks the keys and ranges)."""
    if not items:
        return True
    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--augment")
        options[key.strip()] = _number_or_text(text.strip())
    return options


def _number_or_text(text: str) -> Any:
    try:
        if "," in text:
            return [float(part) for part in text.split(",")]
        return float(text)
    except ValueError:
        return text


def _resume(resume: str | None) -> bool | str:
    if resume is None:
        return False
    return True if resume == "last" else resume


def _row(e: ModelInfo) -> tuple:
    size = "x".join(map(str, e.input_size)) if e.input_size else None
    return (e.name, e.source, _params(e.num_params), size, e.license, e.pretrained_tag,
            "local" if e.weights_available else "missing")


def _params(n: int | None) -> str | None:
    """A parameter count as 25.6M, 373k or 812."""
    if n is None:
        return None
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


@zoo.command("export")
@click.argument("source")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for model.safetensors and model.onnx.")
@click.option("--format", "formats", multiple=True, type=click.Choice(("safetensors", "onnx")),
              help="What to write (repeatable; default: both).")
@click.option("--model", "model_name", help="Zoo name (default: the checkpoint's own).")
@click.option("--image-size", type=click.IntRange(1), help="Input size for the ONNX graph.")
@click.option("--atol", default=1e-4, show_default=True, type=float,
              help="Largest difference allowed between ONNX Runtime and PyTorch.")
def export(source: str, out_dir: str, formats: tuple[str, ...], model_name: str | None,
           image_size: int | None, atol: float) -> None:
    """Export a fine-tuned model: SOURCE is a run (its model.safetensors) or a checkpoint
    file. The ONNX file is checked with onnx's checker and against PyTorch's output."""
    import tempfile
    from pathlib import Path

    from zoo.export import FORMATS, export_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(source) if Path(source).is_file() else _run_weights(source, Path(tmp))
        written = export_checkpoint(model_name, checkpoint, out_dir,
                                    formats=formats or FORMATS, image_size=image_size,
                                    atol=atol)
    for fmt, path in written.items():
        click.echo(f"{fmt.ljust(12)}  {path}")


def _run_weights(ref: str, folder):
    """The run's best checkpoint (its ``model.safetensors`` artifact), fetched into ``folder``."""
    import registry
    from registry.artifacts import ArtifactStore
    from zoo.export import CHECKPOINT, checkpoint_artifact

    record = registry.get_run(ref)
    artifact = checkpoint_artifact(record)
    if artifact is None:
        raise click.ClickException(f"run {record.id[:8]} logged no {CHECKPOINT} artifact")
    root = registry.load_workspace().artifact_root
    return ArtifactStore(root).get(artifact.sha256, folder / CHECKPOINT)


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: expected numbers such as 1,8,32") from exc
    if not values or min(values) < 1:
        raise click.BadParameter(f"{text!r}: expected positive numbers such as 1,8,32")
    return values


def _precisions(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    values = tuple(p.strip() for p in text.split(",") if p.strip())
    if not values or any(p not in ("fp32", "fp16", "int8") for p in values):
        raise click.BadParameter(f"{text!r}: expected some of fp32,fp16,int8")
    return values


@zoo.command("profile")
@click.argument("source")
@click.option("--batch", "batches", default="1,8,32", show_default=True,
              help="Batch sizes: latency percentiles at each, throughput too.")
@click.option("--threads", type=click.IntRange(1), help="Inference threads "
              "(default: the cores this process may use).")
@click.option("--precision", "precisions",
              help="Some of fp32, fp16 (TFLite only) and int8 (static quantization calibrated "
                   "on validation images); default: every one the model's runtime has.")
@click.option("--repeats", type=click.IntRange(1), help="Timed runs per batch size (default: "
              "at least 50 and 2 s worth, after 10 warm-up runs).")
@click.option("--data", type=click.Path(exists=True, file_okay=False),
              help="Image folder (a sub-folder per class) for accuracy and int8 calibration "
                   "(default: the run's validation split).")
@click.option("--card", help="Also write the profile into this model card (NAME[@VERSION]).")
@click.option("--no-record", is_flag=True, help="Only print: record nothing on the run or card.")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
def profile(source: str, batches: str, threads: int | None, precisions: str,
            repeats: int | None, data: str | None, card: str | None, no_record: bool,
            as_json: bool) -> None:
    """Measure a model on this machine's CPU, with ONNX Runtime (PyTorch models) or
    TensorFlow Lite (Keras fine-tunes): SOURCE is a run, a model card (catalog:NAME[@V]) or a
    file (.onnx, or a .safetensors checkpoint). Latency percentiles at batch 1, throughput at
    the others, peak memory and accuracy, per precision; recorded on the run (infer/...
    metrics) and the card (its inference: list)."""
    from zoo._profile import profile as run_profile

    report = run_profile(source, batches=_ints(batches), threads=threads,
                         precisions=_precisions(precisions), repeats=repeats, data=data,
                         card=card, record=not no_record)
    if as_json:
        click.echo(json.dumps(report.to_dict(), default=str))
        return
    click.echo(f"{report.target} on {report.hardware} ({report.machine}), {report.threads} "
               f"thread(s), {report.runtime} {report.runtime_version}")
    if report.data:
        click.echo(f"accuracy on {report.data}")
    click.echo(table(["precision", "batch", "p50 ms", "p90 ms", "p99 ms", "images/s",
                      "accuracy", "delta", "peak MiB", "file MiB"], _profile_rows(report)))
    for precision, reason in report.failures.items():
        click.echo(f"{precision} failed: {reason}")
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.run_id:
        click.echo(f"recorded on run {report.run_id[:8]} (infer/... metrics)")
    if report.card_path:
        click.echo(f"written into {report.card_path} (inference:)")


def _profile_rows(report: Any) -> list[tuple]:
    rows = []
    for p in report.profiles:
        for b in p.batches:
            rows.append((p.precision, b["batch"], round(b["p50"], 3), round(b["p90"], 3),
                         round(b["p99"], 3), round(b["throughput"], 1), p.accuracy,
                         report.accuracy_delta(p), _mib(p.peak_memory_mb), _mib(p.file_mb)))
    return rows


def _mib(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
