"""Typed experiment config: one frozen dataclass per section, validated strictly at load time.

YAML layout (every key optional except ``model.name``)::

    base: other.yaml            # at most one include; maps merge, everything else replaces
    model: {name: multitask_baseline, backbone: resnet18, ...}   # name + the factory's keyword arguments
    data: {dataset: synthetic, args: {...}, batch_size: 8, train_transforms: {...}, ...}
    task: {name: multitask, loss_weights: {semantic: 1.0, depth: 1.0}, ...}
    optim: {name: adamw, lr: 1.0e-3, weight_decay: 1.0e-4, clip_grad_norm: 1.0}
    schedule: {name: poly, total_steps: 1000, warmup_steps: 50}
    eval: {every: 200, metric: semantic/miou, mode: max}
    train: {seed: 0, amp: "off", log_every: 10, ...}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ModelConfig",
    "DataConfig",
    "TaskConfig",
    "OptimConfig",
    "ScheduleConfig",
    "EvalConfig",
    "TrainConfig",
    "PruneConfig",
    "ExperimentConfig",
]


@dataclass(frozen=True)
class ModelConfig:
    """A registered model name and the keyword arguments of its factory (checked against its signature)."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "synthetic"
    #: Keyword arguments of the dataset factory, shared by all splits.
    args: dict[str, Any] = field(default_factory=dict)
    #: Per-split additions to ``args`` (e.g. a smaller ``num_samples`` for validation).
    train_args: dict[str, Any] = field(default_factory=dict)
    val_args: dict[str, Any] = field(default_factory=dict)
    train_split: str = "train"
    val_split: str = "val"
    batch_size: int = 8
    val_batch_size: int = 8
    num_workers: int = 0
    #: Joint transforms, see ``freqdense.data.transforms.build_transforms``.
    train_transforms: dict[str, Any] = field(default_factory=dict)
    val_transforms: dict[str, Any] = field(default_factory=dict)
    #: Check every training sample (label range, finite depth) and fail with the sample's id.
    validate: bool = True


@dataclass(frozen=True)
class TaskConfig:
    name: Literal["segmentation", "depth", "multitask", "self_supervised_depth", "detection"] = "multitask"
    ignore_index: int = 255
    #: Classes absent from both prediction and ground truth: "exclude" (NaN, left out of mIoU, mmseg) or "zero"
    #: (IoU 0, counted in the mean, as Multi-Task-Learning-PyTorch's tables do).
    absent_classes: Literal["exclude", "zero"] = "exclude"
    #: Weight of each task part's loss in the total (keys: semantic, depth; the consistency loss has its own weight).
    loss_weights: dict[str, float] = field(default_factory=dict)
    #: Weight of auxiliary / deep-supervision outputs (model output keys ``"<task>:<name>"``).
    aux_weight: float = 1.0
    depth_loss: Literal["l1", "smooth_l1", "l2", "silog"] = "l1"
    #: Depth evaluation protocol (see freqdense.metrics.DepthMetrics).
    min_depth: float = 1e-3
    max_depth: float = 10.0
    depth_crop: str | None = None
    median_scaling: bool = False
    depth_aggregation: Literal["pixel", "image"] = "pixel"
    #: Keyword arguments of ``freqdense.tasks.SelfSupervisedDepth`` (task.name: self_supervised_depth); the
    #: evaluation protocol fields above (min_depth, max_depth, depth_crop, depth_aggregation) are its defaults.
    self_supervised: dict[str, Any] = field(default_factory=dict)
    #: FAFE local-aware consistency loss (FAFE Eq. 4) of a multitask task, added as the loss term
    #: "consistency": keys ``weight`` (lambda_3, default 0.1), ``threshold`` (1.0), ``seg_mode``
    #: ("scaled_onehot", "index", "probs", "max_prob" or "argmax"); null (default) = off. Checked by
    #: ``freqdense.tasks.build_task``.
    consistency: dict[str, Any] | None = None
    #: Options of task.name: detection (``freqdense.tasks.detection.DETECTION_OPTIONS``): ``score_thr`` (0.05),
    #: ``nms_iou`` (0.6), ``max_per_image`` (100), ``pre_nms_top_k`` (1000), ``min_size`` (0), ``loss_weights``
    #: ({cls, bbox, centerness}: 1 each), ``voc_ap50`` (true). Checked by ``freqdense.tasks.build_task``.
    detection: dict[str, Any] = field(default_factory=dict)
    #: Sample keys passed positionally to the model, ``model(*[batch[k] for k in inputs])``; e.g.
    #: ``[image, hha]`` or ``[image, sensor_depth]`` for two-input RGB-D models.
    inputs: list[str] = field(default_factory=lambda: ["image"])


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    #: Max global gradient norm; null disables clipping.
    clip_grad_norm: float | None = None
    #: Learning-rate multiplier for backbone parameters (models exposing ``.backbone``).
    backbone_lr_mult: float = 1.0
    #: Learning-rate multipliers by parameter-name prefix, e.g. ``{pose_encoder: 10, pose_decoder: 10}`` (the longest
    #: matching prefix wins; combined with the backbone and bias multipliers). Every prefix must name parameters.
    lr_mult: dict[str, float] = field(default_factory=dict)
    #: Learning-rate multiplier for biases (mmdetection's ``paramwise_cfg.bias_lr_mult``; FCOS uses 2).
    bias_lr_mult: float = 1.0
    #: Apply ``weight_decay`` to 1-D normalisation weights too (mmdetection's default; biases never decay).
    norm_weight_decay: bool = False


