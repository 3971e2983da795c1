"""``freqdense analyze ...``: spectral analyses of trained models and datasets (Chen, Chiu, Wu, AAAI 2020).

Analyses (one sub-subcommand each):

- ``analyze spectrum RUN``: CE spectrum ``L_ce(nu)``, ``R(nu_max)``, ``|y_hat|`` and ``|b|`` of a trained model over
  a split (Fig. 1, Table 1), optionally the spectral gradient at a layer (Fig. 4); JSON + plots.
- ``analyze labels --dataset NAME``: how band-limited a dataset's labels are: label-energy R, the R of a
  label-smoothed oracle's CE, and the pixel error of block-wise annotation per ``nu_max`` (Sec. 3.3).
- ``analyze truncation RUN --sizes 65 33``: mIoU and CE of the model with its decoder run on smaller grids next to
  ``R((s - 1) / 2)`` (Table 1 vs. Table 2).

Extending: add a module ``freqdense/cli/analyze_<name>_cmd.py`` exposing ``register(analyses)`` (it receives the
``analyze`` subparsers, adds its parser and sets ``func``) and list ``<name>`` in ``_EXTRA_ANALYSES``.
The ``compute_*`` functions hold the work and take a model and a dataset, so they run without a checkpoint.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError, DataError, ShapeError

__all__ = ["register", "compute_model_spectrum", "compute_label_analysis", "compute_truncation"]

log = logging.getLogger(__name__)

#: Analyses living in their own modules, ``freqdense.cli.analyze_<name>_cmd`` (skipped while absent).
_EXTRA_ANALYSES: tuple[str, ...] = ("flops", "similarity", "fairness", "relation", "alignment")

_DEFAULT_NU_MAX = (1, 2, 4, 8, 16, 32, 64, 128, 256)


# ---------------------------------------------------------------------------------------------------------------
# compute functions (no checkpoint, no argparse)


def _iter_batches(
    dataset: Any, *, num: int | None, batch_size: int, what: str | None = None
) -> Iterator[dict[str, Any]]:
    """Batches of the first ``num`` samples; with ``what``, progress is shown (bar, or a log line every ~10 s)."""
    from torch.utils.data import DataLoader, Subset

    from .._progress import progress

    n = len(dataset) if num is None else min(int(num), len(dataset))
    if n == 0:
        raise DataError("the dataset split is empty; check the split name and the dataset arguments")
    loader = DataLoader(Subset(dataset, range(n)), batch_size=batch_size, shuffle=False)
    if what is not None and batch_size > 1:
        what = f"{what} ({n} images in batches of {batch_size})"
    yield from loader if what is None else progress(loader, what, unit="batch")


def _labels_of(batch: dict[str, Any]) -> torch.Tensor:
    if "semantic" not in batch:
        raise DataError(f"samples have no 'semantic' labels (keys: {sorted(batch)}); pick a segmentation dataset")
    return batch["semantic"].long()


def _inputs_of(batch: dict[str, Any], inputs: Sequence[str], device: torch.device | str) -> list[torch.Tensor]:
    from ..tasks import model_inputs

    return [x.to(device) for x in model_inputs(batch, inputs)]


def _logits_of(model: nn.Module, image: torch.Tensor | Sequence[torch.Tensor], output_key: str) -> torch.Tensor:
    out = model(image) if isinstance(image, torch.Tensor) else model(*image)
    logits = out[output_key] if isinstance(out, dict) else out
    if not isinstance(logits, torch.Tensor) or logits.dim() != 4:
        raise ShapeError(f"model output {output_key!r} must be (B, C, H, W) logits, got {type(logits).__name__}")
    return logits


@torch.no_grad()
def compute_model_spectrum(
    model: nn.Module,
    dataset: Any,
    *,
    num: int | None = None,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    output_key: str = "semantic",
    ignore_index: int = 255,
    shells: str = "square",
    units: str = "index",
    inputs: Sequence[str] = ("image",),
):
    """CE spectrum of ``model`` accumulated over the first ``num`` samples of ``dataset``.

    Args:
        model: returns ``{output_key: (B, C, H, W) logits}`` (or a logits tensor) at the labels' size.
        dataset: indexable samples with ``image`` and ``semantic`` (the sample contract).
        num: number of samples (default all).
        batch_size: samples per forward pass (equal sizes needed for > 1).
        device: where the model runs.
        output_key, ignore_index, shells, units: see :func:`freqdense.spectral.ce_spectrum`.
        inputs: sample keys passed positionally to the model (config ``task.inputs``).

    Returns:
        :class:`freqdense.spectral.DatasetSpectrum`.
    """
    from ..spectral import SpectrumAccumulator

    acc = SpectrumAccumulator(ignore_index=ignore_index, shells=shells, units=units)
    model.eval()
    for batch in _iter_batches(dataset, num=num, batch_size=batch_size, what="CE spectrum"):
        logits = _logits_of(model, _inputs_of(batch, inputs, device), output_key)
        acc.update(logits, _labels_of(batch).to(logits.device))
    return acc.compute()


def compute_label_analysis(
    dataset: Any,
    *,
    num_classes: int,
    nu_max: Sequence[int] = _DEFAULT_NU_MAX,
    num: int | None = None,
    ignore_index: int = 255,
    shells: str = "square",
    units: str = "index",
    smoothing: float = 0.1,
    blockwise_method: str = "majority",
) -> dict[str, Any]:
    """How band-limited a dataset's labels are (no model needed).

    For each ``nu_max``: ``label_energy_r`` (fraction of one-hot label energy beyond ``nu_max``, summed over
    images), ``oracle_r`` (Eq. 14 for the CE of the label-smoothed oracle :func:`freqdense.spectral.oracle_logits`)
    and ``blockwise_pixel_error`` (share of non-void pixels whose block-wise label at ``nu_max`` differs).

    Returns:
        Dict with the per-``nu_max`` table, the label-energy curves and the oracle's
        :class:`~freqdense.spectral.DatasetSpectrum` under ``"oracle"`` (JSON via its ``to_dict``).
    """
    from ..spectral import (
        SpectrumAccumulator,
        blockwise_annotation,
        label_energy_spectrum,
        oracle_logits,
        relative_discrepancy,
    )

    energy = torch.zeros(0, dtype=torch.float64)
    oracle = SpectrumAccumulator(ignore_index=ignore_index, shells=shells, units=units)
    wrong = dict.fromkeys(nu_max, 0)
    valid_pixels = 0
    num_images = 0
    for batch in _iter_batches(dataset, num=num, batch_size=1, what="label spectra"):
        labels = _labels_of(batch)
        e = label_energy_spectrum(labels, num_classes, ignore_index=ignore_index, shells=shells, units=units).sum(0)
        if e.shape[-1] > energy.shape[-1]:
            energy = F.pad(energy, (0, e.shape[-1] - energy.shape[-1]))
        energy[: e.shape[-1]] += e
        oracle.update(oracle_logits(labels, num_classes, smoothing=smoothing, ignore_index=ignore_index), labels)
        valid = labels != ignore_index
        valid_pixels += int(valid.sum())
        num_images += labels.shape[0]
        for nu in nu_max:
            block = blockwise_annotation(
                labels, nu, method=blockwise_method, ignore_index=ignore_index, num_classes=num_classes
            )
            wrong[nu] += int(((block != labels) & valid).sum())
    energy_r = relative_discrepancy(energy)
    oracle_spec = oracle.compute()
    table = [
        {
            "nu_max": nu,
            "grid": 2 * nu + 1,
            "label_energy_r": float(energy_r[min(nu, len(energy_r) - 1)]),
            "oracle_r": float(oracle_spec.relative_discrepancy[min(nu, len(oracle_spec.loss) - 1)]),
            "blockwise_pixel_error": wrong[nu] / max(valid_pixels, 1),
        }
        for nu in nu_max
    ]
    return {
        "num_images": num_images,
        "num_valid_pixels": valid_pixels,
        "num_classes": num_classes,
        "shells": shells,
        "units": units,
        "oracle_smoothing": smoothing,
        "table": table,
        "label_energy": energy.tolist(),
        "label_energy_r": energy_r.tolist(),
        "oracle": oracle_spec,
    }


@torch.no_grad()
def compute_truncation(
    model: nn.Module,
    dataset: Any,
    *,
    sizes: Sequence[int],
    num_classes: int,
    attribute: str = "decoder",
    mode: str = "bilinear_align_corners",
    num: int | None = None,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    output_key: str = "semantic",
    ignore_index: int = 255,
    shells: str = "square",
    units: str = "index",
    inputs: Sequence[str] = ("image",),
) -> dict[str, Any]:
    """Evaluate ``model`` with ``model.<attribute>`` run on each grid in ``sizes`` (paper Sec. 3.2, Table 2).

    Each row has mIoU, pixel accuracy, mean CE and the baseline model's ``R(nu_max)`` at ``nu_max = (s - 1) // 2``
    (cycles per image; the grid ``s`` carries ``|nu| <= (s - 1) / 2``). The first row is the untruncated model.
    ``model`` itself is not modified (each size runs on a deep copy). ``"spectrum"`` holds the baseline's
    :class:`~freqdense.spectral.DatasetSpectrum`.
    """
    from ..metrics.segmentation import ConfusionMatrix
    from ..spectral import SpectrumAccumulator, truncate_decoder

    rows: list[dict[str, Any]] = []
    spectrum = None
    for size in (None, *sizes):
        variant = (
            model if size is None else truncate_decoder(copy.deepcopy(model), int(size), attribute=attribute, mode=mode)
        )  # type: ignore[arg-type]
        variant.eval()
        cm = ConfusionMatrix(num_classes, ignore_index=ignore_index)
        acc = SpectrumAccumulator(ignore_index=ignore_index, shells=shells, units=units) if size is None else None
        ce_sum, n_valid = 0.0, 0
        what = "truncation: full decoder" if size is None else f"truncation: decoder on a {size}x{size} grid"
        for batch in _iter_batches(dataset, num=num, batch_size=batch_size, what=what):
            logits = _logits_of(variant, _inputs_of(batch, inputs, device), output_key)
            labels = _labels_of(batch).to(logits.device)
            cm.update(logits, labels)
            ce_sum += float(F.cross_entropy(logits.double(), labels, ignore_index=ignore_index, reduction="sum"))
            n_valid += int((labels != ignore_index).sum())
            if acc is not None:
                acc.update(logits, labels)
        if acc is not None:
            spectrum = acc.compute()
        metrics = cm.compute()
        row: dict[str, Any] = {
            "grid": size,
            "miou": metrics["miou"],
            "pixel_acc": metrics["pixel_acc"],
            "ce_mean": ce_sum / max(n_valid, 1),
        }
        if size is not None and spectrum is not None:
            nu = (int(size) - 1) // 2
            row["nu_max"] = nu
            row["baseline_r"] = float(spectrum.relative_discrepancy[min(nu, len(spectrum.loss) - 1)])
        rows.append(row)
    base = rows[0]["miou"]
    for row in rows[1:]:
        row["miou_drop"] = base - row["miou"]
    return {"attribute": attribute, "mode": mode, "rows": rows, "spectrum": spectrum}


# ---------------------------------------------------------------------------------------------------------------
# argparse wiring


_DESCRIPTION = """\
Analyses of trained runs, datasets and models: frequency spectra of the loss and
the labels, decoder truncation, FLOPs, feature similarity, photometric-loss
fairness, R-vs-mIoU relation and RGB-D flow alignment. Run
`freqdense analyze ANALYSIS --help` for the options and outputs of one analysis."""

_EPILOG = """\
examples:
  freqdense analyze spectrum runs/x --num 20   # writes runs/x/analysis/spectrum/
  freqdense analyze labels --dataset synthetic --num 50
  freqdense analyze flops deeplabv3plus --size 513
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "analyze",
        help="analyses: CE/label spectra, decoder truncation, FLOPs, feature similarity, fairness, relation, "
        "flow alignment",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    analyses = parser.add_subparsers(dest="analysis", metavar="ANALYSIS")
    for add in (_add_spectrum, _add_labels, _add_truncation):
        add(analyses)
    for name in _EXTRA_ANALYSES:
        try:
            module = importlib.import_module(f"{__package__}.analyze_{name}_cmd")
        except ModuleNotFoundError as err:
            if err.name != f"{__package__}.analyze_{name}_cmd":
                raise
            continue
        module.register(analyses)

    def _help(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_help)


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="run directory (best checkpoint) or checkpoint directory")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides of the saved config")
    p.add_argument("--split", default=None, help="split to analyse (default: the config's val split)")
    p.add_argument("--num", type=int, default=None, help="analyse only the first N samples")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--latest", action="store_true", help="use the latest instead of the best checkpoint")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def _add_spectrum_options(p: argparse.ArgumentParser, *, out_help: str = "output directory for JSON and plots") -> None:
    p.add_argument("--shells", default="square", choices=["square", "radial"], help="frequency shells (default L-inf)")
    p.add_argument(
        "--units",
        default="index",
        choices=["index", "shorter_side"],
        help="non-square maps: cycles per image per axis, or per shorter side",
    )
    p.add_argument("--nu-max", type=int, nargs="+", default=list(_DEFAULT_NU_MAX), help="band limits for the table")
    p.add_argument("--out", type=Path, default=None, help=out_help)


