"""Guessing a project's batch schema from sample CSV files.

The guess is a starting point the admin reviews: column types (read from every row of every
sample, so one ``999999.375`` anywhere makes a column float), a file-name pattern, the columns to
ignore (identifiers and unnamed index columns) and a ranked proposal of targets. The target itself
is never guessed: the user chooses it (:func:`propose_targets` ranks the candidates with why).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from entity.project import BatchSchema, ColumnSpec
from exception_layer import ValidationFailed
from project_library.csv_parsing import UnreadableFile, decode_text, looks_like_number, parse_csv
from project_library.values import BOOLEAN_WORDS, missing_mask, parse_column

#: rows read from each sample file (every row of any file the upload limit lets through)
_SAMPLE_ROWS = 1_000_000
#: the most sample files one inference reads
MAX_SAMPLES = 20
#: column names that usually name what is predicted: exact (any case) and as a word in the name
_TARGET_NAMES = {"target", "label", "labels", "class", "y", "outcome", "response", "result"}
_TARGET_WORDS = re.compile(
    r"(?i)(^|[_\s.-])(target|label|class|outcome|churn\w*|default|survived|price|quality|"
    r"species|diagnosis|fraud|status|grade|rating|score|weather|sales|demand|revenue|type)"
    r"($|[_\s.-])")
_MAX_CLASS_COUNT = 20
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


def _read_sample(data: bytes, filename: str):
    try:
        text = decode_text(data)
        parsed = parse_csv(text, nrows=_SAMPLE_ROWS)
    except UnreadableFile as exc:
        raise ValidationFailed(f"The sample {filename} cannot be used: {exc.reason}.",
                               details={"sample": exc.reason}) from None
    header = parsed.header
    if len(header) < 2:
        raise ValidationFailed(
            f"The sample {filename} does not look like a CSV file: its first line has no "
            "commas. A batch file needs a header row of column names separated by commas, and "
            "at least two columns (the features and the target).")
    if _looks_like_data(header):
        raise ValidationFailed(
            f"The sample {filename} has no header row: its first line holds numbers, not "
            "column names. Add a first line with the name of each column.")
    return parsed


def propose_targets(frame: pd.DataFrame, columns: list[ColumnSpec]) -> list[dict]:
    """The columns that could be the target, most likely first, each as ``{"column",
    "problem_type", "reasons"}``: by a name that usually names what is predicted, by values
    that make a class (yes/no, a few categories) or a measurement, never an identifier, a date
    or a constant. The order is a proposal; the user chooses."""
    ranked = []
    for position, spec in enumerate(columns):
        values = frame[spec.name]
        present = values[~missing_mask(values)]
        distinct = int(present.str.strip().nunique())
        if spec.type == "date" or distinct < 2 or _is_id_like(spec.name, values, spec.type):
            continue
        score, reasons = 0.0, []
        if spec.name.strip().lower() in _TARGET_NAMES:
            score += 3
            reasons.append(f"its name '{spec.name}' usually names what is predicted")
        elif _TARGET_WORDS.search(spec.name):
            score += 1.5
            reasons.append(f"its name '{spec.name}' often names what is predicted")
        if spec.type == "boolean" or (spec.type in ("category", "integer")
                                      and distinct <= _MAX_CLASS_COUNT):
            problem = "classification"
            score += 1 if distinct <= _MAX_CLASS_COUNT else 0
            reasons.append(f"{distinct} distinct values, a class to predict")
        elif spec.type in ("integer", "float"):
            problem = "regression"
            score += 0.5
            reasons.append("a number with many values, a quantity to predict")
        else:
            continue  # free text or a category of many values: rarely the target
        if len(present) < len(values):
            score -= 1
            reasons.append(f"{len(values) - len(present)} rows have no value")
        if position == len(columns) - 1:
            score += 0.25
            reasons.append("it is the last column")
        ranked.append((-score, position, {"column": spec.name, "problem_type": problem,
                                          "reasons": reasons}))
    return [item for _, _, item in sorted(ranked, key=lambda r: (r[0], r[1]))]


@dataclass
class Inferred:
    """A guessed schema (``schema.target`` is None: the user chooses it) and the ranked
    target proposals."""

    schema: BatchSchema
    target_proposals: list[dict]

    def to_dict(self) -> dict:
        return {"schema": self.schema.to_dict(), "target_proposals": self.target_proposals}


def infer_from_samples(samples: list[tuple[bytes, str]]) -> Inferred:
    """Guess the batch schema from one or more sample CSV files with the same columns.

    Every row of every sample counts: a column is integer only when every value of every file
    is a whole number, boolean only when every value is a yes/no word, and so on.

    Raises:
        ValidationFailed: no sample, too many, one is empty or not a CSV, or the samples do not
            share their header.
    """
    if not samples:
        raise ValidationFailed("Choose a sample CSV file.", details={"sample": "required"})
    if len(samples) > MAX_SAMPLES:
        raise ValidationFailed(f"At most {MAX_SAMPLES} sample files at once.",
                               details={"sample": f"at most {MAX_SAMPLES} files"})
    frames = []
    header: list[str] | None = None
    first_name = samples[0][1]
    for data, filename in samples:
        parsed = _read_sample(data, filename)
        if header is None:
            header = parsed.header
        elif parsed.header != header:
            missing = [c for c in header if c not in parsed.header]
            extra = [c for c in parsed.header if c not in header]
            raise ValidationFailed(
                f"The sample {filename} has other columns than {first_name}"
                + (f"; it lacks {', '.join(missing)}" if missing else "")
                + (f"; it adds {', '.join(extra)}" if extra else "")
                + ("; the order differs" if not missing and not extra else "")
                + ". All samples must share one header.",
                details={"sample": f"{filename}: other columns than {first_name}"})
        frames.append(parsed.frame)
    frame = pd.concat(frames, ignore_index=True)
    if frame.empty:
        raise ValidationFailed("The sample has a header but no data rows; add a few rows so the "
                               "column types can be recognised.")
    columns = [ColumnSpec(name, infer_column_type(frame[name])) for name in header]
    ignored = [spec.name for spec in columns if _is_id_like(spec.name, frame[spec.name],
                                                             spec.type)]
    if len(ignored) >= len(columns) - 1:
        ignored = []  # never ignore every feature; let the admin decide
    proposals = propose_targets(frame, columns)
    # validated with the best proposal standing in for the target the user will choose
    stand_in = proposals[0]["column"] if proposals else next(
        (c.name for c in columns if c.name not in ignored), header[0])
    BatchSchema(filename_pattern=filename_pattern(first_name), columns=columns,
                target=stand_in, ignored=[c for c in ignored if c != stand_in]).validate()
    schema = BatchSchema(filename_pattern=filename_pattern(first_name), columns=columns,
                         target=None, ignored=ignored)
    return Inferred(schema=schema, target_proposals=proposals)


def infer_schema(data: bytes, filename: str) -> BatchSchema:
    """The schema guessed from one sample (see :func:`infer_from_samples`), with the best
    target proposal filled in: for callers (tests, benchmarks) that need a whole schema.

    Raises:
        ValidationFailed: as :func:`infer_from_samples`, or no column could be the target.
    """
    inferred = infer_from_samples([(data, filename)])
    if not inferred.target_proposals:
        raise ValidationFailed("No column looks like a target; choose one.")
    schema = inferred.schema
    schema.target = inferred.target_proposals[0]["column"]
    schema.ignored = [c for c in schema.ignored if c != schema.target]
    return schema.validate()
