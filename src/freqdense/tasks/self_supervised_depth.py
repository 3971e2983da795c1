"""Self-supervised monocular depth (Monodepth2) with Freq-aware depth's Auto-Blur and Ambiguity-Masking.

Per training batch (see docs/methods/selfsup_pipeline.md and docs/reference_code.md#monodepth2-and-freq-aware-depth):

1. The depth network sees the target image; the pose network sees frame pairs in temporal order (mode M / MS).
   With ``color_aug`` these network inputs are colour-jittered copies (Monodepth2's ``color_aug`` frames) while the
   loss below sees the un-jittered images. Mode S / MS adds the right stereo view with its known pose
   ``pose_right``.
2. The images the *loss* sees (target and sources, at every scale) are auto-blurred when ``auto_blur`` is on.
3. For each decoder scale s, disp_s is upsampled (bilinear) to full resolution, turned into depth, and every source
   is warped into the target view (``grid_sample``, border padding, ``align_corners=True``).
4. Photometric error 0.85 (1 - SSIM) / 2 + 0.15 L1 per source; per-pixel minimum over the sources and, with
   auto-masking, over the unwarped (identity) sources too.
5. Ambiguity-Masking: the ambiguity of the target and of the argmin-reprojection source, warped with the same grid,
   max-combined; hard mask ``S < delta`` or soft ``exp(-gamma S)`` multiplies the minimum map.
6. Loss_s = mean(min map * mask) + smoothness_weight / 2^s * smoothness(disp_s, image_s); total = mean over s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.sample import Sample, depth_valid_mask
from ..errors import ConfigError, ShapeError
from ..metrics import DepthMetrics
from .base import MetricSet

__all__ = ["SelfSupervisedDepth", "SOURCES_OF_MODE", "MONODEPTH2_COLOR_AUG"]

#: Source views used by each training mode (Monodepth2 frame ids -1, +1 and "s").
SOURCES_OF_MODE: dict[str, tuple[str, ...]] = {"M": ("prev", "next"), "S": ("right",), "MS": ("prev", "next", "right")}
_BATCH_KEYS = {
    "prev": ("image_prev", "pose_prev"),
    "next": ("image_next", "pose_next"),
    "right": ("image_right", "pose_right"),
}


#: Monodepth2's colour augmentation (``transforms.ColorJitter`` arguments and ``do_color_aug`` probability).
MONODEPTH2_COLOR_AUG: dict[str, float] = {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.1, "p": 0.5}


def _color_aug_options(color_aug: bool | Mapping[str, float]) -> dict[str, float] | None:
    if color_aug is False or color_aug is None:
        return None
    if color_aug is True:
        return dict(MONODEPTH2_COLOR_AUG)
    if not isinstance(color_aug, Mapping):
        raise ConfigError(f"self_supervised.color_aug must be true/false or a mapping, got {color_aug!r}")
    unknown = sorted(set(color_aug) - set(MONODEPTH2_COLOR_AUG))
    if unknown:
        raise ConfigError(
            f"self_supervised.color_aug has unknown key(s) {unknown}; valid keys: {sorted(MONODEPTH2_COLOR_AUG)}"
        )
    opts = {**MONODEPTH2_COLOR_AUG, **{k: float(v) for k, v in color_aug.items()}}
    for name in ("brightness", "contrast", "saturation", "p"):
        if not 0.0 <= opts[name] <= 1.0:
            raise ConfigError(f"self_supervised.color_aug.{name} must be in [0, 1], got {opts[name]}")
    if not 0.0 <= opts["hue"] <= 0.5:
        raise ConfigError(f"self_supervised.color_aug.hue must be in [0, 0.5] turns, got {opts['hue']}")
    return opts


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


class SelfSupervisedDepth:
    """Monodepth2's training objective, Auto-Blur and Ambiguity-Masking, and depth evaluation.

    Args:
        mode: ``"M"`` (video: previous + next frame, predicted poses), ``"S"`` (stereo pair, known pose) or
            ``"MS"`` (both).
        scales: decoder scales that enter the loss (the model must predict ``disp:<s>`` for each).
        ssim_weight: weight of the SSIM term in the photometric error (0.85).
        smoothness_weight: edge-aware smoothness weight at scale 0 (1e-3), divided by 2^s at scale s.
        automask: Monodepth2 auto-masking with the identity reprojection errors.
        auto_blur: False, True (paper defaults) or keyword arguments of ``freqdense.ops.auto_blur``.
        ambiguity_mask: None (off), ``"hard"`` (``S < delta``) or ``"soft"`` (``exp(-gamma S)``).
        delta: hard-mask threshold (0.3).
        gamma: soft-mask coefficient (3).
        min_depth: depth of disparity 1; must equal the model's.
        max_depth: depth of disparity 0; must equal the model's.
        pose: ``"net"`` (the pose network predicts T_{t->t+-1}) or ``"gt"`` (the batch's ``pose_prev`` /
            ``pose_next``; a debugging / upper-bound option).
        median_scaling: evaluation median scaling; None = on for M, off for S / MS (metric through the baseline).
        eval_min_depth: ground truth must exceed this to be evaluated.
        eval_max_depth: ground truth must be below this; predictions are clamped to the same range.
        eval_crop: evaluation crop (see ``DepthMetrics``).
        eval_aggregation: ``"image"`` (per-image mean, Monodepth2) or ``"pixel"``.
        eval_protocol: a preset of ``freqdense.metrics.depth.DEPTH_PROTOCOLS`` (e.g. ``"kitti_eigen_mono"``,
            ``"kitti_eigen_benchmark_stereo"``); when given it replaces ``median_scaling`` and the ``eval_*``
            arguments above (the presets are monodepth2's ``evaluate()`` rules, docs/data/depth_datasets.md).
        color_aug: colour jitter of the *network inputs only* (the photometric loss sees the raw frames), as
            Monodepth2's ``color_aug``: False (off), True (brightness = contrast = saturation 0.2, hue 0.1,
            probability 0.5, one draw per sample shared by all its frames) or a mapping overriding any of
            ``brightness``, ``contrast``, ``saturation``, ``hue``, ``p``. Draws use torch's global generator, so the
            run's seed fixes them.
        eval_input_size: ``(H, W)`` the network sees at evaluation (monodepth2 resizes every test image to the
            training size, 192x640 on KITTI); the predicted disparity is then resized to the ground truth's size.
            None: the batch's image as it is.

    Evaluation follows monodepth2: the scale-0 *disparity* (``disp:0`` scaled to ``[1/max_depth, 1/min_depth]``,
    i.e. 1 / depth) is resized bilinearly to the ground truth's size and inverted. Ground truth of varying size
    (KITTI's native resolutions) needs ``val_batch_size: 1``.
    """

    key = "depth"

    def __init__(
        self,
        *,
        mode: Literal["M", "S", "MS"] = "M",
        scales: Sequence[int] = (0, 1, 2, 3),
        ssim_weight: float = 0.85,
        smoothness_weight: float = 1e-3,
        automask: bool = True,
        auto_blur: bool | Mapping[str, Any] = False,
        ambiguity_mask: Literal["hard", "soft"] | None = None,
        delta: float = 0.3,
        gamma: float = 3.0,
        min_depth: float = 0.1,
        max_depth: float = 100.0,
        pose: Literal["net", "gt"] = "net",
        median_scaling: bool | None = None,
        eval_min_depth: float = 1e-3,
        eval_max_depth: float = 80.0,
        eval_crop: str | Sequence[float] | None = None,
        eval_aggregation: Literal["pixel", "image"] = "image",
        eval_protocol: str | None = None,
        eval_input_size: Sequence[int] | None = None,
        color_aug: bool | Mapping[str, float] = False,
    ) -> None:
        if mode not in SOURCES_OF_MODE:
            raise ConfigError(f"self_supervised.mode must be one of {sorted(SOURCES_OF_MODE)}, got {mode!r}")
        if ambiguity_mask not in (None, "hard", "soft"):
            raise ConfigError(f"self_supervised.ambiguity_mask must be null, 'hard' or 'soft', got {ambiguity_mask!r}")
        if pose not in ("net", "gt"):
            raise ConfigError(f"self_supervised.pose must be 'net' or 'gt', got {pose!r}")
        self.scales = tuple(int(s) for s in scales)
        if not self.scales or any(s < 0 for s in self.scales):
            raise ConfigError(f"self_supervised.scales must be non-negative ints, got {list(scales)}")
        if not isinstance(auto_blur, (bool, Mapping)):
            raise ConfigError(
                f"self_supervised.auto_blur must be true/false or a mapping of options, got {auto_blur!r}"
            )
        self.color_aug = _color_aug_options(color_aug)
        self.mode = mode
        self.sources = SOURCES_OF_MODE[mode]
        self.ssim_weight = float(ssim_weight)
        self.smoothness_weight = float(smoothness_weight)
        self.automask = bool(automask)
        self.auto_blur_kwargs: dict[str, Any] | None = (
            dict(auto_blur) if isinstance(auto_blur, Mapping) else ({} if auto_blur else None)
        )
        self.ambiguity_mode = ambiguity_mask
        self.delta, self.gamma = float(delta), float(gamma)
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self.pose_source = pose
        self.median_scaling = (mode == "M") if median_scaling is None else bool(median_scaling)
        from ..losses import AmbiguityMask, AutoBlur, EdgeAwareSmoothness, PhotometricLoss

        self.photometric_loss = PhotometricLoss(
            ssim_weight=self.ssim_weight,
            automask=self.automask,
            auto_blur=AutoBlur(**self.auto_blur_kwargs) if self.auto_blur_kwargs is not None else None,
            ambiguity_mask=AmbiguityMask(ambiguity_mask, delta=self.delta, gamma=self.gamma)
            if ambiguity_mask
            else None,
        )
        self.smoothness = EdgeAwareSmoothness()
        self.metric_kwargs: dict[str, Any] = dict(
            min_depth=eval_min_depth,
            max_depth=eval_max_depth,
            crop=eval_crop,
            median_scaling=self.median_scaling,
            aggregation=eval_aggregation,
        )
        if eval_protocol is not None:
            from ..metrics.depth import DEPTH_PROTOCOLS

            if eval_protocol not in DEPTH_PROTOCOLS:
                raise ConfigError(
                    f"self_supervised.eval_protocol must be one of {sorted(DEPTH_PROTOCOLS)}, got {eval_protocol!r}"
                )
            self.metric_kwargs = dict(DEPTH_PROTOCOLS[eval_protocol])
            self.median_scaling = bool(self.metric_kwargs["median_scaling"])
        self.eval_protocol = eval_protocol
        self.eval_input_size: tuple[int, int] | None = None
        if eval_input_size is not None:
            size = tuple(eval_input_size)
            if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
                raise ConfigError(
                    f"self_supervised.eval_input_size must be [height, width] positive ints, got {eval_input_size!r}"
                )
            self.eval_input_size = (int(size[0]), int(size[1]))

    # -------------------------------------------------------------------------------------------- Task interface
    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)

    def training_step(self, model: nn.Module, batch: Sample) -> dict[str, Tensor]:
        """Predict depth (and poses), then :meth:`compute_losses`."""
        self._check_model(model)
        for name in self.sources:
            self._batch(batch, _BATCH_KEYS[name][0])
        inputs = self.network_inputs(batch)
        image = inputs["image"]
        pairs = {}
        if self.pose_source == "net":
            if "prev" in self.sources:
                pairs["prev"] = (inputs["image_prev"], image, True)  # T_{t->t-1}
            if "next" in self.sources:
                pairs["next"] = (image, inputs["image_next"], False)  # T_{t->t+1}
        outputs = model(image, pose_pairs=pairs) if pairs else model(image)
        disps = {}
        for s in self.scales:
            if f"disp:{s}" not in outputs:
                raise ShapeError(
                    f"the model returned {sorted(outputs)} but self-supervised training needs 'disp:{s}'; use the "
                    "monodepth model with scales containing every task scale"
                )
            disps[s] = outputs[f"disp:{s}"]
        poses = {name: outputs[f"pose_{name}"] for name in pairs}
        return self.compute_losses(batch, disps, poses)

    def network_inputs(self, batch: Sample) -> dict[str, Tensor]:
        """The frames the depth and pose networks see: the batch's, colour-jittered per sample with ``color_aug``.

        The jitter of one sample is shared by its target and source frames (one Monodepth2 ``color_aug`` per item);
        ``compute_losses`` keeps using the un-jittered ``batch`` images.
        """
        keys = ["image"] + [_BATCH_KEYS[n][0] for n in self.sources if n != "right" and self.pose_source == "net"]
        frames = {k: self._batch(batch, k) for k in keys}
        if self.color_aug is None:
            return frames
        from ..data.transforms import jitter_color

        opts = self.color_aug
        out = {k: v.clone() for k, v in frames.items()}
        for i in range(frames["image"].shape[0]):
            draw = torch.rand(8, dtype=torch.float64).tolist()
            order = torch.randperm(4).tolist()
            if draw[0] >= opts["p"]:
                continue
            factors = {
                name: 1.0 + opts[name] * (2.0 * u - 1.0)
                for name, u in zip(("brightness", "contrast", "saturation"), draw[1:4])
            }
            jittered = jitter_color(
                {k: v[i] for k, v in frames.items()}, hue=opts["hue"] * (2.0 * draw[4] - 1.0), order=order, **factors
            )
            for k in keys:
                out[k][i] = jittered[k]
        return out

    def make_metrics(self) -> MetricSet:
        return MetricSet({self.key: DepthMetrics(**self.metric_kwargs)})

    @torch.no_grad()
    def evaluation_step(self, model: nn.Module, batch: Sample, metrics: MetricSet) -> dict[str, Tensor]:
        """Depth metrics on ``batch["depth"]`` the monodepth2 way (see the class docstring).

        The image is resized to ``eval_input_size`` (if set), the scale-0 disparity is resized to the ground
        truth's size and inverted, then ``DepthMetrics`` applies the protocol (mask, crop, scaling, clamp).
        """
        from ..metrics.depth import depth_from_disparity

        image = batch["image"]
        if self.eval_input_size is not None and tuple(image.shape[-2:]) != self.eval_input_size:
            # The joint transforms' image resize (bilinear, antialiased when shrinking, clamped to [0, 1]).
            shrink = image.shape[-2] > self.eval_input_size[0] or image.shape[-1] > self.eval_input_size[1]
            image = F.interpolate(
                image.float(), size=self.eval_input_size, mode="bilinear", align_corners=False, antialias=shrink
            ).clamp_(0.0, 1.0)
        outputs = model(image)
        target = batch["depth"]
        valid = batch.get("depth_valid")
        if valid is None:
            valid = depth_valid_mask(target)
        disparity = self.scaled_disparity(outputs)
        pred = depth_from_disparity(disparity.float(), target.shape[-2:])
        metrics.metrics[self.key].update(pred, target, valid)
        return outputs

    def scaled_disparity(self, outputs: Mapping[str, Tensor]) -> Tensor:
        """Monodepth2's evaluation disparity: ``disp:0`` mapped to ``[1 / max_depth, 1 / min_depth]`` (= 1 / depth);
        ``1 / outputs["depth"]`` for models without ``disp:0``."""
        if "disp:0" in outputs:
            low, high = 1.0 / self.max_depth, 1.0 / self.min_depth
            return low + (high - low) * outputs["disp:0"]
        return 1.0 / outputs[self.key]

    # ------------------------------------------------------------------------------------------------ the loss
    def compute_losses(
        self,
        batch: Sample,
        disps: Mapping[int, Tensor] | None = None,
        poses: Mapping[str, Tensor] | None = None,
        *,
        depths: Mapping[int, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """The loss terms for given disparities (or depths) and poses.

        Args:
            batch: the batch (``image``, ``intrinsics`` and the sources of the mode).
            disps: {scale: (B, 1, h_s, w_s) sigmoid disparity}; upsampled to full resolution for warping.
            poses: {"prev"/"next": (B, 4, 4) T_{t->source}} for the video sources (``pose="gt"`` or missing
                entries take the batch's ``pose_prev``/``pose_next``); the stereo pose is always ``pose_right``.
            depths: instead of ``disps``, full-resolution depths per scale (testing with ground truth); the
                smoothness term is then computed on 1 / depth.

        Returns:
            ``total`` (differentiable) and detached diagnostics: ``photometric``, ``smoothness``,
            ``automask_fraction`` (share of pixels where a warped source won), ``ambiguity_mask_mean``.
        """
        if (disps is None) == (depths is None):
            raise ValueError("compute_losses needs exactly one of disps or depths")
        from ..ops import backproject, project

        image = batch["image"]
        b, _, h, w = image.shape
        # Intrinsics come from the loader in float32: cast them to the images' dtype (float64 batches), inverting
        # in at least float32.
        K = self._batch(batch, "intrinsics").to(image.dtype)
        inv_dtype = torch.float64 if image.dtype == torch.float64 else torch.float32
        inv_K = torch.linalg.inv(K[:, :3, :3].to(inv_dtype)).to(image.dtype)
        poses = dict(poses or {})
        source_images, source_poses = [], []
        for name in self.sources:
            image_key, pose_key = _BATCH_KEYS[name]
            pose = poses.get(name) if name != "right" else None
            source_images.append(self._batch(batch, image_key))
            source_poses.append((pose if pose is not None else self._batch(batch, pose_key)).to(image.dtype))

        # Scale-independent: loss images (auto-blurred when on), identity errors, ambiguity maps.
        photometric = self.photometric_loss
        prepared = photometric.prepare(image, source_images)
        ambiguity = self.ambiguity_mode is not None

        scale_maps = disps if disps is not None else depths
        total = image.new_zeros(())
        photometric_sum, smooth_sum = image.new_zeros(()), image.new_zeros(())
        won, mask_mean = [], []
        for s in self.scales:
            pred = scale_maps[s].to(image.dtype)
            if disps is not None:
                full = F.interpolate(pred, size=(h, w), mode="bilinear", align_corners=False)
                depth = 1.0 / (1.0 / self.max_depth + (1.0 / self.min_depth - 1.0 / self.max_depth) * full)
                disp_s = pred
            else:
                depth = pred if pred.shape[-2:] == (h, w) else F.interpolate(pred, size=(h, w), mode="nearest")
                disp_s = 1.0 / depth.clamp_min(1e-6)
            points = backproject(depth, inv_K)
            grids = [project(points, K, pose, size=(h, w)) for pose in source_poses]
            result = photometric(prepared, grids=grids)
            if self.automask:
                won.append(result.min_reprojection.automask.float().mean().detach())
            if result.weights is not None:
                mask_mean.append(result.weights.float().mean().detach())
            # Smoothness at the decoder's own resolution; raw images when ambiguity masking is on (freq-aware).
            smooth_image = self._scaled_image(image, tuple(disp_s.shape[-2:]), blur=not ambiguity)
            smooth = self.smoothness(disp_s, smooth_image)
            total = total + result.loss + self.smoothness_weight * smooth / (2**s)
            photometric_sum = photometric_sum + result.loss.detach()
            smooth_sum = smooth_sum + smooth.detach()
        n = len(self.scales)
        out = {"total": total / n, "photometric": photometric_sum / n, "smoothness": smooth_sum / n}
        if won:
            out["automask_fraction"] = torch.stack(won).mean()
        if mask_mean:
            out["ambiguity_mask_mean"] = torch.stack(mask_mean).mean()
        return out

    # --------------------------------------------------------------------------------------------- helpers
    def _scaled_image(self, image: Tensor, size: tuple[int, int], *, blur: bool) -> Tensor:
        """The target at a decoder scale (area-averaged), auto-blurred at that scale when ``blur`` and on."""
        scaled = image if tuple(image.shape[-2:]) == tuple(size) else F.interpolate(image, size=size, mode="area")
        auto_blur = self.photometric_loss.auto_blur
        return auto_blur(scaled) if blur and auto_blur is not None else scaled

    def _check_model(self, model: nn.Module) -> None:
        inner = _unwrap(model)
        got = (getattr(inner, "min_depth", self.min_depth), getattr(inner, "max_depth", self.max_depth))
        if (float(got[0]), float(got[1])) != (self.min_depth, self.max_depth):
            raise ConfigError(
                f"the model converts disparity to depth in [{got[0]}, {got[1]}] but task.self_supervised has "
                f"min_depth={self.min_depth}, max_depth={self.max_depth}; set both to the same values"
            )

    @staticmethod
    def _batch(batch: Sample, key: str) -> Tensor:
        if key not in batch:
            raise ShapeError(
                f"self-supervised training needs batch[{key!r}]; add the modality to data.args.modalities "
                "(synthetic: 'temporal' for image_prev/image_next, 'stereo' for image_right) or change the mode"
            )
        return batch[key]
