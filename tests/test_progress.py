"""freqdense._progress: bar on a terminal, a log line every ~10 s otherwise, heartbeats for calls without a loop."""

from __future__ import annotations

import io
import logging
import time

import pytest

from freqdense import _progress
from freqdense._progress import Progress, format_duration, heartbeat, is_terminal, progress, show_progress

LOGGER = "freqdense.progress"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_format_duration_reads_at_a_glance():
    assert format_duration(4.2) == "4 s"
    assert format_duration(185) == "3 min 05 s"
    assert format_duration(2 * 3600 + 7 * 60 + 5) == "2 h 07 min"
    assert format_duration(-1) == "0 s"


def test_terminal_detection(monkeypatch):
    assert is_terminal(Tty()) and not is_terminal(io.StringIO()) and not is_terminal(object())
    monkeypatch.setattr("sys.stderr", Tty())
    assert show_progress() and show_progress(type("Info", (), {"is_main": True})())
    assert not show_progress(type("Info", (), {"is_main": False})())
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not show_progress()


def test_non_tty_logs_at_most_every_interval_with_eta(caplog):
    clock = FakeClock()
    caplog.set_level(logging.INFO, logger=LOGGER)
    bar = Progress("rendering scenes", 100, unit="scene", bar=False, clock=clock)
    assert not bar.uses_bar
    for _ in range(100):  # 1 s per unit: a line at 10, 20, ... s, not one per unit
        clock.now += 1.0
        bar.update()
    bar.close()
    lines = _messages(caplog)
    assert len(lines) == 10  # nine progress lines (10..90 s; at 100 s the job is done) and the "done" line
    assert lines[0] == "rendering scenes: 10/100 (10%), 10 s elapsed, eta 1 min 30 s"
    assert lines[4] == "rendering scenes: 50/100 (50%), 50 s elapsed, eta 50 s"
    assert lines[-1] == "rendering scenes: done 100/100 in 1 min 40 s"


def test_short_jobs_stay_silent_and_unknown_totals_have_no_eta(caplog):
    clock = FakeClock()
    caplog.set_level(logging.INFO, logger=LOGGER)
    with Progress("quick", 5, bar=False, clock=clock) as bar:
        for _ in range(5):
            clock.now += 1.0
            bar.update()
    assert _messages(caplog) == []  # 5 s < 10 s: nothing logged, not even "done"

    with Progress("stream", None, bar=False, clock=clock, initial=3) as bar:
        clock.now += 12.0
        bar.set_postfix(loss="0.41")
        bar.update(2)
    assert _messages(caplog) == ["stream: 5, 12 s elapsed, loss=0.41", "stream: done 5 in 12 s"]


def test_resumed_jobs_estimate_from_the_units_done_since_the_start(caplog):
    clock = FakeClock()
    caplog.set_level(logging.INFO, logger=LOGGER)
    bar = Progress("train", 200, initial=100, bar=False, clock=clock)
    clock.now += 10.0
    bar.update(10)  # 10 steps in 10 s, 90 to go
    assert _messages(caplog)[0] == "train: 110/200 (55%), 10 s elapsed, eta 1 min 30 s"


def test_disabled_progress_shows_nothing(caplog, monkeypatch):
    monkeypatch.setattr("sys.stderr", Tty())
    clock = FakeClock()
    caplog.set_level(logging.INFO, logger=LOGGER)
    bar = Progress("rank 1", 10, enabled=False, clock=clock)
    assert not bar.uses_bar
    clock.now += 60
    bar.update(10)
    bar.close()
    assert _messages(caplog) == [] and bar.n == 10


def test_tty_draws_a_bar_and_logs_nothing(caplog, monkeypatch):
    terminal = Tty()
    monkeypatch.setattr("sys.stderr", terminal)
    clock = FakeClock()
    caplog.set_level(logging.INFO, logger=LOGGER)
    items = []
    for item in progress(range(4), "eval", unit="batch", clock=clock):
        clock.now += 30.0
        items.append(item)
    assert items == [0, 1, 2, 3]
    assert _messages(caplog) == []
    assert "eval:" in terminal.getvalue() and "/4 " in terminal.getvalue()  # tqdm drew the bar on the terminal


def test_progress_wrapper_uses_len_and_logs_without_a_terminal(caplog, monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    monkeypatch.setattr(_progress, "LOG_INTERVAL_S", 0.0)  # the module default is read at construction
    caplog.set_level(logging.INFO, logger=LOGGER)
    assert list(progress(iter(range(3)), "gen")) == [0, 1, 2]  # no len: counts only
    assert list(progress([7, 8], "list")) == [7, 8]
    assert [line.split(",")[0] for line in _messages(caplog)] == [
        "gen: 1",
        "gen: 2",
        "gen: 3",
        "gen: done 3 in 0 s",
        "list: 1/2 (50%)",
        "list: done 2/2 in 0 s",
    ]


def test_heartbeat_logs_while_the_block_runs_and_stops_with_it(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    with heartbeat("exporting to ONNX", interval=0.02) as beat:
        deadline = time.monotonic() + 5.0
        while beat.beats < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        beat.set("checking the graph")
        seen = beat.beats
        while beat.beats < seen + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert not beat.alive  # the thread ended with the block
    lines = _messages(caplog)
    assert lines[0].startswith("still exporting to ONNX... ") and lines[0].endswith(" s")
    assert any(line.startswith("still checking the graph... ") for line in lines)
    count = len(lines)
    time.sleep(0.1)
    assert len(_messages(caplog)) == count  # nothing after the block


def test_heartbeat_stops_when_the_block_raises_and_can_be_disabled(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    with pytest.raises(RuntimeError), heartbeat("failing", interval=0.01) as beat:
        raise RuntimeError("boom")
    assert not beat.alive
    with heartbeat("off", interval=0.01, enabled=False) as quiet:
        time.sleep(0.05)
    assert not quiet.alive and quiet.beats == 0
