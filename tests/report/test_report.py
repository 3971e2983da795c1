"""`freqdense report` without a browser: the page parses, needs no other file, shows what each directory holds, and
bad input fails in one line naming the path and the fix."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from report_dirs import CLASSES, write_fake_run

from freqdense.cli.main import build_parser, main
from freqdense.errors import FreqdenseError, ReportError
from freqdense.report import analysis_out, detect_kind, run_dir_of, try_write_report, write_report

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class PageParser(HTMLParser):
    """Collects tags, attributes, table rows (``data-key``) and nesting errors of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: set[str] = set()
        self.rows: dict[str, list[str]] = {}
        self._table: list[str | None] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "table":
            self._table.append(a.get("id"))
        if tag == "tr" and self._table and self._table[-1] and a.get("data-key") is not None:
            self.rows.setdefault(self._table[-1], []).append(a["data-key"])
        self._in_style = tag == "style"
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag == "table" and self._table:
            self._table.pop()
        self._in_style = False
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()

    def handle_data(self, data):
        if self._in_style:
            self.style += data


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text())
    parser.close()
    assert not parser.errors and not parser.stack, (parser.errors, parser.stack)
    return parser


def assert_self_contained(page: PageParser) -> None:
    """Images are decodable data URIs, links are anchors on the page, nothing is fetched or run."""
    tags = {t for t, _ in page.tags}
    assert not tags & {"script", "link", "iframe", "object", "embed", "base"}
    images = [a for t, a in page.tags if t == "img"]
    assert images
    for attrs in images:
        src = attrs["src"]
        assert src.startswith("data:image/png;base64,"), src[:60]
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    for tag, attrs in page.tags:
        for name in ("src", "srcset", "poster", "data", "action", "background"):
            value = attrs.get(name)
            assert value is None or value.startswith("data:"), (tag, name, value[:60])
        href = attrs.get("href")
        assert href is None or (href.startswith("#") and href[1:] in page.ids), (tag, href)
    assert "url(" not in page.style and "@import" not in page.style


def test_run_report_is_one_self_contained_page(fake_run):
    out = write_report(fake_run)
    assert out == fake_run / "report.html"
    page = parse(out)
    assert_self_contained(page)
    assert len([1 for t, _ in page.tags if t == "img"]) == 4  # training, validation, predictions, spectrum
    # headline metrics in the metrics table, per-class IoU in its own
    assert page.rows["metrics-table"] == ["semantic/miou", "semantic/pixel_acc", "depth/rmse", "depth/abs_rel"]
    assert page.rows["per-class-table"] == list(CLASSES)
    assert {"metrics", "curves", "predictions", "analyses", "config", "provenance"} <= page.ids
    assert not list(fake_run.glob(".report.html.tmp-*"))


def test_run_report_shows_config_provenance_and_analyses(fake_run):
    (fake_run / "analysis" / "broken").mkdir()
    (fake_run / "analysis" / "broken" / "broken.json").write_text("{not json")
    text = write_report(fake_run).read_text()
    assert "Best checkpoint: <strong>semantic/miou = 0.4000</strong>" in text
    assert "<details><summary>Full resolved config (config.yaml)</summary>" in text
    assert "freqdense train cfg.yaml --out" in text  # argv[0] shown by its name
    assert "abc123def+dirty" in text and "schedule.total_steps: 4 → 8" in text  # every start, with its changes
    assert "mean CE per pixel" in text and "1.2500" in text  # spectrum headline
    assert "<td>answer</td>" in text and "42" in text  # unknown JSON: key/value table
    assert "broken.json could not be read" in text  # a broken analysis is a note, not a crash
    assert "notes.md" in text


def test_run_without_metrics_json_uses_the_last_evaluation(fake_run):
    (fake_run / "metrics.json").unlink()
    text = write_report(fake_run).read_text()
    assert "No metrics.json: the run has not finished" in text and "(step 8)" in text


def test_demo_report_puts_method_control_trivial_first(fake_demo):
    page = parse(write_report(fake_demo))
    assert_self_contained(page)
    assert page.rows["demo-metrics"] == ["FreqFusion-FPN", "bilinear-FPN", "trivial"]  # by role, not file order
    assert page.rows["demo-per-class"] == list(CLASSES)
    assert page.rows["demo-analysis-similarity"] == ["intra", "inter", "margin"]
    assert {"comparison", "curves", "arms", "arm-FreqFusion-FPN", "arm-bilinear-FPN"} <= page.ids
    headings = [a.get("id") for t, a in page.tags if t == "section"]
    assert headings.index("comparison") < headings.index("arms")
    text = (fake_demo / "report.html").read_text()
    assert "is better than <strong>bilinear-FPN</strong>" in text


def test_demo_with_a_missing_arm_directory_says_so(fake_demo):
    import shutil

    shutil.rmtree(fake_demo / "control")
    text = write_report(fake_demo).read_text()
    assert "Missing run directories: bilinear-FPN" in text


