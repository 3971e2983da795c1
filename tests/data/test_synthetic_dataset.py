"""Synthetic dataset: sample contract, modalities, determinism, splits, cache, on-disk format, registry, CLI."""

from __future__ import annotations

import hashlib
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from freqdense.data import DATASETS, create_dataset
from freqdense.data.sample import IGNORE_INDEX
from freqdense.data.synthetic import CLASSES, PALETTE, SyntheticConfig, SyntheticScenes, storage, synthesize
from freqdense.data.synthetic import dataset as dataset_module
from freqdense.data.validate import validate_sample
from freqdense.errors import ConfigError, DataError

SIZE = (24, 32)
ALL_KEYS = {
    "image", "semantic", "depth", "depth_valid", "intrinsics", "image_right", "pose_right", "baseline",
    "image_prev", "image_next", "pose_prev", "pose_next", "sensor_depth", "sensor_flow", "meta",
}  # fmt: skip


def _digest(sample: dict) -> str:
    h = hashlib.sha256()
    for key in sorted(k for k in sample if k != "meta"):
        h.update(key.encode())
        h.update(sample[key].numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def sample():
    return SyntheticScenes(split="train", size=SIZE, num_samples=2)[1]


def test_sample_contract(sample):
    assert set(sample) == ALL_KEYS
    H, W = SIZE
    expected = {
        "image": ((3, H, W), torch.float32), "semantic": ((H, W), torch.int64), "depth": ((1, H, W), torch.float32),
        "depth_valid": ((1, H, W), torch.bool), "intrinsics": ((3, 3), torch.float32),
        "image_right": ((3, H, W), torch.float32), "pose_right": ((4, 4), torch.float32),
        "baseline": ((), torch.float32),
        "image_prev": ((3, H, W), torch.float32), "image_next": ((3, H, W), torch.float32),
        "pose_prev": ((4, 4), torch.float32), "pose_next": ((4, 4), torch.float32),
        "sensor_depth": ((1, H, W), torch.float32), "sensor_flow": ((2, H, W), torch.float32),
    }  # fmt: skip
    for key, (shape, dtype) in expected.items():
        assert tuple(sample[key].shape) == shape and sample[key].dtype == dtype, key
    for key in ("image", "image_right", "image_prev", "image_next"):
        assert 0 <= sample[key].min() and sample[key].max() <= 1
        # 8-bit camera: values are multiples of 1/255.
        torch.testing.assert_close(sample[key] * 255, (sample[key] * 255).round(), atol=1e-4, rtol=0)
    assert torch.equal(sample["depth_valid"], sample["depth"] > 0)
    labels = sample["semantic"]
    assert (((labels >= 0) & (labels < len(CLASSES))) | (labels == IGNORE_INDEX)).all()
    K = sample["intrinsics"]
    assert K[0, 2] == pytest.approx((W - 1) / 2) and K[1, 2] == pytest.approx((H - 1) / 2) and K[0, 0] == K[1, 1]
    assert sample["meta"] == {"id": "synthetic_train_000001", "index": 1, "split": "train"}
    validate_sample(sample, num_classes=len(CLASSES), source="synthetic")


def test_class_metadata():
    ds = SyntheticScenes(size=SIZE, num_samples=1)
    assert len(ds.classes) >= 8 and ds.num_classes == len(ds.classes) == len(ds.palette) == len(PALETTE)
    assert ds.ignore_index == 255
    assert len(set(ds.palette)) == len(ds.palette) and all(len(c) == 3 for c in ds.palette)


def test_every_class_and_the_ignore_label_occur():
    ds = SyntheticScenes(split="train", size=(48, 64), num_samples=40, modalities=("semantic",))
    counts = torch.zeros(256, dtype=torch.long)
    for i in range(len(ds)):
        counts += torch.bincount(ds[i]["semantic"].reshape(-1), minlength=256)
    assert (counts[: len(CLASSES)] > 0).all(), dict(zip(CLASSES, counts[: len(CLASSES)].tolist()))
    ignore = counts[IGNORE_INDEX] / counts.sum()
    assert 0.002 < ignore < 0.1  # exercised, but a small fraction


def test_modalities_restrict_keys_and_rendering(monkeypatch):
    rendered = []
    original = dataset_module.render_group
    monkeypatch.setattr(
        dataset_module, "render_group", lambda group, *a, **k: rendered.append(group) or original(group, *a, **k)
    )
    s = SyntheticScenes(size=SIZE, num_samples=1, modalities=("image", "semantic", "depth"))[0]
    assert set(s) == {"image", "semantic", "depth", "depth_valid", "intrinsics", "meta"}
    assert rendered == ["target"]
    rendered.clear()
    s = SyntheticScenes(size=SIZE, num_samples=1, modalities=("image_right", "sensor"))[0]
    assert set(s) == {"image_right", "pose_right", "baseline", "sensor_depth", "sensor_flow", "intrinsics", "meta"}
    assert rendered == ["stereo", "sensor"]
    with pytest.raises(ConfigError, match="modality"):
        SyntheticScenes(size=SIZE, modalities=("lidar",))


def test_modality_subsets_are_identical_to_the_full_render():
    full = SyntheticScenes(split="val", size=SIZE, num_samples=1)[0]
    part = SyntheticScenes(split="val", size=SIZE, num_samples=1, modalities=("sensor", "temporal"))[0]
    for key in ("sensor_depth", "sensor_flow", "image_prev", "pose_next"):
        assert torch.equal(full[key], part[key])


def test_determinism_in_process_and_across_processes():
    ds = SyntheticScenes(split="test", size=SIZE, num_samples=3)
    first = _digest(ds[2])
    assert _digest(SyntheticScenes(split="test", size=SIZE, num_samples=3)[2]) == first
    code = (
        "import sys, random; random.seed(123); import numpy as np; np.random.seed(7);"
        "import torch; torch.manual_seed(5);"
        "sys.path.insert(0, sys.argv[1]); from test_synthetic_dataset import _digest;"
        "from freqdense.data.synthetic import SyntheticScenes;"
        f"print(_digest(SyntheticScenes(split='test', size={SIZE}, num_samples=3)[2]))"
    )
    env = dict(os.environ, PYTHONHASHSEED="99")
    out = subprocess.run(
        [sys.executable, "-c", code, os.path.dirname(__file__)], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == first


def test_splits_seeds_and_indices_give_different_scenes():
    digests = {
        _digest(SyntheticScenes(split=split, size=SIZE, num_samples=2, seed=seed, modalities=("depth",))[index])
        for split in ("train", "val", "test")
        for seed in (0, 1)
        for index in (0, 1)
    }
    assert len(digests) == 12


def test_default_split_sizes_and_index_errors():
    assert [len(SyntheticScenes(split=s)) for s in ("train", "val", "test")] == [2000, 200, 200]
    ds = SyntheticScenes(size=SIZE, num_samples=2, modalities=("depth",))
    assert torch.equal(ds[-1]["depth"], ds[1]["depth"])
    with pytest.raises(IndexError):
        ds[2]
    with pytest.raises(ConfigError, match="split"):
        SyntheticScenes(split="training")


def test_cache_hits_are_bit_identical_and_skip_rendering(tmp_path, monkeypatch):
    ds = SyntheticScenes(split="val", size=SIZE, num_samples=2, cache_dir=tmp_path)
    fresh = ds[1]
    files = sorted(p.name for p in tmp_path.rglob("*.npz"))
    assert files == ["000001.sensor.npz", "000001.stereo.npz", "000001.target.npz", "000001.temporal.npz"]
    assert (next(tmp_path.iterdir()) / "config.json").exists()
    monkeypatch.setattr(dataset_module, "render_group", lambda *a, **k: pytest.fail("rendered despite the cache"))
    cached = SyntheticScenes(split="val", size=SIZE, num_samples=2, cache_dir=tmp_path)[1]
    assert _digest(cached) == _digest(fresh)


def test_a_broken_cache_file_is_rendered_again(tmp_path):
    ds = SyntheticScenes(split="val", size=SIZE, num_samples=1, cache_dir=tmp_path, modalities=("depth",))
    fresh = ds[0]
    (path,) = tmp_path.rglob("*.target.npz")
    path.write_bytes(b"not a zip")
    assert torch.equal(ds[0]["depth"], fresh["depth"])
    assert storage.read_record(path)["depth"].shape == SIZE


def test_cache_key_changes_with_every_setting():
    base = storage.cache_key(SyntheticConfig(), SIZE, 0)
    assert storage.cache_key(SyntheticConfig(), SIZE, 0) == base
    assert storage.cache_key(SyntheticConfig(max_poles=1), SIZE, 0) != base
    assert storage.cache_key(SyntheticConfig(), (24, 33), 0) != base
    assert storage.cache_key(SyntheticConfig(), SIZE, 1) != base


def test_synth_directory_round_trip(tmp_path):
    config = SyntheticConfig(max_objects=6)
    synthesize(tmp_path, num_samples=2, split="val", size=SIZE, seed=3, config=config)
    assert sorted(p.name for p in (tmp_path / "val").iterdir()) == ["000000.npz", "000001.npz", "meta.json"]
    on_disk = SyntheticScenes(split="val", root=tmp_path)
    rendered = SyntheticScenes(split="val", size=SIZE, seed=3, config=config, num_samples=2)
    assert len(on_disk) == 2 and on_disk.config == config and on_disk.size == SIZE
    assert _digest(on_disk[1]) == _digest(rendered[1])
    with np.load(tmp_path / "val" / "000001.npz") as data:
        assert set(data.files) == set(storage.RECORD_KEYS)
        assert data["image"].dtype == np.uint8 and data["image"].shape == (*SIZE, 3)
    # Through the registry, with the directory's own settings.
    via_registry = create_dataset("synthetic", split="val", root=str(tmp_path), modalities=("depth",))
    assert torch.equal(via_registry[0]["depth"], rendered[0]["depth"])
    with pytest.raises(ConfigError, match="max_poles"):
        create_dataset("synthetic", split="val", root=str(tmp_path), max_poles=1)
    with pytest.raises(DataError, match="train"):
        SyntheticScenes(split="train", root=tmp_path)


def test_synth_resumes_and_refuses_other_settings(tmp_path, monkeypatch):
    synthesize(tmp_path, num_samples=1, split="test", size=SIZE)
    first = (tmp_path / "test" / "000000.npz").stat().st_mtime_ns
    synthesize(tmp_path, num_samples=2, split="test", size=SIZE)
    assert (tmp_path / "test" / "000000.npz").stat().st_mtime_ns == first
    assert (tmp_path / "test" / "000001.npz").exists()
    with pytest.raises(DataError, match="other settings"):
        synthesize(tmp_path, num_samples=2, split="test", size=(32, 32))


def test_an_interrupted_write_leaves_no_partial_record(tmp_path, monkeypatch):
    def explode(handle, **arrays):
        handle.write(b"PK partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(storage.np, "savez", explode)
    with pytest.raises(KeyboardInterrupt):
        synthesize(tmp_path, num_samples=1, split="val", size=SIZE)
    assert not list((tmp_path / "val").glob("*.npz")) and not list((tmp_path / "val").glob(".*"))


def test_registry_factory_exposes_every_knob():
    params = inspect.signature(DATASETS.get("synthetic")).parameters
    assert set(SyntheticConfig.knob_names()) <= set(params)
    assert {"split", "transform", "size", "num_samples", "seed", "root", "cache_dir", "modalities"} <= set(params)
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values())
    defaults = SyntheticConfig().to_dict()
    for name in SyntheticConfig.knob_names():
        if name != "texture_mix":
            assert params[name].default == defaults[name], name
    with pytest.raises(ConfigError, match="max_pole"):
        create_dataset("synthetic", max_pole=2)


def test_factory_transform_is_applied_last(tmp_path):
    seen = []

    def transform(s):
        seen.append(set(s))
        return {**s, "flag": True}

    kwargs = {"split": "val", "size": SIZE, "num_samples": 1, "cache_dir": str(tmp_path), "modalities": ("image",)}
    ds = create_dataset("synthetic", transform=transform, **kwargs)
    assert ds[0]["flag"] and seen == [{"image", "intrinsics", "meta"}]


def test_config_validation_names_the_knob():
    with pytest.raises(ConfigError, match="supersample"):
        SyntheticConfig(supersample=2)
    with pytest.raises(ConfigError, match="max_objects"):
        SyntheticConfig(min_objects=5, max_objects=3)
    with pytest.raises(ConfigError, match="texture_mix"):
        SyntheticConfig(texture_mix={"plaid": 1.0})
    with pytest.raises(ConfigError, match="dark_fraction"):
        SyntheticConfig(dark_fraction=1.5)
    with pytest.raises(ConfigError, match="valid knobs"):
        SyntheticConfig.from_dict({"shadow": True})
    assert SyntheticConfig.from_dict(SyntheticConfig(max_poles=1).to_dict()) == SyntheticConfig(max_poles=1)


def test_cli_synth_and_panel(tmp_path):
    from freqdense.cli.main import main

    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--num", "2", "--split", "val", "--size", "16", "24",
                 "--max-objects", "5", "--no-shadows", "--texture-mix", "flat=1,fine=2"]) == 0  # fmt: skip
    ds = SyntheticScenes(split="val", root=out)
    assert len(ds) == 2 and ds.size == (16, 24) and not ds.config.shadows and ds.config.max_objects == 5
    assert ds.config.texture_mix["fine"] == 2.0 and ds.config.texture_mix["noise"] == 0.0
    panel = tmp_path / "panel.png"
    assert main(["data", "panel", "--out", str(panel), "--num", "1", "--size", "16", "24"]) == 0
    from PIL import Image

    with Image.open(panel) as img:
        assert img.size[0] > img.size[1] > 50
