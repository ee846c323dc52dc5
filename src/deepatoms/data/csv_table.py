"""CSV files read as tables of strings, with the line where each row starts (for messages that
name the line). One reader for every CSV input: crystal tables, labels, string datasets."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from deepatoms.core.files import check_input_file

__all__ = ["CsvTable", "read_csv_table"]

_FIELD_LIMIT = 2**31 - 1  # CIF texts in one cell can be long


@dataclass
class CsvTable:
    """A CSV file's header and data rows (``None`` for a row with the wrong number of fields;
    ``widths`` has their number of fields by row index), the line where each row starts
    (1-based) and the number of data rows in the file."""

    path: Path
    header: list[str]
    rows: list[list[str] | None]
    lines: list[int]
    n_rows_in_file: int
    widths: dict[int, int]


def read_csv_table(path: str | Path, limit: int | None = None, what: str = "CSV file") -> CsvTable:
    """All (or the first ``limit``) data rows of the CSV file ``path``; blank lines are skipped,
    header names stripped. ``what`` names the file in errors: a missing file, a folder, an empty
    file, repeated column names, text that is not UTF-8 or not CSV, a header without rows."""
    path = check_input_file(path, what)
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    rows: list[list[str] | None] = []
    lines: list[int] = []
    widths: dict[int, int] = {}
    n_total, start = 0, 1
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{what} '{path}' is empty; expected a header row")
            header = [h.strip() for h in header]
            dupes = sorted({h for h in header if h and header.count(h) > 1})
            if dupes:
                raise ValueError(f"{what} '{path}' repeats column name(s) {dupes}; rename them")
            start = reader.line_num + 1
            for row in reader:
                if not any(cell.strip() for cell in row):  # a blank line holds no data
                    start = reader.line_num + 1
                    continue
                n_total += 1
                if limit is None or len(rows) < limit:
                    if len(row) != len(header):
                        widths[len(rows)] = len(row)
                    rows.append(row if len(row) == len(header) else None)
                    lines.append(start)
                start = reader.line_num + 1
    except UnicodeDecodeError as err:
        raise ValueError(f"{what} '{path}' is not UTF-8 text ({err})") from err
    except csv.Error as err:
        raise ValueError(f"{what} '{path}' is not valid CSV near line {start}: {err}") from err
    if not rows:
        raise ValueError(f"{what} '{path}' has a header but no data rows")
    return CsvTable(path, header, rows, lines, n_total, widths)
