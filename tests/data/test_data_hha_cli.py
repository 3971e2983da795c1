"""`freqdense data hha` on a tiny NYUD_MT tree: a config with ``hha: load`` works, the cache records the sample ids,
and ``hha="load"`` from the cache gives the same tensors as ``hha="compute"``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_nyud_mt import TRAIN, write_nyud_mt  # the loader tests' fixture writer (tests/data is on sys.path)

from freqdense.cli.main import main
from freqdense.data.nyud_mt import NYUDMultiTask
from freqdense.data.transforms import compute_hha
from freqdense.errors import DataError


def _config(tmp_path: Path, root: Path, cache: Path) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {name: multitask_baseline, num_classes: 40}\n"
        f"data: {{dataset: nyud_mt, args: {{root: '{root}', hha: load, hha_root: '{cache}'}}}}\n"
    )
    return cfg


def test_cache_then_load_equals_compute(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root, cache = tmp_path / "NYUD_MT", tmp_path / "hha_cache"
    write_nyud_mt(root)
    cfg = _config(tmp_path, root, cache)
    # The config asks for hha: load, whose cache does not exist yet: the command must read the dataset without it.
    assert main(["data", "hha", str(cfg), "--out", str(cache), "--num", "1"]) == 0
    assert "wrote 1 HHA images (0 cached)" in capsys.readouterr().out
    assert json.loads((cache / "train" / "meta.json").read_text())["ids"] == [TRAIN[0]]
    assert main(["data", "hha", str(cfg), "--out", str(cache)]) == 0  # resumes
    assert "wrote 1 HHA images (1 cached)" in capsys.readouterr().out
    meta = json.loads((cache / "train" / "meta.json").read_text())
    assert meta["ids"] == list(TRAIN) and meta["num"] == 2 and (meta["dataset"], meta["split"]) == ("nyud_mt", "train")

    loaded = NYUDMultiTask(root=root, split="train", hha="load", hha_root=cache)
    computed = NYUDMultiTask(root=root, split="train", hha="compute")
    plain = NYUDMultiTask(root=root, split="train")
    assert not torch.equal(computed[0]["hha"], computed[1]["hha"])  # distinct frames: a swapped order would show
    for i in range(2):
        a, b = loaded[i]["hha"], computed[i]["hha"]
        # Both paths round to the same 8-bit level (compute quantises like the cache, PNG is lossless), so they agree
        # up to float32 rounding of level/255 (<= 1 ulp ~ 6e-8), not just up to the 1/255 PNG step.
        assert a.shape == b.shape == (3, 17, 25) and a.dtype == b.dtype == torch.float32
        assert torch.equal((a * 255).round(), (b * 255).round())
        assert float((a - b).abs().max()) <= 1e-6
        # Against the unquantised encoding the only difference is the PNG's 8-bit rounding: <= 0.5/255.
        raw = compute_hha(plain[i], depth_key="depth", quantize=False)["hha"]
        assert float((a - raw).abs().max()) <= 0.5 / 255 + 1e-6


def test_changed_split_order_is_refused_by_the_command_and_the_loader(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root, cache = tmp_path / "NYUD_MT", tmp_path / "hha_cache"
    write_nyud_mt(root)
    cfg = _config(tmp_path, root, cache)
    assert main(["data", "hha", str(cfg), "--out", str(cache)]) == 0
    (root / "gt_sets" / "train.txt").write_text("\n".join(reversed(TRAIN)) + "\n")
    with pytest.raises(DataError, match="another order"):  # data/_hha_files.py reads meta.json "ids"
        NYUDMultiTask(root=root, split="train", hha="load", hha_root=cache)
    assert main(["data", "hha", str(cfg), "--out", str(cache)]) == 1  # resuming would mix two orders: refused
    assert f"{TRAIN[0]!r} at index 0" in caplog.text and f"now has {TRAIN[1]!r}" in caplog.text


def test_a_cache_of_another_depth_key_is_not_mixed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root, cache = tmp_path / "NYUD_MT", tmp_path / "hha_cache"
    write_nyud_mt(root)
    (cache / "train").mkdir(parents=True)
    (cache / "train" / "meta.json").write_text(json.dumps({"dataset": "nyud_mt", "split": "train", "depth_key": "x"}))
    assert main(["data", "hha", str(_config(tmp_path, root, cache)), "--out", str(cache)]) == 1
    assert "depth_key='x', not 'depth'" in caplog.text
    assert not (cache / "train" / "000000.png").exists()
