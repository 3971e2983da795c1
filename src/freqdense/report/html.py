"""The page: one ``string.Template`` with inline CSS, and small builders for its pieces (tables, figures, details).

Every builder escapes the text it is given, so file contents (config values, command lines, JSON keys) can never
inject markup. Images are ``data:`` URIs: the page needs no other file, no network and no JavaScript.
"""

from __future__ import annotations

import base64
import html
import math
import mimetypes
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

__all__ = [
    "Section",
    "compact",
    "data_uri",
    "details",
    "esc",
    "figure",
    "fmt",
    "headline",
    "image_file",
    "key_value_table",
    "mapping_rows",
    "note",
    "page",
    "png_uri",
    "pre",
    "table",
]

#: Images larger than this are left out of the page (with a note) so it stays small enough to open.
MAX_IMAGE_BYTES = 20 * 1024 * 1024

_STYLE = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --head: #eef2f8; --accent: #2b5fab; --good: #e5f4e8; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; font: 15px/1.45 -apple-system, "Segoe UI", Roboto,
  "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 64px; }
header.top { border-bottom: 3px solid var(--accent); margin-bottom: 18px; padding-bottom: 10px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 17px; margin: 22px 0 8px; }
h4 { font-size: 15px; margin: 16px 0 6px; }
h5 { font-size: 14px; margin: 14px 0 6px; }
p.caption { margin: 10px 0 0; }
p.meta, p.note, figcaption, .muted { color: var(--muted); }
p.note { font-size: 14px; }
p.warn { background: #fff4e0; border-left: 4px solid #e69a00; padding: 6px 10px; }
nav.toc { background: #f7f9fc; border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; }
nav.toc ol { margin: 4px 0; padding-left: 20px; columns: 2; }
a { color: var(--accent); }
.table-wrap { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: var(--head); font-weight: 600; }
tbody tr:nth-child(even) { background: #fafbfd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; font-family: ui-monospace, Menlo, Consolas,
  monospace; white-space: nowrap; }
td.best { background: var(--good); font-weight: 600; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; }
pre { background: #f7f9fc; border: 1px solid var(--line); padding: 10px; overflow-x: auto; white-space: pre-wrap; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); background: #fff; }
figcaption { font-size: 13px; margin-top: 4px; }
details { border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; margin: 10px 0; }
details > summary { cursor: pointer; font-weight: 600; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 18px; align-items: start; }
.grid > section { min-width: 0; border: 1px solid var(--line); border-radius: 8px; padding: 4px 14px 10px; }
.grid > section > h3:first-child { margin-top: 10px; }
dl.headline { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0; }
dl.headline div { border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; background: #f7f9fc; }
dl.headline dt { font-size: 12px; color: var(--muted); }
dl.headline dd { margin: 0; font-size: 17px; font-weight: 600; font-variant-numeric: tabular-nums; }
@media print { details { border: none; } nav.toc { display: none; } }
"""

_PAGE = Template(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="freqdense $version">
<title>$title</title>
<style>$style</style>
</head>
<body>
<main>
<header class="top">
<h1>$title</h1>
<p class="meta">$subtitle</p>
</header>
$toc
$body
</main>
</body>
</html>
"""
)


class Section:
    """A top-level part of the page: an ``<h2>`` with an anchor (listed in the table of contents) and its HTML."""

    def __init__(self, anchor: str, title: str, body: str) -> None:
        self.anchor, self.title, self.body = anchor, title, body

    def render(self, level: int = 2) -> str:
        """The section as HTML with an ``<h{level}>`` heading."""
        return f'<section id="{esc(self.anchor)}">\n<h{level}>{esc(self.title)}</h{level}>\n{self.body}\n</section>'


def esc(value: Any) -> str:
    """HTML-escaped ``str(value)`` (quotes too, so the result is safe inside attributes)."""
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """A number as a person reads it: 4 decimals, ``g`` format for very large or small values, ``n/a`` for
    missing or non-finite values; other values as text."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 10 ** -(digits - 1)):
            return f"{value:.{digits}g}"
        return f"{value:.{digits}f}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    css_id: str | None = None,
    css_class: str = "",
    row_keys: Sequence[str] | None = None,
    best: Iterable[tuple[int, int]] = (),
    numeric: Iterable[int] = (),
) -> str:
    """A ``<table>``; numbers are formatted with :func:`fmt` and right-aligned.

    Args:
        columns: header cells.
        rows: one sequence of cells per row; a cell that is a ``(text, True)`` tuple is inserted as raw HTML.
        css_id: ``id`` of the table (tests and links find it by this).
        css_class: ``class`` of the table.
        row_keys: ``data-key`` of each row (what the row stands for, e.g. the metric or the arm).
        best: ``(row, column)`` cells to highlight as the best of their column.
        numeric: columns aligned as numbers although their cells are text (``0.41 ± 0.02``).
    """
    marked, numeric = set(best), set(numeric)
    attrs = (f' id="{esc(css_id)}"' if css_id else "") + (f' class="{esc(css_class)}"' if css_class else "")
    out = [f"<table{attrs}>", "<thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr></thead>"]
    out.append("<tbody>")
    for i, row in enumerate(rows):
        key = f' data-key="{esc(row_keys[i])}"' if row_keys is not None else ""
        cells = []
        for j, cell in enumerate(row):
            classes = []
            if isinstance(cell, tuple) and len(cell) == 2 and cell[1] is True:
                text = cell[0]
            else:
                text = esc(fmt(cell))
                if _is_number(cell) or cell is None or j in numeric:
                    classes.append("num")
            if (i, j) in marked:
                classes.append("best")
            cls = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{cls}>{text}</td>")
        out.append(f"<tr{key}>" + "".join(cells) + "</tr>")
    out += ["</tbody>", "</table>"]
    return '<div class="table-wrap">' + "\n".join(out) + "</div>"


def key_value_table(items: Iterable[tuple[str, Any]], *, columns: tuple[str, str] = ("key", "value"), **kw) -> str:
    """A two-column table of ``(key, value)`` pairs."""
    items = list(items)
    return table(columns, items, row_keys=[k for k, _ in items], **kw)


def data_uri(path: Path) -> str | None:
    """The file as a base64 ``data:`` URI, or None when it is larger than :data:`MAX_IMAGE_BYTES`."""
    payload = Path(path).read_bytes()
    if len(payload) > MAX_IMAGE_BYTES:
        return None
    mime = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def png_uri(payload: bytes) -> str:
    """PNG bytes as a ``data:`` URI."""
    return "data:image/png;base64," + base64.b64encode(payload).decode("ascii")


def figure(src: str, caption: str, *, alt: str | None = None) -> str:
    """An ``<img>`` (``src`` is a ``data:`` URI) with its caption."""
    return f'<figure><img src="{esc(src)}" alt="{esc(alt or caption)}"><figcaption>{esc(caption)}</figcaption></figure>'


def image_file(path: Path, caption: str) -> str:
    """:func:`figure` of an image file, or a note when the file is too large or unreadable."""
    try:
        uri = data_uri(path)
    except OSError as err:
        return note(f"{path.name} could not be read ({err.__class__.__name__}: {err}).", warn=True)
    if uri is None:
        return note(f"{path.name} is larger than {MAX_IMAGE_BYTES // 2**20} MiB and was left out; open it directly.")
    return figure(uri, caption, alt=path.name)


def details(summary: str, body: str, *, open_: bool = False) -> str:
    """A collapsible block (closed unless ``open_``)."""
    return f"<details{' open' if open_ else ''}><summary>{esc(summary)}</summary>\n{body}\n</details>"


def note(text: str, *, warn: bool = False) -> str:
    """A paragraph of explanation (``warn``: highlighted, for something missing or broken)."""
    return f'<p class="{"warn" if warn else "note"}">{esc(text)}</p>'


def pre(text: str) -> str:
    """Preformatted text (a config, a command, a markdown table)."""
    return f"<pre>{esc(text)}</pre>"


def headline(items: Iterable[tuple[str, Any]]) -> str:
    """A row of labelled big numbers."""
    cells = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(fmt(v))}</dd></div>" for k, v in items)
    return f'<dl class="headline">{cells}</dl>' if cells else ""


def page(title: str, subtitle: str, sections: Sequence[Section], *, version: str) -> str:
    """The whole document: title, table of contents, sections."""
    toc = ""
    if len(sections) > 1:
        entries = "".join(f'<li><a href="#{esc(s.anchor)}">{esc(s.title)}</a></li>' for s in sections)
        toc = f'<nav class="toc"><strong>Contents</strong><ol>{entries}</ol></nav>'
    return _PAGE.substitute(
        title=esc(title),
        subtitle=esc(subtitle),
        version=esc(version),
        style=_STYLE,
        toc=toc,
        body="\n".join(s.render() for s in sections),
    )


def mapping_rows(mapping: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``(key, value)`` pairs with list/dict values shown compactly (``[32, 48]``, ``{a: 1}``)."""
    return [(str(k), compact(v)) for k, v in mapping.items()]


def compact(value: Any, limit: int = 120) -> Any:
    """Numbers stay numbers; lists and dicts become short text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        text = "[" + ", ".join(fmt(v) if _is_number(v) else str(compact(v, limit)) for v in value) + "]"
    elif isinstance(value, Mapping):
        text = "{" + ", ".join(f"{k}: {compact(v, limit)}" for k, v in value.items()) + "}"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
