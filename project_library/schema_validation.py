"""Checking batch files against a project's schema, in full (before training or predicting) and
quickly (on the first chunk of an upload).

Every problem becomes a reason in plain words that the person who made the file can act on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from entity.file_name_pattern import PatternRefused, matches_whole, pattern_problem
from entity.project import BatchSchema
from exception_layer import ValidationFailed
from project_library.csv_parsing import UnreadableFile, decode_text, parse_csv
from project_library.values import FLOAT_RANGE, missing_mask, out_of_range, parse_column

_MAX_EXAMPLES = 3
_MAX_EXAMPLE_LENGTH = 30


@dataclass
class FileReport:
    """The verdict on one batch file: ``ok`` when it can be used; ``reasons`` say why not.
    ``rows`` counts the rows used, after the ``duplicate_rows`` repeated rows were dropped."""

    name: str
    ok: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rows: int = 0
    columns: int = 0
    duplicate_rows: int = 0

    def to_dict(self) -> dict:
        """A JSON-serialisable copy."""
        return asdict(self)


@dataclass
class CheckedBatch:
    """A validated batch file: the report, the typed frame and the raw strings (same rows)."""

    report: FileReport
    frame: pd.DataFrame | None
    raw: pd.DataFrame | None


def file_name_matches(name: str, schema: BatchSchema) -> bool:
    """True when the file name (its last path segment) matches the schema's whole pattern."""
    base = name.rsplit("/", 1)[-1]
    try:
        return matches_whole(schema.filename_pattern, base)
    except PatternRefused:  # a pattern stored before patterns were checked this way
        return False


def _name_reason(name: str, schema: BatchSchema) -> str:
    base = name.rsplit("/", 1)[-1]
    if problem := pattern_problem(schema.filename_pattern):
        return (f"the project's naming pattern {schema.filename_pattern} can no longer be "
                f"used ({problem}); an editor must change it in the project's settings")
    return (f"the file name '{base}' does not follow the project's naming pattern "
            f"{schema.filename_pattern}")


def _example(values: pd.Series) -> str:
    shown = []
    for value in pd.unique(values)[:_MAX_EXAMPLES]:
        text = str(value)
        if len(text) > _MAX_EXAMPLE_LENGTH:
            text = text[:_MAX_EXAMPLE_LENGTH] + "..."
        shown.append(f"'{text}'")
    return ", ".join(shown)


def _range_reason(column: str, values: pd.Series, far: pd.Series) -> str:
    rows = [str(position + 1) for position in np.flatnonzero(far.to_numpy())[:_MAX_EXAMPLES]]
    count = int(far.sum())
    where = ", ".join(rows) + (", ..." if count > len(rows) else "")
    return (f"column '{column}': {count} {'value is' if count == 1 else 'values are'} out of "
            f"range in row{'s' if count > 1 else ''} {where} (e.g. {_example(values[far])}); "
            f"{FLOAT_RANGE}")


def _expected_columns(header: list[str], schema: BatchSchema, require_target: bool) -> list[str]:
    expected = schema.column_names
    if not require_target and schema.target and schema.target not in header:
        expected = [n for n in expected if n != schema.target]
    return expected


def _column_reasons(header: list[str], expected: list[str]) -> list[str]:
    if header == expected:
        return []
    reasons = []
    if len(header) != len(expected):
        reasons.append(f"the file has {len(header)} columns but the schema expects "
                       f"{len(expected)}")
    missing = [n for n in expected if n not in header]
    extra = [n for n in header if n not in expected]
    if missing:
        reasons.append("missing columns: " + ", ".join(f"'{n}'" for n in missing))
    if extra:
        reasons.append("unexpected columns: " + ", ".join(f"'{n or '(no name)'}'" for n in extra))
    if not missing and not extra:
        reasons.append("the columns are in a different order than the schema (expected "
                       + ", ".join(expected) + ")")
    return reasons