@dataclass(frozen=True)
class ScheduleConfig:
    name: Literal["constant", "poly", "cosine", "step"] = "poly"
    total_steps: int = 1000
    warmup_steps: int = 0
    #: Warm-up starts at lr * warmup_factor and rises linearly.
    warmup_factor: float = 0.001
    power: float = 0.9
    step_size: int = 1000
    #: ``step`` only: multiply by ``gamma`` at each of these steps instead of every ``step_size`` steps
    #: (mmdetection's multi-step policy, e.g. epochs 8 and 11 of a 1x schedule); empty = every ``step_size``.
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    min_lr_ratio: float = 0.0


@dataclass(frozen=True)
class EvalConfig:
    #: Evaluate (and checkpoint) every N steps; 0 evaluates only at the end.
    every: int = 200
    #: Metric used for best-model tracking, as logged (``<task>/<metric>``).
    metric: str = "semantic/miou"
    mode: Literal["max", "min"] = "max"
    #: Evaluate on at most this many validation batches (null = all).
    max_batches: int | None = None
    #: Multi-scale inference: every model input is resized by each factor, the outputs are resized back and
    #: averaged (segmentation: softmax probabilities; see freqdense.engine.multiscale). [1.0] = single scale.
    scales: list[float] = field(default_factory=lambda: [1.0])
    #: Also run each scale on the horizontally flipped inputs and average the un-flipped outputs.
    flip: bool = False
    #: Multi-scale averaging of semantic outputs: "probs" (softmax probabilities, mmseg / SA-Gate) or "logits"
    #: (the official FAFNet code's validate()).
    average: Literal["probs", "logits"] = "probs"
    #: align_corners of the bilinear resize of multi-scale outputs back to the input size (official FAFNet: true).
    align_corners: bool = False


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["off", "bf16", "fp16"] = "off"
    log_every: int = 10
    #: Save a resumable checkpoint every N steps (0: only at evaluations and at the end).
    checkpoint_every: int = 0
    #: Keep this many recent checkpoints besides the best one.
    keep_checkpoints: int = 1
    deterministic: bool = True
    num_threads: int | None = None
    channels_last: bool = False


@dataclass(frozen=True)
class PruneConfig:
    """Soft filter pruning during training (He et al., IJCAI 2018; Table 2 of the spectral-analysis paper).

    Off when both rates are 0.

    A rate is the fraction of filters zeroed in every prunable conv of its scope (per layer, counted in filters):
    ``encoder_rate`` for ``model.encoder_modules`` (else ``model.backbone``), ``decoder_rate`` for the rest.
    """

    encoder_rate: float = 0.0
    decoder_rate: float = 0.0
    #: Re-select and zero the weakest filters every N epochs (also before training, before every evaluation and
    #: after the last step).
    every_epochs: int = 1
    #: Rate of the encoder's output layers (DeepLab v3+: the ASPP projection = the decoder's input channels):
    #: "decoder" (reproduces the FLOPs of Table 2 of the spectral-analysis paper) or "encoder".
    encoder_output: Literal["encoder", "decoder"] = "decoder"


@dataclass(frozen=True)
class ExperimentConfig:
    model: ModelConfig
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
