"""FLOPs of the physically pruned DeepLab v3+ R101 (paper accounting: output stride 32, 513 x 513 input).

The backbone must shrink exactly as the small ResNet of soft filter pruning (he-y/soft-filter-pruning,
``utils/get_small_model.py``): every block's ``conv1`` / ``conv2`` / ``conv3`` outputs and the stem's outputs lose
``floor(rate * n)`` filters, the residual stream and the shortcut projections' outputs keep full width. The filter
counts depend only on the rates, so random weights give the architectures; FLOPs are counted on the meta device and
compared with a closed form written out below. The paper's own Table 2 accounting is
:func:`freqdense.models.flops.pruned_flops`.
"""

from __future__ import annotations

import math

import pytest
import torch

from freqdense.models import create_model
from freqdense.models.flops import count_flops
from freqdense.pruning import SoftFilterPruner, encoder_decoder_scopes, remove_pruned_filters

pytestmark = pytest.mark.slow

DECODER_RATE = 0.2


def _pruned(encoder_rate: float, encoder_output: str = "decoder") -> dict[str, float]:
    torch.manual_seed(0)
    model = create_model("deeplabv3plus", backbone="resnet101", num_classes=21, accounting="paper", decoder_grid=129)
    scopes = encoder_decoder_scopes(model, encoder_rate, DECODER_RATE, encoder_output=encoder_output)
    SoftFilterPruner(model, scopes=scopes).step()
    small = remove_pruned_filters(model.eval())
    return {row.part: row.flops for row in count_flops(small, 513)}


def _small_resnet101_flops(rate: float) -> int:
    """2 x multiply-adds of the reference small ResNet-101 at 513 x 513, output stride 32, layers 1-4."""

    def kept(n: int) -> int:
        return n - math.floor(n * rate + 1e-9)

    def conv(cin: int, cout: int, k: int, size: int) -> int:
        return 2 * cin * cout * k * k * size * size

    stem = kept(64)
    flops = conv(3, stem, 7, 257)  # 513 -> 257 (7x7, stride 2); max pooling -> 129
    inplanes, size = 64, 129  # the residual stream keeps full width; only layer1.0 reads the pruned stem
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 23, 3))):
        out_size = size if stage == 0 else (size - 1) // 2 + 1  # 129, 65, 33, 17
        for b in range(blocks):
            cin = stem if (stage, b) == (0, 0) else (inplanes if b == 0 else 4 * planes)
            s_in = size if b == 0 else out_size
            k1 = kept(planes)
            flops += conv(cin, k1, 1, s_in) + conv(k1, k1, 3, out_size) + conv(k1, kept(4 * planes), 1, out_size)
            if b == 0:
                flops += conv(cin, 4 * planes, 1, out_size)  # shortcut projection: outputs never pruned
        inplanes, size = 4 * planes, out_size
    return flops


@pytest.mark.parametrize("rate", [0.2, 0.4, 0.6])
def test_backbone_flops_equal_the_reference_small_resnet(rate):
    assert _pruned(rate)["backbone"] == _small_resnet101_flops(rate)


def test_unpruned_closed_form_matches_the_counter():
    model = create_model("deeplabv3plus", backbone="resnet101", num_classes=21, accounting="paper")
    backbone = {row.part: row.flops for row in count_flops(model, 513)}["backbone"]
    assert backbone == _small_resnet101_flops(0.0)  # the closed form itself, on the unpruned network


def test_aspp_projection_scope_changes_flops_by_the_closed_form():
    # At 60 % the projection keeps 256 - floor(0.6 * 256) = 103 filters under "encoder" and 256 - 51 = 205 under
    # "decoder": 102 more channels out of the 1x1 projection (515 = 5 x 103 inputs, ASPP at 17 x 17 for OS32) and
    # into the decoder's first 3x3 conv (205 filters at the 129 x 129 grid).
    gap = 2 * 102 * (515 * 17 * 17 + 205 * 9 * 129 * 129)
    assert _pruned(0.6, "decoder")["total"] - _pruned(0.6, "encoder")["total"] == gap
