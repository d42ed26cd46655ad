"""Guessing a project's batch schema from a sample CSV file.

The guess is a starting point the admin reviews: column types, a file-name pattern, the target
(the last column) and the columns to ignore (identifiers and unnamed index columns).
"""

from __future__ import annotations

import re

import pandas as pd

from entity.project import BatchSchema, ColumnSpec
from exception_layer import ValidationFailed
from project_library.csv_parsing import UnreadableFile, decode_text, looks_like_number, parse_csv
from project_library.values import BOOLEAN_WORDS, missing_mask, parse_column

_SAMPLE_ROWS = 10_000
_ID_NAME = re.compile(r"(?i:^(id|idx|index|uuid|guid)$|[_\s.-]id$|^id[_\s.-])|[a-z](Id|ID)$")
_UNNAMED = re.compile(r"^(Unnamed: \d+|)$")
_DIGITS = re.compile(r"\d+")
_MIN_ROWS_FOR_UNIQUE_ID = 10
_DATE_HINT = re.compile(r"[-/:.]|\d{4}|[A-Za-z]{3}")


def filename_pattern(filename: str) -> str:
    """A regular expression matching files named like ``filename``.

    Each run of digits becomes ``\\d{n}``; everything else is matched literally.
    E.g. ``wafer_08012020_120000.csv`` -> ``^wafer_\\d{8}_\\d{6}\\.csv$``.
    """
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    parts: list[str] = []
    position = 0
    for match in _DIGITS.finditer(base):
        parts.append(re.escape(base[position:match.start()]))
        parts.append(rf"\d{{{len(match.group())}}}")
        position = match.end()
    parts.append(re.escape(base[position:]))
    return "^" + "".join(parts) + "$"


def infer_column_type(values: pd.Series) -> str:
    """The narrowest of boolean, integer, float, date, category that fits every value."""
    present = values[~missing_mask(values)].str.strip()
    if present.empty:
        return "category"
    if present.str.lower().isin(BOOLEAN_WORDS).all():
        return "boolean"
    for column_type in ("integer", "float"):
        _, bad = parse_column(present, column_type)
        if not bad.any():
            return column_type
    if present.str.contains(_DATE_HINT).all() and not present.map(looks_like_number).any():
        _, bad = parse_column(present, "date")
        if not bad.any():
            return "date"
    return "category"


def _is_id_like(name: str, values: pd.Series, column_type: str) -> bool:
    if _UNNAMED.match(name):
        return True
    if _ID_NAME.search(name) and column_type in ("integer", "category"):
        return True
    present = values[~missing_mask(values)].str.strip()
    if len(present) < _MIN_ROWS_FOR_UNIQUE_ID or len(present) < len(values) or \
            not present.is_unique:
        return False
    if column_type == "category":
        return True
    if column_type == "integer":
        # Unique integers are an identifier only when they number the rows (0 or 1, 2, 3...
        # in order); a measurement such as an amount may be unique in a small sample too.
        numbers = pd.to_numeric(present)
        return bool(numbers.iloc[0] in (0, 1) and numbers.is_monotonic_increasing and
                    numbers.iloc[-1] - numbers.iloc[0] == len(numbers) - 1)
    return False


def _looks_like_data(header: list[str]) -> bool:
    named = [n for n in header if n]
    return bool(named) and all(looks_like_number(n) for n in named)


def infer_schema(data: bytes, filename: str) -> BatchSchema:
    """Guess the batch schema of a project from a sample CSV file.

    Args:
        data: the sample file's bytes (the first 10,000 rows are used).
        filename: the sample's name, from which the file-name pattern is derived.

    Returns:
        A valid :class:`BatchSchema`: column types among ``COLUMN_TYPES``, the last column as the
        target, identifiers and unnamed index columns as ignored.

    Raises:
        ValidationFailed: the sample is empty, not UTF-8 text, not a CSV (an image, prose...),
            or has no header row.
    """
    try:
        text = decode_text(data)
        parsed = parse_csv(text, nrows=_SAMPLE_ROWS)
    except UnreadableFile as exc:
        raise ValidationFailed(f"The sample cannot be used: {exc.reason}.") from None
    header = parsed.header
    if len(header) < 2:
        raise ValidationFailed(
            "The sample does not look like a CSV file: its first line has no commas. A batch "
            "file needs a header row of column names separated by commas, and at least two "
            "columns (the features and the target).")
    if _looks_like_data(header):
        raise ValidationFailed(
            "The sample has no header row: its first line holds numbers, not column names. "
            "Add a first line with the name of each column.")
    frame = parsed.frame
    if frame.empty:
        raise ValidationFailed("The sample has a header but no data rows; add a few rows so the "
                               "column types can be recognised.")
    columns = [ColumnSpec(name, infer_column_type(frame[name])) for name in header]
    target = header[-1]
    ignored = [spec.name for spec in columns
               if spec.name != target and _is_id_like(spec.name, frame[spec.name], spec.type)]
    if len(ignored) == len(columns) - 1:
        ignored = []  # never ignore every feature; let the admin decide
    schema = BatchSchema(filename_pattern=filename_pattern(filename), columns=columns,
                         target=target, ignored=ignored)
    return schema.validate()
