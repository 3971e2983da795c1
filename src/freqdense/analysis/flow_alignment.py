"""How well FAFNet's learned RGB-depth flows recover a known depth misalignment (a check the FAFNet paper does not
make).

The synthetic scenes' sensor depth is misaligned by a known field ``f = sensor_flow`` (:mod:`freqdense.data.sample`):
``sensor_depth[y, x]`` images the scene point RGB sees at ``(x, y) + f(x, y)``. A FAM warp samples its source at
``p + d(p)`` (``warped(p) = src(p + d(p))``, :func:`freqdense.nn.rgbd_fuse.flow_to_pixels`). Hence:

* the ``depth_to_rgb`` warp (``fuse<k>``) aligns the depth features to RGB iff ``src(p + d(p))`` shows what RGB sees
  at ``p``, i.e. ``(p + d) + f(p + d) = p``: ``d(p) = -f(p + d(p))``, solved by fixed-point iteration
  (:func:`true_displacement`; to first order ``d = -f``);
* the ``rgb_to_depth`` warp (``fuse<k>:rgb_to_depth``, paper default ``fam_directions="both"``) puts RGB on the
  depth grid: depth pixel ``p`` sees RGB's ``p + f(p)``, so ``d(p) = +f(p)``.

At a stage of stride ``s`` the true displacement is sampled at the image position of each feature pixel,
``(s j, s i)`` (the receptive-field centre of a torchvision-style ResNet: odd kernels with symmetric padding, no
half-pixel offset), bilinearly (exact for the affine misalignment), and divided by ``s`` to give feature pixels.
The learned flow is converted with ``flow_to_pixels`` (the model's ``align_corners``). Per stage the mean
end-point error ``EPE = mean_p |d_learned(p) - d_true(p)|`` is compared with the zero-flow baseline
``mean_p |d_true(p)|``; both are reported in feature pixels and in image pixels (times ``s``).
Derivation and reproducing commands: docs/methods/fafnet_analysis.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_shape
from .._progress import progress
from ..errors import ConfigError, DataError, ShapeError

__all__ = [
    "true_displacement",
    "displacement_at_stride",
    "end_point_error",
    "compute_flow_alignment",
    "stage_features",
    "write_alignment_panels",
    "alignment_markdown",
]

log = logging.getLogger(__name__)


def _sample(field: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Bilinear sample of ``field`` (B, C, H, W) at pixel coordinates ``x``, ``y`` (B, h, w), border-clamped."""
    h, w = field.shape[-2:]
    gx = 2.0 * x / max(w - 1, 1) - 1.0
    gy = 2.0 * y / max(h - 1, 1) - 1.0
    grid = torch.stack([gx, gy], dim=-1).to(field.dtype)
    return F.grid_sample(field, grid, mode="bilinear", padding_mode="border", align_corners=True)


def true_displacement(sensor_flow: Tensor, *, iterations: int = 6) -> Tensor:
    """The displacement ``d`` (B, 2, H, W), image pixels, that aligns the misaligned depth to RGB.

    Solves ``d(p) = -f(p + d(p))`` by fixed-point iteration from ``d = -f`` (``f`` = ``sensor_flow``, bilinear
    between pixels, clamped at the border): warping the sensor depth with ``warped(p) = depth(p + d(p))`` then
    shows at ``p`` the scene point RGB sees at ``p``. The iteration contracts by ``|grad f|`` (below 0.02 per
    unit ``misalignment`` for the synthetic affine errors), so a few steps reach float precision.

    Args:
        sensor_flow: (B, 2, H, W) ``f`` of the sample contract (channel 0 = x, 1 = y, pixels).
        iterations: fixed-point steps after the first-order ``-f``.

    Examples:
        >>> f = torch.zeros(1, 2, 4, 5); f[:, 0] = 1.5  # depth shows what RGB sees 1.5 px to the right
        >>> true_displacement(f)[0, :, 2, 2].tolist()  # so sample the depth 1.5 px to the left
        [-1.5, 0.0]
    """
    check_shape(sensor_flow, "B C H W", name="sensor_flow", C=2)
    f = sensor_flow.float()
    h, w = f.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=f.dtype, device=f.device), torch.arange(w, dtype=f.dtype, device=f.device), indexing="ij"
    )
    d = -f
    for _ in range(int(iterations)):
        d = -_sample(f, xs + d[:, 0], ys + d[:, 1])
    return d


