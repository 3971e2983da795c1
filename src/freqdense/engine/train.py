"""The training loop. Short on purpose: everything task-specific lives in ``freqdense.tasks``."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml

from .. import __version__
from .._progress import Progress
from ..config import ExperimentConfig, config_to_dict
from ..errors import CheckpointError, ConfigError, DiskFullError, FreqdenseError, TrainingDivergedError
from ..models import create_model
from ..tasks import build_task, task_classes
from .checkpoint import (
    latest_checkpoint,
    load_train_state,
    load_weights,
    restore_best_pointer,
    save_checkpoint,
    write_json_atomic,
    write_text_atomic,
)
from .data import build_dataset, eval_loader, preflight, train_loader
from .distributed import init_distributed, wrap_model
from .evaluate import autocast_context, evaluate, show_progress, to_device, tta_options
from .logger import RunLogger
from .optim import build_optimizer, build_scheduler, load_scheduler_state
from .run_config import CONFIG_FILE, check_resume_config, stored_config
from .seed import resolve_num_threads, rng_state, seed_everything, set_rng_state

log = logging.getLogger(__name__)

__all__ = ["train", "resolve_device", "git_revision", "model_meta", "DivergenceGuard", "EXPLOSION_FACTOR"]

#: A finite loss above this multiple of the median of the first good steps counts as diverged (a healthy run's loss
#: stays within a few times its starting value; 1e6 leaves no room for false alarms and still catches 1e17).
EXPLOSION_FACTOR = 1e6
#: How many finite losses (counted from the start or the resume) form the reference median.
REFERENCE_STEPS = 20


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FreqdenseError("train.device=cuda but no CUDA device is available; use train.device=cpu or auto")
    return torch.device(name)


def git_revision() -> str:
    """The git commit of the freqdense source tree (``+dirty`` if modified), or ``unknown``."""
    src = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=src, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def model_meta(cfg: ExperimentConfig, dataset: Any, model: torch.nn.Module, tasks: tuple[str, ...]) -> dict[str, Any]:
    """What inference needs besides the weights: classes, palette, normalisation, units, the config.

    A detection run records its detection classes (``detection_classes``) and one colour per class."""
    mean, std = getattr(model, "mean", None), getattr(model, "std", None)
    size = getattr(dataset, "size", None)
    classes = list(getattr(dataset, "classes", []) or [])
    palette = [list(map(int, c)) for c in (getattr(dataset, "palette", []) or [])]
    if "detection" in tasks:
        from ..tasks.detection import detection_classes
        from ..viz import default_palette

        classes = list(detection_classes(dataset) or [])
        palette = default_palette(len(classes)).tolist() if classes else []
    return {
        "freqdense_version": __version__,
        "git_revision": git_revision(),
        "config": config_to_dict(cfg),
        "tasks": list(tasks),
        "classes": classes,
        "palette": palette,
        "normalization": {
            "mean": mean.flatten().tolist() if mean is not None else None,
            "std": std.flatten().tolist() if std is not None else None,
            "input": "RGB in [0, 1]; the model normalises internally",
        },
        "depth_unit": "m",
        "input_size": list(size) if size is not None else None,
    }


def _write_run_info(
    run_dir: Path, cfg: ExperimentConfig, *, step: int, resumed: bool, changes: dict[str, tuple[Any, Any]]
) -> None:
    """``config.yaml`` (what the run trains now) and ``run.json`` (provenance of every start, with the config changes
    a resume applied and the step at which they took effect)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    start = {
        "step": step,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "freqdense_version": __version__,
        "git_revision": git_revision(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "num_threads": torch.get_num_threads(),
        "argv": sys.argv,
    }
    if changes:
        start["config_changes"] = {k: {"from": a, "to": b} for k, (a, b) in changes.items()}
    info = _read_run_json(run_dir / "run.json") if resumed else {}
    starts = [*info.get("starts", []), start]
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    write_json_atomic(run_dir / "run.json", {**start, "starts": starts})


def _read_run_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _holds_run(run_dir: Path) -> bool:
    return (run_dir / CONFIG_FILE).is_file() or (run_dir / "checkpoints").is_dir()


class DivergenceGuard:
    """Stops training on a non-finite loss term, or a total loss above :data:`EXPLOSION_FACTOR` times the median
    of the first :data:`REFERENCE_STEPS` finite losses (needs 3 of them), with the step, every term and a hint."""

    def __init__(self, run_dir: Path, *, factor: float = EXPLOSION_FACTOR, reference_steps: int = REFERENCE_STEPS):
        self.run_dir = Path(run_dir)
        self.factor = factor
        self.reference_steps = reference_steps
        self.reference: list[float] = []

    def check(self, step: int, losses: dict[str, torch.Tensor]) -> None:
        names = list(losses)
        stacked = torch.stack([losses[n].detach().float().reshape(()) for n in names]).cpu()  # one device sync
        values = dict(zip(names, stacked.tolist()))
        total = values.get("total", float("nan"))
        reason = None
        bad = [name for name, v in values.items() if not math.isfinite(v)]
        if bad:
            reason = f"non-finite loss ({', '.join(bad)})"
        elif len(self.reference) >= 3 and abs(total) > self.factor * statistics.median(self.reference):
            median = statistics.median(self.reference)
            reason = (
                f"exploding loss (total {total:.4g} > {self.factor:g} x the median {median:.4g} of the first "
                f"{len(self.reference)} steps)"
            )
        if reason is None:
            if len(self.reference) < self.reference_steps:
                self.reference.append(abs(total))
            return
        kept = latest_checkpoint(self.run_dir)
        terms = ", ".join(f"{name}={v:.6g}" for name, v in values.items())
        raise TrainingDivergedError(
            f"training diverged at step {step + 1}: {reason}; loss terms: {terms}. Kept: "
            f"{kept if kept is not None else 'no checkpoint yet'} (the diverged weights were not saved). Try a lower "
            "optim.lr (resume with --resume-with-changes optim.lr=...), train.amp=off, or optim.clip_grad_norm; "
            "check the data with `freqdense data verify`"
        )


def _params_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.state_dict().values() if p.is_floating_point())


