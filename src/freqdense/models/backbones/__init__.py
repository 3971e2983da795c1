"""Plain-torch backbones (ResNet, HRNet) with a name registry and local-file ImageNet weight loading."""

from __future__ import annotations

from ._base import BACKBONES, Backbone, create_backbone, list_backbones, register_backbone
from ._pretrained import PretrainedReport, load_pretrained
from .hrnet import HRNet, hrnet_w18, hrnet_w18_small, hrnet_w48
from .resnet import ResNet, resnet18, resnet34, resnet50, resnet101

__all__ = [
    "BACKBONES",
    "Backbone",
    "HRNet",
    "PretrainedReport",
    "ResNet",
    "create_backbone",
    "hrnet_w18",
    "hrnet_w18_small",
    "hrnet_w48",
    "list_backbones",
    "load_pretrained",
    "register_backbone",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
]
