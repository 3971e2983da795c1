"""``freqdense eval-depth``: monodepth2's evaluation (``evaluate_depth.py``) of saved predictions or of a model.

Files: ``freqdense eval-depth --pred disps.npy --gt gt_depths.npz --protocol kitti_eigen_mono``. The predictions are an
``(N, h, w)`` disparity array as ``--save_pred_disps`` writes it (``(N, 1, h, w)`` is accepted), the ground truth the
``gt_depths.npz`` of ``export_gt_depth.py`` (key ``data``: one float depth map per test line, of varying size, so
NumPy stores an object array), for the ``eigen`` or ``eigen_benchmark`` split.

Model: ``freqdense eval-depth --checkpoint RUN --config kitti/monodepth2_m_r18_192x640_eigen_benchmark`` (or
``--monodepth2-weights FOLDER`` for released Monodepth2 / Freq-aware depth weights) runs the model on the config's
evaluation split (its data section and ``task.self_supervised`` evaluation settings; the model section only matters
for ``--monodepth2-weights``) and scores it the same way; ``--save-pred-disps`` writes the disparities in
monodepth2's format. Both print the seven metrics and the median-scaling ratios as monodepth2 does (``med`` and
``std(ratios / med)``) plus their mean and std.
"""

from __future__ import annotations

import argparse
import io
import math
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

_MONODEPTH2_COLUMNS = (
    ("abs_rel", "abs_rel"),
    ("sq_rel", "sq_rel"),
    ("rmse", "rmse"),
    ("rmse_log", "rmse_log"),
    ("a1", "delta1"),
    ("a2", "delta2"),
    ("a3", "delta3"),
)


def register(sub: argparse._SubParsersAction) -> None:
    from ..metrics.depth import DEPTH_PROTOCOLS

    p = sub.add_parser(
        "eval-depth",
        help="monodepth2's depth evaluation of saved disparities (--pred/--gt) or of a model (--checkpoint/--config)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    files = p.add_argument_group("saved predictions")
    files.add_argument("--pred", type=Path, help="(N, h, w) disparity .npy (monodepth2 --save_pred_disps)")
    files.add_argument("--gt", type=Path, help="gt_depths.npz of monodepth2's export_gt_depth.py")
    files.add_argument("--key", default="data", help="array name inside the .npz (monodepth2: data)")
    model = p.add_argument_group("a model")
    source = model.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, help="freqdense run or checkpoint directory")
    source.add_argument(
        "--monodepth2-weights", type=Path, help="folder with monodepth2's encoder.pth / depth.pth (models/weights_N)"
    )
    model.add_argument(
        "--config", help="config naming the evaluation data and protocol (default: the checkpoint's own config)"
    )
    model.add_argument("--split", default=None, help="split to evaluate (default: the config's data.val_split)")
    model.add_argument("--save-pred-disps", type=Path, default=None, help="write the (N, h, w) disparities here")
    model.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    model.add_argument(
        "overrides", nargs="*", help="section.key=value overrides of the config, e.g. data.args.root=kitti_data"
    )
    p.add_argument(
        "--protocol",
        choices=sorted(DEPTH_PROTOCOLS),
        help="evaluation preset (docs/data/depth_datasets.md#evaluation-protocols): kitti_eigen_mono / _stereo for "
        "the eigen split, kitti_eigen_benchmark_mono / _stereo for the improved ground truth; required with --pred, "
        "replaces the config's task.self_supervised.eval_protocol with a model",
    )
    p.add_argument("--disable-median-scaling", action="store_true", help="as monodepth2's --disable_median_scaling")
    p.add_argument(
        "--pred-depth-scale-factor",
        type=float,
        default=None,
        help="multiply predicted depths by this (monodepth2's --pred_depth_scale_factor; the stereo presets use 5.4)",
    )
    p.add_argument("--out", type=Path, default=None, help="also write the metrics as JSON here")
    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------------------ reading
def _fail(message: str) -> None:
    from ..errors import DataError

    raise DataError(message)


