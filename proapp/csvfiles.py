"""CSV files a spreadsheet can open safely.

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a formula by Excel,
LibreOffice and Google Sheets (CSV injection: a subject ID, a reason or a free-text answer could run a formula
on the data manager's machine). Every CSV the project writes goes through `writer`, which neutralises such text
cells the OWASP way: a leading single quote (``'=1+2``), shown as text by spreadsheets, and the same after a comma or
a semicolon inside a cell (``x;'=1+2``), since French Excel splits cells on semicolons. Numbers are written as
they are (a negative number is not text anyone typed).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# The staff's downloads open in a spreadsheet: the byte order mark tells Excel the file is UTF-8 (accents), and
# French Excel splits columns on semicolons (the `;` variant). Files for machines (the export API) have neither.
BOM = "\ufeff"
SEPARATORS = {"comma": ",", "semicolon": ";"}


# A formula can also start after a separator inside a cell: ``x;=1+2`` in the comma file is one cell for a
# program, but French Excel splits it on the semicolon into ``x`` and ``=1+2`` (and the other way round).
_AFTER_SEPARATOR = re.compile(r"([,;])(?= *[=+\-@\t\r])")


class Verbatim(str):
    """A cell the program made, for a program that reads it as it is (a REDCap action tag ``@READONLY``, a bound
    ``-5``, branching logic): written unchanged. Never wrap what a person typed or a file's wording in it."""

    __slots__ = ()


def safe_cell(value: Any) -> Any:
    """A text cell that no spreadsheet reads as a formula, with either separator: a single quote before a formula
    sign at the start and after every comma or semicolon (a `Verbatim` cell stays as it is)."""
    if not isinstance(value, str) or isinstance(value, Verbatim):
        return value
    if "," in value or ";" in value:
        value = _AFTER_SEPARATOR.sub(r"\1'", value)
    if value.startswith(FORMULA_STARTS):
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
