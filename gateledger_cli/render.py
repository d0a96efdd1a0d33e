"""Printing query results: aligned tables for people, CSV / TSV / JSON lines / JSON for scripts."""

from __future__ import annotations

import unicodedata
from typing import Any

from gateledger import jsonutil
from gateledger.clickhouse.results import QueryResult, jsonable

FORMATS = ("table", "vertical", "csv", "tsv", "jsonl", "json")
_NUMERIC = ("Int", "UInt", "Float", "Decimal", "Nullable(Int", "Nullable(UInt", "Nullable(Float", "Nullable(Decimal")


def _cell(v: Any, width: int | None, escape: bool = True) -> str:
    if v is None:
        text = "NULL"
    elif isinstance(v, dict | list | tuple):
        text = jsonutil.dumps_str(jsonable(v))
    else:
        text = str(jsonable(v))
    if escape:
        # One line per row in a table: control characters shown, not obeyed.
        text = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if width is not None and _width(text) > width:
        while _width(text) > width - 1:
            text = text[:-1]
        text += "…"
    return text


def _width(text: str) -> int:
    """Terminal columns: wide (CJK, emoji) characters take two."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 0 if unicodedata.combining(c) else 1
               for c in text)


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - _width(text))
    return fill + text if right else text + fill


def _csv_field(text: str) -> str:
    if text == "" or any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _tsv_field(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def render(result: QueryResult, fmt: str = "table", max_width: int = 60) -> str:
    """The result as text in one of FORMATS."""
    if fmt == "jsonl":
        return "".join(
            jsonutil.dumps_str({c: jsonable(v) for c, v in zip(result.columns, row, strict=True)}) + "\n"
            for row in result.rows
        )
    if fmt == "json":
        return jsonutil.dumps_str([{c: jsonable(v) for c, v in zip(result.columns, r, strict=True)} for r in result.rows]) + "\n"
    if fmt == "csv":
        # RFC 4180, and NULL distinguishable from '': NULL is an empty field, '' is "".
        lines = [",".join(_csv_field(c) for c in result.columns)]
        lines += [",".join("" if v is None else _csv_field(_cell(v, None, escape=False)) for v in row)
                  for row in result.rows]
        return "".join(line + "\n" for line in lines)
    if fmt == "tsv":
        # ClickHouse's TabSeparated conventions: \N for NULL, \t \n \\ escaped.
        lines = ["\t".join(_tsv_field(c) for c in result.columns)]
        lines += ["\t".join("\\N" if v is None else _tsv_field(_cell(v, None, escape=False)) for v in row)
                  for row in result.rows]
        return "".join(line + "\n" for line in lines)
    if fmt == "vertical":
        # One "column: value" line per column, values whole: for wide rows and long values.
        name_w = max((_width(c) for c in result.columns), default=0)
        blocks = []
        for i, row in enumerate(result.rows, 1):
            body = "\n".join(f"{_pad(c, name_w, False)}: {_cell(v, None)}" for c, v in zip(result.columns, row, strict=True))
            blocks.append(f"Row {i}:\n{'─' * 6}\n{body}")
        n = len(result.rows)
        return "\n\n".join(blocks) + ("\n\n" if blocks else "") + f"{n} row{'s' if n != 1 else ''}\n"
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    cells = [[_cell(v, max_width) for v in row] for row in result.rows]
    widths = [_width(c) for c in result.columns]
    for row in cells:
        widths = [max(w, _width(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [t.startswith(_NUMERIC) for t in result.types]

    def line(values: list[str]) -> str:
        parts = [_pad(v, w, num) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "│ " + " │ ".join(parts) + " │"

    top = "┌─" + "─┬─".join("─" * w for w in widths) + "─┐"
    mid = "├─" + "─┼─".join("─" * w for w in widths) + "─┤"
    bottom = "└─" + "─┴─".join("─" * w for w in widths) + "─┘"
    out = [top, line(result.columns), mid, *(line(r) for r in cells), bottom]
    n = len(result.rows)
    out.append(f"{n} row{'s' if n != 1 else ''}")
    return "\n".join(out) + "\n"