def _check_numeric(array: np.ndarray, what: str) -> None:
    if array.dtype.kind not in "fiu":
        _fail(f"{what} has dtype {array.dtype}; expected a float (or integer) depth/disparity array")


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays and nothing else.

    ``np.save`` stores an object array (monodepth2's ragged ``gt_depths.npz``) as a pickle, and ``np.load`` needs
    ``allow_pickle=True`` to read it, which would run whatever callable the file names. This unpickler resolves only
    the three globals an array of arrays needs (the ndarray reconstructor, ``ndarray`` and ``dtype``; ``scalar`` for
    0-d values); any other name raises, so a crafted file cannot execute code. Every element is checked afterwards.
    """

    _ALLOWED = {
        "_reconstruct": np.array(0.0).__reduce__()[0],
        "scalar": np.float32(0).__reduce__()[0],
    }

    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray"):
            if name in self._ALLOWED and module != "numpy":
                return self._ALLOWED[name]
            if module == "numpy" and name in ("ndarray", "dtype"):
                return getattr(np, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a depth array file")


def _read_npy(stream: io.BufferedIOBase, what: str) -> np.ndarray:
    """One ``.npy`` record: plain arrays with ``allow_pickle=False``; object arrays through the restricted unpickler
    (only after the header says the dtype is object)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = header(stream)
    except ValueError as err:
        _fail(f"{what} is not a NumPy array file ({err})")
    if not dtype.hasobject:
        count = math.prod(shape)
        flat = np.empty(count, dtype=dtype)
        view, got = memoryview(flat).cast("B"), 0
        while got < len(view):
            n = stream.readinto(view[got:])
            if not n:
                break
            got += n
        if got != count * dtype.itemsize:
            _fail(f"{what} is truncated ({got} of {count * dtype.itemsize} bytes); re-export it")
        return flat.reshape(shape[::-1]).transpose() if fortran else flat.reshape(shape)
    try:
        array = _ArraysOnlyUnpickler(stream, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as err:
        _fail(f"{what}: cannot read its object array safely ({err}); it must hold only numeric arrays")
    if not isinstance(array, np.ndarray) or tuple(array.shape) != tuple(shape):
        _fail(f"{what}: the object array does not match its header {shape}")
    return array


def load_gt_depths(path: Path, key: str = "data") -> list[np.ndarray]:
    """The ground-truth maps of a monodepth2 ``gt_depths.npz`` (ragged object array or regular ``(N, H, W)``)."""
    if not path.is_file():
        _fail(f"ground truth {str(path)!r} does not exist; export it with monodepth2's export_gt_depth.py")
    if not zipfile.is_zipfile(path):
        _fail(f"ground truth {str(path)!r} is not an .npz archive (monodepth2's export_gt_depth.py writes one)")
    with zipfile.ZipFile(path) as archive:
        names = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
        if key not in names:
            _fail(f"ground truth {str(path)!r} has no array {key!r} (it has {names}); pass --key with one of them")
        with archive.open(f"{key}.npy") as member:
            array = _read_npy(io.BufferedReader(member), f"{str(path)!r}[{key!r}]")  # type: ignore[arg-type]
    items = list(array) if array.dtype.hasobject or array.ndim == 3 else None
    if items is None:
        _fail(f"ground truth {str(path)!r}[{key!r}] has shape {array.shape}; expected N depth maps (N, H, W)")
    maps = []
    for i, item in enumerate(items):
        if not isinstance(item, np.ndarray):
            _fail(f"ground truth {str(path)!r}[{key!r}] item {i} is a {type(item).__name__}, not a depth map")
        item = np.squeeze(item, axis=tuple(a for a in range(item.ndim) if item.shape[a] == 1 and item.ndim > 2))
        if item.ndim != 2:
            _fail(f"ground truth {str(path)!r}[{key!r}] item {i} has shape {item.shape}; expected (H, W)")
        if item.dtype.hasobject:  # np.array(maps, dtype=object) of equal-sized maps: a grid of numpy scalars
            if not all(isinstance(v, (np.floating, np.integer, float, int)) for v in item.flat):
                _fail(f"ground truth {str(path)!r}[{key!r}] item {i} holds non-numbers; expected a depth map")
            item = item.astype(np.float64)
        _check_numeric(item, f"ground truth {str(path)!r}[{key!r}] item {i}")
        maps.append(item)
    return maps


def load_disparities(path: Path) -> np.ndarray:
    """An ``(N, h, w)`` disparity array (``(N, 1, h, w)`` is squeezed) from a ``.npy`` file."""
    if not path.is_file():
        _fail(f"predictions {str(path)!r} do not exist; save them with monodepth2's --save_pred_disps")
    with path.open("rb") as f:
        disps = _read_npy(f, f"predictions {str(path)!r}")  # type: ignore[arg-type]
    if disps.dtype.hasobject:
        _fail(f"predictions {str(path)!r} are an object array; expected one (N, h, w) float disparity array")
    _check_numeric(disps, f"predictions {str(path)!r}")
    if disps.ndim == 4 and disps.shape[1] == 1:
        disps = disps[:, 0]
    if disps.ndim != 3:
        _fail(f"predictions {str(path)!r} have shape {disps.shape}; expected (N, h, w) disparities (or (N, 1, h, w))")
    return disps


def _check_inputs(disps: np.ndarray, gts: list[np.ndarray], protocol: str, pred: Path, gt: Path) -> None:
    import torch

    from ..metrics.depth import DEPTH_PROTOCOLS, DepthMetrics

    if len(disps) != len(gts):
        _fail(
            f"{len(disps)} predictions in {str(pred)!r} but {len(gts)} ground-truth maps in {str(gt)!r}; both must "
            "follow the same test list (Eigen: 697, eigen_benchmark: 652; select Eigen predictions for the benchmark "
            "with monodepth2's eigen_to_benchmark_ids.npy)"
        )
    bad = np.flatnonzero(~np.isfinite(disps).all(axis=(1, 2)))
    if bad.size:
        _fail(f"predictions {str(pred)!r} hold NaN or inf (first in image {int(bad[0])}); fix the model's output")
    bad = np.flatnonzero((disps <= 0).any(axis=(1, 2)))
    if bad.size:
        _fail(
            f"predictions {str(pred)!r} hold disparities <= 0 (first in image {int(bad[0])}); the file must hold "
            "positive disparities (1 / depth), not depths or log values"
        )
    metric = DepthMetrics(**{**DEPTH_PROTOCOLS[protocol], "median_scaling": False})
    for i, g in enumerate(gts):
        mask = metric._valid_mask(torch.as_tensor(g, dtype=torch.float64)[None, None], None)
        if not bool(mask.any()):
            _fail(
                f"ground-truth map {i} of {str(gt)!r} ({g.shape[0]}x{g.shape[1]}) has no pixel that {protocol} "
                "evaluates (all zero, or none inside the depth range and crop); re-export the ground truth"
            )


# ------------------------------------------------------------------------------------------------------ command
def run(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.disable_median_scaling:
        overrides["median_scaling"] = False
    if args.pred_depth_scale_factor is not None:
        if not args.pred_depth_scale_factor > 0:
            _fail(f"--pred-depth-scale-factor must be > 0, got {args.pred_depth_scale_factor}")
        overrides["pred_scale"] = args.pred_depth_scale_factor
    from_files = args.pred is not None or args.gt is not None
    from_model = args.checkpoint is not None or args.monodepth2_weights is not None
    if from_files == from_model:
        _fail("eval-depth needs either --pred and --gt (saved predictions) or --checkpoint / --monodepth2-weights")
    if from_files:
        if args.pred is None or args.gt is None or args.protocol is None:
            _fail("eval-depth with saved predictions needs --pred, --gt and --protocol")
        if args.config or args.overrides or args.save_pred_disps or args.split:
            _fail("--config, --split, --save-pred-disps and overrides belong to model evaluation (--checkpoint)")
        protocol, metrics, ratios, count = _score_files(args, overrides)
    else:
        if args.monodepth2_weights is not None and not args.config:
            _fail("--monodepth2-weights needs --config (the model section builds the network, e.g. kitti/...)")
        protocol, metrics, ratios, count = _score_model(args, overrides)
    _report(protocol, metrics, ratios, count, overrides, args.out)
    return 0


def _score_files(args: argparse.Namespace, overrides: dict[str, Any]):
    import torch

    from ..metrics.depth import evaluate_disparities

    disps = load_disparities(args.pred)
    gts = load_gt_depths(args.gt, args.key)
    _check_inputs(disps, gts, args.protocol, args.pred, args.gt)
    metrics, ratios = evaluate_disparities(
        [torch.from_numpy(d) for d in disps], [torch.from_numpy(g) for g in gts], args.protocol, **overrides
    )
    return args.protocol, metrics, ratios.numpy(), len(gts)


def _score_model(args: argparse.Namespace, overrides: dict[str, Any]):
    import torch
    from torch.utils.data import DataLoader

    from ..config import build_config, load_config, parse_overrides
    from ..config.load import merge_dicts
    from ..engine.evaluate import to_device
    from ..engine.train import resolve_device
    from ..metrics import DepthMetrics
    from ..tasks import SelfSupervisedDepth, build_task

    device = resolve_device(args.device)
    if args.checkpoint is not None:
        from ..engine.checkpoint import load_model

        model, meta = load_model(args.checkpoint, map_location=device)
        if args.config:
            cfg = load_config(args.config, args.overrides)
        else:
            raw = meta["config"]
            if args.overrides:
                raw = merge_dicts(raw, parse_overrides(args.overrides))
            cfg = build_config(raw, source=f"{meta['checkpoint_dir']}/meta.json")
    else:
        from ..models import create_model
        from ..models.monodepth import load_monodepth2_weights

        cfg = load_config(args.config, args.overrides)
        kwargs = dict(cfg.model.kwargs)
        kwargs.pop("pretrained", None)  # the released weights replace everything
        model = create_model(cfg.model.name, **kwargs)
        load_monodepth2_weights(model, args.monodepth2_weights)
        model.to(device).eval()
    from ..engine.data import build_dataset

    split = args.split or cfg.data.val_split
    dataset = build_dataset(cfg.data, split, train=False)
    task = build_task(cfg.task, num_classes=None)
    if not isinstance(task, SelfSupervisedDepth):
        _fail(f"eval-depth needs a task.name: self_supervised_depth config, got {cfg.task.name!r}")
    if args.protocol is not None:
        task.metric_kwargs = {**task.metric_kwargs, **_protocol_kwargs(args.protocol)}
    task.metric_kwargs = {**task.metric_kwargs, **overrides}
    protocol = args.protocol or task.eval_protocol or "custom (task settings)"
    loader = DataLoader(dataset, batch_size=cfg.data.val_batch_size, num_workers=cfg.data.num_workers)
    metrics = task.make_metrics()
    depth_metric: DepthMetrics = metrics.metrics[task.key]  # type: ignore[assignment]
    ratios, disps = [], []
    with torch.no_grad():
        for batch in loader:
            outputs = task.evaluation_step(model, to_device(batch, device), metrics)
            if depth_metric.median_scaling:
                ratios.append(depth_metric.last_ratios.numpy())
            if args.save_pred_disps is not None:
                disps.append(task.scaled_disparity(outputs)[:, 0].float().cpu().numpy())
    if args.save_pred_disps is not None:
        np.save(args.save_pred_disps, np.concatenate(disps))
    computed = metrics.compute()
    flat = {k.split("/", 1)[1]: v for k, v in computed.items() if k.startswith(f"{task.key}/")}
    return protocol, flat, np.concatenate(ratios) if ratios else np.zeros(0), depth_metric.num_images


def _protocol_kwargs(name: str) -> dict[str, Any]:
    from ..metrics.depth import DEPTH_PROTOCOLS

    return dict(DEPTH_PROTOCOLS[name])


def _report(
    protocol: str,
    metrics: dict[str, float],
    ratios: np.ndarray,
    count: int,
    overrides: dict[str, Any],
    out_path: Path | None,
) -> None:
    out: dict[str, Any] = {"protocol": protocol, "num_images": count, **overrides}
    out.update({name: metrics[key] for name, key in _MONODEPTH2_COLUMNS})
    lines = [f"-> Evaluated {count} images with protocol {protocol}"]
    if ratios.size:
        med = float(np.median(ratios))
        out.update(
            ratio_median=med,
            ratio_std_over_median=float(np.std(ratios / med)),
            ratio_mean=float(ratios.mean()),
            ratio_std=float(ratios.std()),
        )
        lines.append(
            f" Scaling ratios | med: {med:0.3f} | std: {out['ratio_std_over_median']:0.3f} "
            f"| mean: {out['ratio_mean']:0.3f} | std (absolute): {out['ratio_std']:0.3f}"
        )
    else:
        from ..metrics.depth import DEPTH_PROTOCOLS

        scale = overrides.get("pred_scale", DEPTH_PROTOCOLS.get(protocol, {}).get("pred_scale", 1.0))
        lines.append(f"   No median scaling; predicted depth x {scale:g}")
    lines.append("")
    lines.append("  " + ("{:>8} | " * 7).format(*[name for name, _ in _MONODEPTH2_COLUMNS]))
    lines.append(("&{: 8.4f}  " * 7).format(*[out[name] for name, _ in _MONODEPTH2_COLUMNS]) + "\\\\")
    sys.stdout.write("\n".join(lines) + "\n")
    if out_path:
        from ..engine.checkpoint import write_json_atomic

        write_json_atomic(out_path, out)
