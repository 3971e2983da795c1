"""Residual blocks whose last conv computes only the kept channels and adds them into the full-width residual.

The small ResNet of soft filter pruning (He et al., IJCAI 2018) removes the pruned output filters of each block's
last conv (``Bottleneck.conv3`` / ``BasicBlock.conv2``) although their channels are summed with the shortcut: the
last conv and its BN run at the reduced width ``k`` and their output is added into the residual (full width ``C``)
at the kept channel indices, after the residual has received the constant the pruned channels take::

    out = relu( (identity + c).index_add(1, kept_index, bn(conv(h))) )

``c`` (buffer ``pruned_constant``, ``(C,)``) is zero at the kept channels and ``bn(b_j)`` (eval-mode statistics,
``b_j`` the conv's bias or 0) at each pruned channel ``j``: a zero filter's channel is that constant, not zero, so
the block equals the masked one exactly in eval mode (in train mode BN uses batch statistics).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..models.backbones.resnet import BasicBlock, Bottleneck

__all__ = ["IndexAddBasicBlock", "IndexAddBottleneck", "index_add_block", "last_conv_and_norm"]


def _add_into_residual(
    identity: torch.Tensor, kept_index: torch.Tensor, pruned_constant: torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    residual = identity + pruned_constant.to(identity.dtype).view(1, -1, 1, 1)
    return residual.index_add_(1, kept_index, out.to(residual.dtype))


class IndexAddBottleneck(Bottleneck):
    """:class:`~freqdense.models.backbones.resnet.Bottleneck` with ``conv3``/``bn3`` at the kept width ``k``.

    Buffers: ``kept_index`` (long ``(k,)``, residual channels that ``bn3`` writes) and ``pruned_constant``
    (``(C,)``). Build with :func:`index_add_block`.
    """

    kept_index: torch.Tensor
    pruned_constant: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(_add_into_residual(identity, self.kept_index, self.pruned_constant, out))


class IndexAddBasicBlock(BasicBlock):
    """:class:`~freqdense.models.backbones.resnet.BasicBlock` with ``conv2``/``bn2`` at the kept width (see
    :class:`IndexAddBottleneck`)."""

    kept_index: torch.Tensor
    pruned_constant: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(_add_into_residual(identity, self.kept_index, self.pruned_constant, out))


_INDEX_ADD = {Bottleneck: IndexAddBottleneck, BasicBlock: IndexAddBasicBlock}


def last_conv_and_norm(block: nn.Module) -> tuple[nn.Conv2d, nn.Module]:
    """The conv and norm whose output is summed with the shortcut: ``(conv3, bn3)`` or ``(conv2, bn2)``."""
    if isinstance(block, Bottleneck):
        return block.conv3, block.bn3
    if isinstance(block, BasicBlock):
        return block.conv2, block.bn2
    raise TypeError(f"not a ResNet block: {type(block).__name__}")


def index_add_block(block: nn.Module, kept_index: torch.Tensor, pruned_constant: torch.Tensor) -> nn.Module:
    """An index-add version of ``block`` sharing its submodules, with the given buffers.

    ``block`` is a ``Bottleneck`` / ``BasicBlock`` (or already an index-add one: its buffers are replaced; compose
    indices before calling). ``kept_index``: long ``(k,)``; ``pruned_constant``: ``(C,)`` for the residual width ``C``.
    """
    base = Bottleneck if isinstance(block, Bottleneck) else BasicBlock if isinstance(block, BasicBlock) else None
    if base is None:
        raise TypeError(f"index_add_block needs a ResNet Bottleneck or BasicBlock, got {type(block).__name__}")
    cls = _INDEX_ADD[base]
    new = cls.__new__(cls)
    nn.Module.__init__(new)
    new._modules.update(block._modules)  # children shared, ``downsample = None`` included
    new._parameters.update(block._parameters)
    new._buffers.update(block._buffers)
    for key, value in vars(block).items():  # plain attributes, if a subclass added any
        if not key.startswith("_") and key != "training":
            setattr(new, key, value)
    ref = next(iter(block.parameters()), None)
    device = ref.device if ref is not None else None
    dtype = ref.dtype if ref is not None else torch.get_default_dtype()
    new.register_buffer("kept_index", kept_index.detach().to(device=device, dtype=torch.long).clone())
    new.register_buffer("pruned_constant", pruned_constant.detach().to(device=device, dtype=dtype).clone())
    new.train(block.training)
    return new
