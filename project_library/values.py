"""Turning raw values into typed ones: one set of rules for every way values arrive.

Batch CSV cells (validation, schema inference) and real-time JSON values go through the rules
here, so a value means the same in a batch file as in a request. The client sends the cells
of a local CSV as they are (text) and the server decides with these same rules.

The rules (the README's "Values and missing values" says the same):

- **Missing**: JSON ``null``, a NaN number, or text that, without the spaces around it and in
  any case, is one of ``""``, ``na``, ``n/a``, ``nan``, ``null``, ``none``.
- **float**: a finite number no larger in size than :data:`FLOAT_LIMIT` (about 3.4e38, what the
  tree models' 32-bit floats hold): ``inf``, ``-inf``, ``1e308`` or a 400-digit number are
  refused as out of range. Text is read by pandas (``1.5``, ``-2``, ``1e3``; no ``1_000``).
- **integer**: a whole number within a signed 64-bit integer: text ``12``, ``-3``, ``12.0``;
  a JSON number equal to a whole number (``12``, ``12.0``).
- **boolean**: ``true``/``false``, ``t``/``f``, ``yes``/``no``, ``y``/``n``, ``1``/``0``,
  ``1.0``/``0.0`` (any case); JSON ``true``/``false`` and the numbers 1 and 0.
- **date**: ISO 8601 first, else one format inferred for the whole column, else each value
  alone; JSON numbers are read as their text.
- **category**: any text, without the spaces around it; JSON numbers and booleans as their text.
- JSON objects and lists are never a value.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pandas as pd

#: cell values read as "no value" (compared case-insensitively after stripping spaces)
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})
TRUE_TOKENS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_TOKENS = frozenset({"false", "f", "no", "n", "0", "0.0"})
BOOLEAN_WORDS = frozenset({"true", "false", "t", "f", "yes", "no", "y", "n"})
#: the largest size of a float value: the largest 32-bit float, as the tree models hold their
#: features in 32 bits (a larger value makes every algorithm fail)
FLOAT_LIMIT = float(np.finfo(np.float32).max)
#: integers are signed 64-bit
INTEGER_LIMIT = 2.0**63
#: why a float value out of range is refused, in words
FLOAT_RANGE = "a float must be a finite number between -3.4e38 and 3.4e38"
_INTEGER = re.compile(r"^[+-]?\d+$")
_FLOAT_INTEGRAL = re.compile(r"^[+-]?\d+\.0*$")
_NUMBER_TYPES = ("integer", "float")
_SHOWN_LENGTH = 40


def missing_mask(values: pd.Series) -> pd.Series:
    """True where a string cell holds no value (empty, NA, null...)."""
    return values.str.strip().str.lower().isin(MISSING_TOKENS)


def parse_column(values: pd.Series, column_type: str) -> tuple[pd.Series, pd.Series]:
    """Parse a column of strings as ``column_type``.

    Returns:
        (typed values, mask of the cells that hold a value which does not parse or, for a
        number, lies out of range). Missing cells become NA and are not counted as bad.
    """
    if column_type in _NUMBER_TYPES:
        # Most numeric columns are clean: when every cell parses (no missing token, nothing
        # bad), one C-level conversion gives what the checks below would, without them.
        numbers = pd.to_numeric(values, errors="coerce")
        if not numbers.isna().any():
            if column_type == "float" and bool((numbers.abs() <= FLOAT_LIMIT).all()):
                return numbers.astype("float64"), pd.Series(False, index=values.index)
            if numbers.dtype == "int64":  # every cell an integer literal
                return numbers.astype("Int64"), pd.Series(False, index=values.index)
    missing = missing_mask(values)
    stripped = values.str.strip().where(~missing)
    if column_type in _NUMBER_TYPES:
        numbers = pd.to_numeric(stripped, errors="coerce")
        bad = numbers.isna() & ~missing
        if column_type == "integer":
            integral = stripped.str.match(_INTEGER) | stripped.str.match(_FLOAT_INTEGRAL)
            bad = bad | (~integral.fillna(False).astype(bool) & ~missing)
            bad = bad | (numbers.abs() >= INTEGER_LIMIT)  # beyond a 64-bit integer
            typed = numbers.where(~bad).round().astype("Int64")
        else:
            bad = bad | (numbers.abs() > FLOAT_LIMIT)
            typed = numbers.where(~bad).astype("float64")
        return typed, bad
    if column_type == "boolean":
        lowered = stripped.str.lower()
        truth = lowered.isin(TRUE_TOKENS)
        falsity = lowered.isin(FALSE_TOKENS)
        bad = ~(truth | falsity) & ~missing
        typed = pd.Series(pd.NA, index=values.index, dtype="boolean")
        typed[truth] = True
        typed[falsity] = False
        return typed, bad
    if column_type == "date":
        typed = parse_dates(stripped)
        bad = typed.isna() & ~missing
        return typed, bad
    # category: any text is fine
    typed = stripped.astype(object).where(~missing, np.nan)
    return typed, pd.Series(False, index=values.index)


def out_of_range(values: pd.Series, column_type: str) -> pd.Series:
    """True where a text cell of a float column is a number too large (or infinite) for one:
    the bad values :func:`parse_column` refuses for their size rather than their form."""
    if column_type != "float":
        return pd.Series(False, index=values.index)
    numbers = pd.to_numeric(values.str.strip(), errors="coerce")
    return numbers.abs() > FLOAT_LIMIT


def parse_dates(values: pd.Series) -> pd.Series:
    """Parse date strings: ISO 8601 first, then one inferred format, then each value alone."""
    best = None
    present = values.notna()
    for fmt in ("ISO8601", None, "mixed"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                parsed = pd.to_datetime(values, errors="coerce", format=fmt)
            except (ValueError, TypeError, OverflowError):
                continue
        if getattr(parsed.dtype, "tz", None) is not None:
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        failures = int((parsed.isna() & present).sum())
        if best is None or failures < best[0]:
            best = (failures, parsed)
        if failures == 0:
            break
    if best is None:
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    return best[1]


# -- JSON values ------------------------------------------------------------------------------

def _shown(value) -> str:
    """``value`` as it is echoed in a reason: its repr, cut after 40 characters."""
    text = repr(value)
    return text if len(text) <= _SHOWN_LENGTH else text[:_SHOWN_LENGTH] + "..."


def _not_a(column_type: str, value) -> str:
    return f"{_shown(value)} is not {column_type}"


def _out_of_range(value) -> str:
    return f"{_shown(value)} is out of range: {FLOAT_RANGE}"


def _json_number(value, integer: bool):
    """A JSON number (int or float, not bool) -> (float or NaN, reason or None)."""
    try:
        number = float(value)
    except OverflowError:  # an integer too large for any float
        number = math.inf
    if math.isnan(number):
        return math.nan, None  # NaN: missing, as the text "nan" is
    if integer:
        if not number.is_integer() or abs(number) >= INTEGER_LIMIT:
            return math.nan, _not_a("integer", value)
    elif abs(number) > FLOAT_LIMIT:
        return math.nan, _out_of_range(value)
    return number, None


def _text_reasons(texts: pd.Series, column_type: str) -> tuple[pd.Series, dict[int, str]]:
    """Parse JSON text values with the CSV rules; reasons keyed by position."""
    typed, bad = parse_column(texts, column_type)
    reasons = {}
    if bad.any():
        far = out_of_range(texts, column_type)
        for position in np.flatnonzero(bad.to_numpy()):
            value = texts.iloc[position]
            reasons[int(position)] = (_out_of_range(value)
                                      if far.iloc[position] else _not_a(column_type, value))
    return typed, reasons


def json_column(values: list, column_type: str) -> tuple[object, dict[int, str]]:
    """Turn one column of JSON values (``None`` for null) into typed values.

    Text values follow the same rules as CSV cells (:func:`parse_column`): ``"NA"`` is missing
    in a request as in a batch file, and ``"inf"`` out of range in both.

    Returns:
        (values, reasons): float64 array for a float or integer column (NaN when missing; the
        caller casts integers), a pandas Series for the others; ``reasons`` maps the position
        of each refused value to why (empty when every value is good).
    """
    if column_type in _NUMBER_TYPES:
        return _json_numbers(values, column_type == "integer")
    if column_type == "boolean":
        return _json_booleans(values)
    if column_type == "date":
        return _json_dates(values)
    reasons: dict[int, str] = {}
    result: list = []
    for position, value in enumerate(values):  # a category: any text, as in parse_column
        if isinstance(value, str):
            text = value.strip()
            result.append(np.nan if text.lower() in MISSING_TOKENS else text)
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            result.append(np.nan)
        elif isinstance(value, (dict, list)):
            reasons[position] = _not_a(column_type, value)
            result.append(np.nan)
        else:  # a number or a boolean: its text
            result.append(str(value.item() if isinstance(value, np.generic) else value))
    return pd.Series(result, dtype=object), reasons


def _json_dates(values: list) -> tuple[pd.Series, dict[int, str]]:
    reasons: dict[int, str] = {}
    texts = []
    for position, value in enumerate(values):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            texts.append("")
        elif isinstance(value, str):
            texts.append(value)
        elif isinstance(value, (bool, dict, list)):
            reasons[position] = _not_a("date", value)
            texts.append("")
        else:  # a number: its text
            texts.append(str(value.item() if isinstance(value, np.generic) else value))
    typed, text_reasons = _text_reasons(pd.Series(texts, dtype=object), "date")
    reasons.update(text_reasons)
    return typed, dict(sorted(reasons.items()))


def _json_numbers(values: list, integer: bool) -> tuple[np.ndarray, dict[int, str]]:
    # JSON numbers arrive as Python floats and ints: those columns are converted in one numpy
    # call; any other value (null, text, booleans, beyond the range, fractions in an integer
    # column) takes the value-by-value path, with the same results.
    if all(type(v) is float or type(v) is int for v in values):
        try:
            array = np.array(values, dtype="float64")
        except OverflowError:
            array = None
        if array is not None:
            size = np.abs(array)
            if integer:
                good = (size < INTEGER_LIMIT).all() and (array == np.floor(array)).all()
            else:
                good = (size <= FLOAT_LIMIT).all()
            if good:
                return array, {}
    result = np.full(len(values), np.nan)
    reasons: dict[int, str] = {}
    texts: dict[int, str] = {}
    column_type = "integer" if integer else "float"
    for position, value in enumerate(values):
        if value is None:
            continue
        if type(value) is float or type(value) is int or isinstance(value, np.number):
            result[position], reason = _json_number(value, integer)
            if reason:
                reasons[position] = reason
        elif isinstance(value, str):
            texts[position] = value
        else:  # booleans, objects, lists
            reasons[position] = _not_a(column_type, value)
    if texts:
        positions = list(texts)
        numbers = _clean_number_texts(list(texts.values()), integer)
        if numbers is not None:
            result[positions] = numbers
            return result, dict(sorted(reasons.items()))
        typed, text_reasons = _text_reasons(pd.Series(list(texts.values()), dtype=object),
                                            column_type)
        numbers = typed.astype("float64").to_numpy()
        for index, position in enumerate(positions):
            if index in text_reasons:
                reasons[position] = text_reasons[index]
            else:
                result[position] = numbers[index]
    return result, dict(sorted(reasons.items()))


def _clean_number_texts(texts: list[str], integer: bool) -> np.ndarray | None:
    """The numbers of ``texts`` when each is a number that :func:`parse_column` takes as it is
    (its fast path, without building a Series: what the CLI's text cells usually are); None
    when any needs the full rules (missing tokens, bad values, beyond the range)."""
    numbers = pd.to_numeric(np.array(texts, dtype=object), errors="coerce")
    if integer:
        return numbers.astype("float64") if numbers.dtype == "int64" else None
    numbers = numbers.astype("float64", copy=False)
    return numbers if (np.abs(numbers) <= FLOAT_LIMIT).all() else None


def _json_booleans(values: list) -> tuple[pd.Series, dict[int, str]]:
    result: list = []
    reasons: dict[int, str] = {}
    for position, value in enumerate(values):
        if isinstance(value, bool):
            result.append(value)
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            result.append(pd.NA)
        elif isinstance(value, (int, float)) and value in (0, 1):
            result.append(bool(value))
        elif isinstance(value, str) and (text := value.strip().lower()) in TRUE_TOKENS:
            result.append(True)
        elif isinstance(value, str) and text in FALSE_TOKENS:
            result.append(False)
        else:
            result.append(pd.NA)
            if not (isinstance(value, str) and text in MISSING_TOKENS):
                reasons[position] = _not_a("boolean", value)
    return pd.Series(result, dtype="boolean"), reasons
