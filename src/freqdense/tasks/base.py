"""The task layer: turns a model's outputs and a batch into losses and metric updates.

A *task part* handles one prediction (``semantic`` or ``depth``). Models return ``dict[str, Tensor]``; the key of a
part is its main prediction and keys ``"<part>:<name>"`` are auxiliary / deep-supervision predictions of the same
quantity (any resolution; they are resized to the label size and weighted by ``aux_weight``).
A :class:`Task` combines parts with loss weights; the training loop only calls its two methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ..data.sample import Sample
from ..losses.consistency import LocalConsistencyLoss, local_consistency_loss

__all__ = ["TaskPart", "Task", "MetricSet", "model_inputs", "DEFAULT_INPUTS"]

#: The model input of single-input models: ``model(batch["image"])``.
DEFAULT_INPUTS: tuple[str, ...] = ("image",)


def model_inputs(batch: Mapping[str, Any], keys: Sequence[str] = DEFAULT_INPUTS) -> list[Tensor]:
    """The positional model arguments ``[batch[k] for k in keys]`` (config ``task.inputs``).

    Raises:
        ConfigError: a key is missing from the batch; the message names it and lists the batch's keys.
    """
    missing = [k for k in keys if k not in batch]
    if missing:
        from ..errors import ConfigError

        raise ConfigError(
            f"task.inputs names {missing} but the batch has only the keys {sorted(batch)}; fix task.inputs or make "
            "the dataset provide them (e.g. data.args.modalities for the synthetic scenes, or a transform that "
            "computes the key)"
        )
    return [batch[k] for k in keys]


class TaskPart(Protocol):
    #: Output key this part reads (``"semantic"``, ``"depth"``).
    key: str

    def loss(self, prediction: Tensor, batch: Sample) -> Tensor:
        """Scalar loss of one prediction (main or auxiliary) against the batch's labels."""

    def make_metric(self) -> Any:
        """A fresh metric accumulator (``update/compute/merge/all_reduce``)."""

    def update_metric(self, metric: Any, prediction: Tensor, batch: Sample) -> None:
        """Add one batch of main predictions to the accumulator."""


class MetricSet:
    """One metric accumulator per task part; ``compute()`` gives flat ``"<part>/<metric>"`` keys."""

    def __init__(self, metrics: Mapping[str, Any]) -> None:
        self.metrics = dict(metrics)

    def all_reduce(self) -> None:
        for metric in self.metrics.values():
            metric.all_reduce()

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, metric in self.metrics.items():
            for name, value in metric.compute().items():
                out[f"{key}/{name}"] = float(value)
        return out


class Task:
    """A weighted sum of task parts.

    Args:
        parts: the task parts, keyed by output name.
        loss_weights: weight per part key (default 1.0 each).
        aux_weight: weight of every auxiliary output ``"<part>:<name>"`` relative to its part's weight.
        inputs: sample keys passed positionally to the model (``model(*[batch[k] for k in inputs])``).
        consistency: FAFE's local-aware consistency loss (FAFE Eq. 4) between the final ``"semantic"`` logits
            and ``"depth"`` prediction, both resized to the semantic label size; logged unweighted as the term
            ``"consistency"`` and added to the total with ``consistency.weight`` (lambda_3). Needs both parts.
    """

    def __init__(
        self,
        parts: Mapping[str, TaskPart],
        *,
        loss_weights: Mapping[str, float] | None = None,
        aux_weight: float = 1.0,
        inputs: Sequence[str] = DEFAULT_INPUTS,
        consistency: LocalConsistencyLoss | None = None,
    ) -> None:
        self.parts = dict(parts)
        self.inputs = tuple(inputs)
        if not self.inputs or isinstance(inputs, str) or not all(isinstance(k, str) and k for k in self.inputs):
            from ..errors import ConfigError

            raise ConfigError(f"task.inputs must be a non-empty list of sample keys, got {inputs!r}")
        self.loss_weights = {key: float((loss_weights or {}).get(key, 1.0)) for key in self.parts}
        unknown = set(loss_weights or {}) - set(self.parts)
        if unknown:
            from ..errors import ConfigError

            if "consistency" in unknown:
                raise ConfigError(
                    "task.loss_weights.consistency is not used: the consistency loss has its own weight; set "
                    "task.consistency: {weight: 0.1} (lambda_3) and remove loss_weights.consistency"
                )
            raise ConfigError(
                f"task.loss_weights has keys {sorted(unknown)} that are not parts of this task ({sorted(self.parts)})"
            )
        self.aux_weight = float(aux_weight)
        if consistency is not None and not {"semantic", "depth"} <= set(self.parts):
            from ..errors import ConfigError

            raise ConfigError(
                f"task.consistency needs a multitask task with semantic and depth parts, this task has "
                f"{sorted(self.parts)}; set task.name: multitask or remove task.consistency"
            )
        self.consistency = consistency

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.parts)

    def losses(self, outputs: Mapping[str, Tensor], batch: Sample) -> dict[str, Tensor]:
        """Every loss term (unweighted, keyed as the outputs) plus ``"total"`` (weighted sum)."""
        terms: dict[str, Tensor] = {}
        total = None
        for out_key, prediction in outputs.items():
            part_key, _, aux = out_key.partition(":")
            part = self.parts.get(part_key)
            if part is None:
                continue
            value = part.loss(prediction, batch)
            terms[out_key] = value.detach()
            weight = self.loss_weights[part_key] * (self.aux_weight if aux else 1.0)
            total = value * weight if total is None else total + value * weight
        missing = [k for k in self.parts if k not in outputs]
        if missing:
            from ..errors import ShapeError

            raise ShapeError(
                f"the model returned {sorted(outputs)} but the task needs {missing}; "
                "choose a task matching the model's outputs (task.name) or a model with those heads"
            )
        if self.consistency is not None:
            value = self._consistency_loss(outputs, batch)
            terms["consistency"] = value.detach()
            total = total + value * self.consistency.weight
        terms["total"] = total
        return terms

    def _consistency_loss(self, outputs: Mapping[str, Tensor], batch: Sample) -> Tensor:
        """Unweighted Eq. (4) on the final predictions, resized (bilinear) to the semantic label size."""
        from .segmentation import resize_logits

        size = tuple(batch["semantic"].shape[-2:])
        depth = outputs["depth"]
        if tuple(depth.shape[-2:]) != size:
            depth = torch.nn.functional.interpolate(depth, size=size, mode="bilinear", align_corners=False)
        return local_consistency_loss(
            resize_logits(outputs["semantic"], size).float(),
            depth.float(),
            threshold=self.consistency.threshold,
            seg_mode=self.consistency.seg_mode,
        )

    def training_step(self, model: nn.Module, batch: Sample) -> dict[str, Tensor]:
        return self.losses(model(*model_inputs(batch, self.inputs)), batch)

    def make_metrics(self) -> MetricSet:
        return MetricSet({key: part.make_metric() for key, part in self.parts.items()})

    @torch.no_grad()
    def evaluation_step(self, model: nn.Module, batch: Sample, metrics: MetricSet) -> dict[str, Tensor]:
        outputs = model(*model_inputs(batch, self.inputs))
        for key, part in self.parts.items():
            part.update_metric(metrics.metrics[key], outputs[key], batch)
        return outputs
