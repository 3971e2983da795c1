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
