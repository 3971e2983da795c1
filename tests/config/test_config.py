"""Strict experiment configs: includes, overrides, unknown keys, type checks, model kwargs."""

from __future__ import annotations

import pytest
import yaml

from freqdense.config import config_to_dict, list_shipped_configs, load_config, parse_overrides
from freqdense.config.load import build_config, load_raw_config
from freqdense.errors import ConfigError, UnknownNameError

BASE = {
    "model": {"name": "multitask_baseline", "backbone": "resnet18", "num_classes": 9},
    "optim": {"name": "sgd", "lr": 0.01},
    "data": {"dataset": "synthetic", "args": {"size": [32, 48]}, "batch_size": 4},
}


def write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_parse_overrides_nests_and_parses_yaml_scalars():
    out = parse_overrides(["optim.lr=0.02", "data.args.size=[64, 96]", "train.amp=bf16", "eval.max_batches=null"])
    assert out == {
        "optim": {"lr": 0.02},
        "data": {"args": {"size": [64, 96]}},
        "train": {"amp": "bf16"},
        "eval": {"max_batches": None},
    }


def test_override_without_equals_is_rejected():
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_overrides(["optim.lr"])


def test_base_include_merges_maps_and_replaces_lists(tmp_path):
    write(tmp_path / "base.yaml", {**BASE, "data": {**BASE["data"], "train_transforms": {"crop": [32, 48]}}})
    write(tmp_path / "child.yaml", {"base": "base.yaml", "optim": {"lr": 0.05}, "data": {"args": {"size": [16, 24]}}})
    cfg = load_config(tmp_path / "child.yaml")
    assert cfg.optim.name == "sgd" and cfg.optim.lr == 0.05  # merged, child wins
    assert cfg.data.args == {"size": [16, 24]}  # list replaced, not merged
    assert cfg.data.train_transforms == {"crop": [32, 48]}  # untouched sibling survives
    assert cfg.data.batch_size == 4


def test_only_one_include_level(tmp_path):
    write(tmp_path / "a.yaml", BASE)
    write(tmp_path / "b.yaml", {"base": "a.yaml"})
    write(tmp_path / "c.yaml", {"base": "b.yaml"})
    with pytest.raises(ConfigError, match="at most one include"):
        load_config(tmp_path / "c.yaml")


def test_unknown_key_suggests_close_match(tmp_path):
    write(tmp_path / "bad.yaml", {**BASE, "optim": {"name": "sgd", "learning_rate": 0.1, "momentun": 0.9}})
    with pytest.raises(ConfigError, match=r"unknown key 'learning_rate'"):
        load_config(tmp_path / "bad.yaml")
    write(tmp_path / "bad2.yaml", {**BASE, "optim": {"momentun": 0.9}})
    with pytest.raises(ConfigError, match=r"Did you mean 'momentum'"):
        load_config(tmp_path / "bad2.yaml")
    write(tmp_path / "bad3.yaml", {**BASE, "optimizer": {}})
    with pytest.raises(ConfigError, match=r"Did you mean 'optim'"):
        load_config(tmp_path / "bad3.yaml")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=fast", "expected a number"),
        ("data.batch_size=2.5", "expected an integer"),
        ("train.amp=fp17", "not one of"),
        ("optim.betas=[0.9]", "expected 2 values"),
        ("train.deterministic=3", "expected true/false"),
    ],
)
def test_type_errors_name_the_key(tmp_path, override, message):
    write(tmp_path / "c.yaml", BASE)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(tmp_path / "c.yaml", [override])
    assert override.split("=")[0].split(".")[-1] in str(err.value)


def test_model_kwargs_checked_against_the_factory_before_building(tmp_path):
    write(tmp_path / "c.yaml", BASE)
    with pytest.raises(ConfigError, match=r"unknown argument 'num_class'.*Did you mean 'num_classes'"):
        load_config(tmp_path / "c.yaml", ["model.num_class=3"])
    with pytest.raises(UnknownNameError, match="multitask_baseline"):
        load_config(tmp_path / "c.yaml", ["model.name=multitask_baselin"])


