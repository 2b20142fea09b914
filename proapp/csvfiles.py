"""CSV files a spreadsheet can open safely.

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a formula by Excel,
LibreOffice and Google Sheets (CSV injection: a subject ID, a reason or a free-text answer could run a formula
on the data manager's machine). Every CSV the project writes goes through `writer`, which neutralises such text
cells the OWASP way: a leading single quote (``'=1+2``), shown as text by spreadsheets. Numbers are written as
they are (a negative number is not text anyone typed).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# The staff's downloads open in a spreadsheet: the byte order mark tells Excel the file is UTF-8 (accents), and
# French Excel splits columns on semicolons (the `;` variant). Files for machines (the export API) have neither.
BOM = "\ufeff"
SEPARATORS = {"comma": ",", "semicolon": ";"}


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """``csv.writer`` (CRLF line ends, as RFC 4180) whose text cells cannot start a formula."""

    def __init__(self, out: TextIO, delimiter: str = ","):
        self._writer = csv.writer(out, lineterminator="\r\n", delimiter=delimiter)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(out: TextIO, delimiter: str = ",") -> SafeWriter:
    return SafeWriter(out, delimiter)
