"""Tasks: a batch and a model's outputs in, losses and metric updates out."""

from __future__ import annotations

from collections.abc import Sequence

from ..config.schema import TaskConfig
from .base import MetricSet, Task, TaskPart
from .depth import DepthEstimation, depth_loss
from .segmentation import SemanticSegmentation
from .self_supervised_depth import SelfSupervisedDepth

__all__ = [
    "Task",
    "TaskPart",
    "MetricSet",
    "SemanticSegmentation",
    "DepthEstimation",
    "depth_loss",
    "build_task",
    "SelfSupervisedDepth",
]


def build_task(cfg: TaskConfig, *, num_classes: int | None, class_names: Sequence[str] | None = None) -> Task:
    """The task of an experiment config (``segmentation``, ``depth``, ``multitask`` = both, or
    ``self_supervised_depth``)."""
    if cfg.name == "self_supervised_depth":
        from .._registry import check_kwargs

        kwargs = dict(
            eval_min_depth=cfg.min_depth,
            eval_max_depth=cfg.max_depth,
            eval_crop=cfg.depth_crop,
            eval_aggregation=cfg.depth_aggregation,
        )
        if cfg.median_scaling:
            kwargs["median_scaling"] = True
        kwargs.update(cfg.self_supervised)
        check_kwargs(SelfSupervisedDepth, kwargs, what="task.self_supervised")
        return SelfSupervisedDepth(**kwargs)  # type: ignore[return-value]
    parts = {}
    if cfg.name in ("segmentation", "multitask"):
        if not num_classes:
            from ..errors import ConfigError

            raise ConfigError(f"task {cfg.name!r} needs a dataset with classes (num_classes is {num_classes})")
        parts["semantic"] = SemanticSegmentation(
            num_classes, ignore_index=cfg.ignore_index, class_names=class_names, absent_classes=cfg.absent_classes
        )
    if cfg.name in ("depth", "multitask"):
        parts["depth"] = DepthEstimation(
            loss=cfg.depth_loss,
            min_depth=cfg.min_depth,
            max_depth=cfg.max_depth,
            crop=cfg.depth_crop,
            median_scaling=cfg.median_scaling,
            aggregation=cfg.depth_aggregation,
        )
    return Task(parts, loss_weights=cfg.loss_weights, aux_weight=cfg.aux_weight)
