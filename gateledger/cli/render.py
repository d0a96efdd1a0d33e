"""Printing query results: aligned tables for people, CSV / TSV / JSON lines / JSON for scripts."""

from __future__ import annotations

import csv
import io
from typing import Any

from gateledger import jsonutil
from gateledger.clickhouse.results import QueryResult, jsonable

FORMATS = ("table", "csv", "tsv", "jsonl", "json")
_NUMERIC = ("Int", "UInt", "Float", "Decimal", "Nullable(Int", "Nullable(UInt", "Nullable(Float", "Nullable(Decimal")


def _cell(v: Any, width: int | None) -> str:
    if v is None:
        text = "NULL"
    elif isinstance(v, dict | list | tuple):
        text = jsonutil.dumps_str(jsonable(v))
    else:
        text = str(jsonable(v))
    text = text.replace("\n", "\\n")
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def render(result: QueryResult, fmt: str = "table", max_width: int = 60) -> str:
    """The result as text in one of FORMATS."""
    if fmt == "jsonl":
        return "".join(
            jsonutil.dumps_str({c: jsonable(v) for c, v in zip(result.columns, row, strict=True)}) + "\n"
            for row in result.rows
        )
    if fmt == "json":
        return jsonutil.dumps_str([{c: jsonable(v) for c, v in zip(result.columns, r, strict=True)} for r in result.rows]) + "\n"
    if fmt in ("csv", "tsv"):
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
        writer.writerow(result.columns)
        for row in result.rows:
            writer.writerow([_cell(v, None) if v is not None else "" for v in row])
        return buf.getvalue()
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    cells = [[_cell(v, max_width) for v in row] for row in result.rows]
    widths = [len(c) for c in result.columns]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [t.startswith(_NUMERIC) for t in result.types]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "│ " + " │ ".join(parts) + " │"

    top = "┌─" + "─┬─".join("─" * w for w in widths) + "─┐"
    mid = "├─" + "─┼─".join("─" * w for w in widths) + "─┤"
    bottom = "└─" + "─┴─".join("─" * w for w in widths) + "─┘"
    out = [top, line(result.columns), mid, *(line(r) for r in cells), bottom]
    n = len(result.rows)
    out.append(f"{n} row{'s' if n != 1 else ''}")
    return "\n".join(out) + "\n"