def _apply_lr_change(optimizer: torch.optim.Optimizer, scheduler: Any, old: float, new: float) -> None:
    """``--resume-with-changes optim.lr=NEW``: scale every group's base lr (and thus its current scheduled lr) by
    NEW/OLD, keeping per-group multipliers such as ``optim.backbone_lr_mult`` and the schedule's position."""
    if not old or not isinstance(new, (int, float)) or not math.isfinite(new) or new <= 0:
        raise ConfigError(f"optim.lr: cannot change {old!r} -> {new!r} on resume; the new lr must be a positive number")
    ratio = float(new) / float(old)
    scheduler.base_lrs = [base * ratio for base in scheduler.base_lrs]
    for group in optimizer.param_groups:
        group["lr"] *= ratio
        if "initial_lr" in group:
            group["initial_lr"] *= ratio
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def _report_kept_checkpoint(func):
    """A full disk anywhere in a run ends it with one message that also says which checkpoint was kept."""

    @functools.wraps(func)
    def wrapper(cfg: ExperimentConfig, run_dir: str | Path, **kwargs: Any) -> dict[str, Any]:
        try:
            return func(cfg, run_dir, **kwargs)
        except DiskFullError as err:
            if "kept:" in str(err):
                raise
            kept = latest_checkpoint(Path(run_dir))
            raise DiskFullError(f"{err}; kept: {kept if kept is not None else 'no checkpoint yet'}") from None

    return wrapper


def _inherit_num_threads(cfg: ExperimentConfig, run_dir: Path, ckpt: Path | None) -> ExperimentConfig:
    """An unset ``train.num_threads`` resumes with the count the run recorded (the same count repeats the same
    float results); a fresh run resolves it to this machine's count later (:func:`resolve_num_threads`)."""
    if cfg.train.num_threads is not None:
        return cfg
    old, _ = stored_config(run_dir, ckpt)
    saved = ((old or {}).get("train") or {}).get("num_threads")
    if not isinstance(saved, int) or isinstance(saved, bool) or saved < 1:
        return cfg
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, num_threads=saved))


