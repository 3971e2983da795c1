"""Export a dense-prediction model to ONNX and check the graph against ONNX Runtime.

The exported graph takes one input, ``image``: float32 RGB in [0, 1], layout (B, 3, H, W); mean/std
normalisation is inside the graph. Multi-input (RGB-D) models, whose checkpoint config has ``task.inputs`` such as
``[image, hha]`` or ``[image, sensor_depth]``, get one graph input per key, in that order, sharing B, H and W
(depth-like keys: (B, 1, H, W) metres; HHA: (B, 3, H, W) in [0, 1]). It returns the selected entries of the model's
output dict as named outputs in a fixed order (by default ``semantic`` logits (B, K, H, W) then ``depth`` in
metres (B, 1, H, W)).
Next to ``model.onnx`` a sidecar ``model.onnx.json`` records input/outputs, classes, palette and the depth unit.
Detectors (:func:`export_detection_onnx`) export their raw per-level head maps; decoding and NMS run outside the
graph (:func:`freqdense.models.detection.decode_onnx_outputs`), the sidecar's ``detection`` section has the strides.
Format details and known limits: docs/export_and_predict.md.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._progress import heartbeat
from .data.sample import DENSE_FLOAT_KEYS, IMAGE_KEYS
from .errors import ConfigError, FreqdenseError

__all__ = [
    "DEFAULT_OUTPUTS",
    "export_detection_onnx",
    "INPUT_NAME",
    "ExportError",
    "ExportReport",
    "export_onnx",
    "input_channels_of",
    "sidecar_path_for",
]

log = logging.getLogger(__name__)

#: Outputs exported when ``outputs=None``: whichever of these the model returns, in this order.
DEFAULT_OUTPUTS: tuple[str, ...] = ("semantic", "depth")
#: Name of the graph input.
INPUT_NAME = "image"
#: Sidecar format version; bump when keys change meaning.
_SIDECAR_VERSION = 1

_OUTPUT_MEANING = {
    "semantic": "class logits (B, num_classes, H, W); argmax over dim 1 gives class ids",
    "depth": "depth (B, 1, H, W) in the unit given by depth_unit",
}


#: The opset torch.onnx's exporter translates to; other opsets go through the ONNX version converter.
NATIVE_OPSET = 18


class OpsetNotWritten(ConfigError):
    """torch.onnx wrote another opset than ``--opset`` asked for (the version converter could not lower the graph)."""


class ExportError(FreqdenseError, RuntimeError):
    """The model could not be exported, or the exported graph does not reproduce it."""


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote and how well ONNX Runtime reproduced the model.

    Attributes:
        path: the ``.onnx`` file.
        sidecar_path: the JSON sidecar next to it.
        input_name: name of the first graph input (``"image"``).
        output_names: graph output names, in graph order.
        input_shape: input dims; strings are dynamic (``"batch"``, ``"height"``, ``"width"``).
        dynamic_hw: whether H and W are dynamic in the written graph (False after a static fallback).
        opset: ONNX opset version.
        checked_sizes: (H, W) sizes the parity check ran at; empty when ``check=False``.
        max_abs_diff: per output, the largest |ONNX Runtime - PyTorch| over all checked sizes.
        fallback_reason: why a requested dynamic export fell back to static H/W, else None.
        input_names: every graph input, in order (``("image",)`` for single-input models).
    """

    path: Path
    sidecar_path: Path
    input_name: str
    output_names: tuple[str, ...]
    input_shape: tuple[int | str, ...]
    dynamic_hw: bool
    opset: int
    checked_sizes: tuple[tuple[int, int], ...] = ()
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    fallback_reason: str | None = None
    input_names: tuple[str, ...] = (INPUT_NAME,)


class _ParityMismatch(Exception):
    """Internal: ONNX Runtime disagrees with PyTorch for one input."""

    def __init__(self, message: str, image_shape: tuple[int, ...]) -> None:
        super().__init__(message)
        self.image_shape = image_shape


