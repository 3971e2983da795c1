"""The FAFE consistency loss (FAFE Eq. 4) as a term of the multitask Task (config ``task.consistency``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from freqdense.config import build_config
from freqdense.config.schema import TaskConfig
from freqdense.errors import ConfigError
from freqdense.losses import LocalConsistencyLoss
from freqdense.tasks import DepthEstimation, SemanticSegmentation, Task, build_task

K, H, W = 4, 8, 10


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    semantic = torch.randint(0, K, (2, H, W), generator=g)
    semantic[0, 0, :3] = 255
    depth = torch.rand(2, 1, H, W, generator=g) * 3 + 0.5
    depth[1, 0, 2, 2] = 0.0
    return {
        "image": torch.rand(2, 3, H, W, generator=g),
        "semantic": semantic,
        "depth": depth,
        "depth_valid": depth > 0,
    }


def _outputs(seed: int = 1, size: tuple[int, int] = (H // 2, W // 2)) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "semantic": torch.randn(2, K, *size, generator=g, requires_grad=True),
        "depth": (torch.rand(2, 1, *size, generator=g) * 3).requires_grad_(),
    }


def _task(consistency=None, **kw) -> Task:
    return build_task(TaskConfig(name="multitask", consistency=consistency, **kw), num_classes=K)


def _reference_parts(outputs, batch) -> torch.Tensor:
    """CE (ignore 255) + masked L1 on the bilinearly upsampled predictions, written out independently."""
    seg = F.interpolate(outputs["semantic"], size=(H, W), mode="bilinear", align_corners=False)
    depth = F.interpolate(outputs["depth"], size=(H, W), mode="bilinear", align_corners=False)
    ce = F.cross_entropy(seg, batch["semantic"], ignore_index=255)
    valid = batch["depth_valid"]
    return ce + (depth[valid] - batch["depth"][valid]).abs().mean()


def test_term_equals_the_loss_module_on_the_resized_predictions():
    batch, outputs = _batch(), _outputs()
    terms = _task({"weight": 0.3, "threshold": 2.0, "seg_mode": "max_prob"}).losses(outputs, batch)
    seg = F.interpolate(outputs["semantic"], size=(H, W), mode="bilinear", align_corners=False)
    depth = F.interpolate(outputs["depth"], size=(H, W), mode="bilinear", align_corners=False)
    expected = LocalConsistencyLoss(weight=0.3, threshold=2.0, seg_mode="max_prob")(seg, depth)
    assert set(terms) == {"semantic", "depth", "consistency", "total"}
    assert float(terms["consistency"]) > 0
    torch.testing.assert_close(0.3 * terms["consistency"], expected.detach())
    torch.testing.assert_close(terms["total"], _reference_parts(outputs, batch) + expected)


def test_term_matches_a_hand_computed_case():
    # uniform class scores -> C_s = 0; one depth bump a at the centre of a 3x3 map -> C_d by hand (the 3x3 mean
    # averages the in-image neighbours: 9 at the centre, 6 on edges, 4 at corners); all values <= threshold 1
    a = 0.9
    depth = torch.zeros(1, 1, 3, 3)
    depth[0, 0, 1, 1] = a
    outputs = {"semantic": torch.zeros(1, 3, 3, 3), "depth": depth}
    batch = {"semantic": torch.zeros(1, 3, 3, dtype=torch.long), "depth": torch.ones(1, 1, 3, 3)}
    terms = build_task(TaskConfig(name="multitask", consistency={}), num_classes=3).losses(outputs, batch)
    hand = ((8 * a / 9) ** 2 + 4 * (a / 4) ** 2 + 4 * (a / 6) ** 2) / 9
    assert float(terms["consistency"]) == pytest.approx(hand, rel=1e-6)


def test_weight_is_applied_and_defaults_to_lambda3():
    batch, outputs = _batch(), _outputs()
    plain = _task(None).losses(outputs, batch)["total"]
    for options, weight in (({}, 0.1), ({"weight": 2.5}, 2.5), ({"weight": 0}, 0.0)):
        terms = _task(options).losses(outputs, batch)
        torch.testing.assert_close(terms["total"], plain + weight * terms["consistency"])


def test_loss_weights_of_the_parts_do_not_scale_the_term():
    batch, outputs = _batch(), _outputs()
    terms = _task({"weight": 0.5}, loss_weights={"semantic": 2.0, "depth": 3.0}).losses(outputs, batch)
    expected = 2.0 * terms["semantic"] + 3.0 * terms["depth"] + 0.5 * terms["consistency"]
    torch.testing.assert_close(terms["total"], expected)


def test_absent_when_null():
    batch, outputs = _batch(), _outputs()
    terms = _task(None).losses(outputs, batch)
    assert "consistency" not in terms
    torch.testing.assert_close(terms["total"], _reference_parts(outputs, batch))


def _blocky_outputs() -> dict[str, torch.Tensor]:
    """Segmentation logits predicting two halves (left class 0, right class 2) plus noise; random depth."""
    outputs = _outputs(size=(H, W))
    with torch.no_grad():
        outputs["semantic"][:, 0, :, : W // 2] += 10.0
        outputs["semantic"][:, 2, :, W // 2 :] += 10.0
    return outputs


def test_gradient_reaches_the_predictions_through_the_term():
    outputs = _blocky_outputs()
    _task({"weight": 1.0})._consistency_loss(outputs, _batch()).backward()  # the unweighted term itself
    # default seg_mode (scaled one-hot of the argmax): L_c shapes depth only
    assert outputs["semantic"].grad is None or float(outputs["semantic"].grad.abs().sum()) == 0
    assert outputs["depth"].grad.abs().sum() > 0
    outputs = _blocky_outputs()
    _task({"weight": 1.0, "seg_mode": "probs"})._consistency_loss(outputs, _batch()).backward()
    assert outputs["semantic"].grad.abs().sum() > 0
    assert outputs["depth"].grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["segmentation", "depth", "self_supervised_depth"])
def test_error_for_a_non_multitask_task(name):
    with pytest.raises(ConfigError, match="task.consistency.*multitask"):
        build_task(TaskConfig(name=name, consistency={"weight": 0.1}), num_classes=K)


def test_error_for_a_task_object_without_both_parts():
    with pytest.raises(ConfigError, match="semantic and depth"):
        Task({"semantic": SemanticSegmentation(K)}, consistency=LocalConsistencyLoss())
    Task({"semantic": SemanticSegmentation(K), "depth": DepthEstimation()}, consistency=LocalConsistencyLoss())


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"wieght": 0.1}, "unknown key 'wieght'.*Did you mean 'weight'"),
        ({"seg_mode": "softmax"}, "seg_mode must be one of"),
        ({"weight": -0.1}, "weight must be >= 0"),
        ({"weight": True}, "weight must be a finite number"),
        ({"threshold": 0}, "threshold must be > 0"),
        ({"threshold": float("nan")}, "threshold must be a finite number"),
        ([0.1], "must be a mapping"),
    ],
)
def test_invalid_options_are_clear_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        _task(options)


def test_loss_weights_consistency_points_to_the_consistency_section():
    with pytest.raises(ConfigError, match="task.consistency: {weight"):
        _task({}, loss_weights={"consistency": 0.1})


def test_yaml_section_reaches_the_task():
    cfg = build_config(
        {"model": {"name": "mti_net"}, "task": {"name": "multitask", "consistency": {"weight": 0.2}}}, check_model=False
    )
    assert cfg.task.consistency == {"weight": 0.2}
    task = build_task(cfg.task, num_classes=K)
    assert task.consistency.weight == 0.2 and task.consistency.threshold == 1.0
    assert task.consistency.seg_mode == "scaled_onehot"
    assert (
        build_task(build_config({"model": {"name": "mti_net"}}, check_model=False).task, num_classes=K).consistency
        is None
    )
