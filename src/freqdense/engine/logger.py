"""Run logging: JSONL and CSV always, TensorBoard when installed. Only the main rank writes."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from .checkpoint import disk_full_error, json_safe, write_text_atomic

log = logging.getLogger(__name__)

__all__ = ["RunLogger", "read_jsonl"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    if Path(path).is_file():
        for line in Path(path).read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: drop it
                log.warning("%s: dropping a truncated log line", path)
    return rows


class RunLogger:
    """Writes ``log.jsonl`` (every row, with ``kind``), ``train.csv`` and ``eval.csv``.

    On resume from step ``s`` call :meth:`truncate` so rows written after the checkpoint (by the killed run) are
    dropped and the resumed curve continues seamlessly.
    """

    def __init__(self, run_dir: Path, *, enabled: bool = True, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._tb = None
        self._tb_wanted = tensorboard
        self._csv_columns: dict[str, list[str]] = {}

    def _tensorboard(self, purge_step: int | None = None):
        if self._tb is None and self._tb_wanted and self.enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # optional extra: pip install 'freqdense[tensorboard]'
                self._tb_wanted = False
                return None
            self._tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge_step)
        return self._tb

    def truncate(self, step: int) -> None:
        """Drop rows logged after ``step`` (from a run killed after its last checkpoint)."""
        if not self.enabled:
            return
        rows = [r for r in read_jsonl(self.run_dir / "log.jsonl") if r.get("step", 0) <= step]
        self._rewrite(rows)
        self._tensorboard(purge_step=step + 1)

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        """Replace ``log.jsonl`` and the CSVs by ``rows``: every file is written aside in full (and fsynced) before any
        is renamed over the old one, so a kill or a full disk while rewriting leaves the old logs intact. A kill
        between two renames leaves files that each hold a prefix of the old ones, and the next resume's truncate
        gives the same result."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        texts = {"log.jsonl": "".join(json.dumps(json_safe(row), allow_nan=False) + "\n" for row in rows)}
        columns: dict[str, list[str]] = {}
        for kind in ("train", "eval"):
            kind_rows = [{k: v for k, v in r.items() if k != "kind"} for r in rows if r.get("kind") == kind]
            if kind_rows:
                columns[kind] = list(dict.fromkeys(k for r in kind_rows for k in r))
                texts[f"{kind}.csv"] = _csv_text(columns[kind], kind_rows)
        staged = []
        try:
            for name, text in texts.items():
                tmp = self.run_dir / f".{name}.rewrite-{os.getpid()}"
                staged.append((tmp, self.run_dir / name))
                with open(tmp, "w", encoding="utf-8", newline="") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
        except BaseException as err:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            full = disk_full_error(self.run_dir / "log.jsonl", err, needed=sum(map(len, texts.values())))
            if full is not None:
                raise full from None
            raise
        for tmp, path in staged:
            os.replace(tmp, path)
        for kind in ("train", "eval"):
            if kind not in columns:
                (self.run_dir / f"{kind}.csv").unlink(missing_ok=True)
        self._csv_columns = columns

    def _write_csv(self, kind: str, row: dict[str, Any]) -> None:
        path = self.run_dir / f"{kind}.csv"
        values = {k: v for k, v in row.items() if k != "kind"}
        columns = self._csv_columns.get(kind)
        if columns is None and path.is_file():
            with open(path, newline="") as f:
                columns = next(csv.reader(f), None)
        if columns is None or not set(values) <= set(columns):
            # new columns appear (first row, or a metric added later): rewrite the file with the union header, aside
            old_rows = []
            if path.is_file():
                with open(path, newline="") as f:
                    old_rows = list(csv.DictReader(f))
            columns = list(dict.fromkeys([*(columns or []), *values]))
            write_text_atomic(path, _csv_text(columns, old_rows))
        self._csv_columns[kind] = columns
        self._append(path, _csv_text(columns, [values], header=False))

    def _append(self, path: Path, text: str) -> None:
        try:
            with open(path, "a", encoding="utf-8", newline="") as f:
                f.write(text)
        except OSError as err:
            full = disk_full_error(path, err, needed=len(text))
            if full is None:
                raise
            raise full from None

    def log(self, kind: str, step: int, values: dict[str, float]) -> None:
        """Append one row (``kind`` is ``train`` or ``eval``)."""
        if not self.enabled:
            return
        row = {"kind": kind, "step": step}
        row.update(
            {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in values.items()}
        )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._append(self.run_dir / "log.jsonl", json.dumps(json_safe(row), allow_nan=False) + "\n")
        self._write_csv(kind, row)
        tb = self._tensorboard()
        if tb is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    tb.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _csv_text(columns: list[str], rows: list[dict[str, Any]], *, header: bool = True) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