def _add_spectrum(analyses: argparse._SubParsersAction) -> None:
    p = analyses.add_parser("spectrum", help="CE spectrum and R(nu_max) of a trained model on a split")
    _add_run_arguments(p)
    _add_spectrum_options(p, out_help=_default_out_help("spectrum"))
    p.add_argument(
        "--gradient-layer",
        default=None,
        help="dotted submodule name (e.g. decoder) for the spectral gradient plot (Fig. 4)",
    )
    p.set_defaults(func=_run_spectrum)


def _add_labels(analyses: argparse._SubParsersAction) -> None:
    p = analyses.add_parser("labels", help="band limit of a dataset's labels (label-energy / oracle R, block-wise)")
    p.add_argument("--dataset", default="synthetic", help="registered dataset name (freqdense list)")
    p.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset keyword argument (YAML value), repeatable",
    )
    p.add_argument("--split", default="train")
    p.add_argument("--num", type=int, default=None, help="analyse only the first N samples")
    p.add_argument("--num-classes", type=int, default=None, help="default: the dataset's num_classes")
    p.add_argument("--ignore-index", type=int, default=255)
    p.add_argument("--smoothing", type=float, default=0.1, help="label smoothing of the oracle predictor")
    p.add_argument("--blockwise-method", default="majority", choices=["majority", "nearest"])
    _add_spectrum_options(p)
    p.set_defaults(func=_run_labels)


