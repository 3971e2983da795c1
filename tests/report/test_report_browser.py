"""The reports of a real tiny run and of a demo directory, opened in headless Chromium: checked from the rendered
page, not from the HTML text.

How: a harness page in ``tmp_path`` loads ``report.html`` in an ``<iframe>`` and, on its ``load`` event (after every
image has loaded or failed), reads ``iframe.contentDocument``: each image's ``naturalWidth``/``naturalHeight`` (0
when the browser could not decode it), the ``data-key`` of the rows of every table with an id, every URL the page
fetched (``performance`` resource entries) and every ``src``/``href`` that is not a ``data:`` URI or an anchor. It
writes that as JSON into ``<pre id="result">``, and ``chromium --headless --dump-dom`` prints the DOM after the
scripts ran. ``--allow-file-access-from-files`` lets a ``file://`` page read a ``file://`` iframe (without it
``contentDocument`` is null, which fails the test rather than passing it). A screenshot of the report itself
(``--screenshot``) must not be blank. Skips only where no Chromium is installed (``.ci/run`` installs Debian's
``chromium``; ``FREQDENSE_CHROMIUM`` names another binary).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from report_dirs import tiny_train_config, write_fake_demo

from freqdense.cli.main import main

pytestmark = pytest.mark.slow

_HARNESS = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>harness</title></head>
<body>
<pre id="result">pending</pre>
<iframe id="page" src="REPORT_URL" width="1280" height="900"></iframe>
<script>
document.getElementById("page").addEventListener("load", function () {
  var out = {};
  try {
    var doc = this.contentDocument;
    var win = this.contentWindow;
    out.title = doc.title;
    out.images = Array.from(doc.images).map(function (img) {
      return {width: img.naturalWidth, height: img.naturalHeight, complete: img.complete,
              scheme: img.currentSrc.split(":")[0], alt: img.alt};
    });
    out.tables = {};
    doc.querySelectorAll("table[id]").forEach(function (t) {
      out.tables[t.id] = Array.from(t.querySelectorAll("tbody tr")).map(function (r) {
        return r.getAttribute("data-key");
      });
    });
    out.external = Array.from(doc.querySelectorAll("[src], [href]")).map(function (e) {
      return e.getAttribute("src") || e.getAttribute("href");
    }).filter(function (u) { return !(u.startsWith("data:") || u.startsWith("#")); });
    out.fetched = win.performance.getEntriesByType("resource").map(function (e) { return e.name; })
      .filter(function (u) { return !u.startsWith("data:"); });
    out.scripts = doc.scripts.length;
    out.sections = Array.from(doc.querySelectorAll("section[id]")).map(function (s) { return s.id; });
    out.textLength = doc.body.innerText.length;
  } catch (err) {
    out.error = String(err);
  }
  document.getElementById("result").textContent = JSON.stringify(out);
});
</script>
</body></html>
"""


def _chromium() -> str:
    for candidate in (os.environ.get("FREQDENSE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    pytest.skip(
        "no Chromium installed: the browser check needs Debian's `chromium` (apt-get install chromium; .ci/run "
        "installs it) or FREQDENSE_CHROMIUM=/path/to/chrome"
    )


def _run_chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    profile = tmp / "chromium-profile"
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--allow-file-access-from-files",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    env = {**os.environ, "HOME": str(tmp)}  # Chromium writes its crash and font caches under HOME
    return subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)


def inspect_page(report: Path, tmp: Path) -> dict:
    """What the browser rendered: images, table rows, external URLs (see the module docstring)."""
    harness = tmp / f"harness-{report.parent.name}.html"
    harness.write_text(_HARNESS.replace("REPORT_URL", report.resolve().as_uri()))
    done = _run_chromium(["--virtual-time-budget=10000", "--dump-dom", harness.as_uri()], tmp)
    match = re.search(r'<pre id="result">(.*?)</pre>', done.stdout, re.S)
    assert match, f"chromium printed no harness DOM (exit {done.returncode}): {done.stderr[-2000:]}"
    text = html.unescape(match.group(1))
    assert text != "pending", "the report never fired its load event in the iframe"
    result = json.loads(text)
    assert "error" not in result, f"the harness could not read the report: {result['error']}"
    return result


