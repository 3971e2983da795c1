"""Render-cache and ``data synth`` records: every corruption kind is detected on read, never used.

A bad cache record is re-rendered (one warning naming the file) and overwritten with a valid one, so the sample
equals a fresh render bit for bit; a bad record of a ``data synth`` directory (user data, not ours to replace) is a
DataError naming the file and the array.
"""

from __future__ import annotations

import io
import logging
import zipfile

import numpy as np
import pytest

from freqdense.data import create_dataset
from freqdense.data.synthetic.config import SyntheticConfig
from freqdense.data.synthetic.render import render_group
from freqdense.data.synthetic.storage import CACHE_RECORD_VERSION, read_record, synthesize
from freqdense.errors import DataError

SIZE = (24, 32)


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _with(record: dict, **changes) -> bytes:
    arrays = {**record, **changes}
    return _npz_bytes(**{k: v for k, v in arrays.items() if v is not None})


# Each corruption maps the valid file bytes and its arrays (target group: image, semantic, depth, cache_version) to
# the bytes written over the record.
CORRUPTIONS = {
    "truncated": lambda raw, rec: raw[: len(raw) // 2],
    "zero_length": lambda raw, rec: b"",
    "wrong_magic": lambda raw, rec: b"GIF89a" + raw[6:],
    "not_npz_single_npy": lambda raw, rec: _single_npy(rec["depth"]),
    "missing_key": lambda raw, rec: _with(rec, depth=None),
    "wrong_size": lambda raw, rec: _npz_bytes(**_render((16, 24)), cache_version=np.array(CACHE_RECORD_VERSION)),
    "wrong_dtype": lambda raw, rec: _with(rec, depth=rec["depth"].astype(np.float64)),
    "wrong_channels": lambda raw, rec: _with(rec, image=np.zeros((*SIZE, 4), np.uint8)),
    "nan_depth": lambda raw, rec: _with(rec, depth=_set(rec["depth"], np.nan)),
    "negative_depth": lambda raw, rec: _with(rec, depth=_set(rec["depth"], -1.0)),
    "labels_out_of_range": lambda raw, rec: _with(rec, semantic=_set(rec["semantic"], 200)),
    "version_mismatch": lambda raw, rec: _with(rec, cache_version=np.array(CACHE_RECORD_VERSION + 7)),
    "old_record_without_version": lambda raw, rec: _with(rec, cache_version=None),
    "crc_flip": lambda raw, rec: _flip_payload(raw),
}


def _render(size):
    return render_group("target", SyntheticConfig(), size, 0, "val", 0)


def _set(array: np.ndarray, value) -> np.ndarray:
    out = array.copy()
    out[3:5, 4:6] = value
    return out


def _single_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _flip_payload(raw: bytes) -> bytes:
    """Flip one byte inside the stored 'depth' member (zip CRC then fails on read)."""
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        info = archive.getinfo("depth.npy")
    data = bytearray(raw)
    position = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    data[position] ^= 0xFF
    return bytes(data)


@pytest.fixture
def cached(tmp_path):
    """A cached val sample 0 at SIZE: (dataset factory, target record path, the valid arrays)."""

    def make():
        return create_dataset("synthetic", split="val", num_samples=1, size=SIZE, cache_dir=tmp_path / "cache")

    make().record(0)
    (path,) = (tmp_path / "cache").glob("*/val/000000.target.npz")
    return make, path


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_a_corrupt_cache_record_is_re_rendered_never_used(kind, cached, caplog):
    make, path = cached
    with np.load(path) as data:
        record = {k: data[k] for k in data.files}
    path.write_bytes(CORRUPTIONS[kind](path.read_bytes(), record))

    with caplog.at_level(logging.WARNING):
        got = make().record(0)

    fresh = _render(SIZE)
    for key, value in fresh.items():
        assert got[key].dtype == value.dtype and np.array_equal(got[key], value), key
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(path) in w and "re-render" in w for w in warnings), warnings
    # the bad file was replaced by a valid one: the next read uses it without a warning
    valid = read_record(path, tuple(fresh), size=SIZE, version=CACHE_RECORD_VERSION)
    assert all(np.array_equal(valid[k], fresh[k]) for k in fresh)


@pytest.mark.parametrize(
    "kind", ["wrong_size", "nan_depth", "labels_out_of_range", "missing_key", "truncated", "wrong_dtype"]
)
def test_a_corrupt_data_synth_record_is_a_data_error_naming_the_file(kind, tmp_path):
    split_dir = synthesize(tmp_path / "synth", num_samples=1, split="val", size=SIZE)
    path = split_dir / "000000.npz"
    with np.load(path) as data:
        record = {k: data[k] for k in data.files}
    path.write_bytes(CORRUPTIONS[kind](path.read_bytes(), {**record, "cache_version": None}))
    dataset = create_dataset("synthetic", split="val", root=tmp_path / "synth")
    with pytest.raises(DataError) as info:
        dataset.record(0)
    assert str(path) in str(info.value)


def test_data_synth_re_renders_a_wrong_size_record_on_resume(tmp_path):
    split_dir = synthesize(tmp_path / "synth", num_samples=1, split="val", size=SIZE)
    path = split_dir / "000000.npz"
    path.write_bytes(_npz_bytes(**_render((16, 24))))
    synthesize(tmp_path / "synth", num_samples=1, split="val", size=SIZE)
    assert read_record(path, size=SIZE)["image"].shape == (*SIZE, 3)