def _check(name: str, data: bytes, schema: BatchSchema, *, require_target: bool,
           sample: bool) -> CheckedBatch:
    """The shared check; ``sample`` relaxes the checks that need the whole file."""
    reasons: list[str] = []
    warnings: list[str] = []
    if not file_name_matches(name, schema):
        reasons.append(_name_reason(name, schema))

    def verdict(rows: int = 0, columns: int = 0, frame=None, raw=None,
                duplicates: int = 0) -> CheckedBatch:
        ok = not reasons
        report = FileReport(name=name, ok=ok, reasons=reasons, warnings=warnings,
                            rows=rows, columns=columns, duplicate_rows=duplicates)
        return CheckedBatch(report, frame if ok else None, raw if ok else None)

    try:
        parsed = parse_csv(decode_text(data))
    except UnreadableFile as exc:
        reasons.append(exc.reason)
        return verdict()
    raw = parsed.frame
    header = parsed.header
    expected = _expected_columns(header, schema, require_target)
    structure = _column_reasons(header, expected)
    if structure:
        reasons.extend(structure)
        return verdict(len(raw), len(header))
    if raw.empty:
        reasons.append("the file has a header but no data rows")
        return verdict(0, len(header))

    typed: dict[str, pd.Series] = {}
    for column in expected:
        spec = schema.column(column)
        values = raw[column]
        parsed_values, bad = parse_column(values, spec.type)
        typed[column] = parsed_values
        bad_count = int(bad.sum())
        if bad_count:
            present = int((~missing_mask(values)).sum())
            far = bad & out_of_range(values, spec.type)
            wrong = bad & ~far
            if wrong.any():
                reasons.append(f"column '{column}': {int(wrong.sum())} of {present} values are "
                               f"not {spec.type} (e.g. {_example(values[wrong])})")
            if far.any():
                reasons.append(_range_reason(column, values, far))
        if sample:
            continue
        empty = bool(parsed_values.isna().all()) and not bad_count
        if column == schema.target:
            if require_target:
                missing_targets = int(parsed_values.isna().sum()) - bad_count
                if empty:
                    reasons.append(f"the target column '{column}' is empty in every row")
                elif missing_targets:
                    warnings.append(f"{missing_targets} rows have no value in the target column "
                                    f"'{column}'; they cannot be used for training")
        elif empty:
            if column in schema.ignored:
                warnings.append(f"column '{column}' is empty in every row (it is ignored)")
            else:
                reasons.append(f"column '{column}' is empty in every row")

    if reasons:
        return verdict(len(raw), len(header))
    frame = pd.DataFrame(typed, index=raw.index)
    count = 0
    if require_target and not sample:
        duplicated = raw.duplicated()
        count = int(duplicated.sum())
        if count:
            warnings.append(f"{count} duplicate rows were dropped")
            raw = raw[~duplicated]
            frame = frame[~duplicated]
    return verdict(len(raw), len(header), frame.reset_index(drop=True),
                   raw.reset_index(drop=True), duplicates=count)


def check_batch_file(name: str, data: bytes, schema: BatchSchema, *,
                     require_target: bool) -> CheckedBatch:
    """Validate one batch file and keep both its typed and its raw (string) rows.

    Same checks as :func:`validate_batch_file`; prediction uses ``raw`` to write the input rows
    back exactly as they were given.
    """
    return _check(name, data, schema, require_target=require_target, sample=False)


def validate_batch_file(name: str, data: bytes, schema: BatchSchema, *,
                        require_target: bool) -> tuple[FileReport, pd.DataFrame | None]:
    """Fully check one batch file against ``schema``.

    Checks the name against the pattern, the encoding (UTF-8, with or without BOM), the
    delimiter (comma), the column count, names and order, the values of every column against
    its type, columns empty in every row, and (when ``require_target``) the target. Duplicate
    rows are a warning and are dropped when ``require_target`` (training data); prediction files
    keep every row so each gets a prediction.

    Args:
        name: the file's name (or path; its last segment is matched against the pattern).
        data: the file's bytes.
        schema: the project's batch schema.
        require_target: True for training files; for prediction files the target column may
            be absent or present.

    Returns:
        (report, typed frame) — the frame is None unless ``report.ok``. Columns are cast per the
        schema: integer as nullable Int64, float as float64, category as text (NaN when
        missing), boolean as nullable boolean, date as datetime64.

    Raises:
        Nothing for bad files: every problem is a reason in the report.
    """
    checked = check_batch_file(name, data, schema, require_target=require_target)
    return checked.report, checked.frame


def _complete_lines(head: bytes, is_complete: bool) -> bytes:
    if is_complete:
        return head
    cut = head.rfind(b"\n")
    if cut < 0:
        return head  # a single (header) line, or the whole of a tiny file
    return head[:cut + 1]


def check_upload(name: str, head: bytes, schema: BatchSchema, *, require_target: bool,
                 is_complete: bool = False) -> None:
    """Quickly check an upload from its first chunk, before storing the rest.

    Checks the name pattern, that the file is not empty, that it decodes as a comma-separated
    CSV, that its header matches the schema, and the types of the values in the sample rows.
    A partial last line is ignored unless ``is_complete`` (``head`` is the whole file).

    Args:
        name: the uploaded file's name.
        head: the first bytes of the file (e.g. the first 64 KiB).
        schema: the project's batch schema.
        require_target: True for the training folder, False for the prediction folder.
        is_complete: True when ``head`` holds the whole file.

    Raises:
        ValidationFailed: with ``details={"file": name, "reasons": [...]}``.
    """
    data = _complete_lines(head, is_complete)
    if not is_complete and data:
        # A multi-byte character cut at the chunk's end must not fail the decoding.
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
                data = data[:exc.start]
    checked = _check(name, data, schema, require_target=require_target, sample=True)
    reasons = list(checked.report.reasons)
    if reasons == ["the file has a header but no data rows"] and not is_complete:
        return  # the first rows did not fit in the chunk; the full check runs later
    if reasons:
        more = f" (and {len(reasons) - 1} more problems)" if len(reasons) > 1 else ""
        raise ValidationFailed(f"{name.rsplit('/', 1)[-1]} does not match the project's schema: "
                               f"{reasons[0]}{more}.",
                               details={"file": name, "reasons": reasons})