def screenshot(report: Path, tmp: Path) -> Image.Image:
    png = tmp / f"shot-{report.parent.name}.png"
    done = _run_chromium([f"--screenshot={png}", "--window-size=1280,2000", report.resolve().as_uri()], tmp)
    assert png.is_file(), f"no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return Image.open(png).convert("RGB")


def assert_not_blank(image: Image.Image) -> None:
    assert image.size == (1280, 2000)
    pixels = np.asarray(image.resize((320, 500))).reshape(-1, 3)
    colours = len(np.unique(pixels, axis=0))
    assert colours > 64, f"only {colours} colours: a blank or broken page"
    ink = float((pixels.min(axis=1) < 235).mean())
    assert ink > 0.05, f"only {ink:.1%} of the screenshot is not white"


def assert_all_images_decoded(result: dict, *, at_least: int) -> None:
    images = result["images"]
    assert len(images) >= at_least, images
    broken = [i for i in images if not (i["complete"] and i["width"] > 0 and i["height"] > 0)]
    assert not broken, f"images the browser could not decode: {broken}"
    assert {i["scheme"] for i in images} == {"data"}
    assert result["external"] == [] and result["fetched"] == [] and result["scripts"] == 0


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """A real 4-step run with a spectrum analysis (run report) and a demo directory whose arms are two real runs."""
    _chromium()  # skip before training when there is no browser
    root = tmp_path_factory.mktemp("report-browser")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_train_config(root / "cache")))
    demo = root / "demo"
    method, control = demo / "method", demo / "control"
    assert main(["train", str(config), "--out", str(method)]) == 0
    assert main(["train", str(config), "--out", str(control), "optim.lr=5.0e-4"]) == 0
    assert (method / "report.html").is_file()  # train writes the page when it finishes
    # no --out: the analysis lands in RUN/analysis/spectrum/, where the report finds it
    assert main(["analyze", "spectrum", str(method), "--num", "2"]) == 0
    assert (method / "analysis" / "spectrum" / "spectrum.png").is_file()
    assert main(["report", str(method)]) == 0
    write_fake_demo(demo, method=method, control=control)
    assert main(["report", str(demo)]) == 0
    return {"run": method / "report.html", "demo": demo / "report.html", "metrics": method / "metrics.json"}


def test_run_report_renders_in_chromium(reports, tmp_path):
    result = inspect_page(reports["run"], tmp_path)
    # training + validation curves and the spectrum plot, all decoded by the browser
    assert_all_images_decoded(result, at_least=3)
    val = json.loads(reports["metrics"].read_text())["val"]
    headline = [k for k in val if k.count("/") == 1]
    classes = [k.rsplit("/", 1)[1] for k in val if k.startswith("semantic/iou/")]
    assert result["tables"]["metrics-table"] == headline
    assert result["tables"]["per-class-table"] == classes
    assert result["sections"][:6] == ["metrics", "curves", "predictions", "analyses", "config", "provenance"]
    assert result["title"] == "Run method"
    assert_not_blank(screenshot(reports["run"], tmp_path))


def test_demo_report_renders_in_chromium(reports, tmp_path):
    result = inspect_page(reports["demo"], tmp_path)
    # comparison curves (2), then per arm its curves (2 each) and the method's spectrum plot
    assert_all_images_decoded(result, at_least=7)
    assert result["tables"]["demo-metrics"] == ["FreqFusion-FPN", "bilinear-FPN", "trivial"]
    assert result["tables"]["demo-analysis-similarity"] == ["intra", "inter", "margin"]
    assert result["sections"][0] == "comparison"
    assert {"arm-FreqFusion-FPN", "arm-bilinear-FPN"} <= set(result["sections"])
    assert_not_blank(screenshot(reports["demo"], tmp_path))


def test_the_harness_detects_a_broken_image(tmp_path):
    """The check can fail: an undecodable data URI reads as naturalWidth 0 in the rendered page."""
    page = tmp_path / "bad" / "report.html"
    page.parent.mkdir()
    page.write_text(
        '<!DOCTYPE html><html><head><title>t</title></head><body><img src="data:image/png;base64,AAAA">'
        '<table id="t"><tbody><tr data-key="a"><td>a</td></tr></tbody></table></body></html>'
    )
    result = inspect_page(page, tmp_path)
    assert result["images"][0]["width"] == 0 and result["tables"]["t"] == ["a"]
    with pytest.raises(AssertionError, match="could not decode"):
        assert_all_images_decoded(result, at_least=1)
