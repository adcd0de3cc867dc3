"""The scorecard's spreadsheet cells: a text a spreadsheet would run as a formula is neutralised,
every other value is kept as it is (``voice.spreadsheets``)."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook

from prevenance.voice import spreadsheets


@pytest.mark.parametrize("text", ["=1+1", "+33 1 23", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1"])
def test_a_text_starting_like_a_formula_gets_an_apostrophe_in_the_csv(text: str) -> None:
    assert spreadsheets.csv_cell(text) == "'" + text


@pytest.mark.parametrize("value", [None, 0, -100.0, 12.5, "alice", "paris-1", "", "a=b", ["x"]])
def test_every_other_value_is_kept(value: object) -> None:
    expected = str(value) if isinstance(value, list) else value
    assert spreadsheets.csv_cell(value) == expected


def test_the_files_keep_numbers_and_never_hold_a_formula() -> None:
    rows = [
        {"agent": '=HYPERLINK("http://x")', "team": "@t", "rtf": -50.0, "n": 3},
        {"agent": "bob", "extra": [1]},
    ]
    read = list(csv.DictReader(io.StringIO(spreadsheets.to_csv(rows).decode("utf-8"))))
    assert [(r["agent"], r["team"], r["rtf"], r["extra"]) for r in read] == [
        ('\'=HYPERLINK("http://x")', "'@t", "-50.0", ""),
        ("bob", "", "", "[1]"),
    ]
    sheet = load_workbook(io.BytesIO(spreadsheets.to_xlsx(rows, "x" * 40, freeze="B2"))).active
    assert sheet is not None and sheet.title == "x" * 31 and sheet.freeze_panes == "B2"
    assert [c.value for c in sheet[2]][:4] == ['=HYPERLINK("http://x")', "@t", -50.0, 3]
    assert not any(cell.data_type == "f" for line in sheet.iter_rows() for cell in line)
    assert spreadsheets.to_csv([]) == b"agent\n"
