"""The demo's two arms are the shipped FreqFusion comparison pair and differ only in the decoder's upsampling."""

from __future__ import annotations

from freqdense.config import config_to_dict, load_config
from freqdense.engine.demo import DEMO_ARMS


def _raw(name: str) -> dict:
    return config_to_dict(load_config(name))


def test_demo_arms_differ_only_in_the_decoder_upsampling():
    method, control = (_raw(arm.config) for arm in DEMO_ARMS)
    assert [arm.role for arm in DEMO_ARMS] == ["method", "control"]
    assert {k: v for k, v in method.items() if k != "model"} == {k: v for k, v in control.items() if k != "model"}
    keys = method["model"].keys() | control["model"].keys()
    differing = {k for k in keys if method["model"].get(k) != control["model"].get(k)}
    assert differing == {"fusion", "compress_ratio", "fusion_kwargs"}
    assert (method["model"]["fusion"], control["model"]["fusion"]) == ("freqfusion", "bilinear")


def test_demo_arms_are_the_documented_pair_on_a_shorter_schedule():
    # demo_freqfusion repeats fpn_freqfusion_r18's model section (one include level): keep them equal.
    for demo, shipped in (("demo_freqfusion", "fpn_freqfusion_r18"), ("demo_bilinear", "fpn_bilinear_r18")):
        a, b = _raw(f"synthetic/{demo}"), _raw(f"synthetic/{shipped}")
        for section in ("model", "data", "task", "optim"):
            assert a[section] == b[section], (demo, section)
        assert a["schedule"]["total_steps"] < b["schedule"]["total_steps"]
