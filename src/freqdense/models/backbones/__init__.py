"""Plain-torch backbones (ResNet, HRNet, MSCAN) with a name registry and local-file ImageNet weight loading."""

from __future__ import annotations

from ._base import BACKBONES, Backbone, create_backbone, list_backbones, register_backbone
from ._pretrained import PretrainedReport, load_pretrained
from .hrnet import HRNet, hrnet_w18, hrnet_w18_small, hrnet_w48
from .mscan import MSCAN, mscan_b, mscan_l, mscan_s, mscan_t
from .resnet import ResNet, resnet18, resnet34, resnet50, resnet101

__all__ = [
    "BACKBONES",
    "Backbone",
    "HRNet",
    "MSCAN",
    "PretrainedReport",
    "ResNet",
    "create_backbone",
    "hrnet_w18",
    "hrnet_w18_small",
    "hrnet_w48",
    "list_backbones",
    "load_pretrained",
    "mscan_b",
    "mscan_l",
    "mscan_s",
    "mscan_t",
    "register_backbone",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
]
