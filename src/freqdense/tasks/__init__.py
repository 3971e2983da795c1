"""Tasks: a batch and a model's outputs in, losses and metric updates out."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..config.schema import TaskConfig
from ..errors import ConfigError
from ..losses.consistency import SEG_MODES, LocalConsistencyLoss
from .base import DEFAULT_INPUTS, MetricSet, Task, TaskPart, model_inputs
from .depth import DepthEstimation, depth_loss
from .detection import DetectionTask, detection_classes
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
    "DetectionTask",
    "detection_classes",
    "task_classes",
    "model_inputs",
    "DEFAULT_INPUTS",
]


def task_classes(cfg: TaskConfig, dataset: Any) -> tuple[int | None, tuple[str, ...] | None]:
    """``(num_classes, class_names)`` a task of ``cfg`` takes from ``dataset``: the detection classes
    (:func:`~freqdense.tasks.detection.detection_classes`) for ``detection``, else the dataset's (semantic) classes."""
    if cfg.name == "detection":
        names = detection_classes(dataset)
        return (len(names) if names is not None else None), names
    names = getattr(dataset, "classes", None)
    return getattr(dataset, "num_classes", None), (tuple(names) if names is not None else None)


def build_task(cfg: TaskConfig, *, num_classes: int | None, class_names: Sequence[str] | None = None) -> Task:
    """The task of an experiment config (``segmentation``, ``depth``, ``multitask`` = both,
    ``self_supervised_depth`` or ``detection``; for ``detection`` pass the detection classes, see
    :func:`task_classes`)."""
    if cfg.name == "detection":
        if tuple(cfg.inputs) != DEFAULT_INPUTS:
            raise ConfigError(
                f"task.inputs={list(cfg.inputs)} is not supported by detection (the detector takes the image); "
                "remove task.inputs"
            )
        if cfg.consistency is not None or cfg.loss_weights:
            raise ConfigError(
                "task.consistency and task.loss_weights do not apply to detection; set the FCOS loss weights in "
                "task.detection.loss_weights {cls, bbox, centerness}"
            )
        return DetectionTask.from_options(  # type: ignore[return-value]
            cfg.detection, num_classes=num_classes, class_names=class_names
        )
    if cfg.detection:
        raise ConfigError(f"task.detection options need task.name: detection (got {cfg.name!r}); remove them")
    consistency = _consistency_from_config(cfg.consistency, task_name=cfg.name)
    if cfg.name == "self_supervised_depth":
        from .._registry import check_kwargs

        if tuple(cfg.inputs) != DEFAULT_INPUTS:
            raise ConfigError(
                f"task.inputs={list(cfg.inputs)} is not supported by self_supervised_depth (it feeds the image "
                "and its source views itself); remove task.inputs"
            )

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
    return Task(
        parts, loss_weights=cfg.loss_weights, aux_weight=cfg.aux_weight, inputs=cfg.inputs, consistency=consistency
    )


_CONSISTENCY_KEYS = ("weight", "threshold", "seg_mode")


def _consistency_from_config(
    options: Mapping[str, Any] | None, *, task_name: str = "multitask"
) -> LocalConsistencyLoss | None:
    """Validate ``task.consistency`` (FAFE Eq. 4; keys ``weight`` = lambda_3 = 0.1, ``threshold`` = 1.0,
    ``seg_mode`` = ``"scaled_onehot"``) into a :class:`~freqdense.losses.LocalConsistencyLoss`; ``None`` -> ``None``.

    Raises:
        ConfigError: not a mapping, an unknown key, a bad value, or a task other than ``multitask``.
    """
    if options is None:
        return None
    where = "task.consistency"
    if not isinstance(options, Mapping):
        raise ConfigError(f"{where} must be a mapping such as {{weight: 0.1}} or null, got {options!r}")
    if task_name != "multitask":
        raise ConfigError(
            f"{where} couples segmentation and depth predictions, so it needs task.name: multitask (got "
            f"{task_name!r}); remove task.consistency or change the task"
        )
    for key in options:
        if key not in _CONSISTENCY_KEYS:
            import difflib

            close = difflib.get_close_matches(str(key), _CONSISTENCY_KEYS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}.{hint} Valid keys: {', '.join(_CONSISTENCY_KEYS)}.")
    kwargs: dict[str, Any] = {}
    for key, lower, strict in (("weight", 0.0, False), ("threshold", 0.0, True)):
        if key not in options:
            continue
        value = options[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}.{key} must be a finite number, got {value!r}")
        if value < lower or (strict and value == lower):
            bound = f"> {lower}" if strict else f">= {lower}"
            raise ConfigError(f"{where}.{key} must be {bound}, got {value!r}")
        kwargs[key] = float(value)
    if "seg_mode" in options:
        if options["seg_mode"] not in SEG_MODES:
            raise ConfigError(
                f"{where}.seg_mode must be one of {', '.join(map(repr, SEG_MODES))}, got {options['seg_mode']!r} "
                "(docs/methods/fafe.md explains the choice)"
            )
        kwargs["seg_mode"] = options["seg_mode"]
    return LocalConsistencyLoss(**kwargs)
