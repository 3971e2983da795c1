"""``write_prediction_panels`` (demo and runs): a labelled PNG with the dataset's class names and palette."""

from __future__ import annotations

from PIL import Image

from freqdense.data.synthetic import synthetic
from freqdense.engine.demo import ConstantPredictor, write_prediction_panels


def test_prediction_panels_of_a_dataset_use_its_classes_and_palette(tmp_path, monkeypatch):
    import freqdense.viz.panels as panels

    seen = {}
    original = panels.save_prediction_panels

    def spy(samples, path, **kwargs):
        seen.update(kwargs, samples=samples)
        return original(samples, path, **kwargs)

    monkeypatch.setattr(panels, "save_prediction_panels", spy)
    dataset = synthetic(
        split="val", size=(24, 32), num_samples=2, cache=False, modalities=["image", "semantic", "depth"]
    )
    model = ConstantPredictor(dataset.num_classes, majority_class=1, mean_depth=3.0)
    path = write_prediction_panels(model, dataset, dataset.palette, tmp_path / "predictions.png", title="t")
    assert seen["class_names"] == dataset.classes and seen["palette"] == dataset.palette
    assert [s["name"] for s in seen["samples"]] == ["synthetic_val_000000", "synthetic_val_000001"]
    assert all(s["pred_depth"] is not None and s["gt_semantic"] is not None for s in seen["samples"])
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[1] > img.size[0]  # 2 samples x 2 tasks rows