def test_ablation_report_table_and_per_run_curves(fake_ablation):
    page = parse(write_report(fake_ablation))
    assert_self_contained(page)
    assert page.rows["ablation-table"] == ["base", "fafe"]
    text = (fake_ablation / "report.html").read_text()
    assert "<h1>FAFE ladder</h1>" in text
    assert "0 (reference)" in text and " ± " in text
    assert "<summary>fafe: curves of 2 run(s)</summary>" in text
    assert detect_kind(fake_ablation) == "ablation" and detect_kind(fake_ablation / "base" / "seed0") == "run"


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p / "missing", "does not exist; pass a run, demo or ablation directory"),
        (lambda p: (p / "file.txt", (p / "file.txt").write_text("x"))[0], "is a file, not a directory"),
        (lambda p: (p / "empty", (p / "empty").mkdir())[0], "is not a run, demo or ablation directory"),
        (lambda p: write_fake_run(p / "row" / "seed0").parent.parent / "row", "holds the run directories seed0"),
        (lambda p: _with(p / "d", "demo.json", "{oops"), "demo.json is not valid JSON .*re-run `freqdense demo"),
        (lambda p: _with(p / "d", "demo.json", '{"kind": "demo"}'), "needs a 'rows' list"),
        (lambda p: _with(p / "a", "ablation.json", "[]"), "has no 'summary'"),
        (lambda p: _with(p / "r", "metrics.json", "{"), "metrics.json is not valid JSON .*delete it"),
        (lambda p: _with(p / "r", "config.yaml", "a: [1"), "config.yaml is not readable YAML"),
    ],
    ids=["missing", "file", "empty", "ablation-row", "demo-json", "demo-rows", "ablation-json", "metrics", "config"],
)
def test_bad_input_is_one_line_naming_the_path_and_the_fix(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(ReportError, match=match) as info:
        write_report(path)
    assert isinstance(info.value, FreqdenseError)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not (Path(path) / "report.html").exists() if Path(path).is_dir() else True


def _with(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)
    return directory


def test_cli_report_out_and_errors(fake_run, tmp_path, capsys, caplog):
    target = tmp_path / "pages" / "run.html"
    assert main(["report", str(fake_run), "--out", str(target)]) == 0
    assert target.is_file() and f"wrote {target}" in capsys.readouterr().out
    assert not (fake_run / "report.html").exists()
    assert main(["report", str(fake_run), "--out", str(tmp_path / "pages")]) == 0  # a directory: report.html in it
    assert (tmp_path / "pages" / "report.html").is_file()
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="freqdense"):
        assert main(["report", str(tmp_path / "nope")]) == 1
    assert [r.getMessage() for r in caplog.records] == [
        f"report: {tmp_path / 'nope'} does not exist; pass a run, demo or ablation directory"
    ]


def test_the_page_is_replaced_atomically(fake_run, monkeypatch):
    first = write_report(fake_run).read_text()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(ReportError, match="cannot write .*report.html .*disk full.*writable --out"):
        write_report(fake_run)
    monkeypatch.undo()
    assert (fake_run / "report.html").read_text() == first  # the old page is intact
    assert sorted(p.name for p in fake_run.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_try_write_report_only_warns(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert try_write_report(tmp_path / "missing") is None
    assert "could not write the HTML report" in caplog.text and "freqdense report" in caplog.text


def test_analyses_default_into_the_run_directory(fake_run):
    ckpt = fake_run / "checkpoints" / "step_00000008"
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(b"")
    for target in (fake_run, ckpt, ckpt / "model.safetensors"):
        assert run_dir_of(target) == fake_run
        assert analysis_out(target, "spectrum") == fake_run / "analysis" / "spectrum"


@pytest.mark.parametrize("analysis", ["spectrum", "truncation", "similarity", "alignment"])
def test_analyze_run_commands_default_out_to_run_analysis(analysis, fake_run, monkeypatch, capsys):
    from freqdense.cli import analyze_cmd

    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", analysis, "--help"])
    assert exit_info.value.code == 0 and f"RUN/analysis/{analysis}/" in capsys.readouterr().out
    # The command itself: model loading stubbed with an unusable config, so it stops right after resolving --out.
    monkeypatch.setattr(analyze_cmd, "_load_run", lambda args: (None, None, object(), "cpu"))
    extra = ["--sizes", "9"] if analysis == "truncation" else []
    for given, expected in ((None, fake_run / "analysis" / analysis), ("elsewhere", Path("elsewhere"))):
        args = build_parser().parse_args(
            ["analyze", analysis, str(fake_run), *extra, *(["--out", given] * bool(given))]
        )
        with pytest.raises(AttributeError):
            args.func(args)
        assert args.out == expected


def test_known_analysis_json_shapes_are_summarised(tmp_path):
    from freqdense.report.analyses import headline_items, render_analysis

    folder = tmp_path / "similarity"
    folder.mkdir()
    data = {"layer": "decoder", "similarity": {"intra": 0.7, "inter": 0.2, "margin": 0.5}, "lowpass_response": {}}
    (folder / "similarity.json").write_text(json.dumps(data))
    assert headline_items("similarity", data)[:3] == [
        ("intra-class similarity (higher is better)", 0.7),
        ("inter-class similarity (lower is better)", 0.2),
        ("margin intra - inter (higher is better)", 0.5),
    ]
    assert "margin intra - inter" in render_analysis(folder)
    odd = tmp_path / "odd"
    odd.mkdir()
    for i, value in enumerate([[1, 2, 3], "text", None, [{"a": [1, 2, 3, 4, 5, 6]}], {"deep": {"er": {"x": 1}}}]):
        (odd / f"{i}.json").write_text(json.dumps(value))
    assert "could not" not in render_analysis(odd)
