"""Multi-Task-Learning-PyTorch checkpoints (Vandenhende et al.): MTI-Net, PAD-Net, the multi-task and single-task
baselines on HRNet.

Their files are ``best_model.pth.tar`` (a state dict) or ``checkpoint.pth.tar`` (``{"model", "optimizer",
"epoch"}``), saved from ``nn.DataParallel`` (keys start with ``module.``). freqdense's models follow the same module
tree (docs/reference_code.md, state-dict names); the differences are names only:

- the semantic task is ``semseg`` there, ``semantic`` here;
- PAD-Net's initial-prediction convolutions are ``conv_out`` there, ``predictions`` here;
- the multi-task baseline's ``decoders`` are ``heads``; the single-task model's ``decoder`` is ``heads.<task>``.

The model, the HRNet variant, the tasks and the class count are read from the weights.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ...errors import CheckpointError
from ._common import Conversion, rename_keys

__all__ = ["convert_mtl_pytorch", "detect_hrnet"]

#: Their task names -> ours, for the tasks freqdense models predict.
_TASKS = {"semseg": "semantic", "depth": "depth"}
#: Tasks of Multi-Task-Learning-PyTorch that freqdense models do not predict.
_OTHER_TASKS = ("normals", "edge", "sal", "human_parts")


def detect_hrnet(state: Mapping[str, Tensor], prefix: str = "backbone.") -> str:
    """The registered HRNet name of a state dict: the width from ``transition1``, Small-v2 vs full from the number
    of stage-3 modules (3 vs 4)."""
    key = f"{prefix}transition1.0.0.weight"
    if key not in state:
        raise CheckpointError(f"no HRNet backbone found (expected {key!r}); only HRNet checkpoints are supported")
    width = int(state[key].shape[0])
    modules = {int(k[len(prefix) :].split(".")[1]) for k in state if k.startswith(f"{prefix}stage3.")}
    small = len(modules) == 3
    names = {(18, True): "hrnet_w18_small", (18, False): "hrnet_w18", (48, False): "hrnet_w48"}
    if (width, small) not in names:
        raise CheckpointError(
            f"HRNet of width {width} with {len(modules)} stage-3 modules is not one of freqdense's backbones "
            f"(W18-Small-v2, W18, W48)"
        )
    return names[width, small]


def _tasks_in(state: Mapping[str, Tensor], prefix: str) -> list[str]:
    found = sorted({k[len(prefix) :].split(".")[0] for k in state if k.startswith(prefix)})
    other = [t for t in found if t in _OTHER_TASKS]
    if other:
        raise CheckpointError(
            f"the checkpoint predicts {other}; freqdense's multi-task models predict semantic segmentation and depth "
            "only (semseg, depth)"
        )
    unknown = [t for t in found if t not in _TASKS]
    if unknown:
        raise CheckpointError(f"unknown task heads {unknown} under {prefix!r}; expected semseg and/or depth")
    return [_TASKS[t] for t in ("semseg", "depth") if t in found]


def _num_classes(state: Mapping[str, Tensor], key: str) -> int:
    if key not in state:
        close = difflib.get_close_matches(key, list(state), n=1, cutoff=0.6)
        hint = f" (closest key: {close[0]})" if close else ""
        raise CheckpointError(f"cannot find the semantic classifier {key!r} to read the number of classes{hint}")
    return int(state[key].shape[0])


def convert_mtl_pytorch(state: Mapping[str, Tensor]) -> Conversion:
    """Map a Multi-Task-Learning-PyTorch state dict (``module.`` already removed) to a freqdense model."""
    keys = list(state)
    if any(k.startswith("fpm_scale_") for k in keys):
        name, backbone_prefix, head_prefix = "mti_net", "backbone.", "heads."
    elif any(k.startswith("initial_task_prediction_heads.") for k in keys):
        name, backbone_prefix, head_prefix = "pad_net", "backbone.0.", "heads."
    elif any(k.startswith("decoders.") for k in keys):
        name, backbone_prefix, head_prefix = "multitask_baseline", "backbone.", "decoders."
    elif any(k.startswith("decoder.") for k in keys):
        name, backbone_prefix, head_prefix = "single_task", "backbone.", "decoder."
    else:
        raise CheckpointError(
            "not a Multi-Task-Learning-PyTorch MTI-Net / PAD-Net / baseline checkpoint: none of fpm_scale_*, "
            f"initial_task_prediction_heads.*, decoders.*, decoder.* found (first keys: {keys[:4]})"
        )
    backbone = detect_hrnet(state, backbone_prefix)
    conv = Conversion(model={}, state_dict={})
    if name == "single_task":
        out_key = next((k for k in ("decoder.last_layer.3.weight",) if k in state), None)
        if out_key is None:
            raise CheckpointError("single-task checkpoint without an HRNet head (decoder.last_layer.3.weight)")
        outputs = int(state[out_key].shape[0])
        task = "depth" if outputs == 1 else "semantic"
        name = "depth_baseline" if task == "depth" else "segmentation_baseline"
        tasks = [task]
        conv.notes.append(f"single-task model with {outputs} output(s): read as the {task} task")
        renamed = rename_keys(state, [("decoder", f"heads.{task}")], conv)
    else:
        tasks = _tasks_in(state, head_prefix)
        rules = [("semseg", "semantic")]
        if name == "pad_net":
            rules.append(("conv_out", "predictions"))
        if name == "multitask_baseline":
            rules.insert(0, ("decoders", "heads"))
        renamed = rename_keys(state, rules, conv)
    model: dict[str, Any] = {"name": name, "backbone": backbone}
    if "semantic" in tasks:
        classifier = {
            "mti_net": "heads.semantic.last_layer.3.weight",
            "pad_net": "heads.semantic.2.weight",
            "multitask_baseline": "heads.semantic.last_layer.3.weight",
            "segmentation_baseline": "heads.semantic.last_layer.3.weight",
        }[name]
        model["num_classes"] = _num_classes(renamed, classifier)
    if name in ("mti_net", "pad_net", "multitask_baseline"):
        model["tasks"] = tasks
    conv.model = model
    conv.state_dict = renamed
    conv.notes.append(f"detected {name} on {backbone}, tasks {tasks}")
    return conv
