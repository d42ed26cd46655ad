"""Real-time prediction: JSON records checked against the schema a model was trained on, turned
into the typed frame its pipeline expects, and predicted."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from entity.model_version import ModelVersion
from entity.project import BatchSchema, Project
from exception_layer import ValidationFailed
from integration.file_manager import ProjectFiles
from project_library.csv_parsing import FALSE_TOKENS, TRUE_TOKENS, parse_dates
from project_library.model_artifacts import load_verified_model

MAX_ROWS = 10_000


def json_value(value):
    """A prediction or class label as plain JSON (numpy scalars unwrapped)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class ServingModel:
    """A verified, loaded model version ready to predict records."""

    version: ModelVersion
    model: object
    schema: BatchSchema
    problem_type: str
    classes: list = field(default_factory=list)

    @property
    def inputs(self) -> list:
        """The columns a record may carry: the features, the ignored ones and the target."""
        return self.schema.columns

    def frame(self, records: list[dict]) -> pd.DataFrame:
        """Typed frame of ``records``; raises ValidationFailed naming each wrong field."""
        return records_frame(records, self.schema)

    def predict(self, frame: pd.DataFrame) -> dict:
        """Predictions (and class probabilities) for every row of ``frame``."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predicted = self.model.predict(frame)
            proba = (self.model.predict_proba(frame)
                     if self.classes and hasattr(self.model, "predict_proba") else None)
        result = {"predictions": [json_value(v) for v in predicted]}
        if proba is not None:
            labels = [str(json_value(c)) for c in self.classes]
            result["probabilities"] = [
                {label: round(float(p), 6) for label, p in zip(labels, row, strict=True)}
                for row in proba]
        return result


def load_serving_model(files: ProjectFiles, project: Project,
                       version: ModelVersion) -> ServingModel:
    """Load ``version`` after checking its SHA-256 against the registry (ArtifactIntegrityError
    otherwise)."""
    model = load_verified_model(files, version)
    schema = BatchSchema.from_dict(version.schema) if version.schema else project.schema
    problem_type = version.problem_type or project.problem_type
    classes = list(getattr(model, "classes_", [])) if problem_type == "classification" else []
    return ServingModel(version=version, model=model, schema=schema, problem_type=problem_type,
                        classes=classes)


def _number(value, integer: bool):
    if value is None or (isinstance(value, str) and not value.strip()):
        return np.nan, False
    if isinstance(value, bool):
        return np.nan, True
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return np.nan, True
    else:
        return np.nan, True
    if not math.isfinite(number) or (integer and not number.is_integer()):
        return np.nan, True
    return number, False


def _boolean(value):
    if value is None or value == "":
        return pd.NA, False
    if isinstance(value, bool):
        return value, False
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value), False
    text = str(value).strip().lower()
    if text in TRUE_TOKENS:
        return True, False
    if text in FALSE_TOKENS:
        return False, False
    return pd.NA, True


def records_frame(records: list[dict], schema: BatchSchema) -> pd.DataFrame:
    """Check ``records`` (a list of objects) against ``schema`` and build the typed frame.

    Every feature column must be present as a key (its value may be null: it is imputed);
    the target and ignored columns are optional; unknown keys are refused (a typo would
    otherwise silently become a missing value).

    Raises:
        ValidationFailed: with ``details = {"rows": {index: {column: reason}}}`` or
            ``{"records": reason}``.
    """
    if not isinstance(records, list) or not records:
        raise ValidationFailed("Send a non-empty list of records (objects of column: value).",
                               details={"records": "expected a non-empty list of objects"})
    if len(records) > MAX_ROWS:
        raise ValidationFailed(f"At most {MAX_ROWS} records per request; use a batch "
                               "prediction for more.", details={"records": "too many"})
    known = {c.name: c for c in schema.columns}
    required = [c.name for c in schema.feature_columns]
    problems: dict[str, dict[str, str]] = {}
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            problems[str(index)] = {"record": "must be an object of column: value"}
            continue
        row: dict[str, str] = {}
        for name in required:
            if name not in record:
                row[name] = "missing (send null for an unknown value)"
        for name in record:
            if name not in known:
                row[str(name)] = "not a column of this model's schema"
        if row:
            problems[str(index)] = row
    if problems:
        raise ValidationFailed(_summary(problems), details={"rows": problems})

    columns: dict[str, object] = {}
    for spec in schema.columns:
        values = [r.get(spec.name) for r in records]
        if spec.name not in required and all(v is None for v in values):
            continue
        if spec.type in ("integer", "float"):
            parsed = [_number(v, spec.type == "integer") for v in values]
            series = pd.Series([p[0] for p in parsed], dtype="float64")
            if spec.type == "integer":
                series = series.round().astype("Int64")
            bad = [p[1] for p in parsed]
        elif spec.type == "boolean":
            parsed = [_boolean(v) for v in values]
            series = pd.Series([p[0] for p in parsed], dtype="boolean")
            bad = [p[1] for p in parsed]
        elif spec.type == "date":
            texts = pd.Series([None if v in (None, "") else str(v) for v in values],
                              dtype=object)
            series = parse_dates(texts)
            bad = [v not in (None, "") and (isinstance(v, (bool, dict, list)) or pd.isna(s))
                   for v, s in zip(values, series, strict=True)]
        else:
            bad = [isinstance(v, (dict, list)) for v in values]
            series = pd.Series([np.nan if v is None or v == "" or isinstance(v, (dict, list))
                                else str(json_value(v)) for v in values], dtype=object)
        for index, is_bad in enumerate(bad):
            if is_bad:
                problems.setdefault(str(index), {})[spec.name] = (
                    f"{records[index].get(spec.name)!r} is not {spec.type}")
        columns[spec.name] = series
    if problems:
        raise ValidationFailed(_summary(problems), details={"rows": problems})
    return pd.DataFrame(columns)


def _summary(problems: dict[str, dict[str, str]]) -> str:
    first_row, fields = next(iter(problems.items()))
    first_field, reason = next(iter(fields.items()))
    more = sum(len(f) for f in problems.values()) - 1
    tail = f" (and {more} more problems)" if more else ""
    return f"Record {first_row}, {first_field}: {reason}{tail}."
