"""Evaluation loop: metrics over a loader, reduced across ranks."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from .._finite import non_finite_count
from .._progress import progress, show_progress
from ..errors import NonFiniteError
from ..tasks import DEFAULT_INPUTS, Task
from .distributed import DistInfo

log = logging.getLogger(__name__)

__all__ = [
    "evaluate",
    "evaluate_boundary_f",
    "evaluate_checkpoint",
    "check_batch_inputs",
    "to_device",
    "autocast_context",
    "show_progress",
    "tta_options",
]


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list):
        return [to_device(v, device) for v in batch]
    return batch


def autocast_context(amp: str, device: torch.device):
    if amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _sample_ids(batch: Any) -> list[str]:
    meta = batch.get("meta") if isinstance(batch, dict) else None
    ids = meta.get("id") if isinstance(meta, dict) else None
    return [str(v) for v in ids] if isinstance(ids, (list, tuple)) else []


def _describe_samples(batch: Any, err: Exception) -> str:
    ids = _sample_ids(batch)
    items = getattr(err, "batch_items", None)
    if ids and items:
        return "samples " + ", ".join(repr(ids[j]) for j in items[:10] if j < len(ids))
    return "samples " + ", ".join(map(repr, ids[:10])) if ids else "sample ids unknown"


def check_batch_inputs(batch: Any, inputs: Sequence[str], index: int) -> None:
    """Refuse a batch whose model inputs hold NaN/inf, naming the samples and the share of non-finite values.

    One NaN in a depth/HHA input spreads to every output pixel of a convolution network, so the evaluation would
    report garbage for the whole split. Targets are not checked here (NaN depth ground truth marks invalid pixels).
    """
    if not isinstance(batch, dict):
        return
    ids = _sample_ids(batch)
    for key in inputs:
        x = batch.get(key)
        if not isinstance(x, torch.Tensor) or not non_finite_count(x):
            continue
        per_item = (~torch.isfinite(x)).reshape(x.shape[0], -1).sum(dim=1)
        bad = [j for j in range(x.shape[0]) if per_item[j] > 0]
        names = [repr(ids[j]) if j < len(ids) else f"item {j}" for j in bad]
        share = 100.0 * float(per_item.sum()) / x.numel()
        raise NonFiniteError(
            f"evaluation batch {index}: input {key!r} of samples {', '.join(names[:10])} holds "
            f"{int(per_item.sum())} NaN/inf values ({share:.3g} % of the batch's {key!r}); fix or drop those files "
            "(invalid depth is 0, not NaN)"
        )


@torch.no_grad()
def tta_options(eval_cfg: Any) -> dict[str, Any]:
    """The multi-scale / flip keywords of :func:`evaluate` from a config's ``eval`` section."""
    return {
        "scales": eval_cfg.scales,
        "flip": eval_cfg.flip,
        "average": eval_cfg.average,
        "align_corners": eval_cfg.align_corners,
    }


def evaluate(
    model: nn.Module,
    task: Task,
    loader: DataLoader,
    *,
    device: torch.device,
    info: DistInfo | None = None,
    max_batches: int | None = None,
    amp: str = "off",
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    average: str = "probs",
    align_corners: bool = False,
) -> dict[str, float]:
    """Run ``task.evaluation_step`` over ``loader`` and return the flat metrics (``<task>/<metric>``).

    ``scales``/``flip`` (config ``eval.scales``, ``eval.flip``) turn on multi-scale and flip inference
    (:class:`freqdense.engine.multiscale.MultiScaleFlip`) on the task's model inputs (``task.inputs``).
    """
    from .multiscale import MultiScaleFlip, check_tta, is_single_pass

    scales, flip = check_tta(scales, flip)
    was_training = model.training
    model.eval()
    net = model
    if not is_single_pass(scales, flip):
        inputs = getattr(task, "inputs", DEFAULT_INPUTS)
        net = MultiScaleFlip(model, inputs, scales=scales, flip=flip, average=average, align_corners=align_corners)
    metrics = task.make_metrics()
    total = len(loader) if max_batches is None else min(len(loader), max_batches)
    batches = progress(loader, "eval", total=total, unit="batch", enabled=info is None or info.is_main)
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        check_batch_inputs(batch, getattr(task, "inputs", DEFAULT_INPUTS), i)
        try:
            with autocast_context(amp, device):
                task.evaluation_step(net, to_device(batch, device), metrics)
        except NonFiniteError as err:
            raise NonFiniteError(f"evaluation batch {i} ({_describe_samples(batch, err)}): {err}") from None
    metrics.all_reduce()
    model.train(was_training)
    return metrics.compute()


