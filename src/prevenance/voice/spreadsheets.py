"""The monthly scorecard as files a spreadsheet opens (CSV and XLSX), for the console's download and
``prevenance voice scorecards``: one writer, so both hand payroll the same cells.

**No formula from data.** Agent and team names come from the desk's contacts and from imported
answers, which take any text. A spreadsheet runs a cell starting with ``=``, ``+``, ``-`` or ``@`` (and,
in some, a tab or a carriage return) as a formula: ``=HYPERLINK(...)`` sends the sheet's figures
away, a DDE formula starts a program (CSV injection, OWASP). So such a *text* cell is written with a
leading apostrophe in the CSV (spreadsheets show it as text; the name stays readable), and is a typed
text cell in the XLSX (openpyxl would otherwise store a text starting with ``=`` as a formula).
Numbers, negative ones included, stay numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from openpyxl import Workbook

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a text cell as a formula."""


def columns_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every column met in the rows, in the order first met (``agent`` alone for no rows)."""
    columns: list[str] = []
    for row in rows:
        columns += [name for name in row if name not in columns]
    return columns or ["agent"]


def cell(value: Any) -> Any:
    """A spreadsheet value: None and numbers as they are, anything else (lists, dicts) as text."""
    if value is None or isinstance(value, (int, float, str)):
        return value
    return str(value)


def csv_cell(value: Any) -> Any:
    """``cell`` for a CSV file: a text a spreadsheet would run as a formula gets a leading apostrophe."""
    value = cell(value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def to_csv(rows: Sequence[dict[str, Any]]) -> bytes:
    """The rows as UTF-8 CSV with a header line."""
    columns = columns_of(rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: csv_cell(row.get(name)) for name in columns})
    return out.getvalue().encode("utf-8")


def to_xlsx(rows: Sequence[dict[str, Any]], title: str, *, freeze: str | None = None) -> bytes:
    """The rows as an XLSX workbook of one sheet named ``title`` (cut to Excel's 31 characters);
    every text is a text cell, never a formula."""
    columns = columns_of(rows)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31]
    sheet.append(columns)
    for row in rows:
        sheet.append([cell(row.get(name)) for name in columns])
    for line in sheet.iter_rows():
        for item in line:
            if item.data_type == "f":  # a text starting with "=": keep it, as text
                item.data_type = "s"
    if freeze is not None:
        sheet.freeze_panes = freeze
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