def displacement_at_stride(displacement: Tensor, size: Sequence[int], stride: float) -> Tensor:
    """An image-pixel displacement field (B, 2, H, W) expressed on a stride-``s`` feature grid of ``size`` (h, w).

    Feature pixel (i, j) is centred at image pixel ``(s j, s i)``; the field is sampled there bilinearly (border
    clamped) and divided by ``s``: the result is in feature pixels.
    """
    check_shape(displacement, "B C H W", name="displacement", C=2)
    h, w = int(size[0]), int(size[1])
    if not stride > 0:
        raise ConfigError(f"stride must be positive, got {stride}")
    b = displacement.shape[0]
    ys = (torch.arange(h, dtype=displacement.dtype, device=displacement.device) * stride).view(1, h, 1)
    xs = (torch.arange(w, dtype=displacement.dtype, device=displacement.device) * stride).view(1, 1, w)
    return _sample(displacement, xs.expand(b, h, w), ys.expand(b, h, w)) / stride


def end_point_error(prediction: Tensor, target: Tensor) -> Tensor:
    """Per-pixel end-point error ``|prediction - target|`` (B, h, w) of two (B, 2, h, w) displacement fields."""
    check_shape(prediction, "B C H W", name="prediction", C=2)
    if prediction.shape != target.shape:
        raise ShapeError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} must match")
    return torch.linalg.vector_norm(prediction - target, dim=1)


def _stride_of(image_size: Sequence[int], grid_size: Sequence[int]) -> float:
    """The stride of a feature grid: ``W / w`` rounded to a power of two when within 10 % of one."""
    ratio = float(image_size[-1]) / float(grid_size[-1])
    power = 2.0 ** round(math.log2(ratio))
    return power if abs(ratio / power - 1.0) < 0.1 else ratio


def _pearson(a: Tensor, b: Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = float(torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b))
    return float((a * b).sum()) / denom if denom > 0 and a.numel() > 2 else float("nan")


def _fusion_blocks(model: nn.Module) -> Sequence[nn.Module]:
    blocks = getattr(model, "fusions", None)
    if blocks is None:
        raise ConfigError(
            f"{type(model).__name__} has no .fusions (one RGB-D fusion block per stage); the alignment analysis "
            "needs a FAFNet-style model (registered fafnet)"
        )
    return blocks


def _align_corners_of(model: nn.Module, stage: int) -> bool:
    return bool(getattr(_fusion_blocks(model)[stage - 1], "align_corners", True))


def _parse_flow_key(key: str) -> tuple[int, str] | None:
    """``"fuse3"`` -> (3, "depth_to_rgb"), ``"fuse3:rgb_to_depth"`` -> (3, "rgb_to_depth"); others None."""
    name, _, direction = key.partition(":")
    if not name.startswith("fuse") or not name[4:].isdigit():
        return None
    direction = direction or "depth_to_rgb"
    return (int(name[4:]), direction) if direction in ("depth_to_rgb", "rgb_to_depth") else None


def _iter_batches(dataset: Any, num: int | None, batch_size: int) -> Iterator[dict[str, Any]]:
    from torch.utils.data import DataLoader, Subset

    n = len(dataset) if num is None else min(int(num), len(dataset))
    if n == 0:
        raise DataError("the dataset split is empty; check the split name and the dataset arguments")
    loader = DataLoader(Subset(dataset, range(n)), batch_size=batch_size, shuffle=False)
    yield from progress(loader, "flow alignment", unit="batch")


def _forward_with_flows(model: nn.Module, inputs: Sequence[Tensor]) -> dict[str, Tensor]:
    out = model(*inputs, return_flows=True)
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping)):
        raise ConfigError(
            f"{type(model).__name__}(..., return_flows=True) must return (outputs, flows); the alignment analysis "
            "needs a FAFNet-style model"
        )
    return dict(out[1])


