"""Multi-modal distillation (PAD-Net, Xu et al. CVPR'18) and squeeze-excitation, as in Multi-Task-Learning-PyTorch.

Reference behaviour: docs/reference_code.md#mti-net and #pad-net. Module names equal the reference's
(``self_attention.<t>.<a>.attention.0``, ``.conv``; ``squeeze.0``/``squeeze.2``), so its state dicts load by key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn

from ..errors import ConfigError, ShapeError

__all__ = ["MultiTaskDistillation", "SABlock", "SEBlock"]


class SEBlock(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(W2 relu(W1 gap(x)))`` with hidden width ``max(1, C // r)``.

    Args:
        channels: ``C``.
        r: reduction ratio (16 in the reference; ``C // 16 = 1`` for C = 18). The reference uses ``C // r`` and
            fails for ``C < r``; here the hidden width is clamped to 1, identical whenever the reference works.
    """

    def __init__(self, channels: int, r: int = 16) -> None:
        super().__init__()
        c = int(channels)
        if c < 1 or int(r) < 1:
            raise ConfigError(f"SEBlock needs channels >= 1 and r >= 1, got channels={channels!r}, r={r!r}")
        hidden = max(1, c // int(r))
        self.squeeze = nn.Sequential(nn.Linear(c, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, c), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, C, H, W)``."""
        gate = self.squeeze(x.mean(dim=(2, 3)))
        return x * gate[:, :, None, None]


class SABlock(nn.Module):
    """Spatial self-attention message: ``sigmoid(conv3x3_a(x)) * conv3x3_b(x)`` (both without bias).

    Args:
        in_channels: channels of the source task's features.
        out_channels: channels of the message (the target task's features).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.Sigmoid())
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` -> ``(B, C_out, H, W)``."""
        return self.attention(x) * self.conv(x)


class MultiTaskDistillation(nn.Module):
    """PAD-Net multi-modal distillation: ``out_t = f_t + sum_{a != t} SABlock_{t,a}(f_a)`` (PAD-Net Eq. 3).

    Args:
        tasks: tasks that receive distilled features.
        aux_tasks: tasks whose features are sent (the reference's "auxiliary" tasks; here usually equal to ``tasks``).
        channels: channels of every task's features.
    """

    def __init__(self, tasks: Sequence[str], aux_tasks: Sequence[str], channels: int) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        self.aux_tasks = tuple(aux_tasks)
        if not self.tasks or not set(self.tasks) <= set(self.aux_tasks):
            raise ConfigError(f"distillation tasks {self.tasks} must be a non-empty subset of {self.aux_tasks}")
        self.self_attention = nn.ModuleDict(
            {t: nn.ModuleDict({a: SABlock(channels, channels) for a in self.aux_tasks if a != t}) for t in self.tasks}
        )

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{aux_task: (B, C, H, W)}`` -> ``{task: (B, C, H, W)}``."""
        missing = [a for a in self.aux_tasks if a not in features]
        if missing:
            raise ShapeError(f"distillation needs features of tasks {missing}; got {sorted(features)}")
        out = {}
        for t in self.tasks:
            y = features[t]
            for a, block in self.self_attention[t].items():
                y = y + block(features[a])
            out[t] = y
        return out
