"""Table 2 of the spectral-analysis paper, pruned rows: FLOPs of the physically pruned DeepLab v3+ R101 (paper
accounting, grid 129).

The filter counts SFP removes depend only on the rates (``floor(rate * filters)`` per conv), not on the weights, so
random weights give the paper's architectures; FLOPs are counted on the meta device.
"""

from __future__ import annotations

import pytest
import torch

from freqdense.models import create_model
from freqdense.models.flops import count_flops
from freqdense.pruning import SoftFilterPruner, encoder_decoder_scopes, remove_pruned_filters

pytestmark = pytest.mark.slow

# Chen, Chiu, Wu, AAAI 2020, Table 2: encoder 20/40/60 % + decoder 20 % SFP at decoder grid 129, GFLOPs.
PAPER_PRUNED_GFLOPS = {0.2: 100.0, 0.4: 77.0, 0.6: 59.0}
DECODER_RATE = 0.2


def _pruned_gflops(encoder_rate: float, encoder_output: str) -> float:
    torch.manual_seed(0)
    model = create_model("deeplabv3plus", backbone="resnet101", num_classes=21, accounting="paper", decoder_grid=129)
    scopes = encoder_decoder_scopes(model, encoder_rate, DECODER_RATE, encoder_output=encoder_output)
    SoftFilterPruner(model, scopes=scopes).step()
    small = remove_pruned_filters(model.eval())
    return count_flops(small, 513)[-1].flops / 1e9


@pytest.mark.parametrize("rate", sorted(PAPER_PRUNED_GFLOPS))
def test_pruned_rows_within_3_gflops_of_the_paper(rate):
    assert abs(_pruned_gflops(rate, "decoder") - PAPER_PRUNED_GFLOPS[rate]) < 3.0


def test_aspp_projection_scope_changes_flops_by_the_closed_form():
    # At 60 % the projection keeps 256 - floor(0.6 * 256) = 103 filters under "encoder" and 256 - 51 = 205 under
    # "decoder": 102 more channels out of the 1x1 projection (515 = 5 x 103 inputs, ASPP at 17 x 17 for OS32) and
    # into the decoder's first 3x3 conv (205 filters at the 129 x 129 grid).
    gap = 2 * 102 * (515 * 17 * 17 + 205 * 9 * 129 * 129) / 1e9
    assert _pruned_gflops(0.6, "decoder") - _pruned_gflops(0.6, "encoder") == pytest.approx(gap, rel=1e-6)
