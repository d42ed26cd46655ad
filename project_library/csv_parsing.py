"""Reading batch CSV files: decoding, delimiter sniffing, the header and the cells as text.

Shared by schema inference (a sample file becomes a schema) and schema validation (a batch file
is checked against a schema), so that both read a file in exactly the same way. The cells'
text becomes typed values through :mod:`project_library.values`, as real-time JSON does.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

import pandas as pd

_BINARY_SIGNATURES = (
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive (or an Excel .xlsx file)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Office document"), (b"\x1f\x8b", "a gzip archive"),
)


class UnreadableFile(Exception):
    """The bytes are not a readable CSV; ``reason`` says why in plain words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class ParsedCsv:
    """A CSV read as text: ``frame`` holds every cell as a string ('' when empty)."""

    header: list[str]
    frame: pd.DataFrame


def decode_text(data: bytes) -> str:
    """Decode a batch file as UTF-8 (with or without a byte-order mark).

    Raises:
        UnreadableFile: empty, binary (an image, an archive...) or not UTF-8 text.
    """
    if not data or not data.strip():
        raise UnreadableFile("the file is empty")
    for signature, what in _BINARY_SIGNATURES:
        if data.startswith(signature):
            raise UnreadableFile(f"the file is not a CSV text file; it looks like {what}")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnreadableFile("the file is saved as UTF-16 text; save it as UTF-8 CSV instead")
    if b"\x00" in data[:65536]:
        raise UnreadableFile("the file is not a CSV text file; it contains binary data")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start:exc.start + 1].hex()
        hint = ""
        try:
            data.decode("cp1252")
            hint = " It looks like Windows-1252/Latin-1 text (e.g. from Excel)."
        except UnicodeDecodeError:
            pass
        raise UnreadableFile(
            f"the file is not UTF-8 text (byte 0x{byte} on line {line} cannot be read).{hint} "
            "Save it as 'CSV UTF-8'") from None


def header_line(text: str) -> str:
    """The first non-blank line of ``text``."""
    for line in text.splitlines():
        if line.strip():
            return line
    return ""


def check_delimiter(first_line: str) -> None:
    """Raise :class:`UnreadableFile` when the header is clearly not comma-separated."""
    if "," in first_line:
        return
    for delimiter, name in ((";", "semicolons (;)"), ("\t", "tabs"), ("|", "vertical bars (|)")):
        if delimiter in first_line:
            raise UnreadableFile(
                f"the values are separated by {name}, not commas; save the file as "
                "comma-separated CSV")


def parse_header(first_line: str) -> list[str]:
    """Column names from the header line (quotes handled, spaces around names removed)."""
    try:
        row = next(csv.reader([first_line]))
    except (csv.Error, StopIteration):
        return []
    return [name.strip() for name in row]


def parse_csv(text: str, *, nrows: int | None = None) -> ParsedCsv:
    """Parse comma-separated ``text`` with a header into a frame of strings.

    Rows with fewer values than the header are padded with empty cells.

    Raises:
        UnreadableFile: the text is not a CSV with a header (wrong delimiter, duplicate or
            missing column names, rows with too many values...).
    """
    first = header_line(text)
    check_delimiter(first)
    header = parse_header(first)
    if not header or all(not name for name in header):
        raise UnreadableFile("the first line has no column names")
    duplicates = sorted({n for n in header if n and header.count(n) > 1})
    if duplicates:
        raise UnreadableFile(f"column names are repeated in the header: {', '.join(duplicates)}")
    try:
        # header=None: the header line fixes the number of fields, so a row with more values
        # is an error instead of silently becoming an index column.
        frame = pd.read_csv(io.StringIO(text), header=None, dtype=str, keep_default_na=False,
                            na_filter=False, skip_blank_lines=True,
                            nrows=None if nrows is None else nrows + 1)
    except pd.errors.EmptyDataError:
        raise UnreadableFile("the file has no header line") from None
    except pd.errors.ParserError as exc:
        raise UnreadableFile(_plain_parser_error(str(exc))) from None
    names = [name.strip() or f"Unnamed: {index}"
             for index, name in enumerate(frame.iloc[0].astype(str))]
    frame = frame.iloc[1:].reset_index(drop=True)
    frame.columns = names
    return ParsedCsv(header=names, frame=frame)


def _plain_parser_error(message: str) -> str:
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if found:
        expected, line, saw = found.groups()
        return (f"line {line} has {saw} values but the header has {expected} columns "
                "(a comma inside a value must be quoted)")
    if "EOF inside string" in message or "EOF" in message:
        return "a quoted value is never closed (an opening \" without its closing \")"
    return "the file cannot be read as CSV"


def looks_like_number(value: str) -> bool:
    """True when ``value`` is a plain number (so a leading '-' or '+' is a sign, not a formula)."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