def _add_truncation(analyses: argparse._SubParsersAction) -> None:
    p = analyses.add_parser("truncation", help="mIoU with the decoder on smaller grids, next to R(nu_max)")
    _add_run_arguments(p)
    p.add_argument("--sizes", type=int, nargs="+", required=True, help="decoder grid sizes, e.g. 65 33")
    p.add_argument("--attribute", default="decoder", help="dotted name of the decoder submodule")
    p.add_argument(
        "--mode", default="bilinear_align_corners", choices=["bilinear_align_corners", "area", "bilinear_antialias"]
    )
    p.add_argument("--shells", default="square", choices=["square", "radial"])
    p.add_argument("--units", default="index", choices=["index", "shorter_side"])
    p.add_argument("--out", type=Path, default=None, help=_default_out_help("truncation", "the JSON"))
    p.set_defaults(func=_run_truncation)


def _default_out_help(name: str, what: str = "JSON and plots") -> str:
    return f"output directory for {what} (default: RUN/analysis/{name}/, where `freqdense report RUN` finds it)"


def _default_out(args: argparse.Namespace, name: str) -> None:
    """``--out`` not given: ``<run>/analysis/<name>/`` of the analysed run."""
    if args.out is None:
        from ..report import analysis_out

        args.out = analysis_out(args.checkpoint, name)