def test_roundtrip_through_dict(tmp_path):
    write(tmp_path / "c.yaml", BASE)
    cfg = load_config(tmp_path / "c.yaml", ["optim.betas=[0.8, 0.9]"])
    again = build_config(config_to_dict(cfg))
    assert again == cfg
    assert config_to_dict(cfg)["model"] == BASE["model"]


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="neither a file nor a shipped config"):
        load_raw_config(tmp_path / "nope.yaml")


def test_every_shipped_config_loads_and_builds():
    from freqdense.data.transforms import build_transforms
    from freqdense.models import create_model
    from freqdense.tasks import build_task

    names = list_shipped_configs()
    assert len(names) >= 4
    for name in names:
        cfg = load_config(name)
        model = create_model(cfg.model.name, **cfg.model.kwargs)
        assert sum(p.numel() for p in model.parameters()) > 0, name
        task = build_task(cfg.task, num_classes=cfg.model.kwargs.get("num_classes", 10))
        assert set(task.keys) <= set(getattr(model, "tasks", task.keys)), name
        build_transforms(cfg.data.train_transforms, train=True)
        build_transforms(cfg.data.val_transforms, train=False)


def test_model_section_replaces_when_the_child_names_another_model(tmp_path):
    write(tmp_path / "base.yaml", BASE)
    write(tmp_path / "child.yaml", {"base": "base.yaml", "model": {"name": "depth_baseline", "backbone": "resnet18"}})
    cfg = load_config(tmp_path / "child.yaml")
    assert cfg.model.kwargs == {"backbone": "resnet18"}  # num_classes of the base did not leak in
    write(tmp_path / "same.yaml", {"base": "base.yaml", "model": {"num_classes": 4}})
    assert load_config(tmp_path / "same.yaml").model.kwargs == {"backbone": "resnet18", "num_classes": 4}


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-3", 1e-3), ("1E5", 1e5), ("-2e-4", -2e-4), (".5", 0.5), ("-.5", -0.5), ("+1.0e3", 1e3), ("1.0e-3", 1e-3)],
)
def test_yaml12_floats_are_floats_in_overrides(text, value):
    parsed = parse_overrides([f"optim.lr={text}"])["optim"]["lr"]
    assert type(parsed) is float and parsed == value


def test_exponent_lr_on_the_command_line_and_in_a_file(tmp_path):
    assert load_config("synthetic/demo_multitask", ["optim.lr=1e-3"]).optim.lr == 1e-3
    path = tmp_path / "c.yaml"
    path.write_text(
        "model: {name: multitask_baseline, backbone: resnet18, num_classes: 9}\n"
        "optim:\n  name: adamw\n  lr: 1e-3\n  weight_decay: 5E-5\n"
        "data: {dataset: synthetic}\n"
    )
    cfg = load_config(path)
    assert cfg.optim.lr == 1e-3 and cfg.optim.weight_decay == 5e-5


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-3abc", "1e-3abc"),
        ("e5", "e5"),
        ("1.2.3", "1.2.3"),
        ("1e", "1e"),
        ("1e+", "1e+"),
        (".", "."),
        ("1.5e3.2", "1.5e3.2"),
        ("v1e3", "v1e3"),
        ("3", 3),
        ("-7", -7),
        ("+12", 12),
        ("0", 0),
        ("true", True),
        ("null", None),
    ],
)
def test_yaml12_float_resolver_leaves_strings_ints_and_bools_alone(text, value):
    parsed = parse_overrides([f"a.b={text}"])["a"]["b"]
    assert parsed == value and type(parsed) is type(value)


def test_non_number_lr_error_gives_no_obsolete_yaml_advice():
    with pytest.raises(ConfigError, match=r"optim\.lr: expected a number") as err:
        load_config("synthetic/demo_multitask", ["optim.lr=1e-3x"])
    assert "1.0e-3" not in str(err.value) and "\n" not in str(err.value)
