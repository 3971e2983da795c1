from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from freqdense.errors import ConfigError
from freqdense.ops.frequency import gaussian_blur2d
from freqdense.spectral import spectral_gradient


def _setup(weight_scale: float, seed: int = 0, void: bool = False):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Identity(), nn.Conv2d(4, 3, 1))
    with torch.no_grad():
        model[1].weight.normal_(0.0, weight_scale)
        model[1].bias.zero_()
    x = torch.rand(1, 4, 32, 32) * 2 - 1
    labels = gaussian_blur2d(torch.randn(1, 3, 32, 32), 7, 2.0, padding_mode="circular").argmax(1)
    if void:
        labels[:, 5:12, 3:20] = 255
    return model.eval(), x, labels


def test_small_1x1_convolution_gives_a_delta():
    model, x, labels = _setup(0.01)
    grad = spectral_gradient(model, x, labels, layer=model[0])
    assert grad.frequencies == (0, 8, 16)  # (0, M/4, M/2) for a 32 x 32 feature
    assert grad.magnitude.shape == (3, 32, 32) and grad.energy_profile.shape == (3, 17)
    assert grad.concentration().min().item() > 0.99


def test_nonzero_frequencies_are_exact_deltas_without_void():
    # Eq. 11: the off-diagonal term carries sum_c b(-nu_i, c), which vanishes for nu_i != 0 when every pixel has a
    # label; a linear layer feeding the softmax then gives an exact delta whatever its weights.
    model, x, labels = _setup(5.0)
    conc = spectral_gradient(model, x, labels, layer=model[0], frequencies=(3, 8, 16)).concentration()
    assert conc.min().item() > 1 - 1e-9
    # The DC row and void pixels break this once the weights are not small (the paper's assumption).
    assert spectral_gradient(model, x, labels, layer=model[0], frequencies=(0,)).concentration().item() < 0.5
    model, x, labels = _setup(5.0, void=True)
    assert spectral_gradient(model, x, labels, layer=model[0], frequencies=(8,)).concentration().item() < 0.99


def _conv_setup(conv: nn.Conv2d, size: int = 32, seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Identity(), conv)
    with torch.no_grad():
        conv.weight.normal_(0.0, 1.0)
        conv.bias.zero_()
    x = torch.rand(1, 4, size, size) * 2 - 1
    labels = gaussian_blur2d(torch.randn(1, 3, size, size), 7, 2.0, padding_mode="circular").argmax(1)
    return model.eval(), x, labels


@pytest.mark.parametrize(
    "conv",
    [
        lambda: nn.Conv2d(4, 3, 1),
        lambda: nn.Conv2d(4, 3, 3, padding=1, padding_mode="circular"),
        lambda: nn.Conv2d(4, 3, 5, padding=4, dilation=2, padding_mode="circular"),
    ],
    ids=["1x1", "3x3-circular", "5x5-dilated-circular"],
)
def test_shift_invariant_convolutions_give_exact_deltas(conv):
    # dL(nu_i)/dY is the nu_i band of -B (no void, nu_i != 0), and the adjoint of a circular convolution is diagonal
    # in the DFT, so the gradient w.r.t. the conv's input stays on the shell nu_i whatever the weights.
    model, x, labels = _conv_setup(conv())
    conc = spectral_gradient(model, x, labels, layer=model[0], frequencies=(3, 8, 16)).concentration()
    assert conc.min().item() > 1 - 1e-9


@pytest.mark.parametrize(
    ("conv", "low", "high"),
    [
        (lambda: nn.Conv2d(4, 3, 3, padding=1), 0.93, 0.995),
        (lambda: nn.Conv2d(4, 3, 5, padding=4, dilation=2), 0.8, 0.97),
    ],
    ids=["3x3-zero-padding", "5x5-dilated-zero-padding"],
)
def test_zero_padding_is_not_an_exact_delta(conv, low, high):
    # Zero padding breaks shift invariance at the border, so energy leaks off the shell. Measured over seeds 0-4 on
    # 32 x 32 (docs/methods/spectral_analysis.md): on-shell energy 0.956-0.985 (3x3), 0.82-0.93 (5x5 dilation 2).
    model, x, labels = _conv_setup(conv())
    conc = spectral_gradient(model, x, labels, layer=model[0], frequencies=(3, 8, 16)).concentration()
    assert low < conc.min().item() and conc.max().item() < high


def test_dict_models_frozen_parameters_and_errors():
    class DictModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.feature = nn.Conv2d(3, 4, 3, padding=1)
            self.head = nn.Conv2d(4, 2, 1)

        def forward(self, image):
            return {"semantic": self.head(torch.relu(self.feature(image)))}

    model = DictModel().eval().requires_grad_(False)
    image = torch.rand(1, 3, 16, 16)
    labels = torch.randint(0, 2, (1, 16, 16))
    with torch.no_grad():  # spectral_gradient re-enables autograd itself
        grad = spectral_gradient(model, image, labels, layer=model.feature)
    assert torch.isfinite(grad.magnitude).all() and grad.magnitude.sum() > 0
    with pytest.raises(ConfigError, match="not called"):
        spectral_gradient(model, image, labels, layer=nn.Conv2d(1, 1, 1))
    with pytest.raises(ConfigError, match="frequencies"):
        spectral_gradient(model, image, labels, layer=model.feature, frequencies=(40,))