@torch.no_grad()
def evaluate_boundary_f(
    model: nn.Module,
    loader: DataLoader,
    *,
    num_classes: int,
    device: torch.device,
    tolerance_px: int = 2,
    ignore_index: int = 255,
    class_names: Sequence[str] | None = None,
    output_key: str = "semantic",
    inputs: Sequence[str] = DEFAULT_INPUTS,
) -> dict[str, float]:
    """Boundary F-score (:class:`freqdense.metrics.BoundaryFScore`) of ``model``'s semantic logits over ``loader``.

    Logits are resized bilinearly to the label size before the argmax, as in the semantic task's evaluation.

    Args:
        model: returns ``{output_key: (B, C, h, w) logits}``.
        loader: batches with ``semantic`` labels and the model inputs ``inputs`` (config ``task.inputs``).
        num_classes: number of classes of the logits.
        device: where the model runs.
        tolerance_px: matching distance in pixels.
        ignore_index: label value excluded from the counts.
        class_names: names for the per-class keys ``boundary_f/<name>``.

    Returns:
        ``boundary_f``, ``boundary_precision``, ``boundary_recall`` and ``boundary_f/<class>``.
    """
    from ..metrics import BoundaryFScore
    from ..tasks import model_inputs
    from ..tasks.segmentation import resize_logits

    metric = BoundaryFScore(num_classes, tolerance_px=tolerance_px, ignore_index=ignore_index, class_names=class_names)
    was_training = model.training
    model.eval()
    for i, batch in enumerate(progress(loader, "boundary F-score", unit="batch")):
        check_batch_inputs(batch, inputs, i)
        batch = to_device(batch, device)
        labels = batch["semantic"].long()
        logits = model(*model_inputs(batch, inputs))[output_key]
        try:
            metric.update(resize_logits(logits, tuple(labels.shape[-2:])), labels)
        except NonFiniteError as err:
            raise NonFiniteError(f"evaluation batch {i} ({_describe_samples(batch, err)}): {err}") from None
    model.train(was_training)
    return metric.compute()


def evaluate_checkpoint(
    path, *, split: str | None = None, overrides: list[str] | None = None, prefer: str = "best", device: str = "auto"
) -> dict[str, Any]:
    """Evaluate a trained model on a split of the dataset its config names (overrides apply to that config)."""
    from ..config import build_config, parse_overrides
    from ..config.load import merge_dicts
    from ..tasks import build_task, task_classes
    from .checkpoint import load_model
    from .data import build_dataset, collate_batch
    from .train import resolve_device

    dev = resolve_device(device)
    model, meta = load_model(path, map_location=dev, prefer=prefer)
    raw = meta["config"]
    if overrides:
        raw = merge_dicts(raw, parse_overrides(overrides))
    cfg = build_config(raw, source=f"{meta['checkpoint_dir']}/meta.json")
    split = split or cfg.data.val_split
    dataset = build_dataset(cfg.data, split, train=False)
    num_classes, class_names = task_classes(cfg.task, dataset)
    task = build_task(cfg.task, num_classes=num_classes, class_names=class_names)
    loader = DataLoader(
        dataset, batch_size=cfg.data.val_batch_size, num_workers=cfg.data.num_workers, collate_fn=collate_batch
    )
    metrics = evaluate(
        model,
        task,
        loader,
        device=dev,
        amp=cfg.train.amp,
        **tta_options(cfg.eval),
    )
    return {"checkpoint": meta["checkpoint_dir"], "step": meta.get("step"), "split": split, "metrics": metrics}
