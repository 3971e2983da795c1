"""``freqdense analyze similarity RUN``: feature similarity and FreqFusion kernel spectra (FreqFusion paper, Figs. 1, 2,
5).

Runs the model over a split, hooks the feature map of ``--layer`` (default ``decoder``: the fused decoder output)
and reports intra-/inter-category similarity and the margin (definitions in
:mod:`freqdense.analysis.feature_similarity`), writes IntraSim maps of the first images, and, for every
``FreqFusion`` module in the model, the mean frequency response of its predicted low-pass kernels (the ``mask``
output) and of its kernel-generator weights.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import ConfigError, ShapeError

__all__ = ["register", "compute_feature_similarity"]

log = logging.getLogger(__name__)


def _merge_response(acc: dict[str, Any] | None, resp: Any) -> dict[str, Any]:
    n = resp.num_kernels
    fields = ("amplitude", "radial", "horizontal", "vertical", "mean_kernel")
    if acc is None:
        return {"n": n, "frequencies": resp.frequencies, **{f: getattr(resp, f).double() * n for f in fields}}
    acc["n"] += n
    for f in fields:
        acc[f] += getattr(resp, f).double() * n
    return acc


def _finish_response(acc: dict[str, Any]):
    from ..analysis.feature_similarity import KernelResponse

    n = acc["n"]
    parts = {f: (acc[f] / n).float() for f in ("amplitude", "radial", "horizontal", "vertical", "mean_kernel")}
    return KernelResponse(frequencies=acc["frequencies"], num_kernels=n, **parts)


@torch.no_grad()
def compute_feature_similarity(
    model: nn.Module,
    dataset: Any,
    *,
    num_classes: int,
    layer: str = "decoder",
    num: int | None = None,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    ignore_index: int = 255,
    label_method: str = "mode",
    n_fft: int = 32,
    keep_maps: int = 4,
    edge_k: int = 5,
    upsample: str = "bilinear",
) -> dict[str, Any]:
    """Similarity statistics of ``model.<layer>``'s output and FreqFusion kernel spectra over ``dataset``.

    Returns:
        ``{"similarity": the official tool's statistics (intra, inter, margin, accuracy, ...; see
        :mod:`freqdense.analysis.official_similarity`), "similarity_per_image": our per-image definition
        (:mod:`freqdense.analysis.feature_similarity`), "lowpass_response": {module name: KernelResponse},
        "encoder_response": {...}, "maps": (N, h, w), "images": (N, 3, H, W)}``.
    """
    from ..analysis.feature_similarity import SimilarityAccumulator, encoder_kernel_response, lowpass_frequency_response
    from ..analysis.official_similarity import OfficialSimilarityAccumulator
    from .analyze_cmd import _iter_batches, _labels_of

    try:
        target = model.get_submodule(layer)
    except AttributeError as err:
        names = [n for n, _ in model.named_children()]
        raise ConfigError(f"--layer {layer!r} is not a submodule of the model; top-level children: {names}") from err
    captured: dict[str, Any] = {}

    def grab_feature(_m: nn.Module, _i: Any, out: Any) -> None:
        captured["feature"] = out[0] if isinstance(out, (tuple, list)) else out

    fusion_modules = {name: m for name, m in model.named_modules() if type(m).__name__ == "FreqFusion"}
    responses: dict[str, dict[str, Any] | None] = dict.fromkeys(fusion_modules)

    def grab_mask(name: str):
        def hook(_m: nn.Module, _i: Any, out: Any) -> None:
            mask = out.mask if hasattr(out, "mask") else out[0]
            k = getattr(_m, "lowpass_kernel", None)
            responses[name] = _merge_response(responses[name], lowpass_frequency_response(mask, k, n_fft=n_fft))

        return hook

    handles = [target.register_forward_hook(grab_feature)]
    handles += [m.register_forward_hook(grab_mask(n)) for n, m in fusion_modules.items()]
    acc = SimilarityAccumulator(num_classes, ignore_index=ignore_index, label_method=label_method)
    official = OfficialSimilarityAccumulator(num_classes, edge_k=edge_k, upsample=upsample, ignore_index=ignore_index)
    maps, images = [], []
    model.eval()
    try:
        for batch in _iter_batches(dataset, num=num, batch_size=batch_size, what=f"feature similarity of {layer}"):
            image = batch["image"].to(device)
            model(image)
            feature = captured.get("feature")
            if not isinstance(feature, torch.Tensor) or feature.dim() != 4:
                raise ShapeError(f"layer {layer!r} must output a (B, C, h, w) tensor, got {type(feature).__name__}")
            labels = _labels_of(batch).to(feature.device)
            out = acc.update(feature, labels)
            official.update(feature, labels)
            if len(maps) < keep_maps:
                maps.extend(out.intra_map[: keep_maps - len(maps)].cpu())
                images.extend(batch["image"][: keep_maps - len(images)])
    finally:
        for h in handles:
            h.remove()
    enc = {
        name: encoder_kernel_response(m.content_encoder.weight, n_fft=n_fft)
        for name, m in fusion_modules.items()
        if isinstance(getattr(m, "content_encoder", None), nn.Conv2d)
    }
    return {
        "layer": layer,
        "similarity": official.compute(),
        "similarity_per_image": {"definition": "per-image", "label_method": label_method, **acc.compute()},
        "lowpass_response": {n: _finish_response(r) for n, r in responses.items() if r is not None},
        "encoder_response": enc,
        "maps": torch.stack(maps) if maps else None,
        "images": torch.stack(images) if images else None,
    }


def register(analyses: argparse._SubParsersAction) -> None:
    from .analyze_cmd import _add_run_arguments, _default_out_help

    p = analyses.add_parser(
        "similarity", help="intra/inter-category feature similarity, IntraSim maps, FreqFusion kernel spectra"
    )
    _add_run_arguments(p)
    p.add_argument("--layer", default="decoder", help="dotted submodule whose output is analysed (default decoder)")
    p.add_argument(
        "--definition",
        default="official",
        choices=["official", "per-image"],
        help="which definition is printed first and stored under 'similarity' (both are always computed): the "
        "FreqFusion authors' feat_tool protocol (default) or our per-image one",
    )
    p.add_argument("--edge-k", type=int, default=5, help="official definition: boundary band width (0 = all pixels)")
    p.add_argument(
        "--upsample", default="bilinear", choices=["bilinear", "nearest"], help="official: feature upsampling"
    )
    p.add_argument(
        "--label-method", default="mode", choices=["mode", "nearest"], help="per-image: label resizing to features"
    )
    p.add_argument("--n-fft", type=int, default=32, help="FFT size for the kernel responses")
    p.add_argument("--out", type=Path, default=None, help=_default_out_help("similarity"))
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..analysis.feature_similarity import plot_kernel_responses, plot_similarity_maps
    from .analyze_cmd import _default_out, _load_run, _write_json

    model, dataset, cfg, device = _load_run(args)
    _default_out(args, "similarity")
    num_classes = getattr(dataset, "num_classes", None) or cfg.model.kwargs.get("num_classes")
    if not num_classes:
        raise ConfigError("cannot tell the number of classes: the dataset has no num_classes attribute")
    result = compute_feature_similarity(
        model,
        dataset,
        num_classes=int(num_classes),
        layer=args.layer,
        num=args.num,
        batch_size=args.batch_size,
        device=device,
        ignore_index=cfg.task.ignore_index,
        label_method=args.label_method,
        n_fft=args.n_fft,
        edge_k=args.edge_k,
        upsample=args.upsample,
    )
    sim, ours = result["similarity"], result["similarity_per_image"]
    if args.definition == "per-image":  # the chosen definition is the one stored under "similarity"
        sim, ours = ours, sim
        result["similarity"], result["similarity_per_image"] = sim, ours
    official = sim if sim["definition"] == "official" else ours
    per_image = ours if sim["definition"] == "official" else sim
    lines = {
        "official": f"official (feat_tool, edge_k={official['edge_k']}, {official['upsample']}): intra "
        f"{official['intra']:.4f}  inter {official['inter']:.4f}  margin {official['margin']:.4f}  nearest-centre "
        f"accuracy {official['accuracy']:.4f}  ({official['num_images']} images)",
        "per-image": f"per-image (labels resized by {per_image['label_method']}): intra {per_image['intra']:.4f}  "
        f"inter {per_image['inter']:.4f}  margin {per_image['margin']:.4f}  ({int(per_image['num_images_intra'])} "
        "images)",
    }
    sys.stdout.write(f"layer {args.layer}:\n")
    for key in (sim["definition"], ours["definition"]):
        sys.stdout.write(f"  {lines[key]}\n")
    for name, r in result["lowpass_response"].items():
        lo, hi = float(r.radial[0]), float(r.radial[-1])
        sys.stdout.write(f"{name}: low-pass kernels, mean |H| at 0: {lo:.3f}, at 0.5 cycles/px: {hi:.3f}\n")
    if args.out is not None:
        _write_json(
            args.out,
            "similarity.json",
            {
                "checkpoint": str(args.checkpoint),
                "split": args.split or cfg.data.val_split,
                "layer": args.layer,
                "similarity": sim,
                "similarity_other": ours,
                "lowpass_response": result["lowpass_response"],
                "encoder_response": result["encoder_response"],
            },
        )
        if result["maps"] is not None:
            plot_similarity_maps(result["images"], result["maps"], args.out / "intrasim_maps.png")
        if result["lowpass_response"]:
            plot_kernel_responses(result["lowpass_response"], args.out / "lowpass_response.png")
        if result["encoder_response"]:
            plot_kernel_responses(result["encoder_response"], args.out / "encoder_response.png")
    return 0