@_report_kept_checkpoint
def train(
    cfg: ExperimentConfig, run_dir: str | Path, *, resume: bool = True, allow_changes: bool = False
) -> dict[str, Any]:
    """Train ``cfg`` in ``run_dir``; resumes from its latest checkpoint when there is one.

    A run directory holds one experiment: resuming with a config that differs from the run's is refused before
    anything is written (:mod:`freqdense.engine.run_config`); ``allow_changes=True`` (``--resume-with-changes``)
    accepts the keys that may change safely (e.g. ``schedule.total_steps``) and records them in ``run.json``.
    Nothing is written until the datasets, the model and the checkpoint have loaded.

    Args:
        resume: continue from the latest checkpoint. ``False`` refuses a directory that already holds a run.
        allow_changes: accept changes of :data:`~freqdense.engine.run_config.RESUMABLE_KEYS` on resume.

    Returns the final metrics (also written to ``run_dir/metrics.json``).
    """
    run_dir = Path(run_dir)
    if not resume and _holds_run(run_dir):
        raise ConfigError(
            f"{run_dir} already holds a run and --no-resume never overwrites one; train into a new --out, or delete "
            "the directory to start over"
        )
    ckpt = latest_checkpoint(run_dir) if resume else None
    state = load_train_state(ckpt) if ckpt is not None else None
    step = int(state["step"]) if state is not None else 0
    cfg = _inherit_num_threads(cfg, run_dir, ckpt)
    changes = check_resume_config(run_dir, config_to_dict(cfg), checkpoint=ckpt, step=step, allow_changes=allow_changes)
    if changes:
        log.info("resuming at step %d with changed %s", step, ", ".join(f"{k}={b!r}" for k, (_, b) in changes.items()))

    device = resolve_device(cfg.train.device)
    info = init_distributed(device)
    cfg = resolve_num_threads(cfg)  # train.num_threads: None -> this machine's count, explicit in config.yaml
    seed_everything(cfg.train.seed, deterministic=cfg.train.deterministic)

    train_set = build_dataset(cfg.data, cfg.data.train_split, train=True, seed=cfg.train.seed)
    val_set = build_dataset(cfg.data, cfg.data.val_split, train=False)
    num_classes, class_names = task_classes(cfg.task, train_set)
    task = build_task(cfg.task, num_classes=num_classes, class_names=class_names)
    model = create_model(cfg.model.name, **cfg.model.kwargs).to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg.optim, model)
    scheduler = build_scheduler(cfg.schedule, optimizer)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.amp == "fp16")
    meta = model_meta(cfg, train_set, model, task.keys)
    preflight(
        cfg.data,
        train_set,
        val_set,
        model=model,
        segments="semantic" in task.keys,
        detects="detection" in task.keys,
        show_progress=info.is_main,
    )

    best = None
    if state is not None:
        saved_world = state.get("world_size")
        if saved_world is not None and int(saved_world) != info.world_size:
            raise ConfigError(
                f"{ckpt} was trained with {saved_world} process(es) and this resume runs {info.world_size}: the steps "
                "per epoch, the data order and the epoch counter would change. Resume with the same number of "
                f"processes (torchrun --nproc_per_node {saved_world}), or train into a new --out"
            )
        load_weights(model, ckpt)
        try:
            optimizer.load_state_dict(state["optimizer"])
            load_scheduler_state(scheduler, state["scheduler"])
            scaler.load_state_dict(state["scaler"])
        except (KeyError, ValueError, RuntimeError, TypeError) as err:
            raise CheckpointError(
                f"{ckpt}: its optimizer/schedule state does not fit optim.name={cfg.optim.name!r} and this model "
                f"({err}); resume with the run's own config, or train into a new --out"
            ) from None
        if "optim.lr" in changes:
            _apply_lr_change(optimizer, scheduler, *changes["optim.lr"])
        set_rng_state(state["rng"])
        best = state.get("best")
        log.info("resumed from %s at step %d", ckpt, step)
    if info.is_main:
        _write_run_info(run_dir, cfg, step=step, resumed=state is not None, changes=changes)
        if state is not None:
            restore_best_pointer(run_dir, best)
    logger = RunLogger(run_dir, enabled=info.is_main)
    if state is not None or (run_dir / "log.jsonl").exists():
        logger.truncate(step)  # rows a killed run wrote after its last checkpoint (all of them before the first)

    pruner = _soft_filter_pruner(cfg, model)
    if pruner is not None and step == 0:
        pruner.step()  # SFP zeroes the weakest filters once before training, then after every N epochs
    net = wrap_model(model, info, device)
    loader = train_loader(train_set, cfg.data, info, seed=cfg.train.seed)
    val = eval_loader(val_set, cfg.data, info)
    steps_per_epoch = len(loader)
    total = cfg.schedule.total_steps
    prune_every = steps_per_epoch * cfg.prune.every_epochs

    def checkpoint(metrics: dict[str, float] | None) -> None:
        nonlocal best
        if not _params_finite(model):
            kept = latest_checkpoint(run_dir)
            raise TrainingDivergedError(
                f"training diverged before step {step}: the weights hold NaN/inf although the losses were finite; "
                f"kept: {kept if kept is not None else 'no checkpoint yet'} (the diverged weights were not saved). "
                "Try a lower optim.lr, train.amp=off, or optim.clip_grad_norm"
            )
        is_best = None
        if metrics is not None:
            value = metrics.get(cfg.eval.metric)
            if value is None:
                raise FreqdenseError(f"eval.metric {cfg.eval.metric!r} is not among the metrics {sorted(metrics)}")
            if not math.isfinite(value):
                log.warning("step %d: %s is %s; this checkpoint cannot become best", step, cfg.eval.metric, value)
            elif best is None or (value > best["value"] if cfg.eval.mode == "max" else value < best["value"]):
                best = is_best = {"metric": cfg.eval.metric, "value": value, "step": step}
        if info.is_main:
            state = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": rng_state(),
                "step": step,
                "best": best,
                "world_size": info.world_size,
            }
            save_checkpoint(
                run_dir, step, model, meta=meta, train_state=state, keep=cfg.train.keep_checkpoints, best=is_best
            )

    bar = Progress("train", total, initial=step, unit="step", enabled=info.is_main, leave=True)  # TTY bar / log lines
    net.train()
    metrics: dict[str, float] | None = None
    t_last, n_last = time.perf_counter(), 0
    guard = DivergenceGuard(run_dir)
    while step < total:
        epoch, start = divmod(step, steps_per_epoch)
        loader.sampler.set_epoch(epoch)
        loader.sampler.set_start(start * cfg.data.batch_size)
        train_set.set_epoch(epoch)
        for batch in loader:
            batch = to_device(batch, device)
            with autocast_context(cfg.train.amp, device):
                losses = task.training_step(net, batch)
            guard.check(step, losses)  # non-finite or exploding: stop before the update reaches the weights
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(losses["total"]).backward()
            if cfg.optim.clip_grad_norm is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            at_eval = cfg.eval.every and step % cfg.eval.every == 0
            if pruner is not None and (step % prune_every == 0 or at_eval or step == total):
                pruner.step()  # SFP mask: every prune.every_epochs epochs, before an evaluation, after the last step
            n_last += batch["image"].shape[0] * info.world_size
            bar.update(1)
            if step % cfg.train.log_every == 0 or step == total:
                now = time.perf_counter()
                row = {f"loss/{k}": v.item() for k, v in losses.items()}
                row.update(lr=optimizer.param_groups[0]["lr"], epoch=epoch, images_per_s=n_last / (now - t_last))
                t_last, n_last = now, 0
                logger.log("train", step, row)
                bar.set_postfix(loss=f"{row['loss/total']:.4f}")
                if not show_progress(info) and info.is_main:
                    log.info("step %d/%d loss %.4f lr %.2e", step, total, row["loss/total"], row["lr"])
            if at_eval or step == total:
                metrics = evaluate(
                    net,
                    task,
                    val,
                    device=device,
                    info=info,
                    max_batches=cfg.eval.max_batches,
                    amp=cfg.train.amp,
                    **tta_options(cfg.eval),
                )
                logger.log("eval", step, metrics)
                if info.is_main:
                    log.info("step %d eval: %s", step, _fmt(metrics))
                checkpoint(metrics)
            elif cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0:
                checkpoint(None)
            if step >= total:
                break
    bar.close()
    if metrics is None:  # resumed at the very end: evaluate the final weights once more
        if pruner is not None:
            pruner.step()  # the final checkpoint is masked already; re-selecting on masked weights keeps the mask
        metrics = evaluate(
            net,
            task,
            val,
            device=device,
            info=info,
            max_batches=cfg.eval.max_batches,
            amp=cfg.train.amp,
            **tta_options(cfg.eval),
        )
    result = {"step": step, "val": metrics, "best": best}
    if info.is_main:
        write_json_atomic(run_dir / "metrics.json", result)
    logger.close()
    return result


def _soft_filter_pruner(cfg: ExperimentConfig, model: torch.nn.Module):
    """The SFP pruner of ``cfg.prune``, or None when pruning is off. Stateless: it re-selects filters from the
    current weights at every call, so resuming needs no extra state."""
    if cfg.prune.encoder_rate <= 0 and cfg.prune.decoder_rate <= 0:
        return None
    from ..pruning import SoftFilterPruner, encoder_decoder_scopes

    scopes = encoder_decoder_scopes(
        model, cfg.prune.encoder_rate, cfg.prune.decoder_rate, encoder_output=cfg.prune.encoder_output
    )
    return SoftFilterPruner(model, scopes=scopes)


def _fmt(metrics: dict[str, float]) -> str:
    keys = [k for k in metrics if "/iou/" not in k]
    return ", ".join(f"{k}={metrics[k]:.4f}" for k in keys if math.isfinite(metrics[k]))