def _load_run(args: argparse.Namespace) -> tuple[nn.Module, Any, Any, torch.device]:
    from ..config import build_config, parse_overrides
    from ..config.load import merge_dicts
    from ..engine.checkpoint import load_model
    from ..engine.data import build_dataset
    from ..engine.train import resolve_device

    device = resolve_device(args.device)
    model, meta = load_model(args.checkpoint, map_location=device, prefer="latest" if args.latest else "best")
    raw = meta["config"]
    if args.overrides:
        raw = merge_dicts(raw, parse_overrides(args.overrides))
    cfg = build_config(raw, source=f"{meta['checkpoint_dir']}/meta.json")
    dataset = build_dataset(cfg.data, args.split or cfg.data.val_split, train=False)
    return model, dataset, cfg, device


def _jsonable(obj: Any) -> Any:
    # NamedTuple results (DatasetSpectrum) are tuples to json; convert them through their to_dict first.
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _write_json(out: Path | None, name: str, data: dict[str, Any]) -> None:
    if out is None:
        return
    text = json.dumps(_jsonable(data), indent=2, sort_keys=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(text + "\n")
    log.info("wrote %s", out / name)


def _print_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    sys.stdout.write("  ".join(f"{c:>22}" for c in columns) + "\n")
    for row in rows:
        cells = [row.get(c) for c in columns]
        sys.stdout.write("  ".join(f"{v:>22.6g}" if isinstance(v, float) else f"{v!s:>22}" for v in cells) + "\n")


def _run_spectrum(args: argparse.Namespace) -> int:
    from .._progress import heartbeat
    from ..spectral import plot_ce_spectrum, plot_spectral_gradient, spectral_gradient

    model, dataset, cfg, device = _load_run(args)
    _default_out(args, "spectrum")
    ignore = cfg.task.ignore_index
    spec = compute_model_spectrum(
        model,
        dataset,
        num=args.num,
        batch_size=args.batch_size,
        device=device,
        ignore_index=ignore,
        shells=args.shells,
        units=args.units,
        inputs=getattr(cfg.task, "inputs", ("image",)),
    )
    table = [
        {
            "nu_max": nu,
            "R": float(spec.relative_discrepancy[min(nu, len(spec.loss) - 1)]),
            "mean_image_R": float(spec.mean_image_discrepancy[min(nu, len(spec.loss) - 1)]),
        }
        for nu in args.nu_max
    ]
    _print_table(table, ("nu_max", "R", "mean_image_R"))
    total = float(spec.loss.sum())
    sys.stdout.write(f"summed CE {spec.ce:.6g} over {spec.num_valid} pixels; sum of L_ce(nu) {total:.6g}\n")
    result = {
        "checkpoint": str(args.checkpoint),
        "split": args.split or cfg.data.val_split,
        "shells": args.shells,
        "units": args.units,
        "table": table,
        "spectrum": spec.to_dict(),
    }
    _write_json(args.out, "spectrum.json", result)
    if args.out is not None:
        plot_ce_spectrum({cfg.model.name: spec}, args.out / "spectrum.png")
        if args.gradient_layer:
            layer = model.get_submodule(args.gradient_layer)
            batch = next(_iter_batches(dataset, num=1, batch_size=1))
            with heartbeat(f"computing the spectral gradient at {args.gradient_layer}"):
                grad = spectral_gradient(
                    model,
                    batch["image"].to(device),
                    _labels_of(batch).to(device),
                    layer=layer,
                    ignore_index=ignore,
                    shells=args.shells,
                    units=args.units,
                )
            plot_spectral_gradient({args.gradient_layer: grad}, args.out / "spectral_gradient.png")
            log.info("spectral gradient concentration on nu_j = nu_i: %s", grad.concentration().tolist())
    return 0


def _run_labels(args: argparse.Namespace) -> int:
    from ..config import parse_overrides
    from ..data import create_dataset
    from ..spectral import plot_ce_spectrum

    kwargs: dict[str, Any] = parse_overrides(args.arg) if args.arg else {}
    dataset = create_dataset(args.dataset, split=args.split, **kwargs)
    num_classes = args.num_classes or getattr(dataset, "num_classes", None)
    if not num_classes:
        raise ConfigError(f"dataset {args.dataset!r} has no num_classes attribute; pass --num-classes")
    result = compute_label_analysis(
        dataset,
        num_classes=int(num_classes),
        nu_max=args.nu_max,
        num=args.num,
        ignore_index=args.ignore_index,
        shells=args.shells,
        units=args.units,
        smoothing=args.smoothing,
        blockwise_method=args.blockwise_method,
    )
    result.update(dataset=args.dataset, split=args.split, dataset_args=kwargs)
    _print_table(result["table"], ("nu_max", "grid", "label_energy_r", "oracle_r", "blockwise_pixel_error"))
    _write_json(args.out, "labels.json", result)
    if args.out is not None:
        label = f"{args.dataset} oracle (eps={args.smoothing})"
        plot_ce_spectrum({label: result["oracle"]}, args.out / "labels.png")
    return 0


def _run_truncation(args: argparse.Namespace) -> int:
    model, dataset, cfg, device = _load_run(args)
    _default_out(args, "truncation")
    num_classes = getattr(dataset, "num_classes", None) or cfg.model.kwargs.get("num_classes")
    if not num_classes:
        raise ConfigError("cannot tell the number of classes: the dataset has no num_classes attribute")
    result = compute_truncation(
        model,
        dataset,
        sizes=args.sizes,
        num_classes=int(num_classes),
        attribute=args.attribute,
        mode=args.mode,
        num=args.num,
        batch_size=args.batch_size,
        device=device,
        ignore_index=cfg.task.ignore_index,
        shells=args.shells,
        units=args.units,
        inputs=getattr(cfg.task, "inputs", ("image",)),
    )
    _print_table(result["rows"], ("grid", "nu_max", "baseline_r", "miou", "miou_drop", "pixel_acc", "ce_mean"))
    _write_json(args.out, "truncation.json", result)
    return 0