class _OrtFailure(Exception):
    """Internal: ONNX Runtime cannot load or run the exported graph."""


class _Unverifiable(Exception):
    """Internal: the model itself does not run at the second check size."""


class _DictToTuple(nn.Module):
    """Flatten the model's output dict to a tuple in a fixed order (ONNX outputs are positional)."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.names = tuple(names)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(*inputs)
        return tuple(out[name] for name in self.names)


def input_channels_of(key: str) -> int:
    """Channels of a model input by sample key: 3 for RGB and HHA, 1 for depth maps."""
    if key in IMAGE_KEYS or key == "hha":
        return 3
    if key in DENSE_FLOAT_KEYS:
        return 1
    raise ConfigError(
        f"cannot tell the channels of model input {key!r}; pass input_channels={{{key!r}: C}} to export_onnx"
    )


def _check_inputs(
    meta: Mapping[str, Any], inputs: Sequence[str] | None, channels: Mapping[str, int] | None
) -> list[tuple[str, int]]:
    if inputs is None:
        from .predict import model_input_keys

        inputs = model_input_keys(meta)
    names = list(inputs)
    if isinstance(inputs, str) or not names or len(set(names)) != len(names):
        raise ConfigError(f"inputs must be a non-empty sequence of distinct sample keys, got {inputs!r}")
    given = dict(channels or {})
    return [(name, int(given[name]) if name in given else input_channels_of(name)) for name in names]


def _random_inputs(
    specs: Sequence[tuple[str, int]], batch: int, h: int, w: int, gen: torch.Generator
) -> tuple[torch.Tensor, ...]:
    # Depth-like inputs get plausible metres (0.5-5 m); everything else RGB/HHA-like values in [0, 1].
    out = []
    for name, c in specs:
        x = torch.rand(batch, c, h, w, generator=gen)
        out.append(0.5 + 4.5 * x if name in DENSE_FLOAT_KEYS else x)
    return tuple(out)


def sidecar_path_for(onnx_path: str | Path) -> Path:
    """The sidecar JSON path for an ONNX file: ``model.onnx`` -> ``model.onnx.json``."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.name + ".json")


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    height: int,
    width: int,
    opset: int = 18,
    dynamic_hw: bool = True,
    outputs: Sequence[str] | None = None,
    meta: Mapping[str, Any] | None = None,
    check: bool = True,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    seed: int = 0,
    inputs: Sequence[str] | None = None,
    input_channels: Mapping[str, int] | None = None,
) -> ExportReport:
    """Export ``model`` to ONNX with ``torch.onnx.export(..., dynamo=True)`` and check it with ONNX Runtime.

    The batch dimension is always dynamic. With ``dynamic_hw`` H and W are dynamic too; if that export fails,
    or the graph does not reproduce the model at a second size (``height + 32, width + 64``), the export is
    redone with static H/W = (height, width) and a warning is logged (see ``ExportReport.fallback_reason``).
    Ops whose translation bakes in the traced size (e.g. ``AdaptiveAvgPool2d`` to a fixed grid other than
    1x1) export without error but are only right at the traced size; the second-size check is what catches them.
    A third, odd size (``height + 17, width + 29``) is checked too when the PyTorch model accepts it: a graph
    that silently assumes sizes divisible by the network stride (a shape test traced into a guard) fails there,
    and is likewise re-exported with static H/W. Models that refuse that size in PyTorch skip it (logged).

    The check feeds seeded uniform [0, 1] images (depth inputs: uniform 0.5-5 m) to ONNX Runtime (CPU) and to the
    model and requires
    ``|onnx - torch| <= atol + rtol * |torch|`` elementwise for every output. The ``.onnx`` is written to a
    temporary file and moved into place only after the check passed, so a failed export leaves nothing at
    ``path``. Weights are stored inside the file (ONNX's 2 GB protobuf limit applies).

    Args:
        model: module mapping ``image`` (B, 3, H, W) RGB in [0, 1] (and any further inputs) to
            ``dict[str, Tensor]``. It is put in eval mode for the export and restored afterwards.
        path: destination ``.onnx`` file; the sidecar goes to ``<path>.json``.
        height: input height used to trace (and the static size on fallback).
        width: input width used to trace.
        opset: ONNX opset version.
        dynamic_hw: try dynamic H/W (falls back to static as described above).
        outputs: output dict keys to export, in this order. ``None`` exports whichever of
            :data:`DEFAULT_OUTPUTS` the model returns and drops auxiliary keys; names given explicitly must
            all exist.
        meta: checkpoint metadata (``classes``, ``palette``, ``depth_unit``, ``input_size``) for the sidecar.
        check: run the ONNX Runtime parity check.
        atol: absolute tolerance of the check.
        rtol: relative tolerance of the check.
        seed: seed of the random check inputs.
        inputs: sample keys of the model's positional inputs, in order, which become the graph input names;
            ``None`` takes ``meta["config"]["task"]["inputs"]`` (default ``["image"]``).
        input_channels: channels per input key where :func:`input_channels_of` cannot tell.

    Returns:
        An :class:`ExportReport`.

    Raises:
        ImportError: onnx, onnxscript or onnxruntime is missing.
        ConfigError: bad sizes or output names.
        ExportError: the export failed even with static H/W, or ONNX Runtime disagrees with PyTorch.
    """
    onnx, ort = _require_export_deps()
    path = Path(path)
    meta = dict(meta or {})
    specs = _check_inputs(meta, inputs, input_channels)
    input_names = [name for name, _ in specs]
    if height < 1 or width < 1:
        raise ConfigError(f"export size must be positive, got height={height}, width={width}")
    newest = int(onnx.defs.onnx_opset_version())
    if isinstance(opset, bool) or not isinstance(opset, int) or not 1 <= opset <= newest:
        raise ConfigError(
            f"--opset {opset!r} is not an ONNX opset this onnx {onnx.__version__} knows: give 1..{newest} "
            f"(torch.onnx writes opset {NATIVE_OPSET} natively and converts to others where it can)"
        )
    if path.suffix.lower() != ".onnx":
        log.warning("ONNX file %s does not end in .onnx", path)
    path.parent.mkdir(parents=True, exist_ok=True)

    was_training = model.training
    model.eval()
    try:
        device = _module_device(model)
        gen = torch.Generator().manual_seed(seed)
        sizes = [(height, width)] + ([(height + 32, width + 64), (height + 17, width + 29)] if dynamic_hw else [])
        examples = [_random_inputs(specs, 2 if i == 0 else 1, h, w, gen) for i, (h, w) in enumerate(sizes)]
        with torch.no_grad(), heartbeat(f"running the PyTorch model at {height}x{width} (reference outputs)"):
            first = _run_model(model, _to(examples[0], device), where=f"{height}x{width}")
        names = _select_outputs(first, outputs)
        _check_meta(meta, first, names)
        wrapper = _DictToTuple(model, names).eval()
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with _quiet_exporter():
                dynamic, diffs, fallback, n_checked = _export_with_fallback(
                    onnx,
                    ort,
                    wrapper,
                    tmp,
                    examples,
                    input_names,
                    first,
                    names,
                    opset,
                    dynamic_hw,
                    check,
                    atol,
                    rtol,
                    device,
                )
            input_shape = _graph_input_shape(onnx, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        model.train(was_training)

    checked = tuple(sizes[:n_checked])
    report = ExportReport(
        path=path,
        sidecar_path=sidecar_path_for(path),
        input_name=input_names[0],
        output_names=tuple(names),
        input_shape=input_shape,
        dynamic_hw=dynamic,
        opset=opset,
        checked_sizes=checked,
        max_abs_diff=diffs,
        fallback_reason=fallback,
        input_names=tuple(input_names),
    )
    _write_json_atomic(report.sidecar_path, _sidecar(report, meta, (height, width), atol, rtol))
    if check:
        log.info("exported %s (dynamic H/W: %s); max |onnx - torch|: %s", path, dynamic, _fmt_diffs(diffs))
    else:
        log.info("exported %s (dynamic H/W: %s); parity check skipped", path, dynamic)
    return report


def _require_export_deps() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (torch's dynamo exporter needs it)
    except ImportError as err:
        missing = err.name or "onnx/onnxscript/onnxruntime"
        raise ImportError(f"ONNX export needs {missing}; install it with: pip install 'freqdense[export]'") from err
    return onnx, onnxruntime


#: Loggers of the exporter stack that narrate every pass at INFO (and warn that torchvision is absent).
_NOISY_LOGGERS = {
    "onnx_ir": logging.WARNING,
    "onnxscript": logging.WARNING,
    "torch.onnx": logging.ERROR,
    # A failed opset conversion logs its traceback; export_onnx reports it as OpsetNotWritten instead.
    "onnxscript.version_converter": logging.CRITICAL,
}


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's per-pass INFO logs and its deprecation noise for the duration of an export."""
    saved = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    try:
        for name, level in _NOISY_LOGGERS.items():
            logger = logging.getLogger(name)
            logger.setLevel(max(level, logger.getEffectiveLevel()))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec.*")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _module_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _to(inputs: Sequence[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(x.to(device) for x in inputs)


def _run_model(model: nn.Module, inputs: Sequence[torch.Tensor], *, where: str) -> Mapping[str, torch.Tensor]:
    out = model(*inputs)
    if not isinstance(out, Mapping):
        raise ConfigError(
            f"export needs a model returning dict[str, Tensor]; {type(model).__name__} returned "
            f"{type(out).__name__} at input {where}"
        )
    return out


def _select_outputs(out: Mapping[str, Any], outputs: Sequence[str] | None) -> list[str]:
    available = [k for k, v in out.items() if isinstance(v, torch.Tensor)]
    if outputs is None:
        names = [n for n in DEFAULT_OUTPUTS if n in available]
        if not names:
            raise ConfigError(
                f"the model returns none of the default outputs {list(DEFAULT_OUTPUTS)} (it returns "
                f"{sorted(out)}); pass outputs=[...] with the keys to export"
            )
    else:
        names = list(outputs)
        if isinstance(outputs, str) or not names or len(set(names)) != len(names):
            raise ConfigError(f"outputs must be a non-empty sequence of distinct names, got {outputs!r}")
        missing = [n for n in names if n not in available]
        if missing:
            raise ConfigError(
                f"requested outputs {missing} are not tensors in the model's output; tensor outputs are {available}"
            )
    dropped = sorted(set(out) - set(names))
    if dropped:
        log.info("not exporting model outputs %s (pass outputs=[...] to include them)", dropped)
    return names


def _check_meta(meta: Mapping[str, Any], out: Mapping[str, torch.Tensor], names: Sequence[str]) -> None:
    classes = meta.get("classes")
    if "semantic" in names and classes is not None and len(classes) != out["semantic"].shape[1]:
        log.warning(
            "meta lists %d classes but the model's semantic output has %d channels; the sidecar will be wrong",
            len(classes),
            out["semantic"].shape[1],
        )


def _export_with_fallback(
    onnx: Any,
    ort: Any,
    wrapper: nn.Module,
    tmp: Path,
    inputs: list[tuple[torch.Tensor, ...]],
    input_names: list[str],
    first: Mapping[str, torch.Tensor],
    names: list[str],
    opset: int,
    dynamic_hw: bool,
    check: bool,
    atol: float,
    rtol: float,
    device: torch.device,
) -> tuple[bool, dict[str, float], str | None]:
    """Export to ``tmp`` (dynamic H/W first when asked) and check.

    Returns (dynamic, diffs, fallback reason, number of leading ``inputs`` checked). Dynamic H/W is abandoned for
    static when the dynamic export fails, ONNX Runtime cannot load or run the dynamic graph, or the graph is wrong
    at a further size. A numerical mismatch at the traced size is raised at once: the static graph comes from the
    same translation. The optional odd size (``inputs[2]``) is skipped when the PyTorch model refuses it.
    """
    reference = [first[n].detach().cpu().numpy() for n in names]
    fallback = None
    if dynamic_hw:
        try:
            _export_to(onnx, wrapper, tmp, _to(inputs[0], device), input_names, names, opset, dynamic_hw=True)
            if not check:
                return True, {}, None, 0
            session = _session(ort, tmp)
            diffs = _compare(session, inputs[0], input_names, reference, names, atol, rtol)
            n_checked = 1
            for index, extra in enumerate(inputs[1:], start=1):
                shape = tuple(extra[0].shape)
                try:
                    with torch.no_grad(), heartbeat(f"running the PyTorch model at check size {shape[-2:]}"):
                        out = _run_model(wrapper.model, _to(extra, device), where=f"check size {shape[-2:]}")
                except Exception as err:  # noqa: BLE001  (the model may accept only some sizes)
                    if index >= 2:  # the odd size is optional: many models need multiples of their stride
                        log.info("skipping the ONNX check at %s: the PyTorch model refuses it (%s)", shape, err)
                        break
                    raise _Unverifiable(f"the PyTorch model fails on {shape}: {type(err).__name__}: {err}") from err
                ref = [out[n].detach().cpu().numpy() for n in names]
                more = _compare(session, extra, input_names, ref, names, atol, rtol)
                diffs = {n: max(diffs[n], more[n]) for n in names}
                n_checked += 1
        except _ParityMismatch as err:
            if err.image_shape == tuple(inputs[0][0].shape):
                raise ExportError(str(err)) from None
            fallback = (
                "the dynamic-H/W graph is wrong at a second size (typically an op whose ONNX form bakes in the "
                "traced size, e.g. AdaptiveAvgPool2d to a fixed grid, or a size test traced as a guard that "
                f"assumes H, W divisible by the stride): {err}"
            )
        except OpsetNotWritten:
            raise
        except _OrtFailure as err:
            fallback = f"ONNX Runtime rejects the dynamic-H/W graph: {err}"
        except _Unverifiable as err:
            fallback = f"dynamic H/W cannot be verified: {err}"
        except Exception as err:  # noqa: BLE001  (torch.export/ONNX conversion raise many unrelated types)
            fallback = f"dynamic H/W export failed: {type(err).__name__}: {_first_line(err)}"
        else:
            return True, diffs, None, n_checked
        h, w = inputs[0][0].shape[-2:]
        log.warning("%s; exporting with static H/W = %dx%d instead (batch stays dynamic)", fallback, h, w)

    try:
        _export_to(onnx, wrapper, tmp, _to(inputs[0], device), input_names, names, opset, dynamic_hw=False)
    except OpsetNotWritten:
        raise
    except Exception as err:  # noqa: BLE001
        raise ExportError(
            f"ONNX export of {type(wrapper.model).__name__} failed: {type(err).__name__}: {_first_line(err)}. "
            "See docs/export_and_predict.md for ops that do not export (e.g. custom CUDA kernels, data-dependent "
            "Python control flow); replace them or export a model without them"
        ) from err
    if not check:
        return False, {}, fallback, 0
    try:
        diffs = _compare(_session(ort, tmp), inputs[0], input_names, reference, names, atol, rtol)
    except (_ParityMismatch, _OrtFailure) as err:
        raise ExportError(str(err)) from None
    return False, diffs, fallback, 1


def _export_to(
    onnx: Any,
    wrapper: nn.Module,
    tmp: Path,
    example: tuple[torch.Tensor, ...],
    input_names: list[str],
    names: list[str],
    opset: int,
    *,
    dynamic_hw: bool,
) -> None:
    Dim = torch.export.Dim
    dims = {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC} if dynamic_hw else {0: Dim.DYNAMIC}
    what = f"exporting {type(wrapper.model).__name__} to ONNX ({'dynamic' if dynamic_hw else 'static'} H/W)"
    log.info("%s; large decoders (e.g. FreqFusion) can take many minutes on a CPU", what)
    # torch.onnx.export has no loop to count: a heartbeat logs "still exporting..." every ~10 s.
    with heartbeat(what):
        # The wrapper takes *inputs: one dynamic-shape spec per positional input; shared B/H/W symbols are inferred.
        program = torch.onnx.export(
            wrapper,
            example,
            None,
            dynamo=True,
            input_names=list(input_names),
            output_names=names,
            opset_version=opset,
            dynamic_shapes=(tuple(dict(dims) for _ in example),),
            verbose=False,
        )
        proto = program.model_proto
        written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        if written != opset:
            # torch.onnx falls back to its own opset when the ONNX version converter cannot lower the graph.
            raise OpsetNotWritten(
                f"--opset {opset}: torch.onnx {torch.__version__} wrote opset {written} instead (the ONNX version "
                f"converter cannot convert {type(wrapper.model).__name__} to opset {opset}); nothing was written. "
                f"Use --opset {NATIVE_OPSET} (the exporter's own) or another opset it can convert to"
            )
        _name_dynamic_dims(proto)
        onnx.save_model(proto, str(tmp))


def _name_dynamic_dims(proto: Any) -> None:
    """Rename the exporter's symbols (``s77``...) for the input dims to batch/height/width everywhere."""
    graph = proto.graph
    symbols: dict[str, str] = {}
    for dim, name in zip(graph.input[0].type.tensor_type.shape.dim, ("batch", None, "height", "width")):
        if name and dim.HasField("dim_param"):
            symbols[dim.dim_param] = name
    if not symbols:
        return
    pattern = re.compile(r"\b(" + "|".join(re.escape(s) for s in symbols) + r")\b")
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                dim.dim_param = pattern.sub(lambda m: symbols[m.group(1)], dim.dim_param)


def _graph_input_shape(onnx: Any, path: Path) -> tuple[int | str, ...]:
    model = onnx.load(str(path), load_external_data=False)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return tuple(d.dim_param if d.HasField("dim_param") else int(d.dim_value) for d in dims)


def _session(ort: Any, path: Path) -> Any:
    options = ort.SessionOptions()
    options.log_severity_level = 4  # ORT errors reach us as exceptions; its own log line would only duplicate them
    try:
        with heartbeat("loading the ONNX graph into ONNX Runtime"):
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001  (onnxruntime raises its own exception types)
        raise _OrtFailure(f"cannot load the graph: {type(err).__name__}: {_first_line(err)}") from err


def _compare(
    session: Any,
    inputs: Sequence[torch.Tensor],
    input_names: Sequence[str],
    reference: list[np.ndarray],
    names: list[str],
    atol: float,
    rtol: float,
) -> dict[str, float]:
    """Run ONNX Runtime on ``inputs`` and compare with ``reference``; returns max abs diff per output."""
    shape = tuple(inputs[0].shape)
    log.info("checking the ONNX graph against PyTorch with ONNX Runtime on input %s", shape)
    try:
        with heartbeat(f"running ONNX Runtime on input {shape}"):
            got = session.run(list(names), {n: x.numpy() for n, x in zip(input_names, inputs)})
    except Exception as err:  # noqa: BLE001
        raise _OrtFailure(f"running input {shape} failed: {type(err).__name__}: {_first_line(err)}") from err
    diffs: dict[str, float] = {}
    for name, onnx_out, torch_out in zip(names, got, reference):
        if onnx_out.shape != torch_out.shape:
            raise _ParityMismatch(
                f"ONNX output {name!r} has shape {onnx_out.shape} but PyTorch gives {torch_out.shape} for input "
                f"{shape}",
                shape,
            )
        diff = np.abs(onnx_out.astype(np.float64) - torch_out.astype(np.float64))
        bad = ~(diff <= atol + rtol * np.abs(torch_out))  # NaN counts as bad
        diffs[name] = float(np.nanmax(diff)) if diff.size else 0.0
        if bad.any():
            raise _ParityMismatch(
                f"ONNX Runtime output {name!r} differs from PyTorch for input {shape}: max |diff| "
                f"{diffs[name]:.3g}, {int(bad.sum())} of {bad.size} values exceed atol + rtol*|torch| "
                f"(atol={atol:g}, rtol={rtol:g}). The graph does not reproduce the model: look for ops listed "
                "in docs/export_and_predict.md, or loosen atol/rtol if this is only numerical noise",
                shape,
            )
    return diffs


def _sidecar(report: ExportReport, meta: Mapping[str, Any], size: tuple[int, int], atol: float, rtol: float) -> dict:
    depth_unit = meta.get("depth_unit", "m")
    extra_inputs = [
        {
            "name": name,
            "layout": "NCHW",
            "dtype": "float32",
            "meaning": f"depth in {depth_unit}, 0 = invalid (same H, W as image)"
            if name in DENSE_FLOAT_KEYS
            else "HHA (disparity, height, angle) / 255 in [0, 1] (same H, W as image)"
            if name == "hha"
            else "model input (same H, W as image)",
        }
        for name in report.input_names[1:]
    ]
    outputs = []
    for name in report.output_names:
        meaning = _OUTPUT_MEANING.get(name, "auxiliary model output")
        entry: dict[str, Any] = {"name": name, "meaning": meaning}
        if name == "depth":
            entry["unit"] = depth_unit
        outputs.append(entry)
    return {
        "format": "freqdense-onnx",
        "format_version": _SIDECAR_VERSION,
        "freqdense_version": _version(),
        "torch_version": torch.__version__,
        "onnx_file": report.path.name,
        "opset": report.opset,
        "input": {
            "name": report.input_name,
            "layout": "NCHW",
            "shape": list(report.input_shape),
            "dtype": "float32",
            "color": "RGB",
            "range": [0.0, 1.0],
            "normalization": "inside the graph: feed RGB in [0, 1]; do not subtract a mean or divide by a std",
        },
        "extra_inputs": extra_inputs,
        "outputs": outputs,
        "dynamic_hw": report.dynamic_hw,
        "export_size": list(size),
        "input_size": list(meta["input_size"]) if meta.get("input_size") is not None else None,
        "classes": list(meta["classes"]) if meta.get("classes") is not None else None,
        "palette": [list(map(int, c)) for c in meta["palette"]] if meta.get("palette") is not None else None,
        "depth_unit": depth_unit,
        "tasks": list(meta["tasks"]) if meta.get("tasks") is not None else None,
        "check": {
            "sizes": [list(s) for s in report.checked_sizes],
            "max_abs_diff": report.max_abs_diff,
            "atol": atol,
            "rtol": rtol,
        }
        if report.checked_sizes
        else None,
        "fallback_reason": report.fallback_reason,
    }


def _write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _version() -> str | None:
    try:
        from importlib.metadata import version

        return version("freqdense")
    except Exception:  # noqa: BLE001  (not installed as a distribution)
        return None


def _first_line(err: BaseException) -> str:
    """A short summary of an exporter error: its first sentence, the root cause, and the aten op it names."""
    texts: list[str] = []
    cur: BaseException | None = err
    while cur is not None and len(texts) < 6:
        texts.append(re.sub(r"\x1b\[[0-9;]*m", "", str(cur)).strip())
        cur = cur.__cause__ or cur.__context__
    summary = texts[0].splitlines()[0].split(". ")[0][:200] if texts[0] else ""
    if len(texts) > 1 and texts[-1]:
        root = " ".join(line.strip() for line in texts[-1].splitlines()[:2] if line.strip())
        summary += f"; cause: {root[:300]}"
    op = re.search(r"torch\.ops\.\w+\.\w+(?:\.\w+)?", "\n".join(texts))
    if op and op.group(0) not in summary:
        summary += f" (op: {op.group(0)})"
    return summary


def _fmt_diffs(diffs: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:.2g}" for k, v in diffs.items())


# ----------------------------------------------------------------------------------------------------------------
# Detectors: the raw head maps; decoding + NMS outside the graph
# ----------------------------------------------------------------------------------------------------------------


class _DetectionMaps(nn.Module):
    """A detector's :class:`~freqdense.models.detection.FCOSOutputs` as a dict of named per-level maps."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        from .models.detection import head_output_names

        out = self.model(image)
        maps = [*out.cls_logits, *out.distances, *out.centerness]
        return dict(zip(head_output_names(out.strides), maps))


def _detection_settings(meta: Mapping[str, Any]) -> dict[str, Any]:
    from .tasks.detection import DETECTION_OPTIONS, POSTPROCESS_KEYS

    task = (meta.get("config") or {}).get("task") or {}
    given = dict(task.get("detection") or {}) if isinstance(task, Mapping) else {}
    return {k: given.get(k, DETECTION_OPTIONS[k]) for k in POSTPROCESS_KEYS}


def export_detection_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    height: int,
    width: int,
    meta: Mapping[str, Any] | None = None,
    opset: int = 18,
    dynamic_hw: bool = True,
    check: bool = True,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    seed: int = 0,
) -> ExportReport:
    """Export a detector (the registered ``fcos``) up to its head, with the checks of :func:`export_onnx`.

    The graph takes ``image`` (B, 3, H, W) RGB in [0, 1] (normalisation inside) and returns, finest level first,
    ``cls_logits_s<stride>`` (B, K, H_l, W_l) logits, ``distances_s<stride>`` (B, 4, H_l, W_l) ``(l, t, r, b)`` in
    input pixels and ``centerness_s<stride>`` (B, 1, H_l, W_l) logits, ``H_l = ceil(H / stride)``. Decoding and
    class-wise NMS (a data-dependent number of boxes) are not in the graph: run
    :func:`freqdense.models.detection.decode_onnx_outputs` (numpy or torch) on ONNX Runtime's outputs; it equals
    :meth:`FCOSDetector.predict`. The sidecar gets a ``detection`` section: strides, output order, class names
    and the run's inference settings (``score_thr``, ``nms_iou``, ``max_per_image``, ``pre_nms_top_k``,
    ``min_size``).
    """
    from .models.detection import head_output_names

    strides = getattr(model, "strides", None)
    if strides is None or not callable(getattr(model, "predict", None)):
        raise ConfigError(
            f"export_detection_onnx needs a detector with strides and predict(), got {type(model).__name__}"
        )
    meta = dict(meta or {})
    names = head_output_names([int(s) for s in strides])
    report = export_onnx(
        _DetectionMaps(model),
        path,
        height=height,
        width=width,
        opset=opset,
        dynamic_hw=dynamic_hw,
        outputs=names,
        meta=meta,
        check=check,
        atol=atol,
        rtol=rtol,
        seed=seed,
        inputs=("image",),
    )
    sidecar = json.loads(report.sidecar_path.read_text(encoding="utf-8"))
    k = int(getattr(model, "num_classes", 0))
    meanings = {
        "cls_logits": f"classification logits (B, {k}, H_l, W_l); score = sigmoid(cls) * sigmoid(centerness)",
        "distances": "(l, t, r, b) distances (B, 4, H_l, W_l) in input pixels from the point (stride * j + "
        "stride // 2, stride * i + stride // 2) to the box sides",
        "centerness": "centerness logits (B, 1, H_l, W_l)",
    }
    sidecar["outputs"] = [
        {"name": n, "meaning": meanings[n.rsplit("_s", 1)[0]], "stride": int(n.rsplit("_s", 1)[1])} for n in names
    ]
    sidecar["detection"] = {
        "strides": [int(s) for s in strides],
        "num_classes": k,
        "output_order": names,
        "inference": _detection_settings(meta),
        "decoding": "not in the graph: freqdense.models.detection.decode_onnx_outputs(outputs, sidecar, "
        "image_sizes) decodes boxes (xyxy input pixels), scores and labels with class-wise NMS, as "
        "FCOSDetector.predict; see docs/methods/detection.md",
    }
    _write_json_atomic(report.sidecar_path, sidecar)
    return report