@torch.no_grad()
def compute_flow_alignment(
    model: nn.Module,
    dataset: Any,
    *,
    inputs: Sequence[str] = ("image", "hha"),
    num: int | None = None,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    flow_key: str = "sensor_flow",
    align_corners: bool | None = None,
) -> dict[str, Any]:
    """Mean EPE of every RGBDFuse flow against the true misalignment, next to the zero-flow baseline.

    Args:
        model: FAFNet-style, ``model(*inputs, return_flows=True) -> (outputs, flows)`` with ``flows["fuse<k>"]``
            (depth onto RGB) and optionally ``flows["fuse<k>:rgb_to_depth"]``, raw FAM flows; ``model.fusions``.
        dataset: samples with the ``inputs`` keys and ``flow_key`` (2, H, W) (synthetic scenes with the
            ``sensor`` modality).
        inputs: model input keys (config ``task.inputs``).
        num: first ``num`` samples (default all).
        batch_size: samples per forward pass.
        device: where the model runs.
        flow_key: the sample key with the true misalignment ``f``.
        align_corners: the FAMs' convention; default: read from each fusion block (``True`` if absent).

    Returns:
        ``{"rows": [...], "num_images": N, "image_size": [H, W]}``; one row per flow key with ``stage``,
        ``direction``, ``stride``, ``grid`` [h, w], ``epe`` and ``epe_zero`` (feature pixels, mean over all pixels
        of all images), ``epe_image_px`` / ``epe_zero_image_px`` (times the stride), ``ratio`` (epe / epe_zero),
        ``improved_fraction`` (share of images whose EPE is below their zero-flow EPE), ``mean_true`` and
        ``mean_learned`` (mean displacement vectors, feature pixels), ``epe_sem`` (standard error over images),
        ``cosine`` (mean over images of the cosine similarity of the learned and true fields, each flattened to
        one vector: > 0 when the flow points the right way on average) and ``shift_correlation`` (Pearson r of the
        per-image mean learned and true displacements, x and y pooled: does the flow follow each image's shift?).
    """
    from ..nn.rgbd_fuse import flow_to_pixels
    from ..tasks import model_inputs

    model.eval()
    acc: dict[str, dict[str, Any]] = {}
    num_images = 0
    image_size: list[int] | None = None
    for batch in _iter_batches(dataset, num, batch_size):
        if flow_key not in batch:
            raise DataError(
                f"samples have no {flow_key!r} (the true misalignment; keys: {sorted(batch)}); use the synthetic "
                "scenes with the sensor modality (data.args.modalities: [image, semantic, sensor])"
            )
        x = [t.to(device) for t in model_inputs(batch, inputs)]
        sensor_flow = batch[flow_key].to(device).float()
        image_size = list(sensor_flow.shape[-2:])
        flows = _forward_with_flows(model, x)
        d_depth = true_displacement(sensor_flow)
        num_images += sensor_flow.shape[0]
        for key, flow in flows.items():
            parsed = _parse_flow_key(key)
            if parsed is None:
                continue
            stage, direction = parsed
            ac = _align_corners_of(model, stage) if align_corners is None else bool(align_corners)
            learned = flow_to_pixels(flow.float(), align_corners=ac)
            stride = _stride_of(image_size, flow.shape[-2:])
            truth_image = d_depth if direction == "depth_to_rgb" else sensor_flow
            truth = displacement_at_stride(truth_image, flow.shape[-2:], stride)
            err = end_point_error(learned, truth).flatten(1).mean(1)
            zero = torch.linalg.vector_norm(truth, dim=1).flatten(1).mean(1)
            cosine = F.cosine_similarity(learned.flatten(1).double(), truth.flatten(1).double(), dim=1, eps=1e-12)
            row = acc.setdefault(
                key,
                {
                    "stage": stage,
                    "direction": direction,
                    "stride": stride,
                    "grid": list(flow.shape[-2:]),
                    "align_corners": ac,
                    "epe": [],
                    "zero": [],
                    "cosine": [],
                    "learned_mean": [],
                    "true_mean": [],
                },
            )
            row["epe"] += err.double().cpu().tolist()
            row["zero"] += zero.double().cpu().tolist()
            row["cosine"] += cosine.cpu().tolist()
            row["learned_mean"].append(learned.double().mean((2, 3)).cpu())
            row["true_mean"].append(truth.double().mean((2, 3)).cpu())
    if not acc:
        raise ConfigError(
            "the model returned no RGBDFuse flows ('fuse<k>'); it has no FAM in its fusion blocks (fuse_fam=False or "
            "another fusion): nothing to compare"
        )
    rows = []
    for key in sorted(acc, key=lambda k: (acc[k]["stage"], acc[k]["direction"] != "depth_to_rgb")):
        r = acc[key]
        epe = torch.tensor(r["epe"], dtype=torch.float64)
        zero = torch.tensor(r["zero"], dtype=torch.float64)
        n = epe.numel()
        sem = float(epe.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
        learned_mean, true_mean = torch.cat(r["learned_mean"]), torch.cat(r["true_mean"])  # (N, 2)
        rows.append(
            {
                "key": key,
                "stage": r["stage"],
                "direction": r["direction"],
                "stride": r["stride"],
                "grid": r["grid"],
                "align_corners": r["align_corners"],
                "epe": float(epe.mean()),
                "epe_zero": float(zero.mean()),
                "epe_image_px": float(epe.mean()) * r["stride"],
                "epe_zero_image_px": float(zero.mean()) * r["stride"],
                "ratio": float(epe.mean() / zero.mean()) if float(zero.mean()) > 0 else float("nan"),
                "improved_fraction": float((epe < zero).double().mean()),
                "epe_sem": sem,
                "mean_learned": learned_mean.mean(0).tolist(),
                "mean_true": true_mean.mean(0).tolist(),
                "cosine": float(torch.tensor(r["cosine"], dtype=torch.float64).mean()),
                "shift_correlation": _pearson(learned_mean.flatten(), true_mean.flatten()),
            }
        )
    return {"rows": rows, "num_images": num_images, "image_size": image_size, "inputs": list(inputs)}


@torch.no_grad()
def stage_features(model: nn.Module, inputs: Sequence[Tensor], *, stage: int = 1) -> dict[str, Tensor]:
    """Features of one fusion stage for the Fig. 6 panel: RGB, depth before and after the learned alignment.

    Hooks ``model.fusions[stage - 1]``, takes its stream inputs, applies its ACFM when it has one (FAFNet's
    Fig. 6 shows the ACFM outputs of the first RGBDFuse block) and warps the depth feature with the stage's
    ``depth_to_rgb`` flow (:func:`freqdense.nn.flow_warp`, the block's ``align_corners``).

    Returns:
        ``rgb``, ``depth_before``, ``depth_after`` (B, C, h, w), ``flow`` (B, 2, h, w) raw FAM flow (absent when the
        block has no FAM; ``depth_after`` is then ``depth_before``), ``flows`` (every flow of the model).
    """
    from ..nn import flow_warp

    block = _fusion_blocks(model)[stage - 1]
    captured: dict[str, Any] = {}

    def keep_inputs(_module: nn.Module, args: tuple[Any, ...], _output: Any) -> None:
        captured.setdefault("args", args)  # returning None keeps the block's output

    handle = block.register_forward_hook(keep_inputs)
    try:
        flows = _forward_with_flows(model, inputs)
    finally:
        handle.remove()
    rgb, depth = captured["args"][:2]
    acfm = getattr(block, "acfm", None)
    if acfm is not None:
        rgb, depth = acfm(rgb, depth)
    out = {"rgb": rgb, "depth_before": depth, "depth_after": depth, "flows": flows}
    flow = flows.get(f"fuse{stage}")
    if flow is not None:
        out["flow"] = flow
        out["depth_after"] = flow_warp(depth, flow, align_corners=bool(getattr(block, "align_corners", True)))
    return out


def write_alignment_panels(
    model: nn.Module,
    dataset: Any,
    out_dir: str | Path,
    *,
    inputs: Sequence[str] = ("image", "hha"),
    indices: Sequence[int] = (0,),
    stage: int = 1,
    device: torch.device | str = "cpu",
    flow_key: str = "sensor_flow",
) -> list[Path]:
    """One Fig. 6-like panel (:func:`freqdense.viz.flow.flow_panel`) per sample index, for fusion ``stage``."""
    from ..nn.rgbd_fuse import flow_to_pixels
    from ..tasks import model_inputs
    from ..viz.flow import flow_panel

    out_dir = Path(out_dir)
    paths = []
    for index in progress(indices, "alignment panels", unit="panel"):
        sample = dataset[int(index)]
        batch = {k: v[None] if isinstance(v, Tensor) else v for k, v in sample.items()}
        x = [t.to(device) for t in model_inputs(batch, inputs)]
        feats = stage_features(model, x, stage=stage)
        learned = truth = None
        stride = None
        if "flow" in feats:
            ac = bool(getattr(_fusion_blocks(model)[stage - 1], "align_corners", True))
            learned = flow_to_pixels(feats["flow"].float(), align_corners=ac)[0].cpu()
            stride = _stride_of(sample["image"].shape[-2:], learned.shape[-2:])
            if flow_key in sample:
                d = true_displacement(sample[flow_key][None].float())
                truth = displacement_at_stride(d, learned.shape[-2:], stride)[0]
        depth_like = sample.get("sensor_depth", sample.get("hha", sample.get("depth")))
        meta = sample.get("meta") or {}
        name = meta.get("id", f"{index:06d}") if isinstance(meta, Mapping) else f"{index:06d}"
        paths.append(
            flow_panel(
                out_dir / f"alignment_{name}_fuse{stage}.png",
                image=sample["image"],
                depth=depth_like,
                flow=learned,
                true_flow=truth,
                features_before=(feats["rgb"][0].cpu(), feats["depth_before"][0].cpu()),
                features_after=(feats["rgb"][0].cpu(), feats["depth_after"][0].cpu()),
                flow_stride=stride,
                arrow_step=max(1, (learned.shape[-1] // 16) if learned is not None else 4),
                title=f"{name}: stage {stage} (stride {stride:g})" if stride else name,
            )
        )
    return paths


def alignment_markdown(result: Mapping[str, Any], *, title: str = "RGBDFuse flow vs. the true misalignment") -> str:
    """A markdown table of :func:`compute_flow_alignment` results."""
    lines = [
        f"## {title}",
        "",
        f"{result['num_images']} images of size {result['image_size']}; EPE = mean |d_learned - d_true| per pixel "
        "(feature pixels of the stage, and image pixels = times the stride); zero = the zero-flow baseline; cosine = "
        "mean cosine similarity of the learned and true fields; shift r = correlation of the per-image mean "
        "learned and true displacements.",
        "",
        "| flow | direction | stride | grid | EPE (feat px) | zero (feat px) | EPE (img px) | zero (img px) | "
        "EPE / zero | images improved | cosine | shift r | mean learned (x, y) | mean true (x, y) |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in result["rows"]:
        ml = ", ".join(f"{v:+.3f}" for v in r["mean_learned"])
        mt = ", ".join(f"{v:+.3f}" for v in r["mean_true"])
        lines.append(
            f"| {r['key']} | {r['direction']} | {r['stride']:g} | {r['grid'][0]}x{r['grid'][1]} | "
            f"{r['epe']:.3f} ± {r['epe_sem']:.3f} | {r['epe_zero']:.3f} | {r['epe_image_px']:.2f} | "
            f"{r['epe_zero_image_px']:.2f} | {r['ratio']:.2f} | {100 * r['improved_fraction']:.0f} % | "
            f"{r['cosine']:+.2f} | {r['shift_correlation']:+.2f} | ({ml}) | ({mt}) |"
        )
    return "\n".join(lines) + "\n"
